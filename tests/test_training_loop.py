"""The loop's knobs do what the config says: warm-up + cosine, clipping, early stopping, per-epoch metrics,
and bad values for them are one-line errors (exit 2)."""

from __future__ import annotations


import pytest
import torch

from conftest import assert_one_line_error, run_cli
from edgedistill.data import load_dataset, split
from edgedistill.distillation.trainer import train, warmup_cosine
from edgedistill.zoo import digits


@pytest.fixture(scope="module")
def splits():
    return split(load_dataset("digits"), 0.25, 0.1, seed=0)


@pytest.fixture(scope="module")
def teacher(splits):
    torch.manual_seed(0)
    model = digits.teacher()
    train(model, splits.train, val=splits.val, epochs=4, lr=3e-3, desc="teacher")
    return model


def test_learning_rate_warms_up_linearly_then_decays_along_a_cosine():
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=0.5)
    scheduler = warmup_cosine(optimizer, total_steps=100, warmup_fraction=0.2)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:20] == pytest.approx([0.5 * (i + 1) / 20 for i in range(20)])  # linear ramp, peak at step 20
    assert lrs[20] == pytest.approx(0.5) and max(lrs) == pytest.approx(0.5)
    assert lrs[60] == pytest.approx(0.25, abs=1e-9)  # half-way through the decay: cos = 0
    assert all(a > b for a, b in zip(lrs[20:], lrs[21:])) and lrs[-1] < 0.001


def test_distillation_reports_accuracy_agreement_and_kl_each_epoch(splits, teacher):
    torch.manual_seed(0)
    result = train(digits.student(), splits.train, teacher=teacher, val=splits.val, epochs=6)
    assert [row["epoch"] for row in result.history] == list(range(1, 7))
    first, best = result.history[0], result.history[result.best_epoch - 1]
    for row in result.history:
        assert {"loss", "val_acc", "val_agree", "val_kl", "train_agree", "samples_per_s"} <= row.keys()
    assert best["val_kl"] < first["val_kl"] and best["val_agree"] > 0.85


def test_early_stopping_ends_the_run_after_patience_epochs_without_improvement(splits, teacher):
    torch.manual_seed(0)
    # a learning rate too small to change any prediction: no epoch after the first can improve
    result = train(digits.student(), splits.train, teacher=teacher, val=splits.val, epochs=30, lr=1e-12, patience=3)
    assert result.stopped_early and len(result.history) == 4 and result.best_epoch == 1


def test_gradient_clipping_bounds_the_update(splits):
    moved = {}
    for clip in (0.0, 1e-12):
        torch.manual_seed(0)
        student = digits.student()
        before = [p.detach().clone() for p in student.parameters()]
        train(student, splits.train, epochs=1, lr=1e-2, grad_clip=clip, warmup_fraction=0.0)
        moved[clip] = sum(float((p.detach() - b).abs().sum()) for p, b in zip(student.parameters(), before))
    # AdamW divides by the gradient's scale, so clipping to ~0 only bites through eps: updates shrink ~10^4 x
    assert moved[1e-12] < moved[0.0] / 100


@pytest.mark.parametrize("args,fragment", [
    (("--set", "distill.warmup_fraction=1.5"), "distill.warmup_fraction"),
    (("--set", "distill.grad_clip=-1"), "distill.grad_clip"),
    (("--patience", "-1"), "distill.patience"),
    (("--checkpoint-every", "-5"), "distill.checkpoint_every"),
    (("--set", "distill.device=tpu"), "distill.device"),
])
def test_bad_training_settings_are_one_line_errors(args, fragment):
    assert_one_line_error(run_cli("distill", *args, "--dry-run"), fragment)


def test_set_and_resume_reach_the_config():
    proc = run_cli("distill", "--set", "distill.epochs=7", "--resume", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "epochs = 7" in proc.stdout and 'resume = "last"' in proc.stdout
