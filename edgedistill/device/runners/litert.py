"""LiteRT (TensorFlow Lite) ``benchmark_model`` (tensorflow/lite/tools/benchmark).

Flags: ``--graph --num_threads --num_runs --warmup_runs --min_secs=0 --warmup_min_secs=0
--use_xnnpack``. It prints a summary per phase (warm-up, then timed), in microseconds:
``count=50 first=.. curr=.. min=.. max=.. avg=.. std=..`` (older), with `` p5=.. median=.. p95=..``
appended (newer, StatWithPercentiles), or ``count=N curr=X(all same)``; then ``Inference timings in
us: Init: .., First inference: .., Warmup (avg): .., Inference (avg): ..`` and memory lines.
It writes no outputs, so LiteRT bundles are validated with the Python runner or the example app.
"""

from __future__ import annotations

import re

from edgedistill.device.runners import FAKE_LOCAL_MARKER, Invocation, Plan
from edgedistill.device.stats import Timings
from edgedistill.errors import UserError

NAME = "benchmark_model"
FORMATS = ("litert",)
NO_OUTPUTS = "benchmark_model writes no outputs: validate with the Python runner over ssh or the example app"
_COUNT = re.compile(r"count=(\d+)(?: first=(-?\d+))? curr=(-?\d+)(?: min=(-?\d+) max=(-?\d+) avg=([-\d.e+]+) "
                    r"std=(\d+))?(?:\(all same\))?(?: p5=(-?\d+) median=(-?\d+) p95=(-?\d+))?")
_TIMINGS = re.compile(r"Inference timings in us: Init: ([\d.e+]+), First inference: ([\d.e+]+), "
                      r"Warmup \(avg\): ([-\d.e+na]+), Inference \(avg\): ([\d.e+]+)")
_TIMINGS_OLD = re.compile(r"Average inference timings in us: Warmup: ([\d.e+]+), Init: ([\d.e+]+)")
_PEAK = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring: ([\d.]+)")
_DELTA = re.compile(r"Memory footprint delta from the start of the tool \(MB\): init=([\d.]+) overall=([\d.]+)")


def validation_runs(plan: Plan) -> list[Invocation]:
    """None: benchmark_model feeds random inputs and writes no outputs."""
    return []


def timing_run(plan: Plan, warmup: int, runs: int) -> Invocation:
    """One benchmark_model process: W warm-ups, N timed runs, no time minimums."""
    return Invocation([f"./{plan.binary}", f"--graph={plan.manifest.model_file}", f"--num_threads={plan.threads}",
                       f"--num_runs={runs}", f"--warmup_runs={warmup}", "--min_secs=0", "--warmup_min_secs=0",
                       "--use_xnnpack=true"], [], [], 0, 1)


def parse(text: str, warmup: int) -> Timings:
    """The timed phase's summary (the last ``count=`` line), init and first-inference times."""
    counts = [m for m in _COUNT.finditer(text) if int(m.group(1)) > 0]
    if not counts:
        raise UserError("benchmark_model printed no 'count=' summary (did it fail to load the model?)")
    m = counts[-1]
    us = lambda i: None if m.group(i) is None else float(m.group(i)) / 1000  # noqa: E731
    n, curr = int(m.group(1)), us(3)
    if m.group(4) is None:  # all runs equal
        summary = {"n": n, "min": curr, "max": curr, "mean": curr, "std": 0.0, "median": curr}
    else:
        summary = {"n": n, "min": us(4), "max": us(5), "mean": us(6), "std": us(7)}
        if m.group(9) is not None:
            summary.update(median=us(9), p5=us(8), p95=us(10))
    timings = Timings(summary=summary, fake_local=FAKE_LOCAL_MARKER in text)
    t, old = _TIMINGS.search(text), _TIMINGS_OLD.search(text)
    if t:
        timings.load_ms, timings.first_ms = float(t.group(1)) / 1000, float(t.group(2)) / 1000
    elif old:
        timings.load_ms = float(old.group(2)) / 1000
    peak, delta = _PEAK.search(text), _DELTA.search(text)
    timings.peak_memory_mb = float(peak.group(1)) if peak else float(delta.group(2)) if delta else None
    return timings
