"""The contract every format module fulfils (``Format`` below), and the pieces formats share.

A format is a module, not a class: ``Format`` is a ``typing.Protocol`` that the module object itself
satisfies (its module-level names), and ``tests/test_format_contract.py`` checks every registered
module against it. Every part is required; the ones only some formats use have a stated default
value to write (``FLOAT_MODULES = False``, ``host_run_problem`` returning None), so callers never
need a ``getattr`` fallback.

``options`` (``[export.options.<format>]``) always holds ``input_names``: the model's input names
in argument order (the Dataset keys), which formats that name their graph inputs use so the file
matches the manifest.

Quantization schemes share one vocabulary across formats (``SCHEMES``, from ``schemes``), so target
profiles and tolerances can name them without knowing the format. A format module imports only
shared modules (this one, ``schemes``, ``shared_*``), never another format.
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
# re-exported: the scheme vocabulary and its rules belong to the contract formats are checked against
from edgedistill.formats.schemes import NEEDS_CALIBRATION, SCHEMES, check_request  # noqa: F401


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
    # the threads the runtime runs on, read back from it where it can tell; None where the runtime has no
    # setting (Core ML schedules its own): reports then say "not set" instead of a number
    threads: int | None

    def __call__(self, *inputs: np.ndarray) -> np.ndarray: ...


class Format(Protocol):
    """What a format module defines at module level (checked by tests/test_format_contract.py)."""

    NAME: str  # registry name
    SUFFIX: str  # model file suffix (".pte"; ".mlpackage" is a folder)
    EXTRA: str  # the pip extra that installs its backend: pip install 'edgedistill[<EXTRA>]'
    BACKEND: str  # what the model is lowered to (the manifest's backend unless ExportInfo.backend says another)
    SCHEMES: tuple[str, ...]  # the quantization schemes it exports, a subset of SCHEMES
    MAX_BATCH: int  # the largest batch a dynamic-batch artifact takes (1 where the batch is fixed)
    FLOAT_MODULES: bool  # export honours options["float_modules"] (submodules kept float; validate --repair)

    def missing(self) -> str | None:
        """None when export and run work here, else what to install; never fails when the backend is absent."""

    def host_run_problem(self, options: dict | None = None) -> str | None:
        """None when an artifact built with ``options`` (validation passes ``{"backend": manifest.backend}``)
        runs on this machine, else why not: validation then reports it as not run, never as passed."""

    def export(self, model: nn.Module, example_inputs: tuple[torch.Tensor, ...], *, scheme: str, path: Path,
               calibration: dict[str, np.ndarray] | None = None, dynamic_batch: bool = True,
               options: dict | None = None) -> ExportInfo:
        """Write the artifact for ``scheme`` at ``path``; ``options`` is the format's table plus ``input_names``."""

    def load(self, path: Path, max_batch: int | None = None, threads: int = 1) -> Runner:
        """The host runner, in the format's real runtime, on ``threads`` threads where the runtime has the
        setting (the runner's ``threads`` says what it got); HostRunUnavailable where this machine cannot
        run the artifact (Core ML off macOS), so export records the run as skipped."""


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


def dynamic_shapes(example_inputs: Sequence[torch.Tensor], dynamic_batch: bool, max_batch: int,
                   varargs: bool = False) -> Any:
    """torch.export dynamic shapes with a shared dynamic batch axis (None when static)."""
    if not dynamic_batch:
        return None
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    shapes = tuple({0: batch} for _ in example_inputs)
    return (shapes,) if varargs else shapes  # a *inputs signature takes its shapes as one nested tuple


def calibrated(model: nn.Module, example_inputs: tuple[torch.Tensor, ...], quantizer: Any,
               calibration: dict[str, np.ndarray] | None, shapes: Any) -> nn.Module:
    """pt2e: export, insert ``quantizer``'s observers, run the calibration set (or the examples), convert."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph = torch.export.export(model, example_inputs, dynamic_shapes=shapes).module()
    prepared = prepare_pt2e(graph, quantizer)
    # a static graph takes exactly the example's batch (its reshapes bake it in): calibrate in those
    batch_size = 32 if shapes is not None else int(example_inputs[0].shape[0])
    batches = [b for b in (calibration_batches(calibration, batch_size) if calibration else [])
               if shapes is not None or b[0].shape[0] == batch_size]  # a shorter last batch does not fit a static graph
    with torch.no_grad():
        for batch in batches or [example_inputs]:
            prepared(*batch)
    return convert_pt2e(prepared)


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
