"""Render a validation report: terminal table, Markdown, JSON, JUnit XML and plots, written atomically.

``report.md`` is also appended to ``$GITHUB_STEP_SUMMARY`` when that variable is set (GitHub Actions
shows it on the run's page).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from edgedistill.fileio import ensure_writable_dir, write_text_atomic
from edgedistill.validation.junit import junit_xml
from edgedistill.validation.results import Report, Row

COLUMNS = ("model", "params", "size", "test acc", "top-1 agree", "top-k agree", "KL(teacher‖model)", "max |Δp|",
           "ECE", "latency/sample", "peak mem", "status")
STUDENT_COLUMNS = ("artifact", "top-1 agree", "top-k agree", "mean KL", "max KL", "max |Δp|", "p99 |Δp|")
log = logging.getLogger("edgedistill")


def _size(n: int | None) -> str:
    if n is None:
        return "—"
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.2%}"


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.4f}"


def table_rows(report: Report) -> list[list[str]]:
    """One list of cells per model, in COLUMNS order; agreement, KL and |Δp| are against the teacher."""
    rows = []
    for r in report.rows:
        t = r.vs_teacher or {}
        rows.append([
            r.name, f"{r.parameters:,}" if r.parameters else "—", _size(r.size_bytes), _pct(r.accuracy), _pct(t.get("top1_agreement")),
            _pct(t.get("topk_agreement")), _num(t.get("mean_kl")), _num(t.get("max_abs_dp")), _num(r.ece),
            "—" if r.latency_ms is None else f"{r.latency_ms * 1000:.0f} µs",
            "—" if r.peak_memory_mb is None else f"{r.peak_memory_mb:.1f} MiB", r.status,
        ])
    return rows


def _md_table(header: tuple[str, ...] | list[str], rows: list[list[str]]) -> list[str]:
    def line(cells) -> str:  # a bare | inside a cell (as in |Δp|) would split it
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header)] + [line(cells) for cells in rows]


def _flips(report: Report, r: Row) -> str:
    return ", ".join(f"{report.class_name(f['reference'])}→{report.class_name(f['candidate'])} ×{f['count']}"
                     for f in r.flips_vs_teacher) or "none"


def _threads_note(report: Report) -> str:
    """How many threads the artifact runtimes ran on (read back from them), and which set their own."""
    ran = [r for r in report.rows if r.role == "artifact" and r.not_run is None and r.latency_ms is not None]
    counts = sorted({r.threads for r in ran if r.threads})
    own = [r.name for r in ran if not r.threads]
    note = f" Artifact runtimes ran on {'/'.join(map(str, counts))} thread(s)." if counts else ""
    return note + (f" Threads not settable (the runtime picks them): {', '.join(own)}." if own else "")


def markdown(report: Report) -> str:
    """The comparison tables, the checks, flips, localization and repairs, as GitHub-flavoured Markdown."""
    lines = ["## edgedistill validate", ""] + _md_table(COLUMNS, table_rows(report))
    lines += ["", f"{report.samples} held-out samples of {report.data}; agreement (top-k: k = {report.top_k}), "
              "KL and |Δp| against the teacher." + _threads_note(report), "", "Against the fp32 student:", ""]
    student_rows = [[r.name] + [_pct(s[k]) if k.startswith("top") else _num(s[k]) for k in
                                ("top1_agreement", "topk_agreement", "mean_kl", "max_kl", "max_abs_dp", "p99_abs_dp")]
                    for r in report.rows if r.role != "student" and (s := r.vs_student)]
    lines += _md_table(STUDENT_COLUMNS, student_rows)
    lines += ["", "| artifact | check | value | bound | result |", "|---|---|---|---|---|"]
    for r in report.rows:
        for c in r.checks:
            op = "≥" if c.kind == "min" else "≤"
            result = {"pass": "pass", "fail": "**FAIL**"}.get(c.status, f"skipped: {c.reason}")
            lines.append(f"| {r.name} | {c.name} | {_num(c.value)} | {op} {c.bound:g} | {result} |")
    flipped = [r for r in report.rows if r.role != "teacher" and r.flips_vs_teacher]
    if flipped:
        lines += ["", "Most frequent disagreements with the teacher (teacher's class → model's class):", ""]
        lines += [f"- {r.name}: {_flips(report, r)}" for r in flipped]
    evaluated = [r for r in report.rows if r.evaluator]
    if evaluated:
        lines += ["", "Not run in their own runtime here:", ""]
        lines += [f"- {r.name}: {evaluator_note(r)}" for r in evaluated]
    for r in report.rows:
        if r.localization:
            plot = f" ([per-module plot]({r.localization['plot']}))" if r.localization.get("plot") else ""
            lines += ["", f"Localization for {r.name}: {r.localization['summary']}{plot}"]
            lines += _localization_table(r.localization)
    for repair in report.repairs:
        lines += ["", f"Repair of {repair['bundle']}: {repair['summary']}"]
    if report.plots:
        lines += ["", "Plots: " + ", ".join(f"[{name}]({Path(path).name})" for name, path in report.plots.items())]
    head, rest = _verdict_parts(report)
    lines += ["", f"**{head}**: {rest}"]
    return "\n".join(lines) + "\n"


LOCALIZATION_ROWS = 10


def _localization_table(localization: dict) -> list[str]:
    """The per-module table, most sensitive first (the first ``LOCALIZATION_ROWS``; report.json has all)."""
    by_name = {m["module"]: m for m in localization.get("modules", [])}
    ranked = [by_name[n] for n in localization.get("ranking", []) if n in by_name]
    if not ranked:
        return []
    rows = [[m["module"], _pct(m["alone_top1"]), f"{m['alone_kl']:.4g}",
             "—" if m.get("intermediate_error") is None else f"{m['intermediate_error']:.4g}"]
            for m in ranked[:LOCALIZATION_ROWS]]
    more = len(ranked) - LOCALIZATION_ROWS
    note = [f"({more} more modules in report.json)"] if more > 0 else []
    return ["", *_md_table(("module (most sensitive first)", "top-1 vs student, only it int8", "KL, only it int8",
                             "intermediate error in the runtime"), rows), *(["", *note] if note else [])]


def evaluator_note(row: Row) -> str:
    """``run in the Core ML reference evaluator (not Apple's runtime); fp16 program: …`` for a row."""
    return f"run in the {row.evaluator}" + (f"; {row.numerics['summary']}" if row.numerics else "")


def _verdict_parts(report: Report) -> tuple[str, str]:
    """(headline, explanation); the headline says how many artifacts were not run here, and why."""
    if report.status == "not run":
        return "NOT RUN", "no artifact could run on this machine (nothing was checked)"
    head = "FAIL" if report.status == "fail" else "PASS"
    skipped = report.not_run
    if skipped:
        total = len([r for r in report.rows if r.role in ("artifact", "device")])
        reasons = "; ".join(dict.fromkeys(r.not_run or "" for r in skipped))  # distinct, in order
        head += f" ({len(skipped)} of {total} not run here: {reasons})"
    if report.status == "fail":
        return head, "see the failed checks above"
    return head, "every artifact that ran agrees with the teacher within tolerance" if skipped else \
        "every artifact agrees with the teacher within tolerance"


def verdict(report: Report) -> str:
    """The last line of every report, e.g. ``PASS (2 of 3 not run here: <reason>): ...``."""
    head, rest = _verdict_parts(report)
    return f"{head}: {rest}"


def text_table(report: Report) -> str:
    """The table aligned for a terminal, then one line per failed check, then the verdict."""
    rows = [list(COLUMNS)] + table_rows(report)
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    out = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
           for row in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    for r in report.rows:
        if r.not_run:
            out.append(f"NOT RUN {r.name}: {r.not_run}")
        if r.evaluator:
            out.append(f"NOTE {r.name}: {evaluator_note(r)}")
        out += [f"FAIL {r.name}: {c.describe()}" for c in r.checks if c.failed]
        if r.localization:
            out.append(f"  where: {r.localization['summary']}")
    out += [f"REPAIR {repair['bundle']}: {repair['summary']}" for repair in report.repairs]
    out.append(verdict(report))
    return "\n".join(out)


def write_reports(report: Report, out: Path, plots: bool = True) -> dict[str, Path]:
    """Write report.json, report.md, junit.xml (and the plots) into ``out``."""
    out = ensure_writable_dir(Path(out))
    if plots:
        from edgedistill.validation.localization_plot import write_localization_plots
        from edgedistill.validation.plots import write_plots

        written = {**write_plots(report, out), **write_localization_plots(report, out)}
        report.plots = {name: str(path) for name, path in written.items()}
    paths = {"json": out / "report.json", "markdown": out / "report.md", "junit": out / "junit.xml"}
    write_text_atomic(paths["junit"], junit_xml(report))
    write_text_atomic(paths["json"], json.dumps(report.to_dict(), indent=2) + "\n")
    text = markdown(report)
    write_text_atomic(paths["markdown"], text)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(text + "\n")
        except OSError as exc:  # the report itself is written; a bad summary path must not lose it
            log.warning("could not append to GITHUB_STEP_SUMMARY %s: %s", summary, exc.strerror)
    return paths
