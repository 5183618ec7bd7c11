"""The default distillation loss (temperature-softened KL + CE) as one fused op with its closed-form gradient.

With q = softmax(s/T), p = softmax(t/T) (the teacher, fixed), P = softmax(s) and batch size B:

    loss = alpha * T**2 / B * sum_i KL(p_i || q_i) + (1 - alpha) / B * sum_i -log P_i[y_i]

    d KL(p || q) / d s = (q - p) / T          (the softmax-cross-entropy gradient, chained through s/T)
    d loss / d s       = [alpha * T * (q - p) + (1 - alpha) * (P - onehot(y))] / B

Autograd reaches the same gradient through ~30 small ops and their saved tensors; on a small
student that bookkeeping, not arithmetic, is what made a KD step cost ~1.4x a CE step. The teacher
side (p, and the constant sum p·log p that only shifts the loss value) comes as a ``TemperedTeacher``,
computed once per training set by ``teacher_logits.at_temperature`` or per batch by ``temper``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class TemperedTeacher(NamedTuple):
    """The teacher at temperature T for a batch: probabilities, sum p·log p per row, and its top-1 class."""

    probs: torch.Tensor
    neg_entropy: torch.Tensor
    top1: torch.Tensor
    temperature: float

    def argmax(self, dim: int = -1) -> torch.Tensor:
        """The teacher's top-1 class (computed at T = 1 from the logits, which T does not change)."""
        return self.top1


def temper(teacher_logits: torch.Tensor, temperature: float) -> TemperedTeacher:
    """``teacher_logits`` (batch, classes) as a ``TemperedTeacher`` at ``temperature`` (float32 or wider)."""
    logits = teacher_logits.detach()
    logits = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    log_p = torch.log_softmax(logits / float(temperature), dim=-1)
    probs = log_p.exp()
    # p·log p is 0 where p underflows to 0 (log p may then be -inf)
    neg_entropy = torch.where(probs > 0, probs * log_p, torch.zeros_like(probs)).sum(-1)
    return TemperedTeacher(probs, neg_entropy, logits.argmax(-1), float(temperature))


def _log_softmax_classes(x: torch.Tensor) -> torch.Tensor:
    """log_softmax over classes of (batch, classes) ``x``, returned as a contiguous (classes, batch) tensor.

    On a CPU, PyTorch's kernel along the last dimension loops row by row (128 rows x 10 classes: ~35 us);
    along dim 0 of the transposed view it vectorises over the rows (~10 us). The rest of the op keeps
    this layout so that gather and scatter stay on contiguous memory.
    """
    return torch.log_softmax(x.t(), dim=0)


_constants: dict[tuple, torch.Tensor] = {}


def _constant(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
    """A small cached tensor of ``values`` (a Python scalar in an op costs a conversion each time)."""
    key = (values, like.dtype, like.device)
    if key not in _constants:
        _constants[key] = torch.tensor(values, dtype=like.dtype, device=like.device)
    return _constants[key]


class _KDCrossEntropy(torch.autograd.Function):
    """Forward: (loss, [kd, ce]); backward: the closed-form gradient w.r.t. the student's logits only.

    Every op counts on a small student (each costs a few microseconds of dispatch), so Python scalars
    are folded into cached constant tensors and the two loss parts are computed as one vector.
    """

    @staticmethod
    def forward(ctx, logits, probs, neg_entropy, targets, temperature, alpha):  # noqa: D102 (autograd hook)
        s = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
        probs, batch, t = probs.to(s.dtype), s.shape[0], temperature
        log_q = _log_softmax_classes(s * (1.0 / t))  # (classes, batch)
        kd_sum = neg_entropy.to(s.dtype).sum() - (probs * log_q.t()).sum()
        if alpha < 1.0:
            log_p = _log_softmax_classes(s)
            ce_sum = log_p.gather(0, targets.view(1, -1)).sum()
            raw = torch.stack((kd_sum, ce_sum))
        else:
            log_p, raw = None, torch.stack((kd_sum, kd_sum.new_zeros(())))
        # parts = (T² / B · Σ KL, −1/B · Σ log P[y]); loss = α · kd + (1 − α) · ce
        parts = raw * _constant((t * t / batch, -1.0 / batch), s)
        loss = raw @ _constant((alpha * t * t / batch, -(1.0 - alpha) / batch), s)
        ctx.save_for_backward(log_q, probs, log_p, targets)
        ctx.temperature, ctx.alpha, ctx.dtype = t, alpha, logits.dtype
        ctx.mark_non_differentiable(parts)
        return loss, parts

    @staticmethod
    def backward(ctx, grad_loss, _grad_parts):  # noqa: D102 (autograd hook)
        log_q, probs, log_p, targets = ctx.saved_tensors
        batch, t, alpha = probs.shape[0], ctx.temperature, ctx.alpha
        diff = log_q.exp().t() - probs  # q − p, (batch, classes)
        if log_p is None:
            return diff.mul_(grad_loss * (alpha * t / batch)).to(ctx.dtype), None, None, None, None, None
        soft = log_p.exp()  # P, (classes, batch)
        soft.scatter_add_(0, targets.view(1, -1), _constant((-1.0,), soft).expand(1, batch))  # P − onehot(y)
        grad = torch.add(soft.t(), diff, alpha=alpha * t / (1.0 - alpha))
        return grad.mul_(grad_loss * ((1.0 - alpha) / batch)).to(ctx.dtype), None, None, None, None, None


def fused_kd_loss(student_logits: torch.Tensor, teacher: TemperedTeacher, targets: torch.Tensor | None,
                  alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """alpha·KL(p‖q)·T² + (1−alpha)·CE, batch mean; returns (loss, kd, ce) with kd and ce detached.

    ``targets`` may be None only when alpha ≥ 1 (then ce is 0).
    """
    labels = targets if targets is not None else torch.zeros(0, dtype=torch.long, device=student_logits.device)
    loss, parts = _KDCrossEntropy.apply(student_logits, teacher.probs, teacher.neg_entropy, labels.long(),
                                        teacher.temperature, float(min(alpha, 1.0)))
    return loss, parts[0], parts[1]
