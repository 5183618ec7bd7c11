"""`edgedistill bench --device adb --app` through tests/fake_adb (a folder stands in for the phone).

The real Android example app cannot run here (no Android SDK, no phone): tests/fake_adb/bin/am
stands in for its instrumentation test, running the bundle with this machine's runtimes and writing
outputs.npz with the Kotlin writer's keys. Its numbers are labelled fake-local, never phone latencies.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cli
from edgedistill.bundle import read_bundle
from test_device_adb import _tiny_bundle, phone_env


@pytest.fixture(scope="module")
def fp32(demo_out: Path) -> Path:
    return next(b for b in sorted((demo_out / "bundles").iterdir()) if b.name.endswith("fp32"))


def test_app_bench_pushes_runs_pulls_and_validates(tmp_path, fp32):
    root, out = tmp_path / "phone", tmp_path / "out"
    proc = run_cli("bench", fp32, "--device", "adb", "--app", "--warmup", "2", "--runs", "7", "--threads", "2",
                   "--out", out, env=phone_env(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "bench.json").read_text())
    assert report["passed"] and report["measured_on"] == "fake-local" and "NOT phone" in report["note"]
    result = report["results"][0]
    manifest, _ = read_bundle(fp32)
    assert result["runner"] == "android-app (executorch)" and result["model_sha256"] == manifest.sha256
    assert result["latency_ms"]["n"] == 7 and 0 < result["latency_ms"]["min"] <= result["latency_ms"]["median"]
    assert result["load_ms"] > 0 and result["first_inference_ms"] > 0 and result["warmup"] == 2
    assert result["validation"]["passed"] and result["validation"]["samples"] == manifest.golden["count"]
    assert result["validation"]["vs_student"]["max_abs_dp"] < 1e-4  # the fp32 program gives the student's probs
    assert result["remote_removed"] and result["measured_on"] == "fake-local"
    # what the app was asked to do: the pushed bundle folder, warm-ups, runs, threads, the test class
    (argv,) = [json.loads(line) for line in (root / ".am-log").read_text().splitlines()]
    extras = {argv[i + 1]: argv[i + 2] for i in range(len(argv)) if argv[i] == "-e"}
    assert extras["warmup"] == "2" and extras["runs"] == "7" and extras["threads"] == "2"
    assert extras["class"] == "org.edgedistill.example.BundleInstrumentationTest"
    assert argv[-1] == "org.edgedistill.example.test/androidx.test.runner.AndroidJUnitRunner"
    pushed = {json.loads(line)[-1] for line in (root / ".adb-log").read_text().splitlines() if '"push"' in line}
    assert any(p.endswith("/golden/golden.npz") for p in pushed) and any(p.endswith("/manifest.json") for p in pushed)
    assert (out / "raw" / fp32.name / "outputs.npz").is_file()
    assert not list((root / "sdcard").rglob("*.npz")), "outputs left on the phone"
    assert not list((root / "data/local/tmp/edgedistill").glob("app-*")), "bundle left on the phone"


@pytest.mark.heavy
def test_app_runs_litert_and_exits_1_when_outputs_disagree(tmp_path, fp32):
    """A .tflite through the app path; its random weights disagree with the teacher: measured, then exit 1."""
    bundle = _tiny_bundle(tmp_path / "tiny-litert-fp32", "litert", fp32)
    out = tmp_path / "out"
    proc = run_cli("bench", bundle, "--device", "adb", "--app", "--runs", "3", "--out", out,
                   env=phone_env(tmp_path / "phone"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    result = json.loads((out / "bench.json").read_text())["results"][0]
    assert result["runner"] == "android-app (litert)" and result["latency_ms"]["n"] == 3
    assert result["validation"]["samples"] == 64 and not result["validation"]["passed"]


@pytest.mark.parametrize("env,words", [({"FAKE_ADB_NO_APP": "1"}, ["step preflight", "example app is not installed",
                                                                   "installDebugAndroidTest"]),
                                       ({"FAKE_ADB_APP_FAULT": "fail"}, ["step am instrument", "BundleError",
                                                                        "has no manifest.json"])],
                         ids=["not-installed", "test-fails"])
def test_app_faults_are_one_line_exit_2(tmp_path, fp32, env, words):
    root = tmp_path / "phone"
    proc = run_cli("bench", fp32, "--device", "adb", "--app", "--runs", "2", "--out", tmp_path / "out",
                   env=phone_env(root, **env))
    assert_one_line_error(proc, *words)
    assert not list((root / "data/local/tmp/edgedistill").glob("app-*")), "bundle left on the phone"


def test_app_refuses_formats_it_cannot_run_and_ssh(tmp_path, fp32):
    proc = run_cli("bench", fp32, "--device", "ssh://pi@127.0.0.1", "--app", "--out", tmp_path / "o")
    assert_one_line_error(proc, "--app", "--device adb")


CRASH = """INSTRUMENTATION_STATUS: class=org.edgedistill.example.BundleInstrumentationTest
INSTRUMENTATION_STATUS: stack=java.lang.UnsatisfiedLinkError: dlopen failed: library "libexecutorch.so" not found
\tat org.pytorch.executorch.Module.load(Module.java:50)
INSTRUMENTATION_STATUS_CODE: -2

FAILURES!!!
Tests run: 1,  Failures: 1
INSTRUMENTATION_CODE: -1
"""


def test_instrument_output_is_read_like_am_prints_it():
    from edgedistill.device.app import parse_instrument

    ok = ("INSTRUMENTATION_STATUS: edgedistill_outputs=/storage/emulated/0/Android/data/x/files/b-outputs.npz\r\n"
          "INSTRUMENTATION_STATUS_CODE: 2\r\nOK (1 test)\r\nINSTRUMENTATION_CODE: -1\r\n")  # old adb shells send CRLF
    assert parse_instrument(ok) == "/storage/emulated/0/Android/data/x/files/b-outputs.npz"
    for text, words in ((CRASH, "UnsatisfiedLinkError"), ("INSTRUMENTATION_STATUS: edgedistill_error=bundle b: no vocab\n"
                                                          "FAILURES!!!", "no vocab"), ("OK (1 test)", "no outputs")):
        with pytest.raises(ValueError, match=words):
            parse_instrument(text)
