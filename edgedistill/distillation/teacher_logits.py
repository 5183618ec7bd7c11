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

    def dense_table(self, max_entries: int) -> torch.Tensor | None:
        """All rows' logits (for ``at_temperature``), or None above ``max_entries`` entries."""
        return self.table if self.table.numel() <= max_entries else None

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


class TemperedTable:
    """Teacher probabilities at T for every training row, computed once from a source that holds them all.

    Each step then gathers its rows from one table instead of re-running log_softmax(t/T) on them: one
    ``index_select`` from a (classes + 2, rows) block (p, sum p·log p, top-1 class), already in the
    classes-first layout of ``fused_kd.closed_form_step``.
    """

    def __init__(self, logits: torch.Tensor, temperature: float, device: torch.device):
        from edgedistill.distillation.fused_kd import as_block, temper

        tempered = temper(logits, temperature)
        self.temperature = tempered.temperature
        self.block = as_block(tempered, tempered.probs.dtype).to(device)  # (classes + 2, rows)

    def batch(self, index: torch.Tensor, inputs: list[torch.Tensor]):
        """This batch's ``TemperedTeacher`` (columns of the precomputed block, and views of them)."""
        from edgedistill.distillation.fused_kd import TemperedTeacher, columns_of

        if index.device != self.block.device:
            index = index.to(self.block.device, non_blocking=True)
        return TemperedTeacher(temperature=self.temperature, columns=columns_of(self.block.index_select(1, index)))

    def in_order(self, batches: list[torch.Tensor], labels: torch.Tensor | None = None,
                 alpha: float | None = None) -> list:
        """The ``TemperedTeacher`` of each of an epoch's batches (row numbers, in training order), gathered
        for the whole epoch at once: one gather and one copy instead of a gather per step, and each batch's
        block comes out contiguous. With ``alpha`` (and ``labels`` of every training row when alpha < 1),
        the label- and batch-dependent terms of the closed-form KD step are laid out here too, for all
        steps at once (``fused_kd.StepPlan``): the per-step work then drops to ~9 tensor calls."""
        from edgedistill.distillation.fused_kd import TemperedTeacher, columns_of, plan_steps

        if not batches:
            return []
        device, size, classes = self.block.device, len(batches[0]), self.block.shape[0] - 2
        same = next((k for k, b in enumerate(batches) if len(b) != size), len(batches))  # the last may be short
        rows = torch.cat(batches[:same])
        head = rows.to(device, non_blocking=True)
        # (steps, classes + 2, size): each step's block contiguous; its three parts cut for all steps at once
        blocks = self.block.index_select(1, head).view(-1, same, size).transpose(0, 1).contiguous()
        columns = list(zip(blocks[:, :classes].unbind(0), blocks[:, classes].unbind(0),
                           blocks[:, classes + 1].long().unbind(0)))
        plans: list = [None] * len(batches)
        if alpha is not None and (alpha >= 1.0 or labels is not None):
            plans[:same] = plan_steps(blocks, None if alpha >= 1.0 else labels[rows].view(same, size).to(device),
                                      self.temperature, alpha)
        columns += [columns_of(self.block.index_select(1, b.to(device, non_blocking=True))) for b in batches[same:]]
        return [TemperedTeacher(temperature=self.temperature, columns=c, plan=p) for c, p in zip(columns, plans)]


# above this many table entries the tempered copy would cost more memory than a step saves in time
TEMPERED_MAX_ENTRIES = 64_000_000


def at_temperature(source: TeacherLogits, temperature: float, rows: int, device: torch.device) -> TeacherLogits:
    """``source`` as a ``TemperedTable`` when it can hand over all ``rows`` dense logits at once (it has a
    ``dense_table()`` that returns them: ``Precomputed``, a dense teacher cache) and the table is small
    enough; otherwise ``source`` itself (the loss then tempers each batch)."""
    dense_table = getattr(source, "dense_table", None)
    logits = dense_table(TEMPERED_MAX_ENTRIES) if dense_table is not None else None
    if logits is None or len(logits) != rows:
        return source
    return TemperedTable(logits.float(), temperature, device)
