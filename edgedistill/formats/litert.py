"""LiteRT ``.tflite``: ``litert_torch.convert``, quantized with ai-edge-quantizer, run in the LiteRT Interpreter.

litert-torch 0.10 cannot lower a dynamic batch dimension (its JAX-bridged lowerings need concrete
shapes), so the model is converted with a fixed batch of 1 and ``ExportInfo.dynamic_batch`` is
False: callers run it one sample at a time. Quantization works on the float .tflite:
``int8-dynamic`` (int8 weights, activations quantized at run time, float I/O), ``int8`` (static
int8 from a calibration set; option ``int8_io`` makes the input/output tensors int8 too, default
float I/O), ``fp16`` (fp16 weights). Token ids and other integer inputs are never quantized; the
converter narrows int64 inputs to int32 and the runner casts to whatever the model declares.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedistill.errors import UserError, require
from edgedistill.formats.base import (ConversionCache, ExportInfo, check_request, lowering_error,
                                      model_fingerprint)
from edgedistill.formats.shared_int8_embeddings import int8_embedding_names, with_int8_embeddings
from edgedistill.mixed_precision import check_float_modules

NAME = "litert"
SUFFIX = ".tflite"
EXTRA = "litert"
BACKEND = "litert-cpu"
SCHEMES = ("fp32", "fp16", "int8", "int8-dynamic")
MAX_BATCH = 1  # litert-torch cannot lower a dynamic batch: every .tflite has a fixed batch of 1
FLOAT_MODULES = True  # export() honours options["float_modules"] under int8 (ai-edge-quantizer per-scope config)
STATIC_INT8_OPS = ("FULLY_CONNECTED", "BATCH_MATMUL", "CONV_2D", "DEPTHWISE_CONV_2D")

_float_models = ConversionCache()


def missing() -> str | None:
    """None when litert-torch, ai-edge-quantizer and the LiteRT interpreter are installed, else the hint."""
    try:
        for module in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert.interpreter"):
            require(module, EXTRA, "LiteRT")
    except UserError as exc:
        return str(exc)
    return None


def host_run_problem(options: dict | None = None) -> str | None:
    """None: every artifact of this format runs wherever its runtime installs."""
    return None


def _convert_float(model: nn.Module, example_inputs: tuple[torch.Tensor, ...],
                   int8_embeddings: tuple[str, ...] = ()) -> bytes:
    """The float .tflite bytes (converted once per model, then reused by every scheme).

    ``int8_embeddings``: embedding tables stored as int8 rows with a per-row scale (GATHER of int8, CAST,
    MUL), which ai-edge-quantizer leaves alone (it quantizes matmuls), so an int8 file shrinks about 4x,
    not only its matmul weights."""
    def convert() -> bytes:
        litert_torch = require("litert_torch", EXTRA, "LiteRT")
        keep = tuple(n for n in int8_embedding_names(model) if n not in int8_embeddings)
        converted = with_int8_embeddings(model, keep_float=keep) if int8_embeddings else model
        try:
            return litert_torch.convert(converted, example_inputs).model_content()
        except Exception as exc:  # lowering raises RuntimeError/TypeError/AssertionError; all mean "cannot lower"
            raise lowering_error(NAME, exc) from None

    return _float_models.get_or_make(model_fingerprint(model, example_inputs, int8_embeddings), convert)


def module_scope(model: nn.Module, name: str) -> str:
    """The scope litert-torch writes into tensor names for submodule ``name``:
    ``pkg.Net/torch.nn.modules.container.Sequential_layer1/pkg.Block_0``, one ``Class_attr`` per level."""
    parts, module = [f"{type(model).__module__}.{type(model).__qualname__}"], model
    for attr in name.split(".") if name else []:
        module = getattr(module, attr) if not attr.isdigit() else module[int(attr)]
        if not isinstance(module, (nn.ModuleList, nn.ModuleDict)):  # never called, so never a scope of its own
            parts.append(f"{type(module).__module__}.{type(module).__qualname__}_{attr}")
    return "/".join(parts)


def scope_pattern(model: nn.Module, name: str) -> str:
    """A regex matching tensor scopes inside submodule ``name`` (``Block_1`` must not match ``Block_10``)."""
    return re.escape(module_scope(model, name)) + r"(?=[/;]|$)"


def _quantize(content: bytes, scheme: str, calibration: dict[str, np.ndarray] | None, int8_io: bool,
              float_patterns: tuple[str, ...] = ()) -> bytes:
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName

    q = quantizer.Quantizer(bytearray(content))
    calibration_result = None
    if scheme == "int8-dynamic":
        q.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    elif scheme == "fp16":
        q.add_weight_only_config(regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED, num_bits=16,
                                 algorithm_key=AlgorithmName.FLOAT_CASTING)
    else:
        # int8 where the arithmetic is (matmuls, convs); element-wise ops, softmax and norms stay float,
        # as in ExecuTorch's XNNPACK quantizer: an attention mask of -1e4 would otherwise swamp an int8 range
        for op in (*STATIC_INT8_OPS, *(("INPUT", "OUTPUT") if int8_io else ())):
            q.add_static_config(regex=".*", operation_name=TFLOperationName[op], activation_num_bits=8, weight_num_bits=8)
        for pattern in float_patterns:  # the latest matching config wins: these ops stay float
            q.update_quantization_recipe(regex=pattern, operation_name=TFLOperationName.ALL_SUPPORTED,
                                         algorithm_key=AlgorithmName.NO_QUANTIZE)
        calibration_result = _calibrate(q, content, calibration)
    return bytes(q.quantize(calibration_result, enable_progress_report=False).quantized_model)


def _calibrate(q, content: bytes, calibration: dict[str, np.ndarray]) -> dict:
    """Min/max of every tensor over the whole calibration set.

    ``Quantizer.calibrate`` keeps a moving average of per-sample ranges, which with one sample per
    invoke clips the largest logits (11.5 came back as 6.4 on the digits student); the true range does not.
    """
    from ai_edge_quantizer import calibrator

    key, runner = _signature_runner(content)
    calib = calibrator.Calibrator(content, num_threads=1, qsv_update_func=_running_min_max)
    calib.calibrate({key: _calibration_samples(runner, calibration)}, q._recipe_manager)
    return calib.get_model_qsvs()


def _running_min_max(qsv: dict, new: dict) -> dict:
    if not qsv:
        return new
    return {**new, "min": np.minimum(qsv["min"], new["min"]), "max": np.maximum(qsv["max"], new["max"])}


def _signature_runner(content: bytes):
    """(signature key, signature runner) of a .tflite held in memory."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    key = next(iter(interpreter.get_signature_list()))
    return key, interpreter.get_signature_runner(key)


def _calibration_samples(runner, calibration: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """One sample per entry (the model has batch 1), keyed and typed as the float model's inputs."""
    details = runner.get_input_details()
    arrays = list(calibration.values())
    return [{n: a[i : i + 1].astype(details[n]["dtype"]) for n, a in zip(_ordered(details), arrays)}
            for i in range(len(arrays[0]))]


def _io_dtypes(content: bytes, names: list[str]) -> dict[str, object]:
    """The dtypes the .tflite really takes and returns (int64 token ids become int32; int8 with int8 I/O)."""
    _, runner = _signature_runner(content)
    inputs = runner.get_input_details()
    output = next(iter(runner.get_output_details().values()))
    return {"input_dtypes": {name: np.dtype(inputs[key]["dtype"]).name for name, key in zip(names, _ordered(inputs))},
            "output_dtype": np.dtype(output["dtype"]).name}


def _ordered(details: dict[str, dict]) -> list[str]:
    """Signature input names in the model's argument order (``args_0``, ``args_1``, ... ``args_10``)."""
    return sorted(details, key=lambda n: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", n)])


def export(model: nn.Module, example_inputs: tuple[torch.Tensor, ...], *, scheme: str, path: Path,
           calibration: dict[str, np.ndarray] | None = None, dynamic_batch: bool = True,
           options: dict | None = None) -> ExportInfo:
    """Convert ``model`` to a .tflite at ``path`` (batch 1), quantized per ``scheme``.

    ``options``: ``int8_io`` (bool, default False) gives the ``int8`` scheme int8 input/output tensors.
    """
    for module in ("litert_torch", "ai_edge_quantizer"):
        require(module, EXTRA, "LiteRT")
    check_request(NAME, SCHEMES, scheme, calibration)
    options = dict(options or {})
    int8_io = bool(options.get("int8_io", False))
    model = model.eval()
    float_modules = check_float_modules(model, options.get("float_modules", ()))
    if float_modules and scheme != "int8":
        raise UserError("format litert: float_modules applies to the int8 scheme only")
    with torch.no_grad():
        content = _convert_float(model, tuple(t[:1] for t in example_inputs),
                                 int8_embedding_names(model, keep_float=float_modules)
                                 if scheme in ("int8", "int8-dynamic") else ())
    if scheme != "fp32":
        content = _quantize(content, scheme, calibration, int8_io,
                            tuple(scope_pattern(model, name) for name in float_modules))
    Path(path).write_bytes(content)
    names = options.get("input_names") or [f"input_{i}" for i in range(len(example_inputs))]
    return ExportInfo(path=Path(path), backend_version=_version(), dynamic_batch=False,
                      details={"int8_io": int8_io and scheme == "int8", **_io_dtypes(content, names),
                               "batch": "fixed at 1: litert-torch cannot lower a dynamic batch dimension"})


def _version() -> str:
    from importlib.metadata import version

    return version("ai-edge-litert")


class TfliteRunner:
    """Runs a .tflite in the LiteRT Interpreter (XNNPACK on CPU), one sample per invoke when the
    model's batch is fixed; quantized inputs/outputs are (de)quantized with the tensor's own scale and zero point.

    The call path is LiteRT's own floor: tensor indices are looked up once, and a sample that already
    has the model's dtype and shape goes straight to ``set_tensor``/``invoke``/``get_tensor``.
    """

    def __init__(self, path: Path, max_batch: int | None = 1, threads: int = 1):
        interpreter = require("ai_edge_litert.interpreter", EXTRA, "LiteRT")
        self.max_batch, self.threads = max_batch, threads
        try:
            self._interpreter = interpreter.Interpreter(model_path=str(path), num_threads=threads)
            self._interpreter.allocate_tensors()  # before the signature runner takes views of the tensors
            self._runner = self._interpreter.get_signature_runner()
        except Exception as exc:  # the interpreter raises ValueError/RuntimeError for a bad file
            raise UserError(f"LiteRT cannot load {path}: {str(exc).splitlines()[0][:200]}") from None
        details = self._runner.get_input_details()
        self.inputs = [(name, details[name]) for name in _ordered(details)]
        outputs = self._runner.get_output_details()
        self._output_name, self.output = next(iter(outputs.items()))
        self._batch = int(self.inputs[0][1]["shape"][0])
        # the signature's tensor indices are the interpreter's when the model has one subgraph: then the
        # interpreter is driven directly (LiteRT refuses invoke() while a signature runner holds its tensors)
        plain = {d["index"] for d in self._interpreter.get_input_details()}
        self._by_index = plain == {d["index"] for _, d in self.inputs}
        if self._by_index:
            self._runner = None
            self._set, self._invoke_raw = self._interpreter.set_tensor, self._interpreter.invoke
            self._get, self._out_index = self._interpreter.get_tensor, self.output["index"]
        self._fast = [(d["index"], np.dtype(d["dtype"]), tuple(int(v) for v in d["shape"])) for _, d in self.inputs] \
            if self._by_index and np.dtype(self.output["dtype"]) == np.float32 \
            and not any(_quantized(d) for _, d in self.inputs) else None
        self._single = self._fast[0][0] if self._fast is not None and len(self._fast) == 1 else None

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        # the common case (one input already in the model's dtype and shape) costs a handful of
        # attribute reads on top of LiteRT's own set_tensor/invoke/get_tensor
        if self._single is not None and len(inputs) == 1:
            try:
                self._set(self._single, inputs[0])  # copies; LiteRT itself rejects another dtype or shape
            except ValueError:  # e.g. float64, or a batch of several: the general path converts and splits
                pass
            else:
                self._invoke_raw()
                return self._get(self._out_index)  # get_tensor returns a copy
        fast = self._fast
        if fast is not None and len(inputs) == len(fast) and all(
                x.dtype == dtype and x.shape == shape for x, (_, dtype, shape) in zip(inputs, fast)):
            for x, (index, _, _) in zip(inputs, fast):
                self._set(index, x)
            self._invoke_raw()
            return self._get(self._out_index)
        if len(inputs) != len(self.inputs):
            raise UserError(f"the LiteRT model takes {len(self.inputs)} inputs, got {len(inputs)}")
        n, step = len(inputs[0]), self._batch
        if n % step:
            raise UserError(f"the LiteRT model has a fixed batch of {step}; got {n} samples")
        return np.concatenate([self._invoke([x[i : i + step] for x in inputs]) for i in range(0, n, step)])

    def _invoke(self, inputs: list[np.ndarray]) -> np.ndarray:
        if self._runner is not None:
            feeds = {name: _to_tensor(x, detail) for (name, detail), x in zip(self.inputs, inputs)}
            return _from_tensor(self._runner(**feeds)[self._output_name], self.output)
        for (_, detail), x in zip(self.inputs, inputs):
            self._set(detail["index"], _to_tensor(x, detail))
        self._invoke_raw()
        return _from_tensor(self._get(self._out_index), self.output)


def _quantized(detail: dict) -> bool:
    scale, _ = detail["quantization"]
    return bool(scale) and np.issubdtype(detail["dtype"], np.integer)


def _to_tensor(x: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    dtype = detail["dtype"]
    if scale and np.issubdtype(dtype, np.integer) and np.issubdtype(x.dtype, np.floating):
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)
    return np.ascontiguousarray(x, dtype=dtype)


def _from_tensor(y: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if scale and np.issubdtype(y.dtype, np.integer):
        return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return y.astype(np.float32, copy=False)


def load(path: Path, max_batch: int | None = 1, threads: int = 1) -> TfliteRunner:
    """Load a .tflite for host inference in the LiteRT Interpreter on ``threads`` threads."""
    return TfliteRunner(path, max_batch, threads)
