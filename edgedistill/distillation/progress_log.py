"""What a user sees while training: a progress bar on a terminal, plain log lines otherwise (CI logs)."""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger("edgedistill")
LOSS_EVERY = 16


class EpochReporter:
    """A step bar showing the running loss and the last validation agreement (or accuracy) on a terminal;
    without one, a log line every fifth of the run, for the last epoch, and when stopping early."""

    def __init__(self, desc: str, epochs: int, steps_per_epoch: int, done_steps: int = 0, enabled: bool = True):
        self.desc, self.epochs, self.enabled = desc, epochs, enabled and log.isEnabledFor(logging.INFO)
        self.shown: dict[str, str] = {}
        self.bar = None
        if self.enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=epochs * steps_per_epoch, initial=done_steps, desc=desc, unit="step",
                            leave=False, dynamic_ncols=True)

    def step(self, progress: Any, tally: Any) -> None:
        """After each optimizer step: advance the bar; every ``LOSS_EVERY`` steps show this epoch's
        running mean loss (reading it waits for the device, so not on every step)."""
        if self.bar is not None:
            if progress.step % LOSS_EVERY == 0:
                self.shown["loss"] = f"{tally.running_loss():.4f}"
                self.bar.set_postfix(self.shown, refresh=False)
            self.bar.update(1)

    def epoch(self, row: dict[str, float], stopped_early: bool) -> None:
        """After each epoch's evaluation."""
        if not self.enabled:
            return
        self.shown = {"loss": f"{row['loss']:.4f}"}
        if "val_agree" in row:
            self.shown["agree"] = f"{row['val_agree']:.1%}"
        elif "val_acc" in row:
            self.shown["acc"] = f"{row['val_acc']:.1%}"
        epoch = int(row["epoch"])
        if self.bar is not None:
            self.bar.set_postfix(self.shown)
        elif stopped_early or epoch == self.epochs or epoch % max(1, self.epochs // 5) == 0:
            log.info("%s epoch %d/%d %s", self.desc, epoch, self.epochs, " ".join(f"{k} {v}" for k, v in self.shown.items()))
        if stopped_early:
            log.info("%s: stopped early after epoch %d (no better validation score for the last epochs)", self.desc, epoch)

    def close(self) -> None:
        """Remove the bar (the final summary is printed by the caller)."""
        if self.bar is not None:
            self.bar.close()
