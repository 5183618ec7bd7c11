"""The gate lives in the report: Python callers and the CLI agree that checking nothing is not a pass,
and the verdict line says how many artifacts were not run here, and why."""

from __future__ import annotations

from edgedistill.validation.checks import Check
from edgedistill.validation.report import markdown, text_table, verdict
from edgedistill.validation.results import Report, Row


def row(name: str, role: str = "artifact", not_run: str | None = None, failed: bool = False) -> Row:
    status = "skipped" if not_run else "fail" if failed else "pass"
    check = Check("top1_agreement_vs_teacher", "min_teacher_top1", None if not_run else 0.5, 0.9, "min", status,
                  f"not run: {not_run}" if not_run else None)
    return Row(name=name, role=role, runtime="rt", format="fmt", quantization="fp32", parameters=1, checks=[check],
               not_run=not_run)


def report(*artifacts: Row) -> Report:
    return Report(rows=[row("teacher", "teacher"), row("student", "student"), *artifacts], samples=8, data="d")


WHY = "Core ML runs only on macOS (this is Linux)"


def test_every_artifact_skipped_is_not_a_pass():
    r = report(row("a", not_run=WHY), row("b", not_run=WHY))
    assert r.status == "not run" and not r.passed
    assert r.to_dict()["passed"] is False
    assert verdict(r).startswith("NOT RUN: ")


def test_a_partial_pass_says_what_was_not_run_and_why():
    r = report(row("pte"), row("mlpackage fp16", not_run=WHY), row("mlpackage int8", not_run="no runtime for int4"))
    assert r.passed and r.status == "pass"
    line = verdict(r)
    assert line.startswith(f"PASS (2 of 3 not run here: {WHY}; no runtime for int4): ")
    assert text_table(r).splitlines()[-1] == line
    assert f"**PASS (2 of 3 not run here: {WHY}; no runtime for int4)**" in markdown(r)


def test_a_failure_with_skips_still_fails_and_counts_them():
    r = report(row("pte", failed=True), row("mlpackage", not_run=WHY))
    assert not r.passed and r.status == "fail"
    assert verdict(r).startswith(f"FAIL (1 of 2 not run here: {WHY}): ")


def test_all_run_and_pass():
    r = report(row("pte"))
    assert r.passed and verdict(r) == "PASS: every artifact agrees with the teacher within tolerance"
