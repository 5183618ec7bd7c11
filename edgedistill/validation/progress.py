"""Progress of a validation run: a tqdm bar on a terminal, one plain log line per model otherwise
(CI logs stay readable, and nothing is printed at all when logging is above INFO)."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("edgedistill")


class Progress:
    """Counts samples run through one model; ``close()`` logs the line CI sees."""

    def __init__(self, desc: str, total: int):
        self.desc, self.total, self.done = desc, total, 0
        self._start = time.perf_counter()
        self._bar = None
        if sys.stderr.isatty() and log.isEnabledFor(logging.INFO):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="sample", leave=False, dynamic_ncols=True)

    def update(self, n: int) -> None:
        """``n`` more samples are done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> float:
        """Finish; returns the samples per second it measured."""
        seconds = time.perf_counter() - self._start
        if self._bar is not None:
            self._bar.close()
        rate = self.done / seconds if seconds > 0 else float("inf")
        log.info("validate: %s: %d samples in %.2f s (%.0f samples/s)", self.desc, self.done, seconds, rate)
        return rate
