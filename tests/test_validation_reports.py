"""`edgedistill validate` on the demo bundles: every report file exists and parses, its numbers equal a
recomputation here, device outputs go through the same checks, and bad input is one line with exit 2."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error, run_cli

FAST = ("--no-memory", "--set", "validate.latency_samples=5")


def _args(demo: Path, out: Path, *bundles: Path) -> list:
    bundles = bundles or tuple(sorted((demo / "bundles").iterdir()))
    return ["validate", *bundles, "--teacher", demo / "teacher.pt", "--student", demo / "student.pt",
            "--out", out, *FAST]


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def validated(demo_out, tmp_path_factory):
    out = tmp_path_factory.mktemp("validated")
    summary = out / "summary.md"
    proc = run_cli(*_args(demo_out, out), "--top-k", "3", env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc


@pytest.mark.slow
def test_report_files_exist_and_parse(validated):
    import jsonschema

    from edgedistill.validation.results import json_schema

    out, proc = validated
    report = json.loads((out / "report.json").read_text())
    jsonschema.validate(report, json_schema())
    assert report["schema_version"] == 2 and report["status"] == "pass" and report["top_k"] == 3
    root = ET.parse(out / "junit.xml").getroot()
    cases = root.findall("./testsuite/testcase")
    artifacts = [r for r in report["rows"] if r["role"] == "artifact"]
    assert len(cases) == sum(len(r["checks"]) for r in artifacts) > 0
    assert {c.get("classname") for c in cases} == {f"edgedistill.{Path(r['path']).name}" for r in artifacts}
    assert not any(c.find("failure") is not None for c in cases)
    md = (out / "report.md").read_text()
    assert "| student .pte int8 |" in md and "top1_agreement_vs_teacher" in md and "**PASS**" in md
    assert (out / "summary.md").read_text().strip() == md.strip()  # appended to $GITHUB_STEP_SUMMARY
    for name in ("abs_dp_hist", "reliability", "per_class_agreement"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "PASS" in proc.stdout.splitlines()[-1]


@pytest.mark.slow
def test_report_numbers_equal_a_recomputation(validated, demo_out):
    from executorch.runtime import Runtime

    from edgedistill.data import load_dataset, split
    from edgedistill.modelref import load_model

    out, _ = validated
    report = json.loads((out / "report.json").read_text())
    test = split(load_dataset("digits"), 0.25, 0.1, seed=0).test
    x = torch.from_numpy(test.x)
    with torch.no_grad():
        teacher = load_model(str(demo_out / "teacher.pt"))(x).numpy()
        student = load_model(str(demo_out / "student.pt"))(x).numpy()
    rows = {r["name"]: r for r in report["rows"]}
    assert report["samples"] == len(test.y)
    for folder in sorted((demo_out / "bundles").iterdir()):
        method = Runtime.get().load_program(folder / "model.pte").load_method("forward")
        logits = method.execute([x])[0].numpy()
        row = rows[f"student .pte {folder.name.rsplit('-', 1)[-1]}"]
        p_t, p_s, p = _softmax(teacher.astype(np.float64)), _softmax(student.astype(np.float64)), _softmax(logits.astype(np.float64))
        for ref, key in ((p_t, "vs_teacher"), (p_s, "vs_student")):
            kl = (ref * (np.log(ref) - np.log(p))).sum(1)
            top3 = (np.argsort(-logits, 1)[:, :3] == ref.argmax(1)[:, None]).any(1)
            expect = {"top1_agreement": np.mean(ref.argmax(1) == p.argmax(1)), "topk_agreement": top3.mean(),
                      "mean_kl": kl.mean(), "max_kl": kl.max(), "max_abs_dp": np.abs(ref - p).max(),
                      "p99_abs_dp": np.percentile(np.abs(ref - p), 99)}
            for metric, value in expect.items():
                assert row[key][metric] == pytest.approx(value, abs=1e-6), (row["name"], key, metric)
        assert row["accuracy"] == pytest.approx(np.mean(p.argmax(1) == test.y))
        assert row["accuracy_drop"] == pytest.approx(np.mean(p_s.argmax(1) == test.y) - row["accuracy"])
        for check in row["checks"]:
            table, metric = check["name"].rsplit("_vs_", 1) if "_vs_" in check["name"] else (check["name"], None)
            value = row["accuracy_drop"] if table == "accuracy_drop" else row[f"vs_{metric}"][table] if metric else row[table]
            assert check["value"] == pytest.approx(value)
            assert check["status"] == ("pass" if (value >= check["bound"] if check["kind"] == "min"
                                                  else value <= check["bound"]) else "fail")


def _golden_outputs(bundle: Path) -> dict:
    from executorch.runtime import Runtime

    with np.load(bundle / "golden" / "golden.npz") as g:
        x = g["x"]
    method = Runtime.get().load_program(bundle / "model.pte").load_method("forward")
    return {"logits": method.execute([torch.from_numpy(x)])[0].numpy()}


@pytest.mark.slow
def test_device_outputs_are_checked_like_artifacts(demo_out, tmp_path):
    bundle = demo_out / "bundles" / "student-executorch-int8"
    manifest = json.loads((bundle / "manifest.json").read_text())
    outputs = _golden_outputs(bundle)
    np.savez(tmp_path / "outputs.npz", **outputs, device=np.array("pixel-test"), model_sha256=np.array(manifest["sha256"]))
    proc = run_cli("validate", bundle, "--device-outputs", tmp_path / "outputs.npz", "--out", tmp_path / "r", "--no-plots")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    row = report["rows"][-1]
    assert row["role"] == "device" and row["runtime"] == "pixel-test" and row["status"] == "pass"
    with np.load(bundle / "golden" / "golden.npz") as g:
        p_s, p = g["student_probs"].astype(np.float64), _softmax(outputs["logits"].astype(np.float64))
    assert row["vs_student"]["max_abs_dp"] == pytest.approx(np.abs(p_s - p).max(), abs=1e-6)

    # a device that returns garbage fails the gate (exit 1) and the report names the checks
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "bad.npz", logits=rng.normal(size=outputs["logits"].shape).astype(np.float32))
    proc = run_cli("validate", bundle, "--device-outputs", tmp_path / "bad.npz", "--out", tmp_path / "b", "--no-plots")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout and "top1_agreement_vs_teacher" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("case", ["wrong shape", "NaN", "other model"])
def test_bad_device_outputs_are_one_line_errors(demo_out, tmp_path, case):
    bundle = demo_out / "bundles" / "student-executorch-int8"
    logits = _golden_outputs(bundle)["logits"]
    arrays = {"wrong shape": {"logits": logits[:, :5]}, "NaN": {"logits": np.where(np.eye(*logits.shape) > 0, np.nan, logits)},
              "other model": {"logits": logits, "model_sha256": np.array("0" * 64)}}[case]
    np.savez(tmp_path / "o.npz", **arrays)
    proc = run_cli("validate", bundle, "--device-outputs", tmp_path / "o.npz", "--out", tmp_path / "r")
    assert_one_line_error(proc, {"wrong shape": "shape", "NaN": "NaN", "other model": "sha256"}[case])
    assert not (tmp_path / "r" / "report.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing model file", "missing golden", "tampered model", "teacher classes"])
def test_bad_input_is_one_line_exit_2(demo_out, tmp_path, case):
    from edgedistill.modelref import save_checkpoint
    from edgedistill.zoo import digits

    bundle = tmp_path / "student-executorch-int8"
    shutil.copytree(demo_out / "bundles" / "student-executorch-int8", bundle)
    teacher = demo_out / "teacher.pt"
    expected = {"missing model file": "missing its model file", "missing golden": "golden",
                "tampered model": "sha256", "teacher classes": "teacher has 12 classes"}[case]
    if case == "missing model file":
        (bundle / "model.pte").unlink()
    elif case == "missing golden":
        shutil.rmtree(bundle / "golden")
    elif case == "tampered model":
        data = bytearray((bundle / "model.pte").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (bundle / "model.pte").write_bytes(bytes(data))
    else:
        teacher = save_checkpoint(digits.teacher(num_classes=12), tmp_path / "t12.pt", "edgedistill.zoo.digits:teacher",
                                  {"num_classes": 12})
    proc = run_cli("validate", bundle, "--teacher", teacher, "--student", demo_out / "student.pt",
                   "--out", tmp_path / "r", *FAST)
    assert_one_line_error(proc, expected)
    assert not (tmp_path / "r" / "report.json").exists()
