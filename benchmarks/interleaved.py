"""Timing many callables fairly in one process: interleaved rounds, medians, and the noise of each ratio."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved(calls: dict[str, Callable[[], object]], rounds: int, per_round: int,
                warmup: int = 20) -> dict[str, list[float]]:
    """Per-round median latency (ms) of each callable; every round runs all of them, in turn."""
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    medians: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            times = []
            for _ in range(per_round):
                start = time.perf_counter_ns()
                fn()
                times.append(time.perf_counter_ns() - start)
            medians[name].append(statistics.median(times) / 1e6)
    return medians


def ratio(rounds: dict[str, list[float]], numerator: str, denominator: str) -> tuple[float, float, float]:
    """Median of the per-round ratios, and their min and max (the noise of this ratio in this run)."""
    per_round = [a / b for a, b in zip(rounds[numerator], rounds[denominator])]
    return statistics.median(per_round), min(per_round), max(per_round)


def fastest(rounds: dict[str, list[float]], names: list[str]) -> str:
    """The name with the lowest median latency among ``names``."""
    return min(names, key=lambda n: statistics.median(rounds[n]))


def verdict(value: float, target: float) -> str:
    """'met' or 'missed by N %' for a ratio that must stay at or below ``target``."""
    return "met" if value <= target else f"missed by {100 * (value / target - 1):.0f} %"
