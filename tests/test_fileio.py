"""Atomic outputs: a bundle or checkpoint is complete or absent, concurrent writers never crash or
mix, a killed run loses nothing and leaves nothing behind, and results follow the umask."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import REPO
from edgedistill.fileio import atomic_path, sweep_stale, write_text_atomic


def write_bundle(final: Path, tag: str) -> None:
    """A two-file 'bundle' whose files name the writer, so a mixed result would show."""
    with atomic_path(final, is_dir=True) as tmp:
        (tmp / "model.pte").write_text(tag * 100)
        (tmp / "manifest.json").write_text(tag)


def assert_complete(final: Path) -> None:
    tag = (final / "manifest.json").read_text()
    assert sorted(p.name for p in final.iterdir()) == ["manifest.json", "model.pte"]
    assert (final / "model.pte").read_text() == tag * 100, "files from two writers were mixed"
    assert sorted(p.name for p in final.parent.iterdir()) == [final.name], "temporaries were left behind"


def test_forty_concurrent_replaces_in_threads_never_raise(tmp_path):
    final = tmp_path / "student-executorch-int8"
    write_bundle(final, "old")
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            write_bundle(final, f"w{i}-")
        except BaseException as exc:  # noqa: BLE001 - any error is the failure this test looks for
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert_complete(final)


def _process_writer(args: tuple[str, int]) -> None:
    write_bundle(Path(args[0]), f"p{args[1]}-")


def test_forty_concurrent_replaces_in_processes_never_raise(tmp_path):
    final = tmp_path / "bundle"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_process_writer, [(str(final), i) for i in range(40)])  # an exception in a writer re-raises here
    assert_complete(final)


KILLER = """
import os, signal, sys
from pathlib import Path
from edgedistill import fileio

final, when = Path(sys.argv[1]), sys.argv[2]
real_replace = os.replace

def replace_then_die(src, dst):
    real_replace(src, dst)
    if when == "after-set-aside" and str(src) == str(final):  # the old bundle is aside, the new not yet in
        os.kill(os.getpid(), signal.SIGKILL)

os.replace = replace_then_die
with fileio.atomic_path(final, is_dir=True) as tmp:
    (tmp / "model.pte").write_text("new" * 100)
    (tmp / "manifest.json").write_text("new")
    if when == "while-writing":
        os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("when", ["while-writing", "after-set-aside"])
def test_a_kill_between_steps_loses_nothing_and_the_next_run_sweeps(tmp_path, when):
    final = tmp_path / "bundle"
    write_bundle(final, "old")
    proc = subprocess.run([sys.executable, "-c", KILLER, str(final), when], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == -9
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "bundle"]
    assert leftovers and all(name.startswith(".bundle.") and name.endswith(".tmp") for name in leftovers)
    sweep_stale(final)  # what the next write into this folder does first
    assert_complete(final)
    assert (final / "manifest.json").read_text() == "old", "the previous bundle must survive a killed replace"
    write_bundle(final, "next")
    assert_complete(final)


def test_a_live_writers_temporary_is_not_swept(tmp_path):
    final = tmp_path / "bundle"
    with atomic_path(final, is_dir=True) as tmp:
        (tmp / "manifest.json").write_text("x")
        sweep_stale(final)  # another run starting now must not delete our work in progress
        assert tmp.is_dir()
        (tmp / "model.pte").write_text("x" * 100)
    assert_complete(final)


@pytest.mark.parametrize("umask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_outputs_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "report.md", "x")
        write_bundle(tmp_path / "bundle", "b")
    finally:
        os.umask(old)
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "bundle").stat().st_mode & 0o777 == dir_mode
    assert (tmp_path / "bundle" / "model.pte").stat().st_mode & 0o777 == file_mode


def test_a_failed_block_leaves_the_old_version_and_no_temporary(tmp_path):
    final = tmp_path / "bundle"
    write_bundle(final, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(final, is_dir=True) as tmp:
            (tmp / "model.pte").write_text("half")
            raise RuntimeError("export failed")
    assert_complete(final)
    assert (final / "manifest.json").read_text() == "old"
