"""Running a PyTorch model for its logits, outside any training loop: batched prediction, a frozen
teacher, and the check that a teacher and a student fit the data and each other.

The exporter, validation, the teacher-logit sources and the CLI use these without importing the
training loop.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch
from torch import nn

from edgedistill.data import Dataset, Inputs
from edgedistill.errors import UserError


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
    device = next(model.parameters(), torch.empty(0)).device
    out = torch.cat([model(*(t[i : i + batch_size].to(device) for t in xs)).float().cpu()
                     for i in range(0, len(xs[0]), batch_size)])
    model.train(was_training)
    return out


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
