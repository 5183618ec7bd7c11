"""Ranking measured candidates and writing ``selection.json`` / ``selection.md``: pure functions, no runtimes.

The rule (also written into every selection file, so a reader knows why a bundle won):

1. Only candidates that passed validation against the teacher can win; failing ones are listed last.
2. ``fastest``: every candidate whose median latency is within the noise band of the fastest one
   (``NOISE_BAND`` relative, or the larger measured per-round spread) ties with it; a tie goes to
   the smaller model file, then to the bundle name (alphabetical). ``smallest``: smaller file wins,
   then lower latency, then name.

Ties are resolved by size and name, never by which timing happened to be lower, so the same inputs
give the same choice even on a noisy machine.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

GOALS = ("fastest", "smallest")
NOISE_BAND = 0.10
RULE = ("only candidates that passed validation can win; fastest: among the candidates whose median latency is "
        "within max(10 %, measured spread) of the fastest one, the smallest file wins, then the first bundle "
        "name; smallest: file size, then latency, then name")


@dataclass
class Candidate:
    """One built (or failed) candidate and what was measured of it."""

    name: str
    format: str
    quantization: str
    folder: str | None = None
    passed: bool = False
    status: str = "fail"  # pass, fail, not run, export failed
    reason: str | None = None
    size_bytes: int | None = None
    latency_ms: float | None = None
    latency_spread: float = 0.0  # (max - min) / median of the per-round medians
    peak_memory_mb: float | None = None
    teacher_top1: float | None = None
    student_top1: float | None = None
    measured_on: str = "host"  # "host", or the device and how: "adb:SERIAL (device)", "adb:SERIAL (fake-local)"
    threads: int | None = None  # the runtime's threads while timed (read back; None where it has no setting)
    extra: dict[str, Any] = field(default_factory=dict)


def _within_noise(a: Candidate, fastest: Candidate) -> bool:
    band = max(NOISE_BAND, a.latency_spread, fastest.latency_spread)
    return a.latency_ms <= fastest.latency_ms * (1.0 + band)


def rank(candidates: list[Candidate], goal: str) -> list[Candidate]:
    """Passing candidates best first (per ``goal``), then the others by name.

    ``fastest`` picks, repeatedly, among the remaining candidates within the noise band of the fastest
    one, the smallest file (then the first name); ``smallest`` orders by (size, latency, name).
    """
    if goal not in GOALS:
        raise ValueError(f"unknown selection goal {goal!r}; choose one of {', '.join(GOALS)}")
    passing = [c for c in candidates if c.passed and c.latency_ms is not None and c.size_bytes is not None]
    others = sorted((c for c in candidates if c not in passing), key=lambda c: c.name)
    if goal == "smallest":
        return sorted(passing, key=lambda c: (c.size_bytes, c.latency_ms, c.name)) + others
    ordered, left = [], list(passing)
    while left:
        fastest = min(left, key=lambda c: (c.latency_ms, c.size_bytes, c.name))
        pick = min((c for c in left if _within_noise(c, fastest)), key=lambda c: (c.size_bytes, c.name))
        ordered.append(pick)
        left.remove(pick)
    return ordered + others


def write_selection(out: Path, goal: str, target: str, ranked: list[Candidate], machine: dict[str, Any]) -> None:
    """``selection.json`` and ``selection.md`` in ``out``: the ranking, the winner and the rule."""
    winner = ranked[0] if ranked and ranked[0].passed else None
    data = {"schema_version": 1, "goal": goal, "target": target, "rule": RULE, "machine": machine,
            "default": winner.name if winner else None, "candidates": [asdict(c) for c in ranked]}
    (out / "selection.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    lines = [f"# Selection for target {target}: {goal}", "",
             f"Default bundle: **{winner.name}** (copied to `bundles/default/`)" if winner else
             "No candidate passed validation: no default bundle.", "", f"Rule: {RULE}.", "",
             "| rank | candidate | status | median latency | spread | size | peak memory | top-1 vs teacher | top-1 vs student |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    fmt = lambda v, f: "—" if v is None else f.format(v)  # noqa: E731
    for i, c in enumerate(ranked, 1):
        lines.append(f"| {i if c.passed else '—'} | {c.name} | {c.status}{': ' + c.reason if c.reason else ''} | "
                     f"{fmt(c.latency_ms, '{:.4f} ms')} | {c.latency_spread:.0%} | {fmt(c.size_bytes, '{:,} B')} | "
                     f"{fmt(c.peak_memory_mb, '{:.1f} MiB')} | {fmt(c.teacher_top1, '{:.2%}')} | {fmt(c.student_top1, '{:.2%}')} |")
    lines += ["", f"Timed on: {machine.get('where', 'host')} ({machine.get('cpu', '?')}, {machine.get('threads', '?')} "
              "runtime thread(s))."]
    if machine.get("measured_on") == "fake-local":
        lines += ["", "> **fake-local: stand-in runners ran this machine's runtimes; these are NOT device latencies.**"]
    (out / "selection.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
