"""The bad-input catalogue: every verb, every hostile or broken input a user can hand it.

Each case asserts what the user sees: exit 2, exactly one ``error:`` line on stderr, no traceback, and
no file written anywhere (the case's folder, its output folder and the shared inputs are snapshotted
before and after). Most cases fail before any model runs, so they run in-process through
``edgedistill.cli.main``; the security cases (crafted checkpoints whose factory would create a marker
file) and a representative subset run as real subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest
import torch

from conftest import REPO, assert_one_line_error, run_cli
from edgedistill.bundle import GOLDEN, Manifest, TensorSpec, write_golden, write_manifest
from edgedistill.fileio import sha256_file
from edgedistill.modelref import CHECKPOINT_KIND, save_checkpoint
from edgedistill.zoo import digits

FAKE_ADB = REPO / "tests" / "fake_adb" / "adb"


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> SimpleNamespace:
    """Shared inputs made once: untrained digits checkpoints (valid files), a data file, a hand-made bundle."""
    root = tmp_path_factory.mktemp("kit")
    torch.manual_seed(0)
    teacher = save_checkpoint(digits.teacher(), root / "teacher.pt", "edgedistill.zoo.digits:teacher")
    student = save_checkpoint(digits.student(), root / "student.pt", "edgedistill.zoo.digits:student")
    rng = np.random.default_rng(0)
    x, y = rng.random((120, 64), dtype=np.float32), np.arange(120) % 10
    np.savez(root / "train.npz", x=x, y=y)
    bundle = root / "bundle"
    bundle.mkdir()
    (bundle / "model.pte").write_bytes(b"not really a program, never run by these cases")
    probs = np.full((8, 10), 0.1, np.float32)
    write_golden(bundle, {"x": x[:8], "y": y[:8], "student_probs": probs, "teacher_probs": probs})
    model = bundle / "model.pte"
    write_manifest(bundle, Manifest(format="executorch", backend="xnnpack", quantization="fp32", model_file="model.pte",
                                    sha256=sha256_file(model), size_bytes=model.stat().st_size,
                                    inputs=[TensorSpec(name="x", shape=["batch", 64], dtype="float32")],
                                    outputs=[TensorSpec(name="logits", shape=["batch", 10], dtype="float32")],
                                    num_classes=10, golden={"file": GOLDEN, "count": 8}))
    outside = root / "outside.pte"
    outside.write_bytes(model.read_bytes())
    return SimpleNamespace(root=root, teacher=teacher, student=student, data=root / "train.npz", bundle=bundle,
                           outside=outside)


@dataclass
class Case:
    """``make(ctx)`` writes whatever the case needs into ``ctx.tmp`` and returns the CLI arguments."""

    id: str
    make: Callable[[SimpleNamespace], list]
    fragment: str


# --- crafted files ---------------------------------------------------------------------------------

def npz(ctx, name: str = "d.npz", **arrays) -> Path:
    path = ctx.tmp / name
    np.savez(path, **arrays)
    return path


def data_with(ctx, value: float) -> Path:
    x = np.random.default_rng(1).random((60, 64), dtype=np.float32)
    x[3, 5] = value
    return npz(ctx, x=x, y=np.arange(60) % 10)


def text_file(ctx, name: str, text: str | bytes) -> Path:
    path = ctx.tmp / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


GARBAGE = bytes(range(256)) * 4


def checkpoint(ctx, name: str, factory: str, kwargs: dict, state: dict | None = None) -> Path:
    """An edgedistill checkpoint as an attacker would write it: it passes ``weights_only=True``."""
    path = ctx.tmp / name
    torch.save({"kind": CHECKPOINT_KIND, "factory": factory, "kwargs": kwargs, "state_dict": state or {}}, path)
    return path


def marker_payloads(marker: Path) -> dict[str, tuple[str, dict]]:
    """Factories that would create ``marker`` if a loader ever called them."""
    return {
        "os-system": ("os:system", {"command": f"touch {marker}"}),
        "subprocess-call": ("subprocess:call", {"args": ["touch", str(marker)]}),
        "own-prefix-bypass": ("edgedistill.fileio:os.system", {"command": f"touch {marker}"}),
        "nested-in-derived": ("edgedistill.distillation.students:derived",
                              {"teacher": "subprocess:call", "layers": [0], "teacher_kwargs": {"args": ["touch", str(marker)]}}),
    }


def evil(ctx) -> Path:
    return checkpoint(ctx, "student.pt", "os:system", {"command": f"touch {ctx.tmp / 'MARKER'}"})


def bundle_copy(ctx) -> Path:
    folder = ctx.tmp / "bundle"
    shutil.copytree(ctx.kit.bundle, folder, symlinks=True)
    return folder


def with_manifest(ctx, **changes) -> Path:
    folder = bundle_copy(ctx)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(changes)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def model_link_outside(ctx) -> Path:
    folder = bundle_copy(ctx)
    (folder / "model.pte").unlink()
    (folder / "model.pte").symlink_to(ctx.kit.outside)  # same bytes, same sha256: only containment can refuse it
    return folder


def golden_link_outside(ctx) -> Path:
    folder = bundle_copy(ctx)
    shutil.move(folder / "golden", ctx.tmp / "elsewhere")
    (folder / "golden").symlink_to(ctx.tmp / "elsewhere", target_is_directory=True)
    return folder


def golden_damaged(ctx, how: str) -> Path:
    folder = bundle_copy(ctx)
    path = folder / GOLDEN
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif how == "pickled":
        np.savez(path, x=np.array([{"a": 1}], dtype=object), student_probs=np.zeros((1, 10)))
    else:
        path.unlink()
    return folder


def outputs(ctx, how: str) -> Path:
    path = ctx.tmp / "outputs.npz"
    if how == "truncated":
        np.savez(path, logits=np.zeros((8, 10), np.float32))
        path.write_bytes(path.read_bytes()[:100])
    elif how == "nan":
        np.savez(path, logits=np.full((8, 10), np.nan, np.float32))
    else:
        np.savez(path, logits=np.zeros((3, 10), np.float32))
    return path


def common(ctx) -> list:
    return ["--out", ctx.out]


def validate_args(ctx, bundle, *extra) -> list:
    return ["validate", bundle, "--teacher", ctx.kit.teacher, "--student", ctx.kit.student, "--data", ctx.kit.data,
            "--no-memory", "--no-plots", *extra, *common(ctx)]


def device_outputs(ctx, how: str) -> list:
    return ["validate", bundle_copy(ctx), "--device-outputs", outputs(ctx, how), *common(ctx)]


def bench_args(ctx, bundle, *extra) -> list:
    return ["bench", bundle, "--device", "adb", "--runner", FAKE_ADB, *extra, *common(ctx)]


def target_file(ctx, text: str | bytes) -> Path:
    return text_file(ctx, "phone.toml", text)


ANDROIDISH = '[[artifacts]]\nformat = "executorch"\nquantization = "fp32"\n'


CASES = [
    # distill
    Case("distill-unknown-config-key", lambda c: ["distill", "--config", text_file(c, "p.toml", "[distill]\ntemprature = 3\n"), *common(c)], "unknown key 'distill.temprature'"),
    Case("distill-config-missing", lambda c: ["distill", "--config", c.tmp / "nope.toml", *common(c)], "config file not found"),
    Case("distill-config-binary", lambda c: ["distill", "--config", text_file(c, "p.toml", GARBAGE), *common(c)], "not valid TOML"),
    Case("distill-T-inf", lambda c: ["distill", "-T", "inf", *common(c)], "distill.temperature"),
    Case("distill-T-nan", lambda c: ["distill", "-T", "nan", *common(c)], "distill.temperature"),
    Case("distill-T-zero", lambda c: ["distill", "-T", "0", *common(c)], "distill.temperature"),
    Case("distill-T-negative", lambda c: ["distill", "-T", "-2", *common(c)], "distill.temperature"),
    Case("distill-alpha-2", lambda c: ["distill", "--alpha", "2", *common(c)], "distill.alpha"),
    Case("distill-lr-inf", lambda c: ["distill", "--lr", "inf", *common(c)], "distill.lr"),
    Case("distill-epochs-0", lambda c: ["distill", "--set", "distill.epochs=0", *common(c)], "distill.epochs"),
    Case("distill-set-unknown", lambda c: ["distill", "--set", "nosuch.key=1", *common(c)], "unknown key 'nosuch'"),
    Case("distill-set-no-equals", lambda c: ["distill", "--set", "distill.epochs", *common(c)], "--set expects"),
    Case("distill-x-nan", lambda c: ["distill", "--data", data_with(c, np.nan), *common(c)], "NaN or infinite"),
    Case("distill-x-inf", lambda c: ["distill", "--data", data_with(c, np.inf), *common(c)], "NaN or infinite"),
    Case("distill-npz-without-x", lambda c: ["distill", "--data", npz(c, features=np.zeros((10, 64))), *common(c)], "no array 'x'"),
    Case("distill-npz-truncated", lambda c: ["distill", "--data", text_file(c, "d.npz", b"PK\x03\x04trunc"), *common(c)], "not a readable .npz"),
    Case("distill-data-missing", lambda c: ["distill", "--data", c.tmp / "gone.npz", *common(c)], "data file not found"),
    Case("distill-negative-label", lambda c: ["distill", "--data", npz(c, x=np.zeros((20, 64), np.float32), y=-np.ones(20, int)), *common(c)], "labels must be >= 0"),
    Case("distill-x-one-dim", lambda c: ["distill", "--data", npz(c, x=np.zeros(20, np.float32)), *common(c)], "sample axis"),
    Case("distill-x-strings", lambda c: ["distill", "--data", npz(c, x=np.array([["a"] * 64] * 4)), *common(c)], "must be numeric"),
    Case("distill-unknown-source", lambda c: ["distill", "--data", "somewhere", *common(c)], "unknown data source"),
    Case("distill-factory-no-import", lambda c: ["distill", "--student", "no_such_pkg.models:small", *common(c)], "does not import"),
    Case("distill-factory-no-attr", lambda c: ["distill", "--student", "edgedistill.zoo.digits:nothing", *common(c)], "nothing"),
    Case("distill-labels-beyond-classes", lambda c: ["distill", "--teacher", c.kit.teacher, "--data", npz(c, x=np.zeros((200, 64), np.float32), y=np.arange(200) % 20), *common(c)], "labels go up to 19"),
    Case("distill-unlabelled-alpha", lambda c: ["distill", "--teacher", c.kit.teacher, "--alpha", "0.5", "--data", npz(c, x=np.zeros((40, 64), np.float32)), *common(c)], "distill.alpha must be 1"),
    Case("distill-out-is-file", lambda c: ["distill", "--out", text_file(c, "out-file", "x")], "is a file"),
    Case("distill-resume-nothing", lambda c: ["distill", "--teacher", c.kit.teacher, "--resume", *common(c)], "nothing to resume"),
    Case("distill-trust-entry-bad", lambda c: ["distill", "--trust-factory", "not a module!", *common(c)], "trust_factories"),
    # calibrate
    Case("calibrate-feature-count", lambda c: ["calibrate", "--teacher", c.kit.teacher, "--data", npz(c, x=np.zeros((40, 10), np.float32)), *common(c)], "cannot run"),
    Case("calibrate-x-nan", lambda c: ["calibrate", "--data", data_with(c, np.nan), *common(c)], "NaN or infinite"),
    Case("calibrate-n-0", lambda c: ["calibrate", "--n", "0", *common(c)], "--n must be at least 1"),
    Case("calibrate-teacher-empty", lambda c: ["calibrate", "--teacher", text_file(c, "t.pt", b""), *common(c)], "corrupt"),
    Case("calibrate-teacher-pickled", lambda c: ["calibrate", "--teacher", pickled_module(c), *common(c)], "torch.nn.modules.linear.Linear"),
    Case("calibrate-out-is-file", lambda c: ["calibrate", "--teacher", c.kit.teacher, "--out", text_file(c, "out-file", "x")], "is a file"),
    # export
    Case("export-student-empty", lambda c: ["export", "--student", text_file(c, "student.pt", b""), *common(c)], "corrupt"),
    Case("export-student-truncated", lambda c: ["export", "--student", truncated(c, c.kit.student), *common(c)], "corrupt"),
    Case("export-student-pickled", lambda c: ["export", "--student", pickled_module(c), *common(c)], "torch.nn.modules.linear.Linear"),
    Case("export-student-raw-pickle-global", lambda c: ["export", "--student", raw_pickle(c, 2), *common(c)], "needs posix.system"),
    Case("export-student-raw-pickle-frames", lambda c: ["export", "--student", raw_pickle(c, 4), *common(c)], "a pickle edgedistill does not load"),
    Case("export-student-raw-state-dict", lambda c: ["export", "--student", raw_state(c), *common(c)], "raw state dict"),
    Case("export-student-kwargs-not-table", lambda c: ["export", "--student", checkpoint(c, "s.pt", "edgedistill.zoo.digits:student", 5), *common(c)], "damaged"),
    Case("export-student-missing", lambda c: ["export", "--student", c.tmp / "nope.pt", *common(c)], "checkpoint not found"),
    Case("export-student-factory-only", lambda c: ["export", "--student", "edgedistill.zoo.digits:student", *common(c)], "needs a trained student"),
    Case("export-unknown-format", lambda c: ["export", "--student", c.kit.student, "--format", "tensorflowjs", *common(c)], "unknown format 'tensorflowjs'"),
    Case("export-unknown-scheme", lambda c: ["export", "--student", c.kit.student, "-q", "int3", *common(c)], "does not support quantization 'int3'"),
    Case("export-unknown-target", lambda c: ["export", "--student", c.kit.student, "--target", "toaster", *common(c)], "unknown target 'toaster'"),
    Case("export-target-missing", lambda c: ["export", "--student", c.kit.student, "--target", c.tmp / "phone.toml", *common(c)], "target profile not found"),
    Case("export-target-binary", lambda c: ["export", "--student", c.kit.student, "--target", target_file(c, GARBAGE), *common(c)], "not a readable TOML"),
    Case("export-target-tolerance-number", lambda c: ["export", "--student", c.kit.student, "--target", target_file(c, ANDROIDISH + "[tolerances]\nfp32 = 5\n"), *common(c)], "tolerances.fp32"),
    Case("export-target-no-artifacts", lambda c: ["export", "--student", c.kit.student, "--target", target_file(c, 'name = "x"\n'), *common(c)], "artifacts"),
    Case("export-calibration-not-npz", lambda c: ["export", "--student", c.kit.student, "--calibration", text_file(c, "cal.txt", "1"), *common(c)], "must be an .npz"),
    Case("export-calibration-samples-0", lambda c: ["export", "--student", c.kit.student, "--calibration-samples", "0", *common(c)], "calibration_samples"),
    Case("export-out-under-a-file", lambda c: ["export", "--student", c.kit.student, "--out", text_file(c, "f", "x") / "o"], "is a file"),
    # validate
    Case("validate-out-is-file", lambda c: validate_args(c, c.kit.bundle)[:-2] + ["--out", text_file(c, "report", "x")], "is a file"),
    Case("validate-bundle-missing", lambda c: validate_args(c, c.tmp / "nope"), "bundle not found"),
    Case("validate-no-manifest", lambda c: validate_args(c, (c.tmp / "empty").mkdir() or c.tmp / "empty"), "has no manifest.json"),
    Case("validate-manifest-not-json", lambda c: validate_args(c, manifest_text(c, "{nope")), "manifest.json is invalid"),
    Case("validate-manifest-binary", lambda c: validate_args(c, manifest_text(c, GARBAGE)), "manifest.json is invalid"),
    Case("validate-model-file-dotdot", lambda c: validate_args(c, with_manifest(c, model_file="../outside.pte")), "plain file name"),
    Case("validate-model-file-absolute", lambda c: validate_args(c, with_manifest(c, model_file=str(c.kit.outside))), "plain file name"),
    Case("validate-model-symlink-outside", lambda c: validate_args(c, model_link_outside(c)), "leads outside the bundle"),
    Case("validate-golden-symlink-outside", lambda c: validate_args(c, golden_link_outside(c)), "leads outside the bundle"),
    Case("validate-golden-file-dotdot", lambda c: validate_args(c, with_manifest(c, golden={"file": "../g.npz", "count": 8})), "golden file"),
    Case("validate-golden-truncated", lambda c: validate_args(c, golden_damaged(c, "truncated")), "golden/golden.npz is damaged"),
    Case("validate-golden-pickled", lambda c: validate_args(c, golden_damaged(c, "pickled")), "golden/golden.npz is damaged"),
    Case("validate-golden-lacks-input", lambda c: validate_args(c, with_manifest(c, inputs=[{"name": "pixels", "shape": ["batch", 64], "dtype": "float32"}])), "lacks the input(s) pixels"),
    Case("validate-golden-classes", lambda c: validate_args(c, with_manifest(c, num_classes=3)), "says 3 classes"),
    Case("validate-golden-missing", lambda c: validate_args(c, golden_damaged(c, "missing")), "has no golden/golden.npz"),
    Case("validate-model-tampered", lambda c: validate_args(c, with_manifest(c, sha256="0" * 64)), "does not match the sha256"),
    Case("validate-tolerances-number-with-target", lambda c: validate_args(c, c.kit.bundle, "--target", "android", "--config", text_file(c, "v.toml", "[validate]\ntolerances = 5\n")), "validate.tolerances"),
    Case("validate-tolerance-unknown-key", lambda c: validate_args(c, c.kit.bundle, "--tolerance", "speed=1"), "--tolerance expects"),
    Case("validate-min-top1-2", lambda c: validate_args(c, c.kit.bundle, "--min-teacher-top1", "2"), "[0, 1]"),
    Case("validate-no-teacher", lambda c: ["validate", c.kit.bundle, *common(c)], "validate needs the trained teacher"),
    Case("validate-device-outputs-truncated", lambda c: device_outputs(c, "truncated"), "not a readable .npz"),
    Case("validate-device-outputs-nan", lambda c: device_outputs(c, "nan"), "must be finite"),
    Case("validate-device-outputs-rows", lambda c: device_outputs(c, "rows"), "expected (8, 10)"),
    Case("validate-device-outputs-count", lambda c: ["validate", c.kit.bundle, *device_outputs(c, "rows")[1:]], "one --device-outputs file per bundle"),
    # bench: bad bundles are refused before any device is looked for, let alone pushed to
    Case("bench-model-file-dotdot", lambda c: bench_args(c, with_manifest(c, model_file="../outside.pte")), "plain file name"),
    Case("bench-model-file-absolute", lambda c: bench_args(c, with_manifest(c, model_file="/tmp/x.pte")), "plain file name"),
    Case("bench-model-symlink-outside", lambda c: bench_args(c, model_link_outside(c)), "leads outside the bundle"),
    Case("bench-golden-truncated", lambda c: bench_args(c, golden_damaged(c, "truncated")), "golden/golden.npz is damaged"),
    Case("bench-device-spec", lambda c: ["bench", c.kit.bundle, "--device", "telnet://phone", *common(c)], "--device 'telnet://phone'"),
    Case("bench-runner-missing", lambda c: bench_args(c, c.kit.bundle)[:4] + ["--runner", c.tmp / "nope"] + common(c), "runner not found"),
    Case("bench-cores", lambda c: bench_args(c, c.kit.bundle, "--cores", "big,little"), "--cores takes core numbers"),
    Case("bench-runs-0", lambda c: bench_args(c, c.kit.bundle, "--runs", "0"), "bench.runs"),
    # targets
    Case("targets-set-unknown", lambda c: ["targets", "--set", "nosuch=1", *common(c)], "unknown key 'nosuch'"),
    Case("targets-config-missing", lambda c: ["targets", "--config", c.tmp / "nope.toml", *common(c)], "config file not found"),
    # inspect-teacher
    Case("inspect-feature-count", lambda c: ["inspect-teacher", "--teacher", c.kit.teacher, "--data", npz(c, x=np.zeros((40, 10), np.float32)), *common(c)], "cannot run"),
    Case("inspect-T-inf", lambda c: ["inspect-teacher", "--teacher", c.kit.teacher, "-T", "1,inf", *common(c)], "temperatures must be > 0"),
    Case("inspect-T-nan", lambda c: ["inspect-teacher", "--teacher", c.kit.teacher, "-T", "nan", *common(c)], "temperatures must be > 0"),
    Case("inspect-samples-0", lambda c: ["inspect-teacher", "--teacher", c.kit.teacher, "--samples", "0", *common(c)], "--samples"),
    Case("inspect-no-weights", lambda c: ["inspect-teacher", *common(c)], "has no trained weights"),
    Case("inspect-x-inf", lambda c: ["inspect-teacher", "--teacher", c.kit.teacher, "--data", data_with(c, -np.inf), *common(c)], "NaN or infinite"),
    # demo
    Case("demo-alpha", lambda c: ["demo", "--set", "distill.alpha=2", *common(c)], "distill.alpha"),
    Case("demo-unknown-format", lambda c: ["demo", "--formats", "tensorflowjs", *common(c)], "unknown format"),
    Case("demo-unknown-scheme", lambda c: ["demo", "--quantization", "int3", *common(c)], "does not support quantization"),
    Case("demo-out-is-file", lambda c: ["demo", "--out", text_file(c, "out-file", "x")], "is a file"),
]


def pickled_module(ctx) -> Path:
    path = ctx.tmp / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)  # a full pickle: would run code under an unsafe load
    return path


def raw_pickle(ctx, protocol: int) -> Path:
    """A plain pickle (not torch's zip) that would call os.system if unpickled unsafely."""
    import pickle

    path = ctx.tmp / "raw.pt"
    path.write_bytes(pickle.dumps({"kind": CHECKPOINT_KIND, "payload": os.system}, protocol=protocol))
    return path


def raw_state(ctx) -> Path:
    path = ctx.tmp / "state.pt"
    torch.save(digits.student().state_dict(), path)
    return path


def truncated(ctx, source: Path) -> Path:
    path = ctx.tmp / "student.pt"
    path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    return path


def manifest_text(ctx, text: str | bytes) -> Path:
    folder = bundle_copy(ctx)
    (folder / "manifest.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``roots`` with its size and modification time."""
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for root in roots for p in [root, *root.rglob("*")]
            if p.exists() or p.is_symlink()}


def context(kit, tmp_path) -> SimpleNamespace:
    return SimpleNamespace(kit=kit, tmp=tmp_path, out=tmp_path / "out")


def run_in_process(argv: list, capfd) -> tuple[int, str]:
    from edgedistill.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    return code, capfd.readouterr().err


def test_the_catalogue_covers_every_verb():
    verbs = {c.id.split("-")[0] for c in CASES}
    assert verbs == {"distill", "calibrate", "export", "validate", "bench", "targets", "inspect", "demo"}
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, kit, tmp_path, capfd, monkeypatch, one_torch_thread):
    monkeypatch.setenv("EDGEDISTILL_ADB", str(FAKE_ADB))
    monkeypatch.chdir(tmp_path)  # a stray relative write would land here and be seen
    ctx = context(kit, tmp_path)
    argv = case.make(ctx)
    before = snapshot(tmp_path, kit.root)
    code, err = run_in_process(argv, capfd)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0], err
    assert "Traceback" not in err and case.fragment in lines[0], (case.fragment, err)
    assert snapshot(tmp_path, kit.root) == before, "a refused input must leave nothing written"
    assert not (tmp_path / "MARKER").exists()


# --- security: real crafted files, real subprocesses ------------------------------------------------

def _security_argv(verb: str, ckpt: Path, kit, out: Path) -> list:
    return {
        "distill": ["distill", "--teacher", ckpt, "--epochs", "1"],
        "export": ["export", "--student", ckpt, "--teacher", kit.teacher],
        "calibrate": ["calibrate", "--teacher", ckpt],
        "inspect-teacher": ["inspect-teacher", "--teacher", ckpt],
        "validate": ["validate", kit.bundle, "--teacher", ckpt, "--student", kit.student, "--no-memory"],
        "demo": ["demo", "--set", f"student.model={ckpt}", "--epochs", "1"],
    }[verb] + ["--set", f"data.source={kit.data}", "--out", out]


PAYLOAD_VERBS = [("os-system", "export"), ("subprocess-call", "distill"), ("own-prefix-bypass", "calibrate"),
                 ("nested-in-derived", "inspect-teacher"), ("os-system", "validate"), ("subprocess-call", "demo")]


@pytest.mark.parametrize("payload,verb", PAYLOAD_VERBS, ids=[f"{v}-{p}" for p, v in PAYLOAD_VERBS])
def test_a_checkpoint_never_runs_an_untrusted_factory(payload, verb, kit, tmp_path):
    marker = tmp_path / "MARKER"
    factory, kwargs = marker_payloads(marker)[payload]
    ckpt = checkpoint(SimpleNamespace(tmp=tmp_path), "evil.pt", factory, kwargs)
    out = tmp_path / "out"
    proc = run_cli(*_security_argv(verb, ckpt, kit, out), cwd=tmp_path)
    refused = factory if payload != "nested-in-derived" else "subprocess:call"
    assert_one_line_error(proc, f"names factory '{refused}'", "--trust-factory")
    assert not marker.exists(), "the checkpoint's payload ran"
    assert not out.exists()


def test_every_payload_is_refused_by_the_python_api(kit, tmp_path):
    import edgedistill
    from edgedistill.errors import UserError
    from edgedistill.modelref import load_model

    marker = tmp_path / "MARKER"
    for name, (factory, kwargs) in marker_payloads(marker).items():
        ckpt = checkpoint(SimpleNamespace(tmp=tmp_path), f"{name}.pt", factory, kwargs)
        with pytest.raises(UserError, match="not edgedistill's own"):
            load_model(str(ckpt))
        with pytest.raises(UserError, match="not edgedistill's own"):
            edgedistill.run(None, {"teacher.model": str(ckpt), "out": str(tmp_path / "o"), "data.source": str(kit.data)})
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_a_pickled_checkpoint_names_the_refused_global_not_the_unsafe_switch(tmp_path):
    path = pickled_module(SimpleNamespace(tmp=tmp_path))
    proc = run_cli("export", "--student", path, "--out", tmp_path / "o")
    assert_one_line_error(proc, "torch.nn.modules.linear.Linear", "state_dict")
    assert "weights_only" not in proc.stderr and "Warning" not in proc.stderr


USER_MODELS = "from edgedistill.zoo import digits\n\n\ndef small(hidden=16):\n    return digits.student(hidden=hidden)\n"


@pytest.fixture
def user_checkpoint(tmp_path, monkeypatch):
    """A legitimate user factory (``userpkg.models:small``) and a checkpoint that records it."""
    (tmp_path / "userpkg").mkdir()
    (tmp_path / "userpkg" / "__init__.py").write_text("")
    (tmp_path / "userpkg" / "models.py").write_text(USER_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    from userpkg.models import small

    return save_checkpoint(small(), tmp_path / "user.pt", "userpkg.models:small")


def test_a_trusted_user_factory_loads(user_checkpoint, kit, tmp_path):
    import edgedistill
    from edgedistill.errors import UserError
    from edgedistill.modelref import load_model

    args = ("inspect-teacher", "--teacher", user_checkpoint, "--data", kit.data, "--samples", "1")
    assert_one_line_error(run_cli(*args, cwd=tmp_path), "userpkg.models:small", "--trust-factory userpkg.models")
    proc = run_cli(*args, "--trust-factory", "userpkg", cwd=tmp_path)
    assert proc.returncode == 0 and "T=4" in proc.stdout.replace(" ", ""), proc.stdout + proc.stderr
    config = tmp_path / "trust.toml"
    config.write_text('trust_factories = ["userpkg.models:small"]\n')
    from edgedistill.cli import main

    assert main([str(a) for a in (*args, "--config", config, "--out", tmp_path / "o3")]) == 0

    with pytest.raises(UserError, match="userpkg.models:small"):
        load_model(str(user_checkpoint))
    assert load_model(str(user_checkpoint), trust=["userpkg.models"])(torch.zeros(1, 64)).shape == (1, 10)
    overrides = {"teacher.model": str(user_checkpoint), "data.source": str(kit.data), "distill.epochs": 1,
                 "out": str(tmp_path / "o"), "student.kwargs": {"hidden": 8}}
    with pytest.raises(UserError, match="--trust-factory userpkg.models"):
        edgedistill.distill(None, overrides)
    assert edgedistill.distill(None, overrides, trust_factories=["userpkg"]).student_checkpoint.is_file()
    # naming the same factory for this run trusts it too (here as the student's architecture)
    named = {**overrides, "student.model": "userpkg.models:small", "out": str(tmp_path / "o2")}
    assert edgedistill.distill(None, named).student_checkpoint.is_file()


def test_bench_never_pushes_a_file_outside_its_bundle(kit, tmp_path):
    ctx = context(kit, tmp_path)
    bundle = with_manifest(ctx, model_file="../outside.pte")
    root = tmp_path / "phone"
    env = {"FAKE_ADB_ROOT": str(root), "EDGEDISTILL_ADB": str(FAKE_ADB)}
    proc = run_cli("bench", bundle, "--device", "adb", "--runner", FAKE_ADB, "--out", tmp_path / "o", env=env)
    assert_one_line_error(proc, "model_file '../outside.pte' must be a plain file name")
    assert not root.exists() or not any(root.rglob("*.pte")), "nothing may reach the device"


def test_export_refuses_an_empty_student_before_loading_any_backend(tmp_path):
    empty = tmp_path / "student.pt"
    empty.write_bytes(b"")
    code = ("import sys\nfrom edgedistill.cli import main\nrc = main(['export', '--student', sys.argv[1], '--out', "
            "sys.argv[2]])\nprint('BACKENDS', sorted(m for m in ('executorch', 'coremltools', 'onnxruntime', "
            "'ai_edge_litert') if m in sys.modules))\nsys.exit(rc)")
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", code, str(empty), str(tmp_path / "o")], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and "corrupt" in proc.stderr
    assert "BACKENDS []" in proc.stdout, proc.stdout
