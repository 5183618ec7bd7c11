"""Each runtime exported by hand and called directly, the way its own documentation shows: the "raw"
baseline edgedistill's artifacts and runners are compared with. Nothing here imports edgedistill's
format modules or runners (a benchmark that compares us with ourselves proves nothing).

- ExecuTorch: ``torch.export`` -> ``to_edge_transform_and_lower(partitioner=[XnnpackPartitioner()])``
  -> ``to_executorch``; run with ``Runtime.get().load_program(...).load_method("forward").execute``,
  and with the pybindings ``Module.forward(inputs, clone_outputs=False)`` (no output copy).
- ONNX Runtime: ``torch.onnx.export(..., dynamo=True)``; ``InferenceSession.run`` with the feeds dict
  prepared once, on the given threads, spin-waiting off.
- LiteRT: ``litert_torch.convert(model, args).export(path)``; ``Interpreter`` with ``allocate_tensors``
  once and ``set_tensor`` / ``invoke`` / ``get_tensor`` with the tensor indices looked up once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn


def executorch_calls(model: nn.Module, x: np.ndarray, workdir: Path) -> dict[str, Callable[[], object]]:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.extension.pybindings.portable_lib import _load_for_executorch
    from executorch.runtime import Runtime

    t = torch.from_numpy(x)
    program = torch.export.export(model, (t,))
    buffer = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer
    path = workdir / "raw.pte"
    path.write_bytes(buffer)
    method = Runtime.get().load_program(path).load_method("forward")
    module = _load_for_executorch(str(path))
    return {"executorch Method.execute": lambda: method.execute([t]),
            "executorch forward(clone_outputs=False)": lambda: module.forward([t], clone_outputs=False)}


def onnxruntime_calls(model: nn.Module, x: np.ndarray, workdir: Path, threads: int) -> dict[str, Callable[[], object]]:
    import onnxruntime as ort

    path = workdir / "raw.onnx"
    torch.onnx.export(model, (torch.from_numpy(x),), dynamo=True, input_names=["x"], verbose=False).save(str(path))
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {"x": x}
    return {"onnxruntime InferenceSession.run": lambda: session.run(None, feeds)}


def litert_calls(model: nn.Module, x: np.ndarray, workdir: Path, threads: int) -> dict[str, Callable[[], object]]:
    import litert_torch
    from ai_edge_litert.interpreter import Interpreter

    path = workdir / "raw.tflite"
    litert_torch.convert(model, (torch.from_numpy(x),)).export(str(path))
    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    set_tensor, invoke, get_tensor = interpreter.set_tensor, interpreter.invoke, interpreter.get_tensor

    def call() -> np.ndarray:
        set_tensor(inp, x)
        invoke()
        return get_tensor(out)

    return {"litert set_tensor/invoke/get_tensor": call}


def raw_calls(model: nn.Module, x: np.ndarray, workdir: Path, threads: int,
              runtimes: tuple[str, ...] = ("executorch", "onnxruntime", "litert")) -> dict[str, Callable[[], object]]:
    """Direct fp32 calls of every runtime on ``x`` (batch 1), each from its own hand export."""
    model = model.eval()
    calls: dict[str, Callable[[], object]] = {}
    with torch.no_grad():
        if "executorch" in runtimes:
            calls.update(executorch_calls(model, x, workdir))
        if "onnxruntime" in runtimes:
            calls.update(onnxruntime_calls(model, x, workdir, threads))
        if "litert" in runtimes:
            calls.update(litert_calls(model, x, workdir, threads))
    return calls
