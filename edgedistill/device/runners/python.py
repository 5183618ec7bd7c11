"""The board's own Python runtimes through ``remote_runner.py`` (the default over ssh).

Runs every format whose runtime the board has installed; prints one JSON line per process.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgedistill.device.runners import Invocation, Plan, batch_bound, read_raw_logits
from edgedistill.device.stats import Timings
from edgedistill.errors import UserError

NAME = "python"
FORMATS = ("executorch", "litert", "onnx")
MARKER = "EDGEDISTILL_RUNNER_JSON "
INPUTS = "golden-inputs.npz"


def _inputs(plan: Plan) -> Path:
    path = plan.staging / INPUTS
    if not path.exists():
        np.savez(path, **{spec.name: plan.golden[spec.name] for spec in plan.manifest.inputs})
    return path


def _argv(plan: Plan, *extra: str) -> list[str]:
    return [plan.options.get("python", "python3"), plan.binary, "--model", plan.manifest.model_file,
            "--inputs", INPUTS, "--threads", str(plan.threads), *extra]


def validation_runs(plan: Plan) -> list[Invocation]:
    """All golden rows in one process, in batches the program accepts."""
    rows = len(plan.golden[plan.manifest.inputs[0].name])
    return [Invocation(_argv(plan, "--output", "outputs.bin", "--batch", str(batch_bound(plan.manifest))),
                       [_inputs(plan)], ["outputs.bin"], rows)]


def timing_run(plan: Plan, warmup: int, runs: int) -> Invocation:
    """Single-sample calls on golden sample 0."""
    return Invocation(_argv(plan, "--warmup", str(warmup), "--runs", str(runs)), [_inputs(plan)], [], 0, 1)


def parse(text: str, warmup: int) -> Timings:
    """The runner's JSON line."""
    line = next((ln for ln in reversed(text.splitlines()) if ln.startswith(MARKER)), None)
    if line is None:
        raise UserError("remote_runner.py printed no result line (is numpy and the model's runtime installed "
                        "on the board? see the process log)")
    data = json.loads(line[len(MARKER):])
    its = data["iterations_ms"]
    return Timings(samples_ms=its[warmup:], load_ms=data["load_ms"], first_ms=its[0] if its else None,
                   peak_memory_mb=data["peak_memory_mb"])


def read_output(path: Path, rows: int, num_classes: int) -> np.ndarray:
    """Raw float32 logits."""
    return read_raw_logits(path, rows, num_classes)
