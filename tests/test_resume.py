"""Checkpoints and exact resume: a run killed with SIGKILL and resumed ends with the same weights as an
uninterrupted one; checkpoints hold only the student; bad checkpoints and diverging runs stop cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import edgedistill

from conftest import REPO, run_cli
from edgedistill.data import load_dataset, split
from edgedistill.distillation.trainer import train
from edgedistill.errors import UserError
from edgedistill.modelref import save_checkpoint
from edgedistill.zoo import digits

pytestmark = pytest.mark.slow
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # 2 shared cores: thread contention would dominate the run time
def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, no traceback, and the error is one line (progress lines may come before it)."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert [line for line in lines if "error:" in line] == lines[-1:], lines
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])


RUN = ("distill", "--student", "tests.paced_models:student", "--data", "digits", "--epochs", "3",
       "--checkpoint-every", "4", "--seed", "3")


@pytest.fixture(scope="module")
def teacher_pt(tmp_path_factory) -> Path:
    """A briefly trained digits teacher checkpoint."""
    splits = split(load_dataset("digits"), 0.25, 0.1, seed=0)
    torch.manual_seed(0)
    teacher = digits.teacher()
    train(teacher, splits.train, epochs=4, lr=3e-3, desc="teacher")
    return save_checkpoint(teacher, tmp_path_factory.mktemp("teacher") / "teacher.pt", "edgedistill.zoo.digits:teacher")


@pytest.fixture(scope="module")
def uninterrupted(teacher_pt, tmp_path_factory) -> Path:
    """The run of RUN without interruption, in this process through the Python API (same stage code),
    on one thread like the CLI runs, since the thread count can change float summation order."""
    out = tmp_path_factory.mktemp("uninterrupted")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        edgedistill.distill(None, {"teacher.model": str(teacher_pt), "student.model": "tests.paced_models:student",
                                   "distill.epochs": 3, "distill.checkpoint_every": 4, "distill.seed": 3, "out": str(out)})
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def killed_and_resumed(teacher_pt, tmp_path_factory) -> tuple[Path, dict, subprocess.CompletedProcess]:
    """The same run, SIGKILLed as soon as its first checkpoint exists, then resumed with --resume."""
    out = tmp_path_factory.mktemp("killed")
    ckpt = out / "checkpoints" / "last.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO), **ONE_THREAD}
    proc = subprocess.Popen([sys.executable, "-m", "edgedistill", *RUN, "--teacher", str(teacher_pt), "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (out / "student.pt").exists()
    at_kill = torch.load(ckpt, weights_only=True)["progress"]
    resumed = run_cli(*RUN, "--teacher", teacher_pt, "--out", out, "--resume", env=ONE_THREAD)
    assert resumed.returncode == 0, resumed.stderr
    return out, at_kill, resumed


def _weights(path: Path, key: str) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)[key]


def test_killed_run_resumes_to_the_same_weights(uninterrupted, killed_and_resumed):
    out, at_kill, resumed = killed_and_resumed
    assert 0 < at_kill["step"], "the kill should land mid-epoch, after a step checkpoint"
    assert at_kill["global_step"] < 3 * 19, "the checkpoint at the kill must be from an unfinished run"
    assert "resumed from" in resumed.stderr
    for file, key in (("student.pt", "state_dict"), ("checkpoints/last.pt", "student")):  # best and final weights
        a, b = _weights(uninterrupted / file, key), _weights(out / file, key)
        assert a.keys() == b.keys()
        for name in a:
            assert torch.allclose(a[name], b[name], rtol=0, atol=1e-6), (file, name, (a[name] - b[name]).abs().max())
    # the per-epoch metrics a user sees are the same too (timings aside)
    untimed = lambda run: [{k: v for k, v in row.items() if k != "samples_per_s"}  # noqa: E731
                           for row in _weights(run / "checkpoints/last.pt", "progress")["history"]]
    assert untimed(out) == untimed(uninterrupted) and len(untimed(out)) == 3


def test_checkpoint_holds_the_student_and_never_the_teacher(uninterrupted, teacher_pt):
    ckpt = uninterrupted / "checkpoints" / "last.pt"
    data = torch.load(ckpt, weights_only=True)
    tensors: list[torch.Tensor] = []
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, torch.Tensor):
            tensors.append(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    teacher = _weights(teacher_pt, "state_dict")
    teacher_shapes = {tuple(v.shape) for v in teacher.values()} - {(10,)}  # the output bias has the student's shape
    assert not [t.shape for t in tensors if tuple(t.shape) in teacher_shapes]
    assert ckpt.stat().st_size < teacher_pt.stat().st_size / 3
    assert set(data["student"]) == set(_weights(uninterrupted / "student.pt", "state_dict"))
    for part in ("optimizer", "scheduler", "rng", "progress"):
        assert data[part], part


def test_corrupt_checkpoint_is_a_one_line_error(teacher_pt, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    proc = run_cli(*RUN, "--teacher", teacher_pt, "--out", tmp_path / "out", "--resume", bad, env=ONE_THREAD)
    assert_one_line_error(proc, "corrupt", str(bad))
    assert not (tmp_path / "out" / "student.pt").exists()


def _distill(teacher_pt: Path, out: Path, **overrides) -> None:
    edgedistill.distill(None, {"teacher.model": str(teacher_pt), "distill.epochs": 2, "out": str(out),
                               **{f"distill.{k}": v for k, v in overrides.items()}})


def test_foreign_checkpoint_and_another_runs_checkpoint_are_refused(uninterrupted, teacher_pt, tmp_path):
    with pytest.raises(UserError, match="not an edgedistill training checkpoint"):
        _distill(teacher_pt, tmp_path, resume=str(teacher_pt))  # a model checkpoint, not a training state
    with pytest.raises(UserError, match="different run: student architecture"):
        _distill(teacher_pt, tmp_path, resume=str(uninterrupted / "checkpoints" / "last.pt"))  # paced vs plain student
    _distill(teacher_pt, tmp_path, checkpoint_every=5)
    with pytest.raises(UserError, match="different run: distill.lr is 0.01 there but 0.02 here"):
        _distill(teacher_pt, tmp_path, resume="last", lr=0.02)
    with pytest.raises(UserError, match="nothing to resume: no training checkpoint at .*elsewhere"):
        _distill(teacher_pt, tmp_path / "elsewhere", resume="last")


def test_diverging_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(teacher_pt, tmp_path):
    with pytest.raises(UserError, match="at step") as failure:
        _distill(teacher_pt, tmp_path, lr=1e30, checkpoint_every=1)
    message = str(failure.value)
    assert "\n" not in message and "last good checkpoint" in message
    failed_step = int(message.split("at step ")[1].split()[0])
    kept = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert kept["progress"]["global_step"] == failed_step - 1
    assert all(torch.isfinite(v).all() for v in kept["student"].values())
    assert not (tmp_path / "student.pt").exists()
