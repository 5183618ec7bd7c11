"""Render a validation report: a Markdown table (also printed) and JSON, written atomically."""

from __future__ import annotations

import json
from pathlib import Path

from edgedistill.fileio import ensure_writable_dir, write_text_atomic
from edgedistill.validation.harness import Report

COLUMNS = ("model", "params", "size", "test acc", "top-1 agree", "KL(teacher‖model)", "max |Δp|",
           "latency/sample", "peak mem")


def _size(n: int | None) -> str:
    if n is None:
        return "—"
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.2%}"


def table_rows(report: Report) -> list[list[str]]:
    """One list of cells per model, in COLUMNS order; metrics are against the teacher."""
    rows = []
    for r in report.rows:
        if r.skipped:
            rows.append([r.name, f"{r.parameters:,}", _size(r.size_bytes)] + ["not run"] * (len(COLUMNS) - 3))
            continue
        rows.append([
            r.name, f"{r.parameters:,}", _size(r.size_bytes), _pct(r.accuracy),
            _pct(r.vs_teacher["top1_agreement"]), f"{r.vs_teacher['mean_kl']:.4f}", f"{r.vs_teacher['max_abs_dp']:.4f}",
            "—" if r.latency_ms is None else f"{r.latency_ms * 1000:.0f} µs", "—" if r.peak_memory_mb is None else f"{r.peak_memory_mb:.1f} MiB",
        ])
    return rows


def markdown(report: Report) -> str:
    """The comparison table and the checks, as GitHub-flavoured Markdown."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(report)]
    lines += ["", f"{report.samples} held-out samples of {report.data}; agreement, KL and |Δp| against the teacher.", ""]
    lines += ["| artifact | check | value | bound | result |", "|---|---|---|---|---|"]
    for r in report.rows:
        for c in r.checks:
            op = "≥" if c.kind == "min" else "≤"
            lines.append(f"| {r.name} | {c.name} | {c.value:.4f} | {op} {c.bound:g} | {'pass' if c.passed else 'FAIL'} |")
    lines += [f"| {r.name} | run | — | — | skipped: {r.skipped} |" for r in report.rows if r.skipped]
    lines += ["", f"**{'PASS' if report.passed else 'FAIL'}**"]
    return "\n".join(lines) + "\n"


def text_table(report: Report) -> str:
    """The table aligned for a terminal, then one line per failed check."""
    rows = [list(COLUMNS)] + table_rows(report)
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    out = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
           for row in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    for r in report.rows:
        for c in r.checks:
            if not c.passed:
                op = "≥" if c.kind == "min" else "≤"
                out.append(f"FAIL {r.name}: {c.name} = {c.value:.4f}, needs {op} {c.bound:g}")
    skipped = [r for r in report.rows if r.skipped]
    out += [f"SKIPPED {r.name}: {r.skipped}" for r in skipped]
    ran = "every artifact that ran" if skipped else "every artifact"
    out.append(f"PASS: {ran} agrees with the teacher within tolerance" if report.passed else "FAIL: see the checks above")
    return "\n".join(out)


def write_reports(report: Report, out: Path) -> dict[str, Path]:
    """Write report.json and report.md into ``out``."""
    out = ensure_writable_dir(Path(out))
    paths = {"json": out / "report.json", "markdown": out / "report.md"}
    write_text_atomic(paths["json"], json.dumps(report.to_dict(), indent=2) + "\n")
    write_text_atomic(paths["markdown"], markdown(report))
    return paths
