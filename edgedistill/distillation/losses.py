"""Knowledge-distillation losses on logits.

Convention: ``alpha`` weights the soft-target (KD) term and ``1 - alpha`` the hard-label CE term,
as in Hinton et al. (2015) (some libraries use the opposite; here alpha = 1 means "teacher only"):

    loss = alpha * KD(s, t) + (1 - alpha) * CE(y, s)

The KD term is one of (``distill.losses.soft_target``):

- ``kl`` (default): KL(softmax(t/T) || softmax(s/T)) * T**2, summed over classes, mean over the batch
  ("batchmean"). The T**2 factor keeps the soft-target gradients on the scale of the CE gradients.
- ``reverse-kl``: KL(softmax(s/T) || softmax(t/T)) * T**2 (mode-seeking), same reduction.
- ``mse``: mean squared error between raw logits (Ba & Caruana 2014), mean over batch and classes.

The teacher may be given as dense logits or as ``TopK`` (the k largest logits and their class
indices, what the teacher cache stores for many classes): the teacher distribution is then the
softmax over those k classes, and the student's log-probabilities are read at the same indices.
Feature and hidden-state losses live in ``edgedistill.distillation.features``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from edgedistill.distillation.fused_kd import TemperedTeacher, fused_kd_loss, temper
from edgedistill.errors import UserError

SOFT_TARGETS = ("kl", "reverse-kl", "mse")


class TopK(NamedTuple):
    """The teacher's k largest logits per sample (descending) and their class indices."""

    values: torch.Tensor
    indices: torch.Tensor

    def argmax(self, dim: int = -1) -> torch.Tensor:
        """The teacher's top-1 class (the first index: values are sorted descending)."""
        return self.indices[:, 0]


Teacher = torch.Tensor | TopK


def soft_target_kl(student_logits: torch.Tensor, teacher_logits: Teacher, temperature: float) -> torch.Tensor:
    """KL(softmax(t/T) || softmax(s/T)) * T**2, summed over classes, mean over the batch."""
    t = float(temperature)
    log_p_student = F.log_softmax(student_logits / t, dim=-1)
    if isinstance(teacher_logits, TopK):
        log_p_student = log_p_student.gather(-1, teacher_logits.indices.long())
        teacher_logits = teacher_logits.values
    log_p_teacher = F.log_softmax(teacher_logits.detach().to(log_p_student.dtype) / t, dim=-1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * (t * t)


def reverse_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(s/T) || softmax(t/T)) * T**2, summed over classes, mean over the batch."""
    t = float(temperature)
    log_p_student = F.log_softmax(student_logits / t, dim=-1)
    log_p_teacher = F.log_softmax(_dense(teacher_logits, "reverse-kl").detach().to(log_p_student.dtype) / t, dim=-1)
    return F.kl_div(log_p_teacher, log_p_student, reduction="batchmean", log_target=True) * (t * t)


def logit_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean squared error between student and teacher logits (mean over batch and classes)."""
    return F.mse_loss(student_logits, _dense(teacher_logits, "mse").detach().to(student_logits.dtype))


def _dense(teacher: Teacher, kind: str) -> torch.Tensor:
    if isinstance(teacher, TopK):
        raise UserError(f"distill.losses.soft_target = {kind!r} needs the teacher's full logits, but the teacher "
                        f"cache keeps only the top-k classes; use 'kl' or set distill.teacher_cache = 'off'")
    return teacher


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: Teacher, temperature: float,
                     kind: str = "kl") -> torch.Tensor:
    """The KD term named by ``kind`` (one of ``SOFT_TARGETS``)."""
    if kind == "kl":
        return soft_target_kl(student_logits, teacher_logits, temperature)
    if kind == "reverse-kl":
        return reverse_kl(student_logits, teacher_logits, temperature)
    if kind == "mse":
        return logit_mse(student_logits, teacher_logits)
    raise UserError(f"unknown soft-target loss {kind!r}; choose one of {', '.join(SOFT_TARGETS)}")


def kd_loss(student_logits: torch.Tensor, teacher_logits: Teacher | TemperedTeacher, targets: torch.Tensor | None,
            temperature: float = 4.0, alpha: float = 0.5,
            kind: str = "kl") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The blended distillation loss and its parts, as detached 0-d tensors (``float()`` them to log:
    converting every step would wait for the device). Labels may be None only when alpha == 1.

    The default (``kl`` with dense teacher logits, or a ``TemperedTeacher`` already at T) runs as one
    fused op with its closed-form gradient (``fused_kd``); top-k teachers and the other soft targets
    go through autograd.
    """
    if alpha < 1.0 and targets is None:
        raise UserError(f"distill.alpha = {alpha} needs labels for the CE term; the data has none (set alpha = 1)")
    if kind == "kl" and not isinstance(teacher_logits, TopK):
        if not isinstance(teacher_logits, TemperedTeacher):
            teacher_logits = temper(teacher_logits, temperature)
        elif teacher_logits.temperature != float(temperature):
            raise ValueError(f"teacher tempered at T = {teacher_logits.temperature}, loss at T = {temperature}")
        loss, kd, ce = fused_kd_loss(student_logits, teacher_logits, targets, alpha)
        return loss, ({"kd": kd} if alpha >= 1.0 else {"kd": kd, "ce": ce})
    kd = soft_target_loss(student_logits, teacher_logits, temperature, kind)
    parts = {"kd": kd.detach()}
    if alpha >= 1.0:
        return kd, parts
    ce = F.cross_entropy(student_logits, targets)
    parts["ce"] = ce.detach()
    return alpha * kd + (1.0 - alpha) * ce, parts
