"""Core ML artifacts on Linux are reported as not run (skipped checks), never as a pass."""

from __future__ import annotations

import json
import shutil
import sys
import xml.etree.ElementTree as ET

import pytest



@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML runs on macOS: the bundle would really run")
def test_coreml_bundle_is_not_run_on_linux(demo_out, tmp_path, monkeypatch):
    import edgedistill

    coreml = tmp_path / "student-coreml-fp16"
    shutil.copytree(demo_out / "bundles" / "student-executorch-fp32", coreml)
    manifest = json.loads((coreml / "manifest.json").read_text())
    manifest.update(format="coreml", backend="mlprogram", quantization="fp16")
    (coreml / "manifest.json").write_text(json.dumps(manifest))
    overrides = {"teacher.model": str(demo_out / "teacher.pt"), "student.model": str(demo_out / "student.pt"),
                 "out": str(tmp_path / "r"), "validate.measure_memory": False, "validate.latency_samples": 5,
                 "validate.plots": False}

    report = edgedistill.validate(None, [demo_out / "bundles" / "student-executorch-int8", coreml], overrides)
    row = report.rows[-1]
    assert row.status == "not run" and row.checks and row.vs_teacher is None
    assert all(c.status == "skipped" and c.reason.startswith("not run: Core ML runs only on macOS") for c in row.checks)
    assert report.passed and report.status == "pass"  # the int8 artifact ran and passed; nothing failed
    cases = ET.parse(tmp_path / "r" / "junit.xml").getroot().findall("./testsuite/testcase")
    coreml_cases = [c for c in cases if c.get("classname") == "edgedistill.student-coreml-fp16"]
    assert len(coreml_cases) == len(row.checks)
    assert all(c.find("skipped") is not None and c.find("system-out") is None for c in coreml_cases)
    assert "PASS (1 of 2 not run here: Core ML runs only on macOS" in (tmp_path / "r" / "report.md").read_text()

    alone = edgedistill.validate(None, [coreml], overrides)
    assert alone.status == "not run" and not alone.passed, "a run that checked nothing must not pass, in Python too"
    assert "NOT RUN" in (tmp_path / "r" / "report.md").read_text()
