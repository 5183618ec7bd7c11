"""The contract every format module fulfils (checked by tests, not by inheritance).

A format module defines, at module level:

- ``NAME``: registry name; ``SUFFIX``: model file suffix; ``EXTRA``: the pip extra it needs;
  ``BACKEND``: what the model is lowered to; ``SCHEMES``: the quantization schemes it exports;
- ``missing() -> str | None``: None when export and run work here, else what to install;
- ``export(model, example_inputs, *, scheme, path, calibration, dynamic_batch, options) -> ExportInfo``
  (``options``: the format's table from ``[export.options.<format>]``);
- ``load(path, max_batch) -> Runner``: the host runner, in the format's real runtime; raises
  ``HostRunUnavailable`` where this machine cannot run the artifact (Core ML off macOS), so export
  records the run as skipped;
- optional ``host_run_problem(options) -> str | None``: None when an artifact built with ``options``
  (validation passes ``{"backend": manifest.backend}``) runs on this machine, else why not; validation
  then reports the bundle as not run (skipped checks), never as passed;
- optional ``FLOAT_MODULES = True``: ``export`` honours ``options["float_modules"]`` (submodule names kept
  in floating point under a quantized scheme), which ``validate --repair`` uses.

``options`` always holds ``input_names``: the model's input names in argument order (the Dataset
keys), which formats that name their graph inputs use so the file matches the manifest.

Quantization schemes share one vocabulary across formats (``SCHEMES`` below), so target profiles
and tolerances can name them without knowing the format.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch
from torch import nn

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
    max_batch: int | None = None  # the largest batch the written program accepts, when the format can tell


class HostRunUnavailable(UserError):
    """This machine cannot run the artifact (e.g. Core ML off macOS): a skip with a reason, not a failure."""



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


def check_request(fmt: str, schemes: Sequence[str], scheme: str, calibration: dict[str, np.ndarray] | None) -> None:
    """A UserError for a scheme ``fmt`` does not export, or for int8 without calibration inputs."""
    if scheme not in schemes:
        raise UserError(f"format {fmt} does not support quantization {scheme!r}; supported: {', '.join(schemes)}")
    if scheme in NEEDS_CALIBRATION and (not calibration or len(next(iter(calibration.values()))) == 0):
        raise UserError(f"{scheme} needs a calibration set of representative inputs (none or empty given)")


def calibration_batches(calibration: dict[str, np.ndarray], batch_size: int = 32) -> Sequence[tuple[torch.Tensor, ...]]:
    """Split a calibration set into batches of model arguments for observers."""
    arrays = list(calibration.values())
    return [tuple(torch.as_tensor(a[i : i + batch_size]) for a in arrays) for i in range(0, len(arrays[0]), batch_size)]


class ConversionCache:
    """The last few float conversions (file bytes by ``model_fingerprint``), so exporting several
    quantization schemes of one model lowers it once."""

    def __init__(self, size: int = 2):
        self._items: dict[str, bytes] = {}
        self._size = size

    def get_or_make(self, key: str, make: Callable[[], bytes]) -> bytes:
        """The cached bytes for ``key``, or ``make()``'s (kept, evicting the oldest entry)."""
        if key not in self._items:
            content = make()
            while len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = content
        return self._items[key]


def model_fingerprint(model: nn.Module, example_inputs: Sequence[torch.Tensor], *extra: object) -> str:
    """Identity of (this model object, its current weights, input shapes, ``extra``) for reusing a
    float conversion across quantization schemes within one run."""
    digest = hashlib.sha256(f"{id(model)}|{type(model).__qualname__}|{extra}".encode())
    for t in example_inputs:
        digest.update(f"{tuple(t.shape)}{t.dtype}".encode())
    for name, value in model.state_dict().items():
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


_OPERATOR = re.compile(r"\b(aten|prims)(?:::|\.)([A-Za-z0-9_]+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def lowering_error(fmt: str, exc: BaseException) -> UserError:
    """A one-line UserError for a model ``fmt`` cannot lower, naming the operator when the message has one."""
    text = _ANSI.sub("", " ".join(str(e) for e in (exc, exc.__cause__, exc.__context__) if e is not None))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[0][:200] if lines else type(exc).__name__
    # the operator named after "not found" / "No ONNX function" is the culprit; other mentions are context
    anchor = max(text.find("not found"), text.find("No ONNX function"))
    found = _OPERATOR.search(text, anchor) if anchor >= 0 else None
    if found:
        return UserError(f"format {fmt} cannot lower operator {found.group(1)}.{found.group(2)} "
                         f"(no {fmt} implementation for it)")
    converter = re.search(r"Unsupported fx node (\w+)", text)  # coremltools names ops without a namespace
    if converter:
        return UserError(f"format {fmt} cannot lower operator {converter.group(1)} (no {fmt} implementation for it)")
    found = _OPERATOR.search(text)
    return UserError(f"format {fmt} cannot lower " + (f"operator {found.group(1)}.{found.group(2)}" if found
                                                      else "the model") + f": {reason}")
