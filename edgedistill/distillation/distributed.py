"""Data-parallel training on torch.distributed: who this process is, and how the work is split.

``torchrun --nproc_per_node=N -m edgedistill distill ...`` starts N copies of the same command;
each reads RANK / WORLD_SIZE / LOCAL_RANK from the environment. The design keeps every rank's
view of the run identical except for which rows of a batch it computes:

* ``distill.batch_size`` is the *global* batch. Every rank draws the same seeded permutation and
  takes its interleaved share of each global batch (``batch[rank::world]``), which is what
  ``DistributedSampler`` does per epoch, but per batch: the number of optimizer steps, the
  learning-rate schedule and the averaged gradient are those of one process with the same config,
  so N processes train the same student as one (up to float summation order), and a checkpoint
  from N processes resumes on M.
* Teacher logits are computed shard by shard (rank r runs the teacher on its contiguous share of
  the rows) and all-gathered, so each rank holds the full table: a rank's share of the data changes
  every epoch with the permutation, so keeping only its own rows would pin it to one subset.
* Validation runs on every rank on the full validation split (weights are identical after each
  synchronized step), so best-epoch and early-stopping decisions agree without communication.
* Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from edgedistill.errors import UserError


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: rank ``rank`` of ``world`` (a single process is rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_writer(self) -> bool:
        """Only rank 0 writes checkpoints, logs progress and saves the student."""
        return self.rank == 0

    def device(self, requested: str = "auto") -> torch.device:
        """Where this rank trains: its GPU (``cuda:LOCAL_RANK``) when asked for or when one is present."""
        if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
            return torch.device("cpu")
        if not torch.cuda.is_available():
            raise UserError("distill.device = 'cuda' but no CUDA GPU is visible to PyTorch")
        return torch.device("cuda", self.local_rank)

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global batch; a batch smaller than the world is padded by wrapping."""
        if self.world == 1:
            return batch
        if len(batch) < self.world:  # every rank must take part in each gradient all-reduce
            batch = batch.repeat((self.world + len(batch) - 1) // len(batch))[: self.world]
        return batch[self.rank :: self.world]

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The model as trained: DistributedDataParallel when there are several ranks, else itself."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum over ranks (epoch totals), returned on every rank."""
        if self.world == 1:
            return values
        import torch.distributed as td

        t = torch.tensor(values, dtype=torch.float64, device=device)
        td.all_reduce(t)
        return t.tolist()

    def gather_rows(self, compute: Callable[[int, int], torch.Tensor], n: int, device: torch.device) -> torch.Tensor:
        """Rows ``[0, n)`` of a table, each rank computing ``compute(lo, hi)`` for its contiguous share."""
        if self.world == 1:
            return compute(0, n)
        import torch.distributed as td

        if n < self.world:
            raise UserError(f"{n} samples cannot be shared among {self.world} processes")
        bounds = [r * n // self.world for r in range(self.world + 1)]  # balanced: shares differ by <= 1 row
        mine = compute(bounds[self.rank], bounds[self.rank + 1]).to(device)
        padded = torch.zeros((n // self.world + 1, *mine.shape[1:]), dtype=mine.dtype, device=device)
        padded[: len(mine)] = mine  # all_gather needs equal sizes
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        td.all_gather(parts, padded)
        return torch.cat([p[: bounds[r + 1] - bounds[r]] for r, p in enumerate(parts)]).cpu()


def current() -> Dist:
    """The running job as torch.distributed sees it (rank 0 of 1 when no process group is initialized)."""
    import torch.distributed as td

    if not (td.is_available() and td.is_initialized()):
        return Dist()
    return Dist(td.get_rank(), td.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


@contextlib.contextmanager
def process_group() -> Iterator[Dist]:
    """Join the torchrun job described by the environment for the duration (NCCL on GPU, gloo on CPU).

    Without WORLD_SIZE > 1 (a plain ``python -m edgedistill``) this is a no-op yielding rank 0 of 1.
    A group the caller initialized already is used and left alone.
    """
    import torch.distributed as td

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or td.is_initialized():
        yield current()
        return
    if not td.is_available():
        raise UserError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    # with a GPU, collectives on CUDA tensors go through NCCL and any on CPU tensors through gloo
    td.init_process_group(backend="cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    try:
        dist = current()
        if dist.is_writer:
            logging.getLogger("edgedistill").info("data-parallel on %d processes (%s)", world, td.get_backend())
        yield dist
    finally:
        td.destroy_process_group()
