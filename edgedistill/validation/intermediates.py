"""Intermediate activations of an artifact in its real runtime, by the student's module names.

- ONNX: the dynamo exporter records each node's module path (``pkg.torch.onnx.name_scopes``); the
  output of the last node traced inside a module becomes an extra graph output.
- LiteRT: the Interpreter keeps every tensor (``experimental_preserve_all_tensors``); litert-torch
  writes the module path into tensor names (``pkg.Net/...Sequential_layer2/pkg.Block_1/...``); the
  output of the last op whose own scope lies inside a module is read and dequantized.
ExecuTorch (XNNPACK runs the whole graph as one delegate: no intermediates come out of it) and Core ML
(no runtime here) have none: their localization rests on the sensitivity sweep.

A module with no tensor of its own (e.g. a conv fused with the ReLU after it) is simply not observed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedistill.data import Inputs
from edgedistill.mixed_precision import inside

FORMATS = ("onnx", "litert")


def reference(model: nn.Module, names: list[str], inputs: Inputs) -> dict[str, np.ndarray]:
    """Outputs of the named submodules of the fp32 ``model`` (forward hooks), keyed by name."""
    seen: dict[str, np.ndarray] = {}
    modules = dict(model.named_modules())
    hooks = [modules[n].register_forward_hook(
        lambda _m, _i, out, n=n: seen.__setitem__(n, (out[0] if isinstance(out, tuple) else out).detach().numpy()))
        for n in names]
    try:
        with torch.no_grad():
            model.eval()(*(torch.as_tensor(v) for v in inputs.values()))
    finally:
        for h in hooks:
            h.remove()
    return seen


def runtime(fmt: str, path: Path, model: nn.Module, names: list[str], inputs: Inputs) -> dict[str, np.ndarray]:
    """Outputs of the named modules inside the artifact at ``path``, run in its runtime ({} where none)."""
    if fmt == "onnx":
        return _onnx(path, names, inputs)
    if fmt == "litert":
        return _litert(path, model, names, inputs)
    return {}


def _onnx(path: Path, names: list[str], inputs: Inputs) -> dict[str, np.ndarray]:
    import onnx
    import onnxruntime as ort

    from edgedistill.formats.onnx import module_scopes

    graph_model = onnx.load(str(path))
    tensors: dict[str, str] = {}
    for node in graph_model.graph.node:  # graph order is topological: the last node inside a module is its output
        scopes = module_scopes(node)
        for name in names:
            if any(inside(s, [name]) for s in scopes) and node.output:
                tensors[name] = node.output[0]
    existing = {o.name for o in graph_model.graph.output}
    for tensor in dict.fromkeys(tensors.values()):
        if tensor not in existing:
            graph_model.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(graph_model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    wanted, graph_inputs, arrays = list(dict.fromkeys(tensors.values())), session.get_inputs(), list(inputs.values())
    fixed = graph_inputs[0].shape[0]
    step = fixed if isinstance(fixed, int) else 256  # a graph exported with a fixed batch takes exactly that
    parts = [session.run(wanted, {i.name: np.asarray(a[s : s + step]) for i, a in zip(graph_inputs, arrays)})
             for s in range(0, len(arrays[0]), step)]
    values = {t: np.concatenate([p[k] for p in parts]) for k, t in enumerate(wanted)}
    return {name: values[t] for name, t in tensors.items()}


def _litert(path: Path, model: nn.Module, names: list[str], inputs: Inputs) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    from edgedistill.formats.litert import scope_pattern

    interpreter = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    tensors: dict[str, int] = {}
    patterns = {name: re.compile(scope_pattern(model, name)) for name in names}
    for op in interpreter._get_ops_details():  # execution order
        for index in op["outputs"]:
            own = details[index]["name"].split(";")[0]  # a fused op's first scope is the op that produced it
            for name, pattern in patterns.items():
                if pattern.match(own):
                    tensors[name] = index
    feeds = sorted(interpreter.get_input_details(),  # argument order: args_0, args_1, ..., args_10
                   key=lambda d: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", d["name"])])
    arrays = list(inputs.values())
    collected: dict[str, list[np.ndarray]] = {name: [] for name in tensors}
    for i in range(len(arrays[0])):
        for detail, a in zip(feeds, arrays):
            interpreter.set_tensor(detail["index"], _quantized(a[i : i + 1], detail))
        interpreter.invoke()
        for name, index in tensors.items():
            collected[name].append(_dequantized(interpreter.get_tensor(index), details[index]))
    return {name: np.concatenate(parts) for name, parts in collected.items()}


def _quantized(x: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    if scale and np.issubdtype(detail["dtype"], np.integer) and np.issubdtype(x.dtype, np.floating):
        return np.clip(np.round(x / scale) + zero, -128, 127).astype(detail["dtype"])
    return x.astype(detail["dtype"])


def _dequantized(y: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    if scale and np.issubdtype(y.dtype, np.integer):
        return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)


def aligned(fmt: str, reference_value: np.ndarray, runtime_value: np.ndarray) -> np.ndarray | None:
    """The runtime tensor in the reference's layout, or None when it is not the same tensor.

    LiteRT keeps images NHWC whatever their shape (an 8x8x8 map looks the same either way)."""
    if fmt == "litert" and runtime_value.ndim == 4:
        runtime_value = runtime_value.transpose(0, 3, 1, 2)
    if runtime_value.size != reference_value.size:
        return None
    return runtime_value.reshape(reference_value.shape)
