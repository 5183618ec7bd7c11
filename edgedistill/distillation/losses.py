"""Knowledge-distillation losses.

Convention: ``alpha`` weights the soft-target (KD) term and ``1 - alpha`` the hard-label CE term,
as in Hinton et al. (2015):

    loss = alpha * KL(softmax(t / T) || softmax(s / T)) * T**2 + (1 - alpha) * CE(y, s)

KL is summed over classes and averaged over the batch ("batchmean"). The T**2 factor keeps the
soft-target gradients on the same scale as the CE gradients when T changes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgedistill.errors import UserError


def soft_target_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(t/T) || softmax(s/T)) * T**2, summed over classes, mean over the batch."""
    t = float(temperature)
    log_p_student = F.log_softmax(student_logits / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.detach() / t, dim=-1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * (t * t)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor | None,
            temperature: float = 4.0, alpha: float = 0.5) -> tuple[torch.Tensor, dict[str, float]]:
    """The blended distillation loss and its parts (for logging). Labels may be None only when alpha == 1."""
    kl = soft_target_kl(student_logits, teacher_logits, temperature)
    parts = {"kd": float(kl.detach())}
    if alpha >= 1.0:
        return kl, parts
    if targets is None:
        raise UserError(f"distill.alpha = {alpha} needs labels for the CE term; the data has none (set alpha = 1)")
    ce = F.cross_entropy(student_logits, targets)
    parts["ce"] = float(ce.detach())
    return alpha * kl + (1.0 - alpha) * ce, parts
