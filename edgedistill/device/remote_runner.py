"""Self-contained runner for boards with Python: pushed next to the model and run there.

Needs only numpy and the model's runtime (ExecuTorch pybindings for .pte, ai-edge-litert for
.tflite, onnxruntime for .onnx); it never imports edgedistill, so a board needs no edgedistill
install. ``--output FILE`` writes the logits of every input row as raw float32; otherwise it
times ``--warmup`` + ``--runs`` single-sample calls. Either way it prints one line
``EDGEDISTILL_RUNNER_JSON {...}`` with load time, per-iteration times and peak RSS growth.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

MARKER = "EDGEDISTILL_RUNNER_JSON "


def _rss_kb(field: str) -> int | None:
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


_RUNTIME_MODULES = {".pte": ("torch", "executorch.extension.pybindings._portable_lib"),
                    ".tflite": ("ai_edge_litert.interpreter",), ".onnx": ("onnxruntime",)}


def import_runtime(path: str) -> None:
    """Import the runtime first, so neither load time nor peak memory counts the import."""
    import importlib

    for suffix, modules in _RUNTIME_MODULES.items():
        if path.endswith(suffix):
            for name in modules:
                importlib.import_module(name)


def load(path: str, threads: int):
    """A callable ``f(*arrays) -> logits`` in the model's runtime, and the runtime's name."""
    if path.endswith(".pte"):
        import torch
        from executorch.extension.pybindings import _portable_lib as et

        if threads > 0:
            et._unsafe_reset_threadpool(threads)
        module = et._load_for_executorch(path)
        return (lambda *xs: module.forward([torch.from_numpy(x) for x in xs])[0].numpy()), "executorch"
    if path.endswith(".tflite"):
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path, num_threads=max(threads, 1))

        def run_tflite(*xs):
            for detail, x in zip(interpreter.get_input_details(), xs):
                if tuple(detail["shape"]) != x.shape:
                    interpreter.resize_tensor_input(detail["index"], x.shape)
            interpreter.allocate_tensors()
            for detail, x in zip(interpreter.get_input_details(), xs):
                interpreter.set_tensor(detail["index"], x)
            interpreter.invoke()
            return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        return run_tflite, "litert"
    if path.endswith(".onnx"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return (lambda *xs: session.run(None, dict(zip(names, xs)))[0]), "onnxruntime"
    raise SystemExit(f"remote_runner: unknown model type {path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--inputs", required=True, help=".npz with one array per model input, in argument order")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--runs", type=int, default=0)
    p.add_argument("--batch", type=int, default=1, help="rows per call when writing outputs")
    p.add_argument("--output")
    args = p.parse_args(argv)
    with np.load(args.inputs) as npz:
        arrays = [npz[k] for k in npz.files]
    import_runtime(args.model)
    baseline = _rss_kb("VmRSS")
    start = time.perf_counter()
    run, runtime = load(args.model, args.threads)
    load_ms = (time.perf_counter() - start) * 1000
    iterations = []
    if args.output:
        rows = len(arrays[0])
        out = [run(*(a[i : i + args.batch] for a in arrays)) for i in range(0, rows, args.batch)]
        np.concatenate(out).astype("<f4").tofile(args.output)
    else:
        sample = [a[:1] for a in arrays]
        for _ in range(args.warmup + args.runs):
            t = time.perf_counter()
            run(*sample)
            iterations.append((time.perf_counter() - t) * 1000)
    peak = _rss_kb("VmHWM")
    print(MARKER + json.dumps({"runtime": runtime, "load_ms": load_ms, "iterations_ms": iterations,
                               "peak_memory_mb": None if peak is None or baseline is None else (peak - baseline) / 1024}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
