"""The contract every format module fulfils (checked by tests, not by inheritance).

A format module defines, at module level:

- ``NAME``: registry name; ``SUFFIX``: model file suffix; ``EXTRA``: the pip extra it needs;
  ``BACKEND``: what the model is lowered to; ``SCHEMES``: the quantization schemes it exports;
- ``missing() -> str | None``: None when export and run work here, else what to install;
- ``export(model, example_inputs, *, scheme, path, calibration, dynamic_batch, options) -> ExportInfo``
  (``options``: the format's table from ``[export.options.<format>]``);
- ``load(path, max_batch) -> Runner``: the host runner, in the format's real runtime;
- optional ``runnable() -> str | None``: None when artifacts of this format run on this machine, else
  why not (e.g. "Core ML runs only on macOS"); validation then reports them as not run (skipped);
- optional ``FLOAT_MODULES = True``: ``export`` honours ``options["float_modules"]`` (submodule names kept
  in floating point under a quantized scheme), which ``validate --repair`` uses.

Quantization schemes share one vocabulary across formats (``SCHEMES`` below), so target profiles
and tolerances can name them without knowing the format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch


SCHEMES: dict[str, str] = {
    "fp32": "no quantization",
    "fp16": "half-precision weights and compute",
    "int8": "static int8 weights and activations, calibrated on a calibration set",
    "int8-dynamic": "int8 weights, activations quantized at run time (no calibration)",
    "int8-weight": "weight-only int8, float compute (no calibration)",
    "int4-weight": "weight-only int4, float compute (no calibration)",
    "palettize8": "8-bit weight palettization (Core ML)",
    "palettize6": "6-bit weight palettization (Core ML)",
    "palettize4": "4-bit weight palettization (Core ML)",
}
NEEDS_CALIBRATION = frozenset({"int8"})


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


def run_batched(runner: Runner, inputs: dict[str, np.ndarray], batch_size: int = 256,
                on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Run ``runner`` over every sample of ``inputs``, in batches the artifact accepts.

    ``on_batch(n)`` is called after each batch of ``n`` samples (progress bars).
    """
    arrays = list(inputs.values())
    step = min(batch_size, runner.max_batch or batch_size)
    outputs = []
    for i in range(0, len(arrays[0]), step):
        outputs.append(runner(*(a[i : i + step] for a in arrays)))
        if on_batch is not None:
            on_batch(len(outputs[-1]))
    return np.concatenate(outputs)


def calibration_batches(calibration: dict[str, np.ndarray], batch_size: int = 32) -> Sequence[tuple[torch.Tensor, ...]]:
    """Split a calibration set into batches of model arguments for observers."""
    arrays = list(calibration.values())
    return [tuple(torch.as_tensor(a[i : i + batch_size]) for a in arrays) for i in range(0, len(arrays[0]), batch_size)]
