"""The whole distillation objective of one training step, built from ``[distill.losses]``:

    loss = alpha * KD(s, t) + (1 - alpha) * CE(y, s) + sum_i weight_i * feature_loss_i

The defaults (``soft_target = "kl"``, no feature mappings) are exactly ``kd_loss``.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Sequence

import torch
from torch import nn

from edgedistill.distillation.features import FeatureDistiller, FeaturePair
from edgedistill.distillation.fused_kd import Step, TemperedTeacher, closed_form_step, temper
from edgedistill.distillation.losses import SOFT_TARGETS, Teacher, kd_loss
from edgedistill.errors import UserError


class DistillObjective(nn.Module):
    """KD + CE blended by alpha, plus optional feature losses (whose projections are its parameters)."""

    def __init__(self, temperature: float = 4.0, alpha: float = 0.5, soft_target: str = "kl",
                 features: FeatureDistiller | None = None):
        super().__init__()
        if soft_target not in SOFT_TARGETS:
            raise UserError(f"unknown soft-target loss {soft_target!r}; choose one of {', '.join(SOFT_TARGETS)}")
        self.temperature, self.alpha, self.soft_target = float(temperature), float(alpha), soft_target
        self.features = features

    @property
    def needs_teacher_forward(self) -> bool:
        """Feature losses need the teacher's hidden states, so the teacher runs on every batch."""
        return self.features is not None

    def attached(self) -> ContextManager[Any]:
        """Keep the feature hooks on the student and teacher while training (a no-op without features)."""
        return self.features.attached() if self.features is not None else contextlib.nullcontext()

    def closed_form(self, student_logits: torch.Tensor, teacher: Teacher | TemperedTeacher,
                    targets: torch.Tensor | None) -> Step | None:
        """The step's loss, its gradient w.r.t. the student's logits and the top-1 agreement, without
        autograd (``fused_kd.closed_form_step``), when this objective is the default one (KL at T + CE, no
        feature losses, dense teacher logits); None otherwise: then call the objective and backward its loss."""
        if self.features is not None or self.soft_target != "kl" or (self.alpha < 1.0 and targets is None):
            return None  # (labels missing: the autograd path raises the one-line error)
        if isinstance(teacher, torch.Tensor):
            teacher = temper(teacher, self.temperature)
        if not isinstance(teacher, TemperedTeacher) or teacher.temperature != self.temperature:
            return None  # top-k teachers, or a table tempered at another T (kd_loss says so)
        return closed_form_step(student_logits, teacher, targets, self.alpha)

    def forward(self, student_logits: torch.Tensor, teacher: Teacher, targets: torch.Tensor | None,
                batch: Sequence[torch.Tensor] = ()) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of one step and its parts (for logging)."""
        loss, parts = kd_loss(student_logits, teacher, targets, self.temperature, self.alpha, self.soft_target)
        if self.features is not None:
            feature_total, feature_parts = self.features(batch)
            loss = loss + feature_total
            parts.update(feature_parts)
        return loss, parts


def build_objective(student: nn.Module, teacher: nn.Module, input_names: Sequence[str],
                    sample: Sequence[torch.Tensor], *, temperature: float, alpha: float,
                    soft_target: str = "kl", features: Sequence[Any] = ()) -> DistillObjective:
    """The objective from config values; ``features`` holds mappings with student, teacher, loss, weight.

    Unknown module names fail here, before training, with close matches listed.
    """
    distiller = None
    if features:
        pairs = [FeaturePair(f.student, f.teacher, f.loss, f.weight) if not isinstance(f, FeaturePair) else f
                 for f in features]
        names = list(input_names)
        mask_position = names.index("attention_mask") if "attention_mask" in names else None
        distiller = FeatureDistiller(student, teacher, pairs, sample, mask_position)
    return DistillObjective(temperature, alpha, soft_target, distiller)
