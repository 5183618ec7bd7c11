"""The contract every format module fulfils (checked by tests, not by inheritance).

A format module defines, at module level:

- ``NAME``: registry name; ``SUFFIX``: model file suffix; ``EXTRA``: the pip extra it needs;
  ``BACKEND``: what the model is lowered to; ``SCHEMES``: the quantization schemes it exports;
- ``missing() -> str | None``: None when export and run work here, else what to install;
- ``export(model, example_inputs, *, scheme, calibration, path, dynamic_batch) -> ExportInfo``;
- ``load(path) -> Runner``: the host runner, in the format's real runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch


@dataclass
class ExportInfo:
    """What an exporter wrote and how much of the graph its backend took."""

    path: Path
    backend_version: str
    delegated_ops: int | None = None
    portable_ops: int | None = None
    dynamic_batch: bool = False
    details: dict[str, Any] = field(default_factory=dict)


class Runner(Protocol):
    """Runs a loaded artifact on numpy inputs and returns its first output (logits) as numpy."""

    max_batch: int | None

    def __call__(self, *inputs: np.ndarray) -> np.ndarray: ...


def run_batched(runner: Runner, inputs: dict[str, np.ndarray], batch_size: int = 256) -> np.ndarray:
    """Run ``runner`` over every sample of ``inputs``, in batches the artifact accepts."""
    arrays = list(inputs.values())
    step = min(batch_size, runner.max_batch or batch_size)
    return np.concatenate([runner(*(a[i : i + step] for a in arrays)) for i in range(0, len(arrays[0]), step)])


def calibration_batches(calibration: dict[str, np.ndarray], batch_size: int = 32) -> Sequence[tuple[torch.Tensor, ...]]:
    """Split a calibration set into batches of model arguments for observers."""
    arrays = list(calibration.values())
    return [tuple(torch.as_tensor(a[i : i + batch_size]) for a in arrays) for i in range(0, len(arrays[0]), batch_size)]
