"""The training loop, readable top to bottom: supervised (teacher training) or distillation.

The teacher is frozen: eval mode, no gradients, and its logits for the training set are computed
once up front (no augmentation here, so they never change between epochs).
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from torch import nn

from edgedistill.data import Dataset, Inputs, num_samples
from edgedistill.distillation.objective import DistillObjective
from edgedistill.errors import UserError

log = logging.getLogger("edgedistill")


@dataclass
class TrainResult:
    """What happened during training: one row per epoch, and the epoch whose weights were kept."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0


def as_tensors(inputs: Inputs | np.ndarray) -> list[torch.Tensor]:
    """Model arguments, in order, as tensors sharing memory with the arrays."""
    arrays = inputs.values() if isinstance(inputs, dict) else [inputs]
    return [torch.as_tensor(a) for a in arrays]


@torch.no_grad()
def predict_logits(model: nn.Module, inputs: Inputs | np.ndarray, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``model`` (in eval mode) for all samples, batched, without gradients."""
    was_training = model.training
    model.eval()
    xs = as_tensors(inputs)
    out = torch.cat([model(*(t[i : i + batch_size] for t in xs)) for i in range(0, len(xs[0]), batch_size)])
    model.train(was_training)
    return out.float()


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no gradients for the duration; the caller's flags are restored after."""
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    model.eval().requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)


def check_compatible(teacher: nn.Module, student: nn.Module, data: Dataset) -> int:
    """Both models accept the data and emit the same number of classes; returns that number."""
    sample = {k: v[:2] for k, v in data.inputs.items()}
    shapes = ", ".join(f"{k} {tuple(v.shape[1:])}" for k, v in sample.items())
    dims = {}
    for name, model in (("teacher", teacher), ("student", student)):
        try:
            out = predict_logits(model, sample)
        except Exception as exc:  # a shape mismatch surfaces as any of several torch errors
            raise UserError(f"the {name} cannot run on {data.name} inputs ({shapes}): "
                            f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__}") from None
        if out.ndim != 2:
            raise UserError(f"the {name} must return logits of shape (batch, classes), got {tuple(out.shape)}")
        dims[name] = out.shape[1]
    if dims["teacher"] != dims["student"]:
        raise UserError(f"teacher has {dims['teacher']} classes but student has {dims['student']}")
    if data.y is not None and int(data.y.max()) >= dims["student"]:
        raise UserError(f"labels go up to {int(data.y.max())} but the models have {dims['student']} classes")
    return dims["student"]


def _evaluate(model: nn.Module, val: Dataset | None, teacher_val: torch.Tensor | None) -> dict[str, float]:
    if val is None or len(val) == 0:
        return {}
    pred = predict_logits(model, val.inputs).argmax(1)
    metrics = {}
    if val.y is not None:
        metrics["val_acc"] = float((pred == torch.as_tensor(val.y)).float().mean())
    if teacher_val is not None:
        metrics["val_agree"] = float((pred == teacher_val.argmax(1)).float().mean())
    return metrics


def train(model: nn.Module, data: Dataset, *, teacher: nn.Module | None = None, val: Dataset | None = None,
          epochs: int = 60, batch_size: int = 64, lr: float = 1e-2, weight_decay: float = 1e-4,
          temperature: float = 4.0, alpha: float = 0.5, seed: int = 0, desc: str = "distill",
          objective: DistillObjective | None = None, teacher_outputs=None) -> TrainResult:
    """Train ``model`` in place: distillation from ``teacher`` when given, else plain CE on labels.

    The weights of the best validation epoch (accuracy, or agreement without labels) are kept.
    ``objective`` (default: KL + CE by temperature/alpha) may add feature losses (call ``train`` inside
    ``with objective.attached():`` so its hooks see the forward passes); ``teacher_outputs`` (e.g. the
    teacher cache, indexable by sample) replaces computing the teacher's logits here.
    """
    if teacher is None and data.y is None:
        raise UserError("training without a teacher needs labels; the data has none")
    if len(data) == 0:
        raise UserError("the training set is empty")
    generator = torch.Generator().manual_seed(seed)
    xs = as_tensors(data.inputs)
    n = len(data)
    y = None if data.y is None else torch.as_tensor(data.y)
    teacher_train = teacher_val = None
    if teacher is not None:
        objective = objective if objective is not None else DistillObjective(temperature, alpha)
        with frozen(teacher):
            teacher_train = teacher_outputs if teacher_outputs is not None else predict_logits(teacher, data.inputs)
            teacher_val = predict_logits(teacher, val.inputs) if val is not None and len(val) else None

    steps_per_epoch = math.ceil(n / batch_size)
    trained = list(model.parameters()) + (list(objective.parameters()) if objective is not None else [])
    optimizer = torch.optim.AdamW(trained, lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                    pct_start=0.1)
    result = TrainResult()
    best_score, best_state = -1.0, None
    bar = _progress(epochs, desc)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator)
        total, agree, seen = 0.0, 0, 0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            batch = [t[idx] for t in xs]
            logits = model(*batch)
            targets = None if y is None else y[idx]
            if teacher_train is None:
                loss = nn.functional.cross_entropy(logits, targets)
            else:
                teacher_batch = _teacher_forward(teacher, batch) if objective.needs_teacher_forward else teacher_train[idx]
                loss, _ = objective(logits, teacher_batch, targets, batch)
                agree += int((logits.argmax(1) == teacher_batch.argmax(1)).sum())
            if not torch.isfinite(loss.detach()):
                raise UserError(f"{desc}: loss became {loss.item()} at epoch {epoch}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        row = {"epoch": epoch, "loss": total / seen, **_evaluate(model, val, teacher_val)}
        if teacher_train is not None:
            row["train_agree"] = agree / seen
        result.history.append(row)
        score = row.get("val_acc", row.get("val_agree", -row["loss"]))
        if score > best_score:
            best_score, result.best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        _report(bar, row, epochs, desc)
    if bar is not None:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return result


@torch.no_grad()
def _teacher_forward(teacher: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
    """The frozen teacher on one batch (its hooks record hidden states for feature losses)."""
    with frozen(teacher):
        return teacher(*batch).float()


def _progress(epochs: int, desc: str):
    if not sys.stderr.isatty() or not log.isEnabledFor(logging.INFO):
        return None
    from tqdm import tqdm

    return tqdm(total=epochs, desc=desc, unit="epoch", leave=False, dynamic_ncols=True)


def _report(bar, row: dict[str, float], epochs: int, desc: str) -> None:
    shown = {"loss": f"{row['loss']:.4f}"}
    agree = row.get("val_agree", row.get("val_acc"))
    if agree is not None:
        shown["agree" if "val_agree" in row else "acc"] = f"{agree:.1%}"
    if bar is not None:
        bar.set_postfix(shown)
        bar.update(1)
    elif row["epoch"] == epochs or row["epoch"] % max(1, epochs // 5) == 0:
        log.info("%s epoch %d/%d %s", desc, row["epoch"], epochs, " ".join(f"{k} {v}" for k, v in shown.items()))
