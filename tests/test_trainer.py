"""Distillation trains the student toward the teacher and leaves the teacher untouched."""

import numpy as np
import torch

from edgedistill.data import load_dataset, split
from edgedistill.distillation.trainer import train
from edgedistill.inference import predict_logits
from edgedistill.zoo import digits


def test_teacher_is_frozen_and_student_learns_from_it():
    splits = split(load_dataset("digits"), 0.25, 0.1, seed=0)
    torch.manual_seed(0)
    teacher, student = digits.teacher(), digits.student()
    train(teacher, splits.train, val=splits.val, epochs=8, lr=3e-3, desc="teacher")
    teacher.train()  # the caller's mode must come back after distillation
    teacher.zero_grad(set_to_none=True)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    flags = [p.requires_grad for p in teacher.parameters()]

    untrained_agree = float((predict_logits(student, splits.test.inputs).argmax(1)
                             == predict_logits(teacher, splits.test.inputs).argmax(1)).float().mean())
    result = train(student, splits.train, teacher=teacher, val=splits.val, epochs=15, alpha=1.0)

    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "distillation changed the teacher's weights"
    assert all(p.grad is None for p in teacher.parameters()), "gradients reached the teacher"
    assert [p.requires_grad for p in teacher.parameters()] == flags and teacher.training
    agree = float((predict_logits(student, splits.test.inputs).argmax(1)
                   == predict_logits(teacher, splits.test.inputs).argmax(1)).float().mean())
    assert agree > 0.9 > untrained_agree
    assert len(result.history) == 15 and 1 <= result.best_epoch <= 15
    # the kept weights are the best validation epoch's
    best = max(result.history, key=lambda r: r["val_acc"])
    assert result.history[result.best_epoch - 1]["val_acc"] == best["val_acc"]


def test_alpha_one_trains_without_labels():
    splits = split(load_dataset("digits"), 0.25, 0.1, seed=0)
    torch.manual_seed(0)
    teacher = digits.teacher()
    train(teacher, splits.train, epochs=5, lr=3e-3)
    unlabeled = splits.train.subset(np.arange(len(splits.train)))
    unlabeled.y = None
    student = digits.student()
    train(student, unlabeled, teacher=teacher, epochs=10, alpha=1.0)
    agree = (predict_logits(student, splits.test.inputs).argmax(1) == predict_logits(teacher, splits.test.inputs).argmax(1))
    assert float(agree.float().mean()) > 0.85
