"""Atomic writes: an artifact is either complete on disk or absent, never half-written."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from edgedistill.errors import UserError


def ensure_writable_dir(path: Path) -> Path:
    """Create ``path`` if needed and check that we can write into it (a UserError if not)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"output folder {path} cannot be created: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"output folder {path} is not writable")
    return path


@contextlib.contextmanager
def atomic_path(final: Path, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; rename it onto ``final`` only if the block succeeds."""
    final = Path(final)
    ensure_writable_dir(final.parent)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if is_dir and final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _update(digest: "hashlib._Hash", path: Path) -> None:
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)


def _files_under(folder: Path) -> list[Path]:
    return sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.relative_to(folder).as_posix())


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, or of a folder (such as a Core ML ``.mlpackage``).

    A folder hashes each file's relative POSIX path and contents in sorted order, so the digest
    is the same on every machine and changes when any file is renamed, added, removed or edited.
    """
    path = Path(path)
    digest = hashlib.sha256()
    if not path.is_dir():
        _update(digest, path)
        return digest.hexdigest()
    for file in _files_under(path):
        name = file.relative_to(path).as_posix().encode()
        digest.update(len(name).to_bytes(8, "little") + name)  # length prefix: names cannot run into contents
        digest.update(file.stat().st_size.to_bytes(8, "little"))
        _update(digest, file)
    return digest.hexdigest()


def size_bytes(path: Path) -> int:
    """Size of a file, or the total size of the files in a folder."""
    path = Path(path)
    return sum(f.stat().st_size for f in _files_under(path)) if path.is_dir() else path.stat().st_size
