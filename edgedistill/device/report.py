"""The bench report: what a session measured (``BenchReport``), written as JSON (every field) and a
Markdown table with the bundles side by side."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgedistill.device.bench import BundleResult
from edgedistill.fileio import write_text_atomic

FAKE_LOCAL_NOTE = ("fake-local: stand-in runners or a loopback 'device' ran the host runtimes on this machine; "
                   "these are NOT phone or board latencies")


@dataclass
class BenchReport:
    """One session: the device, the settings, one result per bundle, and the error that ended it."""

    device: dict[str, Any] | None
    settings: dict[str, Any]
    results: list[BundleResult] = field(default_factory=list)
    error: str | None = None

    @property
    def measured_on(self) -> str:
        fake = (self.device or {}).get("fake_local") or any(r.measured_on == "fake-local" for r in self.results)
        return "fake-local" if fake else "device"

    @property
    def passed(self) -> bool:
        """Every bundle ran and every validated bundle passed."""
        return self.error is None and all(r.validation is None or r.validation["passed"] for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, "measured_on": self.measured_on,
                "note": FAKE_LOCAL_NOTE if self.measured_on == "fake-local" else None,
                "passed": self.passed, "error": self.error, "device": self.device, "settings": self.settings,
                "results": [asdict(r) for r in self.results]}


def _ms(v: float | None) -> str:
    return "—" if v is None else (f"{v * 1000:.0f} µs" if v < 1 else f"{v:.2f} ms")


def _num(v: float | None, fmt: str = "{:.4f}") -> str:
    return "—" if v is None else fmt.format(v)


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|")


def _thermal(t: dict[str, Any] | None) -> str:
    return "—" if not t else t["status"]


def _validation(r: BundleResult, key: str) -> str:
    if r.validation is None:
        return r.validation_note or "—"
    if key == "passed":
        return "pass" if r.validation["passed"] else "FAIL"
    source, metric = key.split(".")
    return _num(r.validation[source][metric])


ROWS: list[tuple[str, Callable[[BundleResult], str]]] = [
    ("format / quantization", lambda r: f"{r.format} {r.quantization}"),
    ("runner", lambda r: r.runner),
    ("measured on", lambda r: r.measured_on),
    ("batch", lambda r: _num(r.batch, "{}")),
    ("n (warm-ups)", lambda r: f"{r.latency_ms.get('n') or 0} ({r.warmup}/process, {len(r.processes)} processes)"),
    *[(f"{k} latency", (lambda k: lambda r: _ms(r.latency_ms.get(k)))(k)) for k in ("min", "median", "mean", "p90", "p99")],
    ("std", lambda r: _ms(r.latency_ms.get("std"))),
    ("load", lambda r: _ms(r.load_ms)),
    ("first inference", lambda r: _ms(r.first_inference_ms)),
    ("peak memory", lambda r: "—" if r.peak_memory_mb is None else f"{r.peak_memory_mb:.1f} MiB"),
    ("threads / core mask", lambda r: f"{r.threads} / {r.core_mask}"),
    ("model size", lambda r: f"{r.model_size_bytes / 1024:.1f} KiB"),
    ("model sha256", lambda r: r.model_sha256[:12]),
    ("thermal before → after", lambda r: f"{_thermal(r.thermal_before)} → {_thermal(r.thermal_after)}"),
    ("top-1 agree vs teacher", lambda r: _validation(r, "vs_teacher.top1_agreement")),
    ("max |Δp| vs fp32 student", lambda r: _validation(r, "vs_student.max_abs_dp")),
    ("validation", lambda r: _validation(r, "passed")),
    ("error", lambda r: r.error or "—"),
]


def markdown(report: BenchReport) -> str:
    """Device facts, then one column per bundle."""
    d = report.device or {}
    lines = [f"# edgedistill bench on {d.get('name', 'unknown device')}", ""]
    if report.measured_on == "fake-local":
        lines += [f"> **{FAKE_LOCAL_NOTE}**", ""]
    if d:
        lines += [f"{d['model']} · {d['soc']} · {d['abi']} · {d['os']} · {d['cores']} cores, "
                  f"big-core mask {d['big_core_mask']}", ""]
    results = report.results
    lines += ["| | " + " | ".join(_escape(r.bundle) for r in results) + " |", "|---|" + "---|" * len(results)]
    lines += ["| " + " | ".join(_escape(c) for c in [label, *(cell(r) for r in results)]) + " |" for label, cell in ROWS]
    s = report.settings
    lines += ["", f"Each process: {s['warmup']} warm-ups then {s['runs']} timed runs; {s['processes']} processes per bundle.",
              "", f"**{'PASS' if report.passed else 'FAIL'}**" + (f": {report.error}" if report.error else "")]
    return "\n".join(lines) + "\n"


def write_bench_reports(report: BenchReport, out: Path) -> dict[str, Path]:
    """bench.json and bench.md in ``out`` (written atomically)."""
    paths = {"json": Path(out) / "bench.json", "markdown": Path(out) / "bench.md"}
    write_text_atomic(paths["json"], json.dumps(report.to_dict(), indent=2) + "\n")
    write_text_atomic(paths["markdown"], markdown(report))
    return paths
