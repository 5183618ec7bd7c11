"""Core ML: every scheme converts to a valid .mlpackage with the data's input names and a ``logits`` output,
and agrees with the fp32 student within the scheme's tolerance when run (off macOS by the Core ML
reference evaluator, at export and in validation, labelled as such).
Also: the ExecuTorch Core ML delegate, and a model a format cannot lower (one line naming op and format)."""

from __future__ import annotations

import platform
import textwrap
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cli
from edgedistill.bundle import read_bundle
from edgedistill.config import ArtifactSpec
from edgedistill.errors import UserError
from edgedistill.exporter import export_student
from edgedistill.fileio import sha256_file
from edgedistill.formats import coreml, executorch
from edgedistill.config import ValidateConfig
from edgedistill.coreml_reference import LABEL
from edgedistill.inference import predict_logits
from edgedistill.formats.base import HostRunUnavailable, run_batched
from edgedistill.validation.metrics import compare
from edgedistill.validation.harness import open_bundles, validate_bundles
from format_models import export_schemes, trained_digits

pytestmark = pytest.mark.slow
ON_MAC = platform.system() == "Darwin"
# Core ML int8's first export in a process costs ~100 s of CPU whatever the model (CoreMLQuantizer traces
# ~400 pattern graphs); later ones reuse them (test_int8_traces_coreml_pattern_graphs_once_per_process)
SCHEMES = {"digits": coreml.SCHEMES, "encoder": coreml.SCHEMES}


@pytest.fixture(scope="module", params=["digits", "encoder"])
def converted(request, tmp_path_factory) -> tuple:
    out = tmp_path_factory.mktemp(f"coreml-{request.param}")
    return request.param, *export_schemes(request.param, "coreml", SCHEMES[request.param], out)


@pytest.mark.parametrize("scheme", coreml.SCHEMES)
def test_scheme_converts_to_a_valid_mlpackage(converted, scheme):
    import coremltools as ct

    name, _, splits, bundles = converted
    if scheme not in bundles:
        pytest.skip(f"{scheme} is covered on the digits model (cost)")
    manifest, package = read_bundle(bundles[scheme])  # also re-hashes the package folder
    assert package.is_dir() and package.suffix == ".mlpackage"
    spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    assert [f.name for f in spec.description.input] == list(splits.test.inputs)
    assert [f.name for f in spec.description.output] == ["logits"]
    for feature, x in zip(spec.description.input, splits.test.inputs.values()):
        assert list(feature.type.multiArrayType.shape)[1:] == list(x.shape[1:])
        # the batch axis is a range, so validation and apps can run batches
        assert feature.type.multiArrayType.WhichOneof("ShapeFlexibility") == "shapeRange"
    assert spec.WhichOneof("Type") == "mlProgram"
    if name == "encoder":  # Core ML has no int64: token ids are int32, and the manifest must say so
        assert [t.dtype for t in manifest.inputs] == ["int32", "int32"]
    assert manifest.host_run["status"] == "ran"
    if not ON_MAC:
        assert "Core ML reference evaluator (not Apple's runtime)" in manifest.host_run["reason"]


def test_compression_shrinks_the_package_and_int8_quantizes_activations(converted):
    import coremltools as ct

    _, _, _, bundles = converted
    size = {s: read_bundle(b)[0].size_bytes for s, b in bundles.items()}
    weights = {s: (read_bundle(b)[1] / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").stat().st_size
               for s, b in bundles.items()}
    # the weights halve; the program text (larger with decomposed shape arithmetic) does not
    assert weights["fp16"] < 0.55 * weights["fp32"] and size["fp16"] < size["fp32"]
    assert size["int8-weight"] < size["fp16"] and size["palettize4"] < size["palettize6"] < size["palettize8"]
    if "int8" not in bundles:
        return
    program = ct.models.MLModel(str(read_bundle(bundles["int8"])[1]), skip_model_load=True).get_spec().mlProgram
    ops = {op.type for fn in program.functions.values() for block in fn.block_specializations.values()
           for op in block.operations}
    assert {"quantize", "dequantize"} <= ops, "int8 must quantize activations, not only weights"


def test_directory_sha256_changes_when_a_file_in_the_package_changes(converted, tmp_path):
    import shutil

    _, _, _, bundles = converted
    manifest, package = read_bundle(bundles["fp16"])
    copy = tmp_path / "copy.mlpackage"
    shutil.copytree(package, copy)
    assert sha256_file(copy) == manifest.sha256  # independent of the folder's location and listing order
    weights = next(p for p in sorted(copy.rglob("*")) if p.is_file() and "weight" in p.name)
    weights.write_bytes(weights.read_bytes() + b"\0")
    assert sha256_file(copy) != manifest.sha256


@pytest.mark.parametrize("scheme", coreml.SCHEMES)
def test_prediction_agrees_with_fp32_student(converted, scheme):
    """Every scheme, run where this machine runs Core ML (the reference evaluator off macOS), within
    the scheme's default tolerance against the fp32 student."""
    name, model, splits, bundles = converted
    if scheme not in bundles:
        pytest.skip(f"{scheme} is covered on the digits model (cost)")
    manifest, package = read_bundle(bundles[scheme])
    tol = ValidateConfig().tolerances[scheme]
    runner = coreml.load(package, manifest.max_batch)
    logits = run_batched(runner, splits.test.inputs)
    measured = compare(predict_logits(model, splits.test.inputs).numpy(), logits)
    assert measured["top1_agreement"] >= tol.min_student_top1, measured
    assert measured["max_abs_dp"] <= tol.max_student_abs_dp, measured
    if scheme.startswith("palettize"):  # export drew a calibration set, so the tables are data-aware
        assert manifest.precision["weight_clustering"].startswith("data-aware"), manifest.precision


def test_int8_traces_coreml_pattern_graphs_once_per_process(converted, monkeypatch):
    """CoreMLQuantizer re-traced its ~400 pattern graphs on every annotate (~100 s CPU per Core ML int8 probe,
    so a sensitivity sweep ran for tens of minutes): after this module's int8 export, quantizing again
    traces nothing, and two quantizations from the memo give the same program (each gets its own copy)."""
    import torch
    import executorch.backends.apple.coreml.quantizer._coreml_quantizer_utils as patterns

    from edgedistill.exporter import calibration_set
    from edgedistill.formats.base import calibrated, dynamic_shapes
    from edgedistill.formats.shared_coreml import int8_quantizer

    name, model, splits, bundles = converted
    traced = []
    original = patterns._get_aten_graph_module_for_pattern
    monkeypatch.setattr(patterns, "_get_aten_graph_module_for_pattern",
                        lambda *args, **kwargs: traced.append(args) or original(*args, **kwargs))
    example = tuple(torch.as_tensor(v[:2]) for v in splits.test.inputs.values())
    calibration = calibration_set(splits.train, 64)
    xs = tuple(torch.as_tensor(v[:256]) for v in splits.test.inputs.values())
    with torch.no_grad():
        outputs = [calibrated(model, example, int8_quantizer(), calibration, dynamic_shapes(example, True, 256))(*xs)
                   for _ in range(2)]
        reference = model(*xs).argmax(1)
    assert traced == [], f"{name}: {len(traced)} pattern graphs traced again"
    assert torch.equal(outputs[0], outputs[1])
    assert (outputs[0].argmax(1) == reference).float().mean() >= 0.95  # a real int8 program, not a broken match


def test_validation_checks_coreml_on_linux_with_the_evaluator(converted, tmp_path):
    name, model, splits, bundles = converted
    if ON_MAC or name != "digits":
        pytest.skip("Linux-only behaviour, checked once")
    pte = export_student(model, [ArtifactSpec(format="executorch")], out_dir=tmp_path, train=splits.train,
                         test=splits.test, calibration_samples=64)[0]
    report = validate_bundles(open_bundles([bundles["fp16"], bundles["int8"], pte]), teacher=model, student=model,
                              data=splits.test, tolerances=ValidateConfig().tolerances, latency_samples=5,
                              measure_memory=False)
    status = {(r.runtime, r.quantization): r.status for r in report.rows[2:]}
    assert status == {("mlprogram", "fp16"): "pass", ("mlprogram", "int8"): "pass", ("xnnpack", "fp32"): "pass"}
    assert [r.evaluator for r in report.rows[2:]] == [LABEL, LABEL, None]
    assert all(r.vs_student is not None and r.not_run is None for r in report.rows[2:])
    assert report.status == "pass"


def test_executorch_coreml_delegate_builds_and_skips_its_host_run(tmp_path):
    model, splits = trained_digits()
    spec = ArtifactSpec(format="executorch", quantization="fp16", options={"backend": "coreml"})
    bundle = export_student(model, [spec], out_dir=tmp_path, train=splits.train, test=splits.test,
                            calibration_samples=64)[0]
    manifest, pte = read_bundle(bundle)
    assert bundle.name == "student-executorch-coreml-fp16" and manifest.backend == "coreml"
    assert manifest.delegation["delegated_ops"] > 0 and manifest.delegation["portable_compute_ops"] == 0
    if executorch.host_run_problem({"backend": "coreml"}):
        assert manifest.host_run["status"] == "skipped"
        with pytest.raises(HostRunUnavailable, match="Core ML delegate runs only on macOS/iOS"):
            executorch.load(pte)


UNLOWERABLE = '''
import torch
from torch import nn


class FmodStudent(nn.Module):
    """A digits student with torch.fmod, which Core ML cannot convert (ExecuTorch runs it portably)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))

    def forward(self, x):
        return self.body(torch.fmod(x, 0.75))


def student():
    return FmodStudent()
'''


@pytest.fixture(scope="module")
def fmod_checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    from edgedistill.modelref import save_checkpoint

    folder = tmp_path_factory.mktemp("unlowerable")
    (folder / "unlowerable_models.py").write_text(textwrap.dedent(UNLOWERABLE))
    import sys

    sys.path.insert(0, str(folder))
    from unlowerable_models import student

    return folder, save_checkpoint(student(), folder / "student.pt", "unlowerable_models:student")


def test_unlowerable_operator_is_one_line_error_via_cli(fmod_checkpoint, tmp_path):
    folder, ckpt = fmod_checkpoint
    proc = run_cli("export", "--student", ckpt, "--data", "digits", "--format", "coreml", "-q", "fp16",
                   "--trust-factory", "unlowerable_models", "--out", tmp_path, env={"PYTHONPATH": f"{Path(__file__).resolve().parents[1]}:{folder}"})
    assert_one_line_error(proc, "format coreml cannot lower operator fmod")
    bundles = tmp_path / "bundles"
    assert not bundles.exists() or not any(bundles.iterdir()), "a failed export left files behind"


def test_error_suggests_the_formats_that_accepted_the_model(fmod_checkpoint, tmp_path, caplog):
    from edgedistill.data import load_dataset, split
    from edgedistill.modelref import load_model

    _, ckpt = fmod_checkpoint
    splits = split(load_dataset("digits"), 0.25, 0.1, seed=0)
    artifacts = [ArtifactSpec(format="coreml", quantization="fp32"), ArtifactSpec(format="executorch")]
    with pytest.raises(UserError) as err:
        export_student(load_model(str(ckpt), trust=["unlowerable_models"]), artifacts, out_dir=tmp_path, train=splits.train, test=splits.test,
                       calibration_samples=64)
    message = str(err.value)
    assert "cannot lower operator fmod" in message and "formats that accepted the model (bundles written): executorch" in message
    assert "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student-executorch-fp32"]
    # fmod runs in ExecuTorch's portable kernels, not XNNPACK: counted in the manifest and warned about
    manifest, _ = read_bundle(tmp_path / "student-executorch-fp32")
    assert manifest.delegation["portable_compute_ops"] == 1
    assert any("fmod" in r.getMessage() and "portable" in r.getMessage() for r in caplog.records)
