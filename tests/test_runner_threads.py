"""Every host runner takes the threads it is told (the target profile's ``threads``) and the runtime gets them.

Read back from the runtime where it can tell (ONNX Runtime's session options, ExecuTorch's process-wide
thread pool); LiteRT has no getter, so its worker threads are counted in /proc. Each probe runs in a fresh
process so other tests' thread pools do not count. No timing here: threads are a setting, not a speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_cli

PROBE = r"""
import json, os, sys
from pathlib import Path
import numpy as np
from edgedistill.formats import get

fmt, path, threads = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
module = get(fmt)
module.missing()  # the runtime imported before counting
tasks = lambda: len(os.listdir("/proc/self/task"))  # noqa: E731
before = tasks()
runner = module.load(path, 1, threads)
runner(np.zeros((1, 64), np.float32))
seen = {"threads": runner.threads, "new_os_threads": tasks() - before}
if fmt == "onnx":
    seen["intra_op"] = runner._session.get_session_options().intra_op_num_threads
    seen["inter_op"] = runner._session.get_session_options().inter_op_num_threads
if fmt == "executorch":
    from executorch.extension.pybindings import _portable_lib as binding
    seen["pool"] = binding._threadpool_get_thread_count()
print(json.dumps(seen))
"""


def probe(fmt: str, path: Path, threads: int) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, fmt, str(path), str(threads)], capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def tiny_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    # a matmul big enough that ONNX Runtime splits it across its intra-op pool
    weights = numpy_helper.from_array(np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["logits"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], [weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def test_onnx_runtime_session_gets_the_threads(tmp_path):
    model = tiny_onnx(tmp_path / "tiny.onnx")
    one, three = probe("onnx", model, 1), probe("onnx", model, 3)
    for threads, seen in ((1, one), (3, three)):
        assert seen["intra_op"] == threads and seen["threads"] == threads and seen["inter_op"] == 1
    # the pool is real: 3 intra-op threads start 2 workers beside the caller
    assert three["new_os_threads"] - one["new_os_threads"] == 2


def test_litert_interpreter_gets_the_threads():
    model = REPO / "tests" / "fixtures" / "device" / "tiny_linear.tflite"
    one, three = probe("litert", model, 1), probe("litert", model, 3)
    assert one["threads"] == 1 and three["threads"] == 3
    # LiteRT has no getter: XNNPACK's pool for num_threads=3 is 2 workers beside the caller
    assert three["new_os_threads"] - one["new_os_threads"] == 2


def test_executorch_thread_pool_gets_the_threads(demo_out):
    from edgedistill.bundle import read_bundle

    _, model = read_bundle(demo_out / "bundles" / "student-executorch-fp32")
    for threads in (1, 2):
        seen = probe("executorch", model, threads)
        assert seen["pool"] == threads and seen["threads"] == threads


def test_validate_runs_artifacts_on_the_configured_threads(demo_out, tmp_path):
    out = tmp_path / "v"
    proc = run_cli("validate", demo_out / "bundles" / "student-executorch-fp32", "--teacher", demo_out / "teacher.pt",
                   "--student", demo_out / "student.pt", "--out", out, "--no-memory", "--no-plots",
                   "--set", "validate.threads=2", "--set", "validate.latency_samples=5", "--set", "validate.localize=false")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "report.json").read_text())
    artifact = [r for r in report["rows"] if r["role"] == "artifact"]
    assert [r["threads"] for r in artifact] == [2]
    assert "ran on 2 thread(s)" in (out / "report.md").read_text()
