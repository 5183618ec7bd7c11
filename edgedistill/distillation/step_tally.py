"""An epoch's per-step loss, gradient norm and teacher agreement, kept on the training device.

Reading a loss or a gradient norm back to Python every step makes the host wait for the device (on a
GPU) and costs a few small ops more (on a CPU). The tally writes them into preallocated buffers and
is read once, by ``settle``: at the epoch's end and before a mid-epoch checkpoint. That is also where
a non-finite step is found, named by its number, before any checkpoint could hold weights it touched.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from edgedistill.errors import UserError


class StepTally:
    """Per-step results of one epoch from ``progress.step`` on; ``settle`` folds them into ``progress``."""

    def __init__(self, steps: int, progress: Any, device: torch.device):
        self.progress = progress
        self.losses = torch.zeros(steps, device=device)
        self.norms = torch.zeros(steps, device=device)
        self.agree = torch.zeros(steps, device=device)
        self.sizes = [0] * steps
        self.settled = progress.step  # steps before this one are already in progress's totals (resume)

    def record(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor, size: int,
               agrees: torch.Tensor | None) -> None:
        """One step's mean loss, clipped-before gradient norm, batch size and agreement (a per-row mask, its
        count as a 0-d tensor, or None)."""
        self.losses[step] = loss.detach()
        self.norms[step] = grad_norm
        self.sizes[step] = size
        if agrees is not None:
            self.agree[step] = agrees if agrees.dim() == 0 else agrees.sum()

    def running_loss(self) -> float:
        """Mean loss over this epoch so far (reads the device: for a progress bar, not every step)."""
        upto = self.progress.step
        done = sum(self.sizes[self.settled:upto])
        pending = float((self.losses[self.settled:upto] * torch.tensor(self.sizes[self.settled:upto],
                                                                       device=self.losses.device)).sum())
        return (self.progress.loss_sum + pending) / max(self.progress.seen + done, 1.0)

    def settle(self, desc: str, checkpoint_path: Path | None) -> None:
        """Add the steps recorded since the last call to ``progress``; a non-finite one raises ``diverged``."""
        upto = self.progress.step
        if upto <= self.settled:
            return
        window = slice(self.settled, upto)
        losses, norms = self.losses[window].tolist(), self.norms[window].tolist()
        for offset, (loss, norm) in enumerate(zip(losses, norms)):
            if not (math.isfinite(loss) and math.isfinite(norm)):
                raise diverged(desc, self.progress, self.settled + offset, loss, norm, checkpoint_path)
        sizes = self.sizes[window]
        self.progress.loss_sum += sum(loss * size for loss, size in zip(losses, sizes))
        self.progress.seen += sum(sizes)
        self.progress.agree += float(self.agree[window].sum())
        self.settled = upto


def diverged(desc: str, progress: Any, step: int, loss: float, grad_norm: float,
             checkpoint_path: Path | None) -> UserError:
    """The one-line error for a non-finite loss or gradient at ``step`` of the current epoch."""
    global_step = progress.global_step - (progress.step - step) + 1
    what = f"loss became {loss}" if not math.isfinite(loss) else f"gradient norm became {grad_norm}"
    kept = (f"; the last good checkpoint is {checkpoint_path} (--resume continues from it)"
            if checkpoint_path and Path(checkpoint_path).is_file() else "; no checkpoint was written yet")
    return UserError(f"{desc}: {what} at step {global_step} (epoch {progress.epoch}, batch "
                     f"{step + 1}); stopped{kept}; lower distill.lr or set distill.grad_clip")
