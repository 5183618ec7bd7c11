"""Atomic writes: an artifact is either complete on disk or absent, never half-written."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
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


def _umask() -> int:
    """The process umask (read without changing it where /proc allows; threads may be creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable_dir(path: Path) -> Path:
    """Check, without creating anything, that ``path`` is or can become a writable folder, so a stage
    fails on a bad output before its slow work (and a failed run leaves no empty folder behind)."""
    path = Path(path)
    probe = path
    while not probe.exists() and probe != probe.parent:
        if probe.is_symlink():  # a dangling link cannot become a folder
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(f"output folder {path} cannot be created: {probe} is a file")
    if not probe.exists() or not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"output folder {path} is not writable ({probe})")
    return path


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (flock on its descriptor; no lock file is left behind)."""
    try:
        import fcntl
    except ImportError:  # Windows: the swap below retries instead
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # an unreadable folder cannot be locked: the swap below retries instead
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep_stale(final: Path) -> None:
    """Remove temporaries of ``final`` left by runs that were killed (their process is gone); an old
    version set aside by a run killed mid-swap is put back when ``final`` is missing."""
    prefix = f".{final.name}."
    with _folder_lock(final.parent), contextlib.suppress(OSError):  # another sweeper may get there first
        for sibling in final.parent.iterdir():
            rest = sibling.name[len(prefix):] if sibling.name.startswith(prefix) else ""
            pid = rest.split(".", 1)[0]
            if not rest.endswith(".tmp") or not pid.isdigit() or _alive(int(pid)):
                continue
            if rest.endswith(".old.tmp") and not final.exists():
                os.replace(sibling, final)
            elif sibling.is_dir() and not sibling.is_symlink():
                shutil.rmtree(sibling, ignore_errors=True)
            else:
                sibling.unlink(missing_ok=True)


def _swap_in(tmp: Path, final: Path, is_dir: bool) -> None:
    """Move ``tmp`` onto ``final``: the old version is renamed aside first and deleted last, so a kill at
    any point leaves a complete version on disk (``sweep_stale`` puts it back)."""
    if not is_dir:
        os.replace(tmp, final)  # atomic for files, even when racing another writer
        return
    for _ in range(100):
        with _folder_lock(final.parent):
            aside = None
            if final.exists() or final.is_symlink():
                aside = final.with_name(f"{tmp.name[:-len('.tmp')]}.old.tmp")
                os.replace(final, aside)
            try:
                os.replace(tmp, final)
            except OSError:  # another writer's folder landed in between (only without flock): try again
                if aside is not None and not final.exists():
                    os.replace(aside, final)
                continue
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True) if aside.is_dir() else aside.unlink(missing_ok=True)
        return
    raise UserError(f"could not replace {final}: other processes keep writing it")


@contextlib.contextmanager
def atomic_path(final: Path, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; move it onto ``final`` only if the block succeeds.

    The result follows the umask (a CI artifact stays readable to others), concurrent writers of one
    path each leave a complete result (the last one wins), and temporaries of killed runs are swept.
    """
    final = Path(final)
    ensure_writable_dir(final.parent)
    sweep_stale(final)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    mode = 0o777 & ~_umask()
    if is_dir:
        tmp.mkdir(mode=0o700)
        os.chmod(tmp, mode)
    else:
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.chmod(tmp, mode & 0o666)
    try:
        yield tmp
        _swap_in(tmp, final, is_dir)
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
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
