"""On-device runners, one small module per tool; each builds its command lines and parses its output.

A runner module defines ``NAME`` (the tool's file name), ``FORMATS`` (bundle formats it runs),
``probe_argv()`` (a command whose output tells the tool's capabilities, or None),
``validation_runs(plan) -> list[Invocation]`` (empty when the tool writes no outputs),
``timing_run(plan, warmup, runs) -> Invocation``, ``parse(text, warmup) -> Timings`` and, when it
writes outputs, ``read_output(path, rows, num_classes)``. Adding a runner is one module and one line
in ``_REGISTRY``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edgedistill.bundle import Manifest
from edgedistill.errors import UserError

_REGISTRY = {
    "executor_runner": "edgedistill.device.runners.executorch",
    "benchmark_model": "edgedistill.device.runners.litert",
    "onnxruntime_perf_test": "edgedistill.device.runners.onnxruntime",
    "python": "edgedistill.device.runners.python",
}
DEFAULT_FOR_FORMAT = {"executorch": "executor_runner", "litert": "benchmark_model", "onnx": "onnxruntime_perf_test"}
# what a stand-in prints so that its numbers are never taken for a phone's
FAKE_LOCAL_MARKER = "edgedistill stand-in: fake-local"


@dataclass
class Plan:
    """Everything a runner module needs to build its command lines for one bundle."""

    manifest: Manifest
    golden: dict[str, np.ndarray]
    staging: Path  # local folder: files written here are pushed next to the model
    binary: str  # the runner's file name in the remote folder
    threads: int
    capabilities: str = ""  # output of probe_argv(), when the runner has one
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Invocation:
    """One runner process: argv relative to the remote bundle folder, files it reads and writes."""

    argv: list[str]
    inputs: list[Path] = field(default_factory=list)  # local files to push first
    outputs: list[str] = field(default_factory=list)  # remote file names to pull afterwards
    rows: int = 0  # golden rows this invocation's output holds
    batch: int = 1  # samples per timed iteration


def names() -> list[str]:
    """Every registered runner kind."""
    return sorted(_REGISTRY)


def get(name: str) -> ModuleType:
    """The runner module for ``name``; an unknown name lists the known ones."""
    if name not in _REGISTRY:
        raise UserError(f"unknown runner {name!r}; available: {', '.join(names())}")
    return importlib.import_module(_REGISTRY[name])


def detect(runner: Path | None, fmt: str, default: str | None = None) -> str:
    """The runner kind: from the binary's file name, else the transport's default, else the format's tool."""
    if runner is not None:
        stem = runner.name.split(".")[0]
        if stem in _REGISTRY:
            return stem
    if runner is None and default:
        return default
    if fmt not in DEFAULT_FOR_FORMAT:
        raise UserError(f"no on-device runner for format {fmt!r}; give --runner-kind ({', '.join(names())})")
    return DEFAULT_FOR_FORMAT[fmt]


def batch_bound(manifest: Manifest) -> int:
    """The batch size a program's inputs are allocated for (the upper bound when dynamic)."""
    first = manifest.inputs[0].shape[0]
    return int(manifest.max_batch or 1) if isinstance(first, str) else int(first)


def write_raw(path: Path, array: np.ndarray, rows: int, dtype: str) -> Path:
    """Raw little-endian tensor file, zero-padded to ``rows`` samples (runners read exact byte sizes)."""
    out = np.zeros((rows, *array.shape[1:]), dtype=np.dtype(dtype).newbyteorder("<"))
    out[: len(array)] = array[:rows]
    out.tofile(path)
    return path


def read_raw_logits(path: Path, rows: int, num_classes: int) -> np.ndarray:
    """The first ``rows`` rows of a raw float32 output file (a UserError when it is too short)."""
    values = np.fromfile(path, dtype="<f4")
    if values.size % num_classes or values.size // num_classes < rows:
        raise UserError(f"runner output {path.name} holds {values.size} floats, expected {rows} x {num_classes}")
    return values.reshape(-1, num_classes)[:rows]
