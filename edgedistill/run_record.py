"""The run record: what ``distill`` and ``export`` wrote, so the next stage needs no flags.

``distill`` writes ``<out>/run.json`` next to ``student.pt``: the student and teacher checkpoints, the
data section it split (source, tokenizer, max length, fractions, seed) and the temperature. ``export``
rewrites it with the bundles it wrote and its ``--target``. ``export`` and ``validate`` then fill every
model, data and target setting the user did not give (flags and the config file still win) from the
record in their ``--out`` folder, and ``validate`` with no BUNDLE takes the bundles export recorded.

The record is input like any file: a malformed one, or one naming a file that moved, is a one-line
error naming the flag to pass. The factories the writing run trusted (``trusted_for``) are honoured
again only when the record carries a valid HMAC made with this user's key (in the user's state folder),
so a copied-in ``run.json`` can point at files but cannot make a checkpoint's factory trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any, Iterable

from edgedistill.errors import UserError
from edgedistill.trust import ENTRY

NAME = "run.json"
KIND = "edgedistill-run"
VERSION = 1
KEY_FILE = "run-record.key"


# ---- the signing key: 32 random bytes only this user can read -------------------------------------------------

def _key_dirs() -> list[Path]:
    if os.environ.get("EDGEDISTILL_STATE_DIR"):
        return [Path(os.environ["EDGEDISTILL_STATE_DIR"])]
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return [Path(state) / "edgedistill", Path(tempfile.gettempdir()) / f"edgedistill-{uid}"]


def _private_dir(folder: Path) -> bool:
    """``folder`` exists (created if needed), is ours and nobody else can write into it."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = folder.lstat()
    except OSError:
        return False
    own = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return folder.is_dir() and not folder.is_symlink() and own and not st.st_mode & 0o022


def _key(create: bool) -> bytes | None:
    """This user's record key (made on first use when ``create``); None when no private folder can hold one."""
    for folder in _key_dirs():
        if not _private_dir(folder):
            continue
        path = folder / KEY_FILE
        try:
            data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        except OSError:
            data = b""
        if len(data) == 32:
            return data
        if not create or path.exists():
            continue
        tmp = folder / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
            try:
                os.link(tmp, path)  # never replaces a key another process made first
            except FileExistsError:
                pass
            data = path.read_bytes()
        except OSError:
            continue
        finally:
            tmp.unlink(missing_ok=True)
        if len(data) == 32:
            return data
    return None


def _signature(record: dict, key: bytes) -> str:
    body = json.dumps({k: v for k, v in record.items() if k != "signature"}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


# ---- writing ---------------------------------------------------------------------------------------------------

def _portable(path: Path, folder: Path) -> str:
    """``path`` relative to the record's folder when inside it (the folder may move), else absolute."""
    path = Path(path).absolute()
    try:
        return path.relative_to(folder.absolute()).as_posix()
    except ValueError:
        return str(path)


def write(config: Any, *, student: Path | None, teacher: Path | None, bundles: Iterable[Path] = (),
          target: str | None = None) -> Path:
    """Write ``<config.out>/run.json`` (atomically) describing this run."""
    from edgedistill.fileio import write_text_atomic
    from edgedistill.trust import trusted_for

    folder = Path(config.out)
    # what was set, not the defaults: a length read from the teacher's checkpoint must stay "unset"
    data = {**config.data.model_dump(exclude_unset=True), "source": config.data.source}
    source_is_path = Path(data["source"]).exists()
    if source_is_path:
        data["source"] = str(Path(data["source"]).absolute())
    if data.get("tokenizer") and Path(data["tokenizer"]).exists():
        data["tokenizer"] = str(Path(data["tokenizer"]).absolute())
    record: dict[str, Any] = {
        "kind": KIND, "version": VERSION,
        "student": _portable(student, folder) if student else None,
        "teacher": _portable(teacher, folder) if teacher else None,
        "data": data, "data_source_is_path": source_is_path,
        "temperature": config.distill.temperature,
        "target": target,
        "bundles": [_portable(b, folder) for b in bundles],
        "trust_factories": sorted(trusted_for(config)),
    }
    key = _key(create=True)
    if key is not None:
        record["signature"] = _signature(record, key)
    return write_text_atomic(folder / NAME, json.dumps(record, indent=2) + "\n")


# ---- reading (untrusted input) -----------------------------------------------------------------------------------

class Record:
    """A checked run record: paths resolved against its folder, trust only when its signature verifies."""

    def __init__(self, path: Path, raw: dict):
        self.path, self.folder = path, path.parent
        self.student = self._resolve(raw.get("student"))
        self.teacher = self._resolve(raw.get("teacher"))
        self.data: dict = dict(raw["data"])
        self.data_source_is_path = bool(raw.get("data_source_is_path"))
        self.temperature = raw.get("temperature")
        self.target = raw.get("target")
        self.bundles = [self._resolve(b) for b in raw.get("bundles") or []]
        key = _key(create=False)
        signed = key is not None and isinstance(raw.get("signature"), str) and \
            hmac.compare_digest(raw["signature"], _signature(raw, key))
        self.trust_factories: list[str] = list(raw.get("trust_factories") or []) if signed else []

    def _resolve(self, value: str | None) -> Path | None:
        if value is None:
            return None
        path = Path(value)
        return path if path.is_absolute() else self.folder / path


def _malformed(path: Path, why: str) -> UserError:
    return UserError(f"{path} is not a valid run record ({why}): pass --student, --teacher and --data "
                     f"(or run edgedistill distill again)")


def read(folder: Path) -> Record | None:
    """The record in ``folder``, None when there is none; a malformed one is a UserError."""
    from pydantic import ValidationError

    from edgedistill.config import DataConfig

    path = Path(folder) / NAME
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _malformed(path, f"not JSON: {str(exc).splitlines()[0][:80]}") from None
    if not isinstance(raw, dict) or raw.get("kind") != KIND:
        raise _malformed(path, f"kind is not {KIND!r}")
    if raw.get("version") != VERSION:
        raise _malformed(path, f"version {raw.get('version')!r}, this edgedistill reads {VERSION}")
    if not isinstance(raw.get("data"), dict):
        raise _malformed(path, "'data' is not a table")
    optional = {"student": str, "teacher": str, "target": str, "temperature": (int, float), "bundles": list,
                "trust_factories": list}
    for key, types in optional.items():
        if raw.get(key) is not None and not isinstance(raw[key], types):
            raise _malformed(path, f"{key!r} has the wrong type")
    for key in ("bundles", "trust_factories"):
        if not all(isinstance(v, str) and v for v in raw.get(key) or []):
            raise _malformed(path, f"{key!r} must list strings")
    if not all(ENTRY.fullmatch(v) for v in raw.get("trust_factories") or []):
        raise _malformed(path, "'trust_factories' must list module names")
    if not isinstance(raw["data"].get("source"), str):
        raise _malformed(path, "data has no source")
    try:
        DataConfig.model_validate(raw["data"])
    except ValidationError as exc:
        raise _malformed(path, f"data: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    return Record(path, raw)


def _same(a: str | Path, b: Path | None) -> bool:
    try:
        return b is not None and Path(a).resolve() == b.resolve()
    except OSError:
        return False


def defaults(config: Any, *, with_target: bool = False) -> dict[str, Any]:
    """Config overrides (dotted keys) that fill what the user left unset from ``<config.out>/run.json``.

    The record applies when the student is not given, or is the record's own student: a different
    student came from another run. Files the record names must still exist (else: which flag to pass).
    """
    student_given = bool(config.student.model_fields_set)
    teacher_given = bool(config.teacher.model_fields_set)
    data_given = "source" in config.data.model_fields_set
    if student_given and teacher_given and data_given:
        return {}  # everything explicit: the record is not even read
    try:
        record = read(Path(config.out))
    except UserError:
        if student_given:  # a record that is not about this student does not matter
            return {}
        raise
    if record is None or student_given and not _same(config.student.model, record.student):
        return {}
    where = record.path
    overrides: dict[str, Any] = {}
    for role, given, path in (("student", student_given, record.student), ("teacher", teacher_given, record.teacher)):
        if given or path is None:
            continue
        if not path.is_file():
            raise UserError(f"the {role} checkpoint {path} recorded in {where} is missing: pass --{role} PATH")
        overrides[f"{role}.model"] = str(path)
    if not data_given or _same(config.data.source, Path(record.data["source"])):
        source = record.data["source"]
        if not data_given and record.data_source_is_path and not Path(source).exists():
            raise UserError(f"the data {source} recorded in {where} is missing (moved?): pass --data PATH")
        for key, value in record.data.items():
            if key not in config.data.model_fields_set:
                overrides[f"data.{key}"] = value
    if record.temperature is not None and "temperature" not in config.distill.model_fields_set:
        overrides["distill.temperature"] = record.temperature
    if with_target and record.target and "target" not in config.export.model_fields_set:
        overrides["export.target"] = record.target
    if record.trust_factories and any(k in overrides for k in ("student.model", "teacher.model")):
        overrides["trust_factories"] = [*config.trust_factories,
                                        *(f for f in record.trust_factories if f not in config.trust_factories)]
    return overrides


def summary(overrides: dict[str, Any], out: str | Path) -> str | None:
    """One line saying what came from the record (logged once the stage succeeded), None when nothing did."""
    taken = [f"{what} {overrides[key]}" for what, key in (("student", "student.model"), ("teacher", "teacher.model"),
                                                          ("data", "data.source"), ("target", "export.target"))
             if key in overrides]
    return f"from {Path(out) / NAME}: {', '.join(taken)} (flags override)" if taken else None


def recorded_bundles(config: Any) -> list[Path]:
    """The bundles export recorded in ``<config.out>/run.json`` (a UserError when there are none)."""
    record = read(Path(config.out))
    if record is None or not record.bundles:
        where = Path(config.out) / NAME
        raise UserError(f"no BUNDLE given and {where} names none: pass bundle folders, or run edgedistill export first")
    return record.bundles
