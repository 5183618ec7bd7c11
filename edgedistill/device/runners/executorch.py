"""ExecuTorch ``executor_runner`` (examples/portable/executor_runner).

Flags: ``--model_path --inputs a.bin,b.bin --output_file BASE --num_executions N --cpu_threads T``;
outputs are raw tensors ``BASE-<i>.bin``. Input files must be sized for the program's batch bound;
newer runners take ``--input_shapes`` to run a dynamic-batch program below its bound, older ones
run at the bound (the report then says so through ``batch``). Timing lines, found anywhere in a line
(stderr ``I 00:00:00.001 executorch:executor_runner.cpp:412] ...`` or logcat ``I ExecuTorch: ...``):
``Model loaded in X ms.`` and ``Iteration i of n: X ms`` (1.3+), ``Model executed successfully n
time(s) in X ms.`` (older: the total only), ``Model executed successfully.`` (0.x: no timing).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np

from edgedistill.device.runners import FAKE_LOCAL_MARKER, Invocation, Plan, batch_bound, read_raw_logits, write_raw
from edgedistill.device.stats import Timings
from edgedistill.errors import UserError

NAME = "executor_runner"
FORMATS = ("executorch",)
_LOADED = re.compile(r"Model loaded in ([\d.]+) ms")
_ITERATION = re.compile(r"Iteration (\d+) of (\d+): ([\d.]+) ms")
_TOTAL = re.compile(r"Model executed successfully (\d+) time\(s\) in ([\d.]+) ms")


def probe_argv(binary: str) -> str:
    """gflags' --help lists the flags this build knows (its exit status 1 is normal)."""
    return f"./{shlex.quote(binary)} --help 2>&1 | grep -c input_shapes; true"


def _dynamic(plan: Plan) -> bool:
    return isinstance(plan.manifest.inputs[0].shape[0], str)


def _shapes_supported(plan: Plan) -> bool:
    return _dynamic(plan) and plan.capabilities.strip() not in ("", "0")


def _argv(plan: Plan, files: list[str], rows: int, executions: int, base: str | None) -> list[str]:
    argv = [f"./{plan.binary}", "--model_path", plan.manifest.model_file, "--inputs", ",".join(files),
            "--num_executions", str(executions), "--cpu_threads", str(plan.threads)]
    if base:
        argv += ["--output_file", base]
    if _shapes_supported(plan):
        shapes = ["x".join(str(d) for d in (rows, *plan.golden[spec.name].shape[1:])) for spec in plan.manifest.inputs]
        argv += ["--input_shapes", ",".join(shapes)]
    return argv


def _inputs(plan: Plan, tag: str, index: slice, bound: int) -> list[Path]:
    return [write_raw(plan.staging / f"{tag}-{i}.bin", plan.golden[spec.name][index], bound, spec.dtype)
            for i, spec in enumerate(plan.manifest.inputs)]


def validation_runs(plan: Plan) -> list[Invocation]:
    """Golden inputs in chunks of the batch bound; each run writes ``val-<k>-0.bin``."""
    bound = batch_bound(plan.manifest)
    count = len(plan.golden[plan.manifest.inputs[0].name])
    runs = []
    for k, start in enumerate(range(0, count, bound)):
        rows = min(bound, count - start)
        files = _inputs(plan, f"val-{k}-in", slice(start, start + rows), bound)
        runs.append(Invocation(_argv(plan, [f.name for f in files], rows, 1, f"val-{k}"), files,
                               [f"val-{k}-0.bin"], rows, rows if _shapes_supported(plan) else bound))
    return runs


def timing_run(plan: Plan, warmup: int, runs: int) -> Invocation:
    """Golden sample 0, ``warmup + runs`` executions in one process."""
    bound = batch_bound(plan.manifest)
    files = _inputs(plan, "time-in", slice(0, 1), bound)
    batch = 1 if (_shapes_supported(plan) or bound == 1) else bound
    return Invocation(_argv(plan, [f.name for f in files], 1, warmup + runs, None), files, [], 0, batch)


def parse(text: str, warmup: int) -> Timings:
    """Timings from executor_runner's log, newest format first."""
    loaded = _LOADED.search(text)
    iterations = [float(m.group(3)) for m in _ITERATION.finditer(text)]
    timings = Timings(load_ms=float(loaded.group(1)) if loaded else None, fake_local=FAKE_LOCAL_MARKER in text)
    if iterations:
        if len(iterations) <= warmup:
            raise UserError(f"executor_runner printed {len(iterations)} iterations, fewer than {warmup} warm-ups + 1")
        timings.first_ms, timings.samples_ms = iterations[0], iterations[warmup:]
        return timings
    total = _TOTAL.search(text)
    if total:
        n, ms = int(total.group(1)), float(total.group(2))
        # this version prints only the total, warm-ups included: the mean is all it tells
        timings.summary = {"n": n, "mean": ms / n}
        return timings
    raise UserError("executor_runner printed no timing lines (an ExecuTorch older than 0.4, or logs sent to logcat)")


def read_output(path: Path, rows: int, num_classes: int) -> np.ndarray:
    """Logits of one validation run (runs at the bound hold padding rows after ``rows``)."""
    return read_raw_logits(path, rows, num_classes)
