"""Shared fixtures: run the real CLI in a subprocess, and one small demo run reused by several tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The test models are tiny: one intra-op thread is as fast, and on a 2-core machine running a test
# and its CLI subprocess at once, more threads only fight each other (seen: 25x slower). Subprocesses
# inherit this; set it before anything imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m edgedistill ARGS`` with this checkout first on the path."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "edgedistill", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=full_env)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, a single 'error:' line on stderr naming each fragment, and no traceback."""
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(err.splitlines()) == 1, err
    assert "error:" in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


SMALL_DEMO = ("--epochs", "30", "--teacher-epochs", "20", "--no-memory")


@pytest.fixture(scope="session")
def demo_out(tmp_path_factory) -> Path:
    """One short demo run (teacher, student, fp32 + int8 .pte bundles, report); tests must not modify it."""
    out = tmp_path_factory.mktemp("demo")
    proc = run_cli("demo", "--out", out, *SMALL_DEMO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (out / "stdout.txt").write_text(proc.stdout)
    return out


@pytest.fixture(scope="session")
def demo_report(demo_out: Path) -> dict:
    return json.loads((demo_out / "report.json").read_text())


# Tiny models on a busy 2-core machine: one intra-op thread is ~20x faster than two fighting threads.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's in-process training on one torch thread, restoring the setting after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
