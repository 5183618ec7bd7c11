"""The default distillation loss (temperature-softened KL + CE) as one fused op with its closed-form gradient.

With q = softmax(s/T), p = softmax(t/T) (the teacher, fixed), P = softmax(s) and batch size B:

    loss = alpha * T**2 / B * sum_i KL(p_i || q_i) + (1 - alpha) / B * sum_i -log P_i[y_i]

    d KL(p || q) / d s = (q - p) / T          (the softmax-cross-entropy gradient, chained through s/T)
    d loss / d s       = [alpha * T * (q - p) + (1 - alpha) * (P - onehot(y))] / B

Autograd reaches the same gradient through ~30 small ops and their saved tensors; on a small
student that bookkeeping, not arithmetic, is what made a KD step cost ~1.4x a CE step. The teacher
side (p, and the constant sum p·log p that only shifts the loss value) comes as a ``TemperedTeacher``,
computed once per training set by ``teacher_logits.at_temperature`` or per batch by ``temper``.

Two entry points: ``fused_kd_loss`` (an autograd ``Function``: composes with other losses, e.g. feature
losses) and ``closed_form_step``, what the training loop uses for the default objective: no autograd
node at all, it returns the loss, the gradient w.r.t. the student's logits (the loop calls
``logits.backward(grad)``) and the step's top-1 agreement with the teacher, in ~15 ops on one
(2, classes, batch) block. Per-op dispatch, not arithmetic, is the cost of a small student's loss, so
the op count is what is kept down: q and P come from one log_softmax over the stacked s/T and s, laid
out classes-first (PyTorch's log_softmax along the last dimension of a 128 x 10 tensor costs ~4x the
same along dim 0), and the gradient's a·q + b·P − a·p is one ``addmm``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class TemperedTeacher:
    """The teacher at temperature T for a batch: probabilities, sum p·log p per row, and its top-1 class.

    Given either as those three tensors, or (``TemperedTable``) as ``columns``: p transposed, a contiguous
    (classes, batch) tensor, then sum p·log p and the top-1 class per row, the layout ``closed_form_step``
    reads; ``probs``, ``neg_entropy`` and ``top1`` are then views made on first use (the training loop's
    closed-form step never asks for them: each view costs a few microseconds)."""

    __slots__ = ("_probs", "_neg_entropy", "_top1", "temperature", "columns", "plan")

    def __init__(self, probs: torch.Tensor | None = None, neg_entropy: torch.Tensor | None = None,
                 top1: torch.Tensor | None = None, temperature: float = 1.0,
                 columns: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                 plan: "StepPlan | None" = None):
        if columns is None and (probs is None or neg_entropy is None or top1 is None):
            raise ValueError("a TemperedTeacher needs probs, neg_entropy and top1, or columns")
        self._probs, self._neg_entropy, self._top1 = probs, neg_entropy, top1
        self.temperature, self.columns, self.plan = float(temperature), columns, plan

    @property
    def probs(self) -> torch.Tensor:
        """p = softmax(t / T), (batch, classes)."""
        if self._probs is None:
            self._probs = self.columns[0].t()
        return self._probs

    @property
    def neg_entropy(self) -> torch.Tensor:
        """sum over classes of p·log p, per row."""
        return self._neg_entropy if self._neg_entropy is not None else self.columns[1]

    @property
    def top1(self) -> torch.Tensor:
        """The teacher's top-1 class per row."""
        return self._top1 if self._top1 is not None else self.columns[2]

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


def _constant(values: tuple[float, ...], like: torch.Tensor, shape: tuple[int, ...] | None = None,
              expand: bool = False) -> torch.Tensor:
    """A small cached tensor of ``values`` (a Python scalar in an op costs a conversion each time), viewed
    as ``shape`` (or expanded to it) once, when cached."""
    key = (values, like.dtype, like.device, shape, expand)
    found = _constants.get(key)
    if found is None:
        if len(_constants) > 256:  # batch-size-dependent constants: a long run with many shapes stays bounded
            _constants.clear()
        found = torch.tensor(values, dtype=like.dtype, device=like.device)
        found = found if shape is None else found.expand(shape) if expand else found.view(shape)
        _constants[key] = found
    return found


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


class Step(NamedTuple):
    """One training step's loss (0-d, detached), its gradient w.r.t. the student's logits (their shape and
    dtype) and the number of rows whose student top-1 equals the teacher's (0-d)."""

    loss: torch.Tensor
    grad: torch.Tensor
    agree: torch.Tensor


def as_block(teacher: TemperedTeacher, dtype: torch.dtype) -> torch.Tensor:
    """``teacher`` as one (classes + 2, batch) tensor of ``dtype``: p transposed, sum p·log p, top-1 class
    (exact as a float up to 2**24 classes): what ``TemperedTable`` gathers from."""
    probs = teacher.probs.to(dtype)
    return torch.cat([probs.t(), teacher.neg_entropy.to(dtype)[None], teacher.top1.to(dtype)[None]]).contiguous()


class StepPlan(NamedTuple):
    """The label- and batch-dependent terms of one closed-form step, laid out per epoch (``plan_steps``),
    with a = α·T/B, b = (1 − α)/B: ``shift`` = a·p + b·onehot(y) (classes, batch), the gradient's constant
    part; ``weights`` = [α·T²/B·p ; b·onehot(y)] (2·classes·batch,), what the loss dots with log q, log P;
    ``constant`` = α·T²/B·Σ p·log p (0-d); ``alpha`` the α they were made for."""

    shift: torch.Tensor
    weights: torch.Tensor
    constant: torch.Tensor
    alpha: float


def plan_steps(blocks: torch.Tensor, labels: torch.Tensor | None, temperature: float, alpha: float) -> list[StepPlan]:
    """``StepPlan`` of each step of ``blocks`` (steps, classes + 2, batch), with ``labels`` (steps, batch),
    in a few whole-epoch ops (None labels: alpha >= 1, no CE term)."""
    steps, rows, batch = blocks.shape
    classes, t, alpha = rows - 2, float(temperature), float(min(alpha, 1.0))
    a, b = alpha * t / batch, (1.0 - alpha) / batch
    probs = blocks[:, :classes]
    onehot = torch.zeros_like(probs)
    if labels is not None:
        onehot.scatter_(1, labels.view(steps, 1, batch).long(), 1.0)
    shift = probs * a + onehot * b
    weights = torch.stack((probs * (alpha * t * t / batch), onehot * b), 1).view(steps, -1)
    constant = blocks[:, classes].sum(1) * (alpha * t * t / batch)
    return [StepPlan(*parts, alpha) for parts in zip(shift.unbind(0), weights.unbind(0), constant.unbind(0))]


def columns_of(block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A gathered (classes + 2, batch) block as ``TemperedTeacher.columns``."""
    return block[:-2], block[-2], block[-1].long()


def closed_form_step(student_logits: torch.Tensor, teacher: TemperedTeacher, targets: torch.Tensor | None,
                     alpha: float) -> Step:
    """The default objective's loss, gradient and agreement without autograd (the caller runs
    ``student_logits.backward(step.grad)``); same values as ``fused_kd_loss``. ``targets`` may be None
    only when alpha >= 1.

    Every tensor call here costs microseconds of dispatch against nanoseconds of arithmetic (a batch is
    ~1k numbers), so calls are counted: constants come pre-shaped from a cache, the teacher block is
    laid out once per epoch (``TemperedTable.in_order``), and no-op conversions are skipped in Python."""
    s = student_logits.detach()
    if s.dtype not in (torch.float32, torch.float64):
        s = s.float()
    batch, classes = s.shape
    t, alpha = teacher.temperature, float(min(alpha, 1.0))
    columns = teacher.columns
    if columns is None or columns[0].dtype != s.dtype:
        columns = columns_of(as_block(teacher, s.dtype))
    probs_t, neg_entropy, top1 = columns  # (classes, batch) contiguous, (batch,), (batch,)
    # s/T and s side by side, classes first, by one broadcast multiply: (2, classes, batch) -> log q, log P
    log_z = torch.log_softmax(torch.mul(s.t(), _constant((1.0 / t, 1.0), s, (2, 1, 1))), 1)
    a, b = alpha * t / batch, (1.0 - alpha) / batch
    plan = teacher.plan
    if plan is not None and plan.alpha == alpha and plan.shift.dtype == s.dtype and plan.shift.shape[1] == batch:
        # the epoch's plan holds every label- and batch-dependent term: 6 tensor calls from here
        grad = torch.addmm(plan.shift.view(1, -1), _constant((a, b), s, (1, 2)), log_z.exp().view(2, -1),
                           beta=-1.0).view(classes, batch).t()
        loss = plan.constant - torch.dot(plan.weights, log_z.view(-1))
        agree = (s.argmax(1) == top1).sum()
        return Step(loss, grad if grad.dtype == student_logits.dtype else grad.to(student_logits.dtype), agree)
    # d loss / d s = [α·T·(q − p) + (1 − α)·(P − onehot(y))] / B, classes first: a·q + b·P − a·p, then − b at y
    grad = torch.addmm(probs_t.view(1, -1), _constant((a, b), s, (1, 2)), log_z.exp().view(2, -1),
                       beta=-a).view(classes, batch)
    log_q, log_p = log_z.unbind()
    if alpha < 1.0:
        labels = targets.view(1, -1) if targets.dtype == torch.long else targets.view(1, -1).long()
        grad.scatter_add_(0, labels, _constant((-b,), s, (1, batch), expand=True))
        ce_sum = log_p.gather(0, labels).sum()
    else:
        ce_sum = log_p.new_zeros(())
    # loss = α·T²/B·(Σ p·log p − Σ p·log q) − (1 − α)/B·Σ log P[y]
    raw = torch.stack((neg_entropy.sum(), torch.dot(probs_t.view(-1), log_q.view(-1)), ce_sum))
    loss = raw @ _constant((alpha * t * t / batch, -alpha * t * t / batch, -(1.0 - alpha) / batch), s)
    agree = (s.argmax(1) == top1).sum()
    grad = grad.t()  # a (batch, classes) view of the classes-first result: matmuls take either layout
    return Step(loss, grad if grad.dtype == student_logits.dtype else grad.to(student_logits.dtype), agree)


def fused_kd_loss(student_logits: torch.Tensor, teacher: TemperedTeacher, targets: torch.Tensor | None,
                  alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """alpha·KL(p‖q)·T² + (1−alpha)·CE, batch mean; returns (loss, kd, ce) with kd and ce detached.

    ``targets`` may be None only when alpha ≥ 1 (then ce is 0).
    """
    labels = targets if targets is not None else torch.zeros(0, dtype=torch.long, device=student_logits.device)
    loss, parts = _KDCrossEntropy.apply(student_logits, teacher.probs, teacher.neg_entropy, labels.long(),
                                        teacher.temperature, float(min(alpha, 1.0)))
    return loss, parts[0], parts[1]
