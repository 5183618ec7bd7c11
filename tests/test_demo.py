"""The demo end to end (short run): thresholds of the foundation, the table, the reports, the exit codes."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import assert_one_line_error, run_cli

pytestmark = pytest.mark.slow


def _rows(report):
    return {r["name"]: r for r in report["rows"]}


def test_demo_keeps_teacher_accuracy_with_a_quarter_of_the_parameters(demo_report):
    rows = _rows(demo_report)
    teacher, student = rows["teacher"], rows["student"]
    assert student["parameters"] <= 0.25 * teacher["parameters"]
    assert student["accuracy"] >= 0.95 * teacher["accuracy"]
    assert teacher["accuracy"] > 0.9


def test_exported_programs_agree_with_the_pytorch_student(demo_report):
    rows = _rows(demo_report)
    fp32, int8 = rows["student .pte fp32"], rows["student .pte int8"]
    assert fp32["vs_student"]["top1_agreement"] >= 0.995
    assert int8["vs_student"]["top1_agreement"] >= 0.98
    assert int8["size_bytes"] < fp32["size_bytes"]
    assert fp32["delegation"]["delegated_ops"] > 0, "nothing ran in XNNPACK"
    assert demo_report["passed"] is True


def test_demo_prints_the_table_and_writes_reports(demo_out, demo_report):
    stdout = (demo_out / "stdout.txt").read_text()
    for cell in ("teacher", "student .pte fp32", "student .pte int8", "top-1 agree", "KL(teacher‖model)",
                 "latency/sample", "PASS"):
        assert cell in stdout
    markdown = (demo_out / "report.md").read_text()
    assert "| student .pte int8 |" in markdown and "**PASS**" in markdown
    for row in demo_report["rows"]:
        assert row["latency_ms"] > 0
    for name in ("student-executorch-fp32", "student-executorch-int8"):
        manifest = json.loads((demo_out / "bundles" / name / "manifest.json").read_text())
        assert manifest["inputs"][0]["shape"] == ["batch", 64] and manifest["num_classes"] == 10
        assert (demo_out / "bundles" / name / "golden" / "golden.npz").is_file()


def test_validate_cli_exit_codes(demo_out, tmp_path):
    bundles = sorted((demo_out / "bundles").iterdir())
    common = ["--teacher", demo_out / "teacher.pt", "--student", demo_out / "student.pt", "--set",
              "validate.measure_memory=false", "--set", "validate.latency_samples=20"]
    ok = run_cli("validate", *bundles, *common, "--out", tmp_path / "ok")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads((tmp_path / "ok" / "report.json").read_text())["passed"] is True

    # int8 cannot be within 1e-6 of the fp32 student: the gate must fail with exit 1 and name the check
    strict = run_cli("validate", *bundles, *common, "--max-student-dp", "0.000001", "--out", tmp_path / "strict")
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "FAIL student .pte int8: max_abs_dp_vs_student" in strict.stdout
    assert json.loads((tmp_path / "strict" / "report.json").read_text())["passed"] is False


def test_tampered_model_file_is_rejected(demo_out, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(demo_out / "bundles" / "student-executorch-fp32", bundle)
    data = bytearray((bundle / "model.pte").read_bytes())
    data[-10] ^= 0xFF
    (bundle / "model.pte").write_bytes(bytes(data))
    proc = run_cli("validate", bundle, "--teacher", demo_out / "teacher.pt", "--student", demo_out / "student.pt",
                   "--out", tmp_path / "o")
    assert_one_line_error(proc, "sha256")
