"""`edgedistill bench` over adb, end to end through tests/fake_adb/adb (a folder stands in for the phone).

The runner is tests/fake_adb/runners/executor_runner: the real flags and log format, the real
ExecuTorch runtime on this machine. Its numbers are labelled fake-local and are not phone latencies.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cli
from edgedistill.bundle import read_bundle

FAKE = Path(__file__).parent / "fake_adb"
RUNNER = FAKE / "runners" / "executor_runner"
LATENCY_KEYS = ("n", "min", "median", "mean", "p90", "p99", "std")


def phone_env(root: Path, **extra: str) -> dict[str, str]:
    """PATH with the fake adb first (and this Python's bin for the stand-in), a fresh fake phone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_", "EDGEDISTILL_ADB"))}
    env["PATH"] = os.pathsep.join([str(FAKE), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**env, "FAKE_ADB_ROOT": str(root), **extra}


def bench(env: dict, out: Path, *bundles: Path, extra: tuple = ()) -> tuple:
    proc = run_cli("bench", *bundles, "--device", "adb", "--runner", RUNNER, "--out", out, *extra, env=env, timeout=600)
    report = json.loads((out / "bench.json").read_text()) if (out / "bench.json").exists() else None
    return proc, report


@pytest.fixture(scope="module")
def bundles(demo_out: Path) -> dict[str, Path]:
    return {b.name.rsplit("-", 1)[-1]: b for b in sorted((demo_out / "bundles").iterdir())}


# bundle and remote folder names that would break or inject through an unquoted shell command line
EVIL = "it's a \"bundle\"; touch INJECTED1 $(touch INJECTED2) `touch INJECTED3`"
EVIL_REMOTE = "/data/local/tmp/edge distill; touch INJECTED4 $(touch INJECTED5)"


@pytest.mark.slow
def test_fp32_and_int8_in_one_session(tmp_path, bundles):
    """The acceptance run, with names full of spaces and shell characters on both sides."""
    local = []
    for scheme in ("fp32", "int8"):
        local.append(tmp_path / f"{scheme} {EVIL}")
        shutil.copytree(bundles[scheme], local[-1])
    root, out = tmp_path / "phone", tmp_path / "out"
    proc, report = bench(phone_env(root), out, *local,
                         extra=("--warmup", "2", "--runs", "4", "--processes", "2", "--remote-dir", EVIL_REMOTE))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    injected = list(tmp_path.rglob("INJECTED*")) + list(Path.cwd().glob("INJECTED*"))
    assert not injected, f"shell injection ran: {injected}"
    assert report["passed"] and report["error"] is None
    assert report["measured_on"] == "fake-local" and "NOT phone" in report["note"]
    device = report["device"]
    assert device["model"] == "edgedistill fake-local phone" and device["abi"] == "arm64-v8a"
    assert device["os"] == "Android 14 (SDK 34)" and device["big_core_mask"] == "f0" and device["cores"] == 8
    assert [r["quantization"] for r in report["results"]] == ["fp32", "int8"]
    for result, folder in zip(report["results"], local):
        manifest, model = read_bundle(folder)
        assert result["bundle"] == folder.name
        assert result["model_sha256"] == manifest.sha256 and result["model_size_bytes"] == model.stat().st_size
        assert result["latency_ms"]["n"] == 8 and result["warmup"] == 2 and len(result["processes"]) == 2
        assert all(result["latency_ms"][k] is not None for k in LATENCY_KEYS)
        assert result["latency_ms"]["min"] <= result["latency_ms"]["median"] <= result["latency_ms"]["p99"]
        assert result["load_ms"] > 0 and result["first_inference_ms"] > 0 and "peak_memory_mb" in result
        assert result["threads"] == 4 and result["core_mask"] == "f0" and result["batch"] == 1
        assert result["thermal_before"]["status"] == "none" and result["thermal_after"]["normal"]
        assert result["validation"]["passed"] and result["validation"]["samples"] == manifest.golden["count"]
        assert result["measured_on"] == "fake-local" and result["remote_removed"]
        assert (out / "raw" / folder.name / "process-2.log").is_file()
    # the fp32 program on the "phone" gives the fp32 student's probabilities; int8 is close
    assert report["results"][0]["validation"]["vs_student"]["max_abs_dp"] < 1e-4
    assert report["results"][1]["validation"]["vs_student"]["max_abs_dp"] < 0.25
    assert not (root / EVIL_REMOTE.lstrip("/")).exists(), "remote folder left behind"
    pinned = (root / ".taskset-log").read_text().splitlines()
    assert len(pinned) == 6 and all(line.startswith("f0 ./executor_runner") and "--cpu_threads 4" in line
                                    for line in pinned)
    assert sum("--num_executions 6" in line for line in pinned) == 4  # 2 timed processes per bundle
    table = (out / "bench.md").read_text()
    assert f"| | {local[0].name} | {local[1].name} |" in table  # side by side, one column per bundle
    assert "NOT phone" in table and table == proc.stdout


FAULTS = [  # fault, extra environment, words the error must contain, processes that completed first
    ("offline", {}, ["adb:FAKE0001", "step preflight", "offline"], 0),
    ("unauthorized", {}, ["adb:FAKE0001", "step preflight", "unauthorized"], 0),
    ("two-devices", {}, ["device adb,", "step preflight", "2 devices attached", "adb:SERIAL"], 0),
    ("timeout", {"FAKE_ADB_FAULT_MATCH": "thermalservice", "FAKE_ADB_SLEEP": "30"}, ["step thermal", "timed out"], 0),
    ("nonzero-exit", {"FAKE_ADB_FAULT_AT": "2"}, ["step run, process 2/2", "exit status 139", "Segmentation fault"], 1),
    ("disconnect", {"FAKE_ADB_FAULT_AT": "2"}, ["step run, process 2/2", "connection lost", "not found"], 1),
    ("missing-output", {"FAKE_ADB_FAULT_MATCH": "--output_file"}, ["step pull val-0-0.bin", "No such file"], 1),
]


@pytest.mark.slow
@pytest.mark.parametrize("fault,env,words,completed", FAULTS, ids=[f[0] for f in FAULTS])
def test_each_fault_is_one_line_exit_2_and_keeps_completed_runs(tmp_path, bundles, fault, env, words, completed):
    root, out = tmp_path / "phone", tmp_path / "out"
    # a runner process takes seconds here; only the hung command should meet the short limit
    limit = "4" if fault == "timeout" else "60"
    processes = "1" if fault == "missing-output" else "2"
    proc, report = bench(phone_env(root, FAKE_ADB_FAULT=fault, **env), out, bundles["fp32"],
                         extra=("--warmup", "1", "--runs", "3", "--processes", processes, "--timeout", limit))
    assert_one_line_error(proc, *words)
    assert report is not None and report["error"] in proc.stderr and not report["passed"]
    results = report["results"]
    assert len(results[0]["processes"] if results else []) == completed
    if completed:
        assert results[0]["latency_ms"]["n"] == 3 * completed and results[0]["latency_ms"]["median"] > 0
    if fault in ("nonzero-exit", "missing-output", "timeout"):
        assert not (root / "data/local/tmp/edgedistill").exists(), "remote folder left behind after the fault"


def _tiny_bundle(folder: Path, fmt: str, golden_from: Path) -> Path:
    """A hand-made x @ W bundle in ``fmt`` (onnx or litert): runs those runners without their format modules."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgedistill.bundle import Manifest, TensorSpec, write_manifest
    from edgedistill.fileio import sha256_file

    folder.mkdir()
    if fmt == "onnx":
        weights = numpy_helper.from_array(np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32), "W")
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["logits"])], "tiny",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
                                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], [weights])
        model = folder / "model.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), model)
    else:
        model = folder / "model.tflite"
        shutil.copy(Path(__file__).parent / "fixtures" / "device" / "tiny_linear.tflite", model)
    batch = "batch" if fmt == "onnx" else 1
    shutil.copytree(golden_from / "golden", folder / "golden")
    write_manifest(folder, Manifest(format=fmt, backend="cpu", quantization="fp32", model_file=model.name,
                                    sha256=sha256_file(model), size_bytes=model.stat().st_size,
                                    inputs=[TensorSpec(name="x", shape=[batch, 64], dtype="float32")],
                                    outputs=[TensorSpec(name="logits", shape=[batch, 10], dtype="float32")],
                                    num_classes=10, dynamic_batch=fmt == "onnx", max_batch=1024 if fmt == "onnx" else 1,
                                    golden={"count": 64}))
    return folder


TOOLS = [("onnx", "onnxruntime_perf_test", "f0 ./onnxruntime_perf_test -m times -r 30 -x 4 -I model.onnx"),
         ("litert", "benchmark_model", "f0 ./benchmark_model --graph=model.tflite --num_threads=4 --num_runs=30 "
          "--warmup_runs=5 --min_secs=0 --warmup_min_secs=0 --use_xnnpack=true")]


@pytest.mark.parametrize("fmt,tool,command", TOOLS, ids=[t[1] for t in TOOLS])
def test_summary_only_runners_through_fake_adb(tmp_path, bundles, fmt, tool, command):
    bundle = _tiny_bundle(tmp_path / f"tiny-{fmt}-fp32", fmt, bundles["fp32"])
    root, out = tmp_path / "phone", tmp_path / "out"
    proc = run_cli("bench", bundle, "--device", "adb", "--runner", FAKE / "runners" / tool,
                   "--runs", "30", "--processes", "2", "--out", out, env=phone_env(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((out / "bench.json").read_text())["results"][0]
    assert result["runner"] == tool and result["measured_on"] == "fake-local"
    latency = result["latency_ms"]
    # whole microseconds: a tiny model's fastest run may print as 0, which is a measurement, not a failure
    assert latency["n"] == 60 and 0 <= latency["min"] <= latency["median"] <= latency["max"] and latency["max"] > 0
    assert latency["p90"] is None, "two processes' percentiles cannot be pooled; nothing may be made up"
    assert result["load_ms"] > 0 and result["first_inference_ms"] is not None
    assert result["validation"] is None and "writes no outputs" in result["validation_note"]
    assert (root / ".taskset-log").read_text().splitlines()[0] == command


def test_runner_for_another_abi_is_refused_before_any_push(tmp_path, bundles):
    host_binary = tmp_path / "executor_runner"
    shutil.copy(shutil.which("true"), host_binary)  # an ELF for this machine, not for the arm64 "phone"
    root = tmp_path / "phone"
    proc = run_cli("bench", bundles["fp32"], "--device", "adb", "--runner", host_binary, "--out", tmp_path / "out",
                   env=phone_env(root))
    assert_one_line_error(proc, "is built for", "but the device runs arm64-v8a")
    pushes = [line for line in (root / ".adb-log").read_text().splitlines() if '"push"' in line]
    assert not pushes


@pytest.mark.slow
def test_older_executor_runner_at_the_batch_bound_after_cooling_down(tmp_path, bundles):
    """An executor_runner without --input_shapes (1.0-1.2 log format), on a phone that starts warm."""
    root, out = tmp_path / "phone", tmp_path / "out"
    proc, report = bench(phone_env(root, FAKE_ET_FORMAT="total", FAKE_ADB_THERMAL="2,0"), out, bundles["fp32"],
                         extra=("--warmup", "1", "--runs", "2", "--processes", "1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = report["results"][0]
    assert result["thermal_before"]["normal"] and int((root / ".thermal-count").read_text()) >= 3
    assert result["batch"] == 1024, "without --input_shapes a dynamic program runs at its bound, and says so"
    assert result["latency_ms"]["n"] == 3 and result["latency_ms"]["mean"] > 0
    assert result["latency_ms"]["median"] is None and result["first_inference_ms"] is None  # not printed: not made up
    assert result["validation"]["passed"], "outputs at the bound are trimmed to the golden rows"
