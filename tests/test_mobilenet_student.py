"""A MobileNetV2-like student: every compute op delegated to XNNPACK, and validate batches by the bound
the lowered program really accepts (15 samples for this model, not the 1024 asked of torch.export)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import run_cli
from edgedistill.modelref import save_checkpoint
from edgedistill.zoo.mobilenet import student


def test_mobilenet_student_shapes_and_size():
    model = student(num_classes=7, width=0.25).eval()
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 7)
    assert 500_000 < sum(p.numel() for p in student().parameters()) < 1_000_000  # width 1.0: MobileNetV2-sized


@pytest.mark.slow
def test_validate_mobilenet_executorch_bundle_batches_by_the_program_bound(tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "images.npz", x=rng.normal(size=(120, 3, 32, 32)).astype(np.float32),
             y=rng.integers(0, 10, 120))
    # the student is its own teacher: the point here is that the bundle runs end to end, not distillation
    ckpt = save_checkpoint(student(width=0.25).eval(), tmp_path / "student.pt", "edgedistill.zoo.mobilenet:student",
                           {"width": 0.25})
    common = ["--teacher", ckpt, "--student", ckpt, "--data", tmp_path / "images.npz", "--out", tmp_path / "o"]
    proc = run_cli("export", *common, "--format", "executorch", "-q", "fp32")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bundle = tmp_path / "o" / "bundles" / "student-executorch-fp32"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["dynamic_batch"] and 1 < manifest["max_batch"] < 30  # the program's bound, not 1024
    assert manifest["delegation"]["portable_compute_ops"] == 0  # the mean over H,W is delegated too
    proc = run_cli("validate", bundle, *common, "--set", "validate.measure_memory=false",
                   "--set", "validate.latency_samples=5")
    assert proc.returncode == 0, proc.stdout + proc.stderr  # 30 held-out samples > the bound: batched by it
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    artifact = next(r for r in report["rows"] if r["role"] == "artifact")
    assert artifact["status"] == "pass" and artifact["vs_student"]["top1_agreement"] == 1.0


def test_int8_relu6_is_fused_into_its_convolution():
    """conv -> ReLU6 is one int8 pattern: no quantize/dequantize between them (XNNPACK folds the clamp into
    the convolution), and the activation's int8 grid covers [0, 6], not the convolution's wider raw range."""
    from edgedistill.formats.executorch_quant import prepare

    torch.manual_seed(0)
    model = student(num_classes=7, width=0.25).eval()
    calibration = {"x": np.random.default_rng(0).normal(size=(8, 3, 32, 32)).astype(np.float32)}
    converted, _ = prepare(model, (torch.randn(1, 3, 32, 32),), scheme="int8", backend="xnnpack",
                           calibration=calibration, dynamic_batch=False, max_batch=1)
    nodes = list(converted.graph.nodes)
    clamps = [n for n in nodes if n.target == torch.ops.aten.hardtanh.default]
    assert len(clamps) == sum(isinstance(m, torch.nn.ReLU6) for m in model.modules())
    for clamp in clamps:
        assert clamp.args[0].target == torch.ops.aten.conv2d.default  # straight from the conv, no q/dq between
        [quantize] = clamp.users
        scale, zero_point = quantize.args[1], quantize.args[2]
        assert "quantize_per_tensor" in str(quantize.target)
        assert scale * (127 - zero_point) <= 6.0 + 1e-3  # the grid ends at ReLU6's 6, no codes wasted above it
