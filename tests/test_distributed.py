"""torchrun: two gloo processes train a student of the same quality as one process, and only rank 0 writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import edgedistill
from conftest import REPO
from edgedistill.config import load_config
from edgedistill.distillation.trainer import train
from edgedistill.inference import predict_logits
from edgedistill.modelref import load_model, save_checkpoint
from edgedistill.stages import load_splits
from edgedistill.zoo import digits

pytestmark = pytest.mark.slow
SETTINGS = {"distill.epochs": 6, "distill.seed": 1}


def _quality(out: Path, teacher_pt: Path) -> tuple[float, float]:
    """Test accuracy and top-1 agreement with the teacher of the student in ``out``."""
    test = load_splits(load_config()).test
    student = predict_logits(load_model(str(out / "student.pt")), test.inputs).argmax(1)
    teacher = predict_logits(load_model(str(teacher_pt)), test.inputs).argmax(1)
    return float((student == torch.as_tensor(test.y)).float().mean()), float((student == teacher).float().mean())


def test_two_gloo_processes_match_one(tmp_path):
    splits = load_splits(load_config())
    torch.manual_seed(0)
    teacher = digits.teacher()
    train(teacher, splits.train, epochs=6, lr=3e-3, desc="teacher")
    teacher_pt = save_checkpoint(teacher, tmp_path / "teacher.pt", "edgedistill.zoo.digits:teacher")

    edgedistill.distill(None, {"teacher.model": str(teacher_pt), "out": str(tmp_path / "one"), **SETTINGS})
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "edgedistill", "distill", "--teacher", str(teacher_pt), "--out", str(tmp_path / "two"),
                           *(f"--set={k}={v}" for k, v in SETTINGS.items())],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "data-parallel on 2 processes (gloo)" in proc.stderr
    assert proc.stdout.count("student: ") == 1, proc.stdout  # only rank 0 reports
    # rank 0 alone writes the student and the run record that export/validate read
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["checkpoints", "run.json", "student.pt"]
    assert [p.name for p in (tmp_path / "two" / "checkpoints").iterdir()] == ["last.pt"]  # no half-written leftovers

    acc_one, agree_one = _quality(tmp_path / "one", teacher_pt)
    acc_two, agree_two = _quality(tmp_path / "two", teacher_pt)
    assert acc_two > 0.85 and agree_two > 0.85, (acc_two, agree_two)
    assert abs(acc_two - acc_one) <= 0.03 and abs(agree_two - agree_one) <= 0.03, (acc_one, acc_two, agree_one, agree_two)
