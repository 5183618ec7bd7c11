"""The contract every format module fulfils (checked by tests, not by inheritance).

A format module defines, at module level:

- ``NAME``: registry name; ``SUFFIX``: model file suffix; ``EXTRA``: the pip extra it needs;
  ``BACKEND``: what the model is lowered to; ``SCHEMES``: the quantization schemes it exports;
- ``missing() -> str | None``: None when export and run work here, else what to install;
- ``export(model, example_inputs, *, scheme, path, calibration, dynamic_batch, options) -> ExportInfo``
  (``options``: the format's table from ``[export.options.<format>]``);
- ``load(path, max_batch) -> Runner``: the host runner, in the format's real runtime; raises
  ``HostRunUnavailable`` where this machine cannot run the artifact (Core ML off macOS), so export
  records the run as skipped and validation reports the bundle as not run, never as passed.

Quantization schemes share one vocabulary across formats (``SCHEMES`` below), so target profiles
and tolerances can name them without knowing the format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import re

import numpy as np
import torch

from edgedistill.errors import UserError


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
    backend: str | None = None  # when an option picked another backend than the module's BACKEND
    portable_compute_ops: int | None = None  # compute (not data-movement) ops left to the portable fallback
    input_dtypes: dict[str, str] = field(default_factory=dict)  # where the artifact's input dtype differs from the data's


class HostRunUnavailable(UserError):
    """This machine cannot run the artifact (e.g. Core ML off macOS): a skip with a reason, not a failure."""


_OPERATOR_PATTERNS = (
    r"Unsupported fx node (\w+)",                       # coremltools
    r"convert function for op '(\w+)'",                 # coremltools, TorchScript frontend
    r"Missing out variants: \{'([\w:.]+)'",             # ExecuTorch: no kernel for an op
    r"(aten[.:]+\w+(?:\.\w+)?)",                         # any message naming an ATen op
)


def lowering_error(fmt: str, exc: BaseException) -> UserError:
    """A one-line UserError for a model ``fmt`` cannot lower, naming the operator when the message does."""
    message = " ".join(str(exc).split())
    for pattern in _OPERATOR_PATTERNS:
        found = re.search(pattern, message)
        if found:
            return UserError(f"{fmt} cannot lower the model: operator {found.group(1)} is not supported "
                             f"({type(exc).__name__}: {message[:160]})")
    return UserError(f"{fmt} cannot lower the model ({type(exc).__name__}: {message[:200]})")


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
