"""Latency statistics over timed runs, pooled across processes.

Runners that print every iteration (executor_runner 1.3+, the Python runner) give exact pooled
statistics. Runners that print only a summary per process (benchmark_model, onnxruntime_perf_test,
old executor_runner) are combined: exact n, min, max, mean and std; the median is the median of
the per-process medians and percentiles a runner does not print are left out (None), never made up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Timings:
    """What one runner process reported (milliseconds; None where the runner does not say)."""

    samples_ms: list[float] = field(default_factory=list)  # timed iterations, warm-ups dropped
    summary: dict[str, float] = field(default_factory=dict)  # n, min, max, mean, std, median, p90, p95, p99
    load_ms: float | None = None
    first_ms: float | None = None
    peak_memory_mb: float | None = None
    fake_local: bool = False


STAT_KEYS = ("n", "min", "median", "mean", "p90", "p99", "std", "max")


def summarize(runs: list[Timings]) -> dict[str, float | None]:
    """Pooled statistics over every timed iteration of every process."""
    if runs and all(r.samples_ms for r in runs):
        x = np.array([s for r in runs for s in r.samples_ms], dtype=np.float64)
        return {"n": int(x.size), "min": float(x.min()), "median": float(np.median(x)), "mean": float(x.mean()),
                "p90": float(np.percentile(x, 90)), "p99": float(np.percentile(x, 99)),
                "std": float(x.std()), "max": float(x.max())}
    parts = [p for p in (r.summary or _summary_of(r.samples_ms) for r in runs) if p.get("n")]
    if not parts:
        return {k: None for k in STAT_KEYS}
    return _pool(parts)


def _pool(parts: list[dict[str, float]]) -> dict[str, float | None]:
    """Combine per-process summaries; a figure missing from any process stays None."""
    n = sum(p["n"] for p in parts)
    mean = sum(p["mean"] * p["n"] for p in parts) / n
    have = lambda key: all(p.get(key) is not None for p in parts)  # noqa: E731
    std = None
    if have("std"):
        second = sum((p["std"] ** 2 + p["mean"] ** 2) * p["n"] for p in parts) / n
        std = math.sqrt(max(second - mean * mean, 0.0))
    one = parts[0] if len(parts) == 1 else {}
    return {"n": int(n), "min": min(p["min"] for p in parts) if have("min") else None,
            "median": float(np.median([p["median"] for p in parts])) if have("median") else None,
            "mean": mean, "p90": one.get("p90"), "p99": one.get("p99"), "std": std,
            "max": max(p["max"] for p in parts) if have("max") else None}


def _summary_of(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    x = np.array(samples, dtype=np.float64)
    return {"n": x.size, "min": x.min(), "max": x.max(), "mean": x.mean(), "std": x.std(), "median": np.median(x)}


def first_of(runs: list[Timings], attr: str) -> float | None:
    """Median over processes of a per-process figure (load time, first inference, peak memory)."""
    values = [getattr(r, attr) for r in runs if getattr(r, attr) is not None]
    return float(np.median(values)) if values else None
