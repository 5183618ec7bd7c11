"""The distill stage with this issue's pieces: a student derived from the teacher, feature losses from
the config, the teacher cache reused across runs, and `inspect-teacher`."""

import logging
import os

import numpy as np
import pytest
import torch
from torch import nn

from conftest import ONE_THREAD, REPO, assert_one_line_error, run_cli
from edgedistill.config import load_config
from edgedistill.data import load_dataset, split
from edgedistill.distillation.trainer import train
from edgedistill.inference import predict_logits
from edgedistill.modelref import count_parameters, load_model, save_checkpoint
from edgedistill.stages import distill

ENV = {"PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]), **ONE_THREAD}  # subprocesses find deep_teacher
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def deep_teacher(hidden: int = 48) -> nn.Module:
    """Digits teacher with four shape-preserving blocks (children 2..5) that a derived student can drop."""
    blocks = [nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU()) for _ in range(4)]
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), *blocks, nn.Linear(hidden, 10))


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    splits = split(load_dataset("digits"), 0.25, 0.1, 0)
    teacher = deep_teacher()
    train(teacher, splits.train, val=splits.val, epochs=12, lr=3e-3, desc="teacher")
    return save_checkpoint(teacher, tmp_path_factory.mktemp("teacher") / "teacher.pt", "test_distill_recipes:deep_teacher")


@pytest.mark.slow
def test_derived_student_with_feature_loss_from_config(teacher_ckpt, tmp_path):
    config = tmp_path / "pipeline.toml"
    config.write_text(f'out = "{tmp_path / "out"}"\n[teacher]\nmodel = "{teacher_ckpt}"\n[student]\nkeep_every = 2\n'
                      '[distill]\nepochs = 4\n[[distill.losses.features]]\nstudent = "2"\nteacher = "3"\n'
                      'loss = "cosine"\nweight = 0.5\n', encoding="utf-8")
    proc = run_cli("distill", "--config", config, env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert "student derived from the teacher, keeping its layers 1, 3" in proc.stderr
    assert "teacher 13,018 parameters, student 8,314" in proc.stderr  # reported before training
    student = load_model(str(tmp_path / "out" / "student.pt"))
    assert len(student) == 5 and count_parameters(student) == 8314
    splits = split(load_dataset("digits"), 0.25, 0.1, 0)
    teacher = load_model(str(teacher_ckpt))
    agree = (predict_logits(student, splits.test.inputs).argmax(1) == predict_logits(teacher, splits.test.inputs).argmax(1))
    assert float(agree.float().mean()) > 0.85


@pytest.mark.slow
def test_unknown_feature_module_fails_before_training(teacher_ckpt, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[[distill.losses.features]]\nstudent = "0"\nteacher = "blocks.3"\n', encoding="utf-8")
    proc = run_cli("distill", "--config", config, "--teacher", teacher_ckpt, "--out", tmp_path / "o", env=ENV)
    assert_one_line_error(proc, "the teacher has no module 'blocks.3'", "its modules include")
    assert not (tmp_path / "o" / "student.pt").exists()


@pytest.mark.slow
def test_teacher_cache_is_reused_by_the_next_run(teacher_ckpt, tmp_path, caplog):
    overrides = {"teacher.model": str(teacher_ckpt), "out": str(tmp_path), "distill.epochs": 2,
                 "distill.teacher_cache": "on"}
    with caplog.at_level(logging.DEBUG, logger="edgedistill"):
        distill(load_config(None, overrides))
        assert "digits-train: building (no cache yet)" in caplog.text
        caplog.clear()
        first = np.load(tmp_path / "teacher-cache" / "digits-train" / "logits.npy")
        distill(load_config(None, overrides))
        assert "digits-train: reused" in caplog.text and "building" not in caplog.text
    assert first.dtype == np.float16 and first.shape[1] == 10


@pytest.mark.slow
def test_inspect_teacher_prints_and_plots_each_temperature(teacher_ckpt, tmp_path):
    png = tmp_path / "t.png"
    proc = run_cli("inspect-teacher", "--teacher", teacher_ckpt, "-T", "1,4,10", "--samples", "2", "--plot", png, env=ENV)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sum(line.strip().startswith("T=") for line in lines) == 6  # 2 samples x 3 temperatures
    summary = [line for line in lines if line.startswith("mean entropy")][0]
    entropies = [float(part.split(":")[1].split()[0]) for part in summary.split("T=")[1:]]
    assert entropies == sorted(entropies) and entropies[-1] <= np.log(10)  # softer with T, bounded by log(classes)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert_one_line_error(run_cli("inspect-teacher", "-T", "0,2", env=ONE_THREAD), "temperatures must be > 0")
    assert_one_line_error(run_cli("inspect-teacher", "--out", tmp_path, env=ONE_THREAD), "has no trained weights")
