"""A broken artifact fails the gate and the report says why; an artifact with a layer that int8 cannot
represent (a huge activation outlier) is localized to that layer and repaired by keeping layers in float."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import run_cli

TRUST = ("--trust-factory", "tests.outlier_model")  # the student's factory is this test suite's, not edgedistill's
from outlier_model import outlier_mlp

FAST = ("--no-memory", "--no-plots", "--set", "validate.latency_samples=5")


@pytest.fixture(scope="module")
def outlier_bundle(demo_out, tmp_path_factory):
    """An int8 bundle of a student whose layer '2' emits one channel 1000x larger than the rest.

    The float function is unchanged (layer '4' divides that channel back), but a per-tensor int8
    activation scale sized for the outlier rounds every other channel to zero."""
    from edgedistill.data import load_dataset, split
    from edgedistill.distillation.trainer import train
    from edgedistill.modelref import save_checkpoint

    out = tmp_path_factory.mktemp("outlier")
    torch.manual_seed(0)
    model = outlier_mlp()
    train(model, split(load_dataset("digits"), 0.25, 0.1, seed=0).train, epochs=8, lr=1e-2)
    with torch.no_grad():
        model[2].weight[0] *= 1000.0
        model[2].bias[0] = model[2].bias[0].abs() * 1000.0 + 1000.0  # always active, always huge
        model[4].weight[:, 0] /= 1000.0
    student = save_checkpoint(model, out / "student.pt", "tests.outlier_model:outlier_mlp")
    proc = run_cli("export", "--student", student, "--teacher", demo_out / "teacher.pt", "-q", "int8", "--out", out,
                   *TRUST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, student, out / "bundles" / "student-executorch-int8"


@pytest.mark.slow
def test_outlier_layer_is_named_and_repair_keeps_it_in_float(demo_out, outlier_bundle, tmp_path):
    out, student, bundle = outlier_bundle
    # a 3-layer MLP: repairing it needs 2 of its 3 quantizable layers in float, above the default 30 % cap
    proc = run_cli("validate", bundle, "--teacher", demo_out / "teacher.pt", "--student", student, "--repair",
                   "--set", "validate.repair_max_float_share=0.9",
                   "--out", tmp_path, *FAST, *TRUST)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the bundle that was given still fails
    report = json.loads((tmp_path / "report.json").read_text())
    row = next(r for r in report["rows"] if r["path"] == str(bundle))
    assert row["status"] == "fail" and row["localization"]["reproduced"]
    # layer '2' makes the outlier, layer '4' consumes it: quantizing either alone breaks the artifact
    assert row["localization"]["culprit"] in ("2", "4"), row["localization"]["summary"]
    assert f"quantizing {row['localization']['culprit']} costs the most agreement" in proc.stdout
    [repair] = report["repairs"]
    assert repair["passed"] and repair["kept_float"][0] in ("2", "4"), repair
    assert len(repair["steps"]) == len(repair["kept_float"]) and repair["steps"][-1]["failed_checks"] == []
    repaired = Path(repair["repaired_bundle"])
    manifest = json.loads((repaired / "manifest.json").read_text())
    assert set(manifest["float_modules"]) == set(repair["kept_float"])
    assert manifest["precision"]["float_share"] == repair["float_share"] < 1.0
    assert next(r for r in report["rows"] if r["path"] == str(repaired))["status"] == "pass"

    # the repaired bundle passes the gate on its own
    proc = run_cli("validate", repaired, "--teacher", demo_out / "teacher.pt", "--student", student,
                   "--out", tmp_path / "again", *FAST, *TRUST)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_weights_perturbed_after_export_fail_with_exit_1(demo_out, tmp_path):
    """Re-export a perturbed student into the int8 bundle (with a matching sha256): validation must fail,
    name the failing checks, and say that exporting the real student again would pass."""
    from edgedistill.bundle import read_bundle, read_golden
    from edgedistill.config import ArtifactSpec
    from edgedistill.data import load_dataset, split
    from edgedistill.exporter import calibration_set, export_bundle
    from edgedistill.modelref import load_model

    original = demo_out / "bundles" / "student-executorch-int8"
    manifest, _ = read_bundle(original)
    model = load_model(str(demo_out / "student.pt"))
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * p.std() * 0.8)
    splits = split(load_dataset("digits"), 0.25, 0.1, seed=0)
    info = {"labels": manifest.labels, "preprocessing": manifest.preprocessing, "temperature": manifest.temperature,
            "student": manifest.student}
    broken = export_bundle(model, ArtifactSpec(format="executorch", quantization="int8"), out_dir=tmp_path,
                           sample=splits.test.inputs,
                           calibration=calibration_set(splits.train, 256), golden=read_golden(original), info=info)
    proc = run_cli("validate", broken, "--teacher", demo_out / "teacher.pt", "--student", demo_out / "student.pt",
                   "--out", tmp_path / "r", *FAST)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    row = report["rows"][-1]
    failed = {c["name"] for c in row["checks"] if c["status"] == "fail"}
    assert {"top1_agreement_vs_student", "max_abs_dp_vs_student"} <= failed
    assert all(f"FAIL {row['name']}: {name}" in proc.stdout for name in failed)
    assert "not reproduced" in row["localization"]["summary"]
    assert report["passed"] is False and report["status"] == "fail"
    shutil.rmtree(broken)
