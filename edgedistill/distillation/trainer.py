"""The training loop, readable top to bottom: supervised (teacher training) or distillation.

The teacher is frozen (eval mode, no gradients). The loop never runs it itself: the logits for a
batch come from a ``TeacherLogits`` source (by default computed once, in memory, up front).
AdamW with linear warm-up then cosine decay, gradient clipping, bf16 autocast on a GPU (fp32 on
CPU), evaluation every epoch, the best epoch's weights kept, early stopping, atomic checkpoints
with exact resume, and data parallelism under torchrun (see ``distributed``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from edgedistill.data import Dataset
from edgedistill.distillation import checkpoint, distributed
from edgedistill.distillation.checkpoint import Progress
from edgedistill.distillation.losses import soft_target_kl
from edgedistill.distillation.objective import DistillObjective
from edgedistill.distillation.progress_log import EpochReporter
from edgedistill.distillation.step_tally import StepTally
from edgedistill.distillation.teacher_logits import Precomputed, TeacherLogits, at_temperature
from edgedistill.errors import UserError
from edgedistill.inference import as_tensors, frozen, predict_logits

log = logging.getLogger("edgedistill")


@dataclass
class TrainSettings:
    """Hyper-parameters of one run (the ``[distill]`` config section maps onto these)."""

    epochs: int = 60
    batch_size: int = 64  # the global batch: split across ranks under torchrun
    lr: float = 1e-2
    weight_decay: float = 1e-4
    temperature: float = 4.0
    alpha: float = 0.5
    seed: int = 0
    warmup_fraction: float = 0.1  # share of all steps spent ramping the learning rate up from 0
    grad_clip: float = 1.0  # max global gradient norm; 0 = no clipping
    patience: int = 0  # stop after this many epochs without a better validation score; 0 = never
    checkpoint_every: int = 0  # also checkpoint every N optimizer steps (always at each epoch's end)
    device: str = "auto"  # auto (GPU when present), cpu or cuda
    bf16: bool = True  # bf16 autocast when training on a GPU; CPU always trains in fp32


@dataclass
class TrainResult:
    """What happened during training: one row per epoch, and the epoch whose weights were kept."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False


@contextlib.contextmanager
def on_device(model: nn.Module, device: torch.device) -> Iterator[nn.Module]:
    """``model`` on ``device`` for the duration, then back where the caller had it."""
    home = next(model.parameters(), torch.empty(0)).device
    model.to(device)
    try:
        yield model
    finally:
        model.to(home)


def evaluate(model: nn.Module, val: Dataset | None, teacher_val: torch.Tensor | None) -> dict[str, float]:
    """Validation metrics: accuracy (with labels), top-1 agreement and KL(teacher || student) at T = 1."""
    if val is None or len(val) == 0:
        return {}
    logits = predict_logits(model, val.inputs)
    pred = logits.argmax(1)
    metrics = {}
    if val.y is not None:
        metrics["val_acc"] = float((pred == torch.as_tensor(val.y)).float().mean())
    if teacher_val is not None:
        metrics["val_agree"] = float((pred == teacher_val.argmax(1)).float().mean())
        metrics["val_kl"] = float(soft_target_kl(logits, teacher_val, 1.0))
    return metrics


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float) -> Any:
    """Learning rate ramped linearly from 0 over the first ``warmup_fraction`` of steps, then cosine to 0."""
    warmup = round(total_steps * warmup_fraction)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total_steps - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train(model: nn.Module, data: Dataset, *, teacher: nn.Module | None = None, val: Dataset | None = None,
          teacher_logits: TeacherLogits | None = None, settings: TrainSettings | None = None,
          checkpoint_path: Path | None = None, resume: Path | None = None, desc: str = "distill",
          objective: DistillObjective | None = None, **overrides: Any) -> TrainResult:
    """Train ``model`` in place: distillation when a teacher (or a teacher-logit source) is given, else CE.

    ``overrides`` are ``TrainSettings`` fields (``epochs=10``). The weights of the best validation
    epoch (accuracy, or agreement without labels) are kept. With ``checkpoint_path`` the run state
    is written there at each epoch's end (and every ``checkpoint_every`` steps); ``resume`` continues
    from such a file exactly where it stopped. ``objective`` replaces the default KL + CE loss (e.g. with
    feature losses: call ``train`` inside ``with objective.attached():`` and give ``teacher_logits=Online(teacher)``).
    """
    s = replace(settings or TrainSettings(), **overrides)
    if teacher is None and teacher_logits is None and data.y is None:
        raise UserError("training without a teacher needs labels; the data has none")
    if len(data) == 0:
        raise UserError("the training set is empty")
    dist = distributed.current()
    device = dist.device(s.device)
    bf16 = device.type == "cuda" and s.bf16
    xs, n = as_tensors(data.inputs), len(data)
    y = None if data.y is None else torch.as_tensor(data.y)
    steps_per_epoch = math.ceil(n / s.batch_size)

    fingerprint = checkpoint.fingerprint(model, data, teacher, asdict(s)) if checkpoint_path or resume else {}
    saved = checkpoint.load_verified(Path(resume), fingerprint) if resume is not None else None  # before any work
    with contextlib.ExitStack() as stack:
        stack.enter_context(on_device(model, device))
        teacher_val = None
        if teacher is not None:
            stack.enter_context(frozen(teacher))
            stack.enter_context(on_device(teacher, device))
            teacher_logits = teacher_logits or Precomputed(teacher, data, dist, device)
            teacher_val = Precomputed(teacher, val, dist, device).table if val is not None and len(val) else None
        if teacher_logits is not None and objective is None:
            objective = DistillObjective(s.temperature, s.alpha)
        if teacher_logits is not None and objective.soft_target == "kl":  # teacher probabilities at T, once
            teacher_logits = at_temperature(teacher_logits, objective.temperature, n, device)
        extra = list(objective.to(device).parameters()) if objective is not None else []  # feature projections
        optimizer = torch.optim.AdamW([*model.parameters(), *extra], lr=s.lr, weight_decay=s.weight_decay)
        scheduler = warmup_cosine(optimizer, s.epochs * steps_per_epoch, s.warmup_fraction)
        generator = torch.Generator().manual_seed(s.seed)  # shuffles the data; saved in checkpoints
        state = dict(model=model, optimizer=optimizer, scheduler=scheduler, generator=generator, fingerprint=fingerprint)
        progress = Progress()
        if saved is not None:
            progress = checkpoint.restore(saved, **state)
            if not dist.is_writer:  # the checkpoint holds the whole job's running totals; rank 0 carries them
                progress.loss_sum = progress.agree = progress.seen = 0.0
            else:
                log.info("%s: resumed from %s at epoch %d, step %d", desc, resume, progress.epoch, progress.step)
        net = dist.wrap(model, device)
        report = EpochReporter(desc, s.epochs, steps_per_epoch, progress.global_step, enabled=dist.is_writer)

        while not progress.finished and progress.epoch <= s.epochs:
            if progress.step == 0:
                progress.order = torch.randperm(n, generator=generator)
            batches = [dist.shard(progress.order[k * s.batch_size : (k + 1) * s.batch_size])
                       for k in range(steps_per_epoch)]
            # a source that serves a whole epoch at once (the tempered table) gathers its rows here, once
            in_order = getattr(teacher_logits, "in_order", None)
            # (with the default objective, the closed-form step's label terms are laid out for the epoch too)
            plain_kd = objective is not None and objective.features is None and objective.soft_target == "kl"
            epoch_teacher = None if in_order is None else \
                in_order(batches, y, objective.alpha) if plain_kd else in_order(batches)
            model.train()
            started, seen_before = time.perf_counter(), progress.seen
            tally = StepTally(steps_per_epoch, progress, device)
            for step in range(progress.step, steps_per_epoch):
                idx = batches[step]
                batch = [t[idx].to(device, non_blocking=True) for t in xs]
                targets = None if y is None else y[idx].to(device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                closed = None
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                    logits = net(*batch)
                    if teacher_logits is None:
                        loss = nn.functional.cross_entropy(logits, targets)
                    else:
                        t_logits = epoch_teacher[step] if epoch_teacher is not None else teacher_logits.batch(idx, batch)
                        # the default objective: loss, gradient and agreement in closed form, no autograd node
                        closed = objective.closed_form(logits, t_logits, targets)
                        if closed is None:
                            loss, _ = objective(logits, t_logits, targets, batch)
                if closed is not None:
                    loss, agrees = closed.loss, closed.agree
                    logits.backward(closed.grad)
                else:
                    loss.backward()
                    agrees = None if teacher_logits is None else logits.argmax(1) == t_logits.argmax(1)
                # after backward: a non-finite loss on any rank reaches every rank through the gradients
                grad_norm = nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip or math.inf)
                # kept on the device and checked when the tally is read (epoch end, checkpoints): no per-step sync
                tally.record(step, loss, grad_norm, len(idx), agrees)
                optimizer.step()
                scheduler.step()
                progress.step, progress.global_step = step + 1, progress.global_step + 1
                report.step(progress, tally)
                if checkpoint_path and s.checkpoint_every and progress.global_step % s.checkpoint_every == 0 \
                        and progress.step < steps_per_epoch:  # the epoch's end writes its own, after evaluation
                    tally.settle(desc, checkpoint_path)  # never checkpoint weights a non-finite step touched
                    checkpoint.save_from_job(checkpoint_path, dist, device, progress, state)

            tally.settle(desc, checkpoint_path)

            loss_sum, agree, seen = dist.sum([progress.loss_sum, progress.agree, progress.seen], device)
            row = {"epoch": progress.epoch, "loss": loss_sum / seen, **evaluate(model, val, teacher_val)}
            if teacher_logits is not None:
                row["train_agree"] = agree / seen
            row["samples_per_s"] = (progress.seen - seen_before) * dist.world / (time.perf_counter() - started)
            stop_early = progress.end_epoch(row, model, s.patience, s.epochs)
            if checkpoint_path:
                checkpoint.save_from_job(checkpoint_path, dist, device, progress, state)
            report.epoch(row, stop_early)

        report.close()
        if progress.best_state is not None:
            model.load_state_dict(progress.best_state)
    stopped_early = bool(progress.history) and progress.history[-1]["epoch"] < s.epochs
    return TrainResult(progress.history, progress.best_epoch, stopped_early)
