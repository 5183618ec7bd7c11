"""ONNX and LiteRT: every scheme exports, runs in its real runtime (ONNX Runtime, the LiteRT
Interpreter) on held-out data, and agrees with the fp32 PyTorch student — for the digits MLP and
for a transformer encoder with int64 token ids and an attention mask."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from conftest import run_cli
from edgedistill.bundle import read_bundle, read_golden
from edgedistill.config import ArtifactSpec
from edgedistill.data import Splits, load_dataset, split
from edgedistill.distillation.trainer import train
from edgedistill.inference import predict_logits
from edgedistill.errors import UserError
from edgedistill.exporter import calibration_set, export_student
from edgedistill.fileio import sha256_file
from edgedistill.formats import get
from edgedistill.formats.base import ExportInfo, run_batched
from edgedistill.modelref import save_checkpoint
from edgedistill.validation.metrics import compare, softmax
from edgedistill.zoo import digits, text

pytestmark = pytest.mark.slow
CALIBRATION = 128
# (format, scheme, int8 I/O) -> minimum top-1 agreement with the fp32 student
SCHEMES = {("onnx", "fp32", False): 0.995, ("onnx", "int8", False): 0.98, ("onnx", "int8-dynamic", False): 0.98,
           ("litert", "fp32", False): 0.995, ("litert", "fp16", False): 0.995, ("litert", "int8", False): 0.98,
           ("litert", "int8", True): 0.98, ("litert", "int8-dynamic", False): 0.98}


@dataclass
class Case:
    model: nn.Module
    splits: Splits
    teacher: nn.Module | None = None


@dataclass
class Artifact:
    info: ExportInfo
    runner: object
    logits: np.ndarray


@pytest.fixture(scope="module")
def models():
    """The digits student (distilled from a briefly trained teacher) and a TinyEncoder, trained in seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared 2-core machine, intra-op threads only fight each other
    torch.manual_seed(0)
    d = split(load_dataset("digits"), 0.25, 0.1, 0)
    teacher = digits.teacher()
    train(teacher, d.train, val=d.val, epochs=10, lr=3e-3, desc="teacher")
    student = digits.student()
    train(student, d.train, teacher=teacher, val=d.val, epochs=15)
    t = split(text.synthetic_dataset(), 0.25, 0.1, 0)
    encoder = text.encoder()
    train(encoder, t.train, val=t.val, epochs=6, lr=3e-3)
    yield {"digits": Case(student.eval(), d, teacher.eval()), "text": Case(encoder.eval(), t)}
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def artifact(models, tmp_path_factory):
    """Export (once) and run a (model, format, scheme, int8 I/O) over the whole held-out split."""
    made: dict[tuple, Artifact] = {}

    def make(model_name: str, fmt: str, scheme: str, int8_io: bool = False) -> Artifact:
        key = (model_name, fmt, scheme, int8_io)
        if key not in made:
            case, module = models[model_name], get(fmt)
            sample = case.splits.test.inputs
            path = tmp_path_factory.mktemp("-".join(map(str, key))) / f"model{module.SUFFIX}"
            info = module.export(case.model, tuple(torch.as_tensor(v[:2]) for v in sample.values()), scheme=scheme,
                                 path=path, calibration=calibration_set(case.splits.train, CALIBRATION),
                                 options={"input_names": list(sample), "int8_io": int8_io})
            runner = module.load(path, module.MAX_BATCH if info.dynamic_batch else 1)
            made[key] = Artifact(info, runner, run_batched(runner, sample))
        return made[key]

    return make


def _reference(case: Case) -> np.ndarray:
    return predict_logits(case.model, case.splits.test.inputs).numpy()


# model-major order, so each model's float conversion is reused by its schemes
@pytest.mark.parametrize("model_name,fmt,scheme,int8_io", [(m, *k) for m in ("digits", "text") for k in SCHEMES],
                         ids=lambda v: str(v))
def test_every_scheme_runs_and_agrees_with_the_fp32_student(models, artifact, model_name, fmt, scheme, int8_io):
    case = models[model_name]
    out = artifact(model_name, fmt, scheme, int8_io)
    assert out.info.path.stat().st_size > 0
    agreement = compare(_reference(case), out.logits)["top1_agreement"]
    assert agreement >= SCHEMES[fmt, scheme, int8_io], (model_name, fmt, scheme, agreement)
    if scheme in ("fp32", "fp16"):  # float artifacts are numerically the student, not just the same argmax
        tolerance = 1e-4 if scheme == "fp32" else 2e-2
        assert compare(_reference(case), out.logits)["max_abs_dp"] <= tolerance


@pytest.mark.parametrize("model_name", ["digits", "text"])
def test_onnx_inputs_carry_the_dataset_names_dtypes_and_one_dynamic_batch(models, artifact, model_name):
    import onnx

    sample = models[model_name].splits.test.inputs
    out = artifact(model_name, "onnx", "fp32")
    graph = onnx.load(str(out.info.path)).graph
    assert [i.name for i in graph.input] == list(sample)
    element_types = {i.name: onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in graph.input}
    assert element_types == {k: v.dtype for k, v in sample.items()}  # token ids stay int64
    assert {i.type.tensor_type.shape.dim[0].dim_param for i in graph.input} == {"batch"}
    assert out.info.dynamic_batch


@pytest.mark.parametrize("model_name", ["digits", "text"])
@pytest.mark.parametrize("scheme", ["fp32", "int8"])
def test_onnx_batches_of_any_size_give_the_batch_one_results(models, artifact, model_name, scheme):
    runner = artifact(model_name, "onnx", scheme).runner
    arrays = [v[:64] for v in models[model_name].splits.test.inputs.values()]
    one_by_one = np.concatenate([runner(*(a[i : i + 1] for a in arrays)) for i in range(64)])
    for size in (5, 64):
        batched = np.concatenate([runner(*(a[i : i + size] for a in arrays)) for i in range(0, 64, size)])
        np.testing.assert_allclose(batched, one_by_one, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("model_name", ["digits", "text"])
def test_litert_int8_io_has_int8_tensors_and_the_runner_dequantizes_them(models, artifact, model_name):
    int8_io = artifact(model_name, "litert", "int8", True)
    float_io = artifact(model_name, "litert", "int8", False)
    (_, in_detail), *_ = int8_io.runner.inputs
    out_detail = int8_io.runner.output
    assert out_detail["dtype"] == np.int8 and out_detail["quantization"][0] > 0
    if model_name == "digits":
        assert in_detail["dtype"] == np.int8 and in_detail["quantization"][0] > 0
    else:  # token ids are indices, never quantized; the converter narrows them to int32
        assert [d["dtype"] for _, d in int8_io.runner.inputs] == [np.int32, np.int32]
        assert in_detail["quantization"][0] == 0
    assert float_io.runner.output["dtype"] == np.float32
    # same int8 arithmetic inside: with (de)quantization done right, the two agree to about one output step
    step = out_detail["quantization"][0]
    assert np.abs(int8_io.logits - float_io.logits).max() <= 2 * step + 1e-6
    assert int8_io.info.details["int8_io"] and not float_io.info.details["int8_io"]
    # what the bundle's manifest will say the tensors are
    assert int8_io.info.details["output_dtype"] == "int8" and float_io.info.details["output_dtype"] == "float32"


def test_litert_reports_its_fixed_batch_honestly(models, artifact):
    out = artifact("digits", "litert", "fp32")
    assert not out.info.dynamic_batch
    assert list(out.runner.inputs[0][1]["shape"]) == [1, 64]
    # the runner still takes several samples, one invoke each, with the same answers
    x = models["digits"].splits.test.x[:5]
    np.testing.assert_array_equal(out.runner(x), np.concatenate([out.runner(x[i : i + 1]) for i in range(5)]))


class _Erfinv(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.erfinv(x.clamp(-0.5, 0.5)))


@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_an_operator_the_format_cannot_lower_is_a_one_line_error(tmp_path, fmt):
    module = get(fmt)
    path = tmp_path / f"model{module.SUFFIX}"
    with pytest.raises(UserError) as caught:
        module.export(_Erfinv().eval(), (torch.rand(2, 4),), scheme="fp32", path=path, options={"input_names": ["x"]})
    message = str(caught.value)
    assert "erf" in message and fmt in message and "\n" not in message, message
    assert not path.exists()


def test_bundles_have_a_manifest_that_matches_the_file_and_golden_data(models, tmp_path):
    case = models["text"]
    specs = [ArtifactSpec(format=f, quantization=s) for f in ("onnx", "litert") for s in ("fp32", "int8")]
    bundles = export_student(case.model, specs, out_dir=tmp_path, train=case.splits.train, test=case.splits.test,
                             calibration_samples=CALIBRATION, golden_count=32)
    assert sorted(b.name for b in bundles) == [f"student-{f}-{s}" for f in ("litert", "onnx") for s in ("fp32", "int8")]
    for folder in bundles:
        manifest, model_path = read_bundle(folder)
        assert manifest.sha256 == sha256_file(model_path) and manifest.size_bytes == model_path.stat().st_size
        assert [i.name for i in manifest.inputs] == ["input_ids", "attention_mask"]
        narrow = manifest.format == "litert"
        assert {i.dtype for i in manifest.inputs} == {"int32" if narrow else "int64"}
        assert (manifest.dynamic_batch, manifest.max_batch) == ((False, 1) if narrow else (True, 1024))
        golden = read_golden(folder)
        runner = get(manifest.format).load(model_path, manifest.max_batch)
        probs = softmax(run_batched(runner, {i.name: golden[i.name] for i in manifest.inputs}))
        worst = np.abs(probs - golden["student_probs"]).max()
        assert worst <= (1e-4 if manifest.quantization == "fp32" else 0.25), (folder.name, worst)
        assert json.loads((folder / "manifest.json").read_text())["format"] == manifest.format


def test_cli_exports_onnx_and_litert_and_validate_accepts_them(models, tmp_path):
    case = models["digits"]
    teacher = save_checkpoint(case.teacher, tmp_path / "teacher.pt", "edgedistill.zoo.digits:teacher")
    student = save_checkpoint(case.model, tmp_path / "student.pt", "edgedistill.zoo.digits:student")
    out = tmp_path / "out"
    proc = run_cli("export", "--student", student, "--teacher", teacher, "--format", "onnx,litert",
                   "-q", "fp32,int8", "--calibration-samples", CALIBRATION, "--out", out)
    assert proc.returncode == 0, proc.stderr
    bundles = sorted((out / "bundles").iterdir())
    assert [b.name for b in bundles] == [f"student-{f}-{s}" for f in ("litert", "onnx") for s in ("fp32", "int8")]
    proc = run_cli("validate", *bundles, "--teacher", teacher, "--student", student, "--out", out,
                   "--set", "validate.measure_memory=false", "--set", "validate.latency_samples=20")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] and len(report["rows"]) == 2 + 4


@pytest.mark.parametrize("fmt,scheme,calibration,expected", [
    ("onnx", "fp16", None, "does not support quantization 'fp16'"),
    ("litert", "int4-weight", None, "does not support quantization 'int4-weight'"),
    ("onnx", "int8", None, "needs a calibration set"),
    ("litert", "int8", {"x": np.zeros((0, 4), np.float32)}, "needs a calibration set"),
])
def test_bad_requests_fail_before_any_work(tmp_path, fmt, scheme, calibration, expected):
    module = get(fmt)
    path = tmp_path / f"model{module.SUFFIX}"
    with pytest.raises(UserError, match=expected):
        module.export(nn.Linear(4, 3).eval(), (torch.rand(2, 4),), scheme=scheme, path=path, calibration=calibration)
    assert not path.exists()
