"""Where the training loop gets the teacher's logits for a batch: the one seam between teacher and loop.

The loop asks a ``TeacherLogits`` for the logits of the rows it is about to train on, and never runs
the teacher itself. ``Precomputed`` (the default) runs the frozen teacher once over the training set,
in memory; ``Online`` runs it on every batch (what you need with random augmentation, and the
baseline of the throughput benchmark). An on-disk cache plugs in by providing the same method.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from edgedistill.data import Dataset
from edgedistill.distillation.distributed import Dist
from edgedistill.inference import frozen, predict_logits


class TeacherLogits(Protocol):
    """Teacher logits for a batch: ``index`` are row numbers in the training set, ``inputs`` those rows
    (on the training device). Returns float logits of shape (len(index), classes) on that device."""

    def batch(self, index: torch.Tensor, inputs: list[torch.Tensor]) -> torch.Tensor: ...


class Precomputed:
    """The teacher run once over ``data`` (no gradients, eval mode), kept in memory as a float32 table.

    Under torch.distributed each rank runs the teacher on its contiguous share of the rows and the
    shares are all-gathered, so the teacher's work is split N ways and every rank holds every row.
    """

    def __init__(self, teacher: nn.Module, data: Dataset, dist: Dist | None = None,
                 device: torch.device | None = None, batch_size: int = 1024):
        dist, device = dist or Dist(), device or torch.device("cpu")
        with frozen(teacher):
            rows = lambda lo, hi: predict_logits(teacher, {k: v[lo:hi] for k, v in data.inputs.items()}, batch_size)  # noqa: E731
            self.table = dist.gather_rows(rows, len(data), device)

    def batch(self, index: torch.Tensor, inputs: list[torch.Tensor]) -> torch.Tensor:
        """Rows of the precomputed table, moved to the inputs' device."""
        return self.table[index.cpu()].to(inputs[0].device, non_blocking=True)


class Online:
    """The frozen teacher run on every batch: costs a teacher forward per step, but sees each batch as is."""

    def __init__(self, teacher: nn.Module):
        self.teacher = teacher

    @torch.no_grad()
    def batch(self, index: torch.Tensor, inputs: list[torch.Tensor]) -> torch.Tensor:
        """The teacher's logits for these inputs (the caller keeps the teacher frozen)."""
        return self.teacher(*inputs).float()
