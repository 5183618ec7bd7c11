"""ONNX Runtime ``onnxruntime_perf_test`` (onnxruntime/test/perftest).

Flags: ``-m times -r N -x THREADS -I MODEL`` (``-I``: generated inputs, free dimensions as 1). It
runs one untimed warm-up itself, then prints ``Session creation time cost: X s``, ``First inference
time cost: N ms``, ``Total inference requests: N``, ``Average inference time cost: X ms`` and
``Peak working set size: N bytes``; newer builds add ``Min/Max/P50/P90/P95/P99/P999 Latency: X s``.
It writes no outputs, so ONNX bundles are validated with the Python runner or the example app.
"""

from __future__ import annotations

import re

from edgedistill.device.runners import FAKE_LOCAL_MARKER, Invocation, Plan
from edgedistill.device.stats import Timings
from edgedistill.errors import UserError

NAME = "onnxruntime_perf_test"
FORMATS = ("onnx",)
NO_OUTPUTS = "onnxruntime_perf_test writes no outputs: validate with the Python runner over ssh or the example app"
_NUM = r"([-\d.e+]+)"
_FIELDS = {"load_s": rf"Session creation time cost: {_NUM} s", "first_ms": rf"First inference time cost: {_NUM} ms",
           "n": r"Total inference requests: (\d+)", "mean_ms": rf"Average inference time cost: {_NUM} ms",
           "peak_bytes": r"Peak working set size: (\d+) bytes"}
_PERCENTILES = {"min": "Min", "max": "Max", "median": "P50", "p90": "P90", "p95": "P95", "p99": "P99"}


def validation_runs(plan: Plan) -> list[Invocation]:
    """None: perf_test writes no outputs."""
    return []


def timing_run(plan: Plan, warmup: int, runs: int) -> Invocation:
    """One perf_test process: its own single warm-up, then N timed runs."""
    return Invocation([f"./{plan.binary}", "-m", "times", "-r", str(runs), "-x", str(plan.threads), "-I",
                       plan.manifest.model_file], [], [], 0, 1)


def parse(text: str, warmup: int) -> Timings:
    """Summary lines (and latency percentiles where the build prints them)."""
    found = {k: re.search(p, text) for k, p in _FIELDS.items()}
    if not found["n"] or not found["mean_ms"]:
        raise UserError("onnxruntime_perf_test printed no 'Total inference requests' summary")
    value = lambda k: None if found[k] is None else float(found[k].group(1))  # noqa: E731
    summary = {"n": int(value("n")), "mean": value("mean_ms")}
    for key, label in _PERCENTILES.items():
        m = re.search(rf"{label} Latency: {_NUM} s", text)
        if m:
            summary[key] = float(m.group(1)) * 1000
    peak = value("peak_bytes")
    return Timings(summary=summary, load_ms=None if value("load_s") is None else value("load_s") * 1000,
                   first_ms=value("first_ms"), peak_memory_mb=None if peak is None else peak / (1 << 20),
                   fake_local=FAKE_LOCAL_MARKER in text)
