"""ONNX ``.onnx``: ``torch.onnx.export(dynamo=True)``, quantized with ONNX Runtime, run in ONNX Runtime.

Graph inputs carry the Dataset's names (``options["input_names"]``) and share one dynamic batch
dimension. ``int8`` is ONNX Runtime static QDQ quantization (per-channel int8 weights, int8
activations calibrated on real inputs); ``int8-dynamic`` quantizes weights ahead of time and
activations at run time. The float export is done once per model and reused for every scheme.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from edgedistill.errors import UserError, require
from edgedistill.formats.base import (ConversionCache, ExportInfo, check_request, lowering_error,
                                      model_fingerprint)
from edgedistill.formats.shared_int8_embeddings import int8_embedding_names, with_int8_embeddings
from edgedistill.mixed_precision import check_float_modules, inside

NAME = "onnx"
SUFFIX = ".onnx"
EXTRA = "onnx"
BACKEND = "onnxruntime-cpu"
SCHEMES = ("fp32", "int8", "int8-dynamic")
FLOAT_MODULES = True  # export() honours options["float_modules"] under int8 (nodes_to_exclude)
MAX_BATCH = 1024
CALIBRATION_BATCH = 32
# int8 where the arithmetic is, plus the activations that follow it (a quantized Clip/Relu folds into
# the producer's output range, so a CNN's ReLU6 no longer sits between a DequantizeLinear and a
# QuantizeLinear: MobileNetV2-like on x86, int8 ÷ fp32 0.99 -> ~0.5); Add, softmax and norms stay
# float (as ExecuTorch's XNNPACK quantizer does): an attention mask of -1e4 added in int8 would wipe
# out the attention scores. A CNN-only target may add "Add" via [export.options.onnx] op_types.
STATIC_INT8_OPS = ("MatMul", "Gemm", "Conv", "Clip", "Relu")

log = logging.getLogger("edgedistill")
_float_exports = ConversionCache()
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
                "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
                "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


def missing() -> str | None:
    """None when ONNX export, quantization and ONNX Runtime work here, else the install hint."""
    try:
        for module in ("onnx", "onnxscript", "onnxruntime", "onnxruntime.quantization"):
            require(module, EXTRA, "ONNX")
    except UserError as exc:
        return str(exc)
    return None


def host_run_problem(options: dict | None = None) -> str | None:
    """None: every artifact of this format runs wherever its runtime installs."""
    return None


def _input_names(example_inputs: tuple[torch.Tensor, ...], options: dict) -> list[str]:
    names = list(options.get("input_names") or [f"input_{i}" for i in range(len(example_inputs))])
    if len(names) != len(example_inputs):
        raise UserError(f"format {NAME}: {len(names)} input names for {len(example_inputs)} model inputs")
    return names


def _export_float(model: nn.Module, example_inputs: tuple[torch.Tensor, ...], names: list[str],
                  dynamic_batch: bool, path: Path, int8_embeddings: tuple[str, ...] = ()) -> None:
    """Write the float ONNX graph to ``path`` (exported once per model, then reused by every scheme).

    ``int8_embeddings``: embedding tables the graph stores as int8 rows with a per-row scale (Gather of
    int8, Cast, Mul), which the quantizers leave alone; int8 and int8-dynamic then shrink the file about
    4x, not only their matmul weights."""
    source = model

    def export_float() -> bytes:
        model = with_int8_embeddings(source, keep_float=_others(source, int8_embeddings)) if int8_embeddings else source
        dynamic_shapes = None
        if dynamic_batch:
            batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
            dynamic_shapes = tuple({0: batch} for _ in example_inputs)
        try:
            program = torch.onnx.export(model, example_inputs, dynamo=True, input_names=names,
                                        output_names=["logits"], dynamic_shapes=dynamic_shapes, verbose=False)
        except Exception as exc:  # the exporter raises many types; all mean "cannot lower this model"
            raise lowering_error(NAME, exc) from None
        program.save(str(path))
        return Path(path).read_bytes()

    key = model_fingerprint(model, example_inputs, names, dynamic_batch, int8_embeddings)
    Path(path).write_bytes(_float_exports.get_or_make(key, export_float))


def _others(model: nn.Module, tables: tuple[str, ...]) -> tuple[str, ...]:
    """The embedding tables not in ``tables`` (what ``with_int8_embeddings`` keeps in float)."""
    return tuple(n for n in int8_embedding_names(model) if n not in tables)


def _calibration_reader(calibration: dict[str, np.ndarray], names: list[str], batch: int):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        """Feeds the calibration set to ONNX Runtime's calibrator, batch by batch, by input name."""

        def __init__(self) -> None:
            arrays = list(calibration.values())
            self._batches: Iterator[dict[str, np.ndarray]] = iter(
                [{n: a[i : i + batch] for n, a in zip(names, arrays)} for i in range(0, len(arrays[0]), batch)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    return Reader()


def export(model: nn.Module, example_inputs: tuple[torch.Tensor, ...], *, scheme: str, path: Path,
           calibration: dict[str, np.ndarray] | None = None, dynamic_batch: bool = True,
           options: dict | None = None) -> ExportInfo:
    """Export ``model`` to ONNX at ``path``, quantized per ``scheme`` with ONNX Runtime."""
    for module in ("onnx", "onnxscript", "onnxruntime.quantization"):
        require(module, EXTRA, "ONNX")
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    check_request(NAME, SCHEMES, scheme, calibration)
    options = dict(options or {})
    names = _input_names(example_inputs, options)
    float_modules = check_float_modules(model, options.get("float_modules", ()))
    if float_modules and scheme != "int8":
        raise UserError("format onnx: float_modules applies to the int8 scheme only")
    model = model.eval()
    if not dynamic_batch:  # a fixed batch of 1, so max_batch=1 in the manifest is the truth
        example_inputs = tuple(t[:1] for t in example_inputs)
    path = Path(path)
    float_path = path.with_name(path.stem + ".float.onnx") if scheme != "fp32" else path
    with torch.no_grad():
        _export_float(model, example_inputs, names, dynamic_batch, float_path,
                      int8_embedding_names(model, keep_float=float_modules) if scheme != "fp32" else ())
    try:
        if scheme == "int8":
            reader = _calibration_reader(calibration, names, CALIBRATION_BATCH if dynamic_batch else 1)
            # reduce_range (7-bit weights) avoids the int16 saturation of x86 AVX2 int8 kernels, which
            # cost 1-2 points of top-1 agreement on the digits student; set it False for ARM-only models
            quantize_static(float_path, path, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=bool(options.get("reduce_range", True)),
                            nodes_to_exclude=nodes_in_modules(float_path, float_modules),
                            op_types_to_quantize=list(options.get("op_types", STATIC_INT8_OPS)),
                            activation_type=_activation_type(options), weight_type=QuantType.QInt8)
        elif scheme == "int8-dynamic":
            quantize_dynamic(float_path, path, weight_type=QuantType.QInt8,
                             reduce_range=bool(options.get("reduce_range", True)))
    finally:
        if float_path != path:
            float_path.unlink(missing_ok=True)
    return ExportInfo(path=path, backend_version=_version(), dynamic_batch=dynamic_batch,
                      details={"input_names": names, "op_types": _op_types(path)})


ACTIVATION_TYPES = ("int8", "uint8")


def _activation_type(options: dict):
    """int8 activations (default; what ARM's int8 kernels want) or uint8 (``activation_type = "uint8"``):
    on x86 ONNX Runtime runs QDQ convolutions with uint8 activations far faster (u8s8 VNNI/AVX2 kernels)."""
    from onnxruntime.quantization import QuantType

    kind = str(options.get("activation_type", "int8"))
    if kind not in ACTIVATION_TYPES:
        raise UserError(f"[export.options.onnx] activation_type must be one of {', '.join(ACTIVATION_TYPES)}, got {kind!r}")
    return QuantType.QUInt8 if kind == "uint8" else QuantType.QInt8


def module_scopes(node) -> list[str]:
    """The student module paths a node of a dynamo-exported graph was traced in (outermost first)."""
    import ast

    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            return [s for s in ast.literal_eval(prop.value) if s]
    return []


def nodes_in_modules(path: Path, modules: tuple[str, ...]) -> list[str]:
    """Names of the nodes traced inside any of ``modules`` (what ``quantize_static`` keeps in float)."""
    import onnx

    if not modules:
        return []
    graph = onnx.load(str(path), load_external_data=False).graph
    return [n.name for n in graph.node if any(inside(s, modules) for s in module_scopes(n))]


def _op_types(path: Path) -> dict[str, int]:
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def _version() -> str:
    from importlib.metadata import version

    return version("onnxruntime")


class OnnxRunner:
    """Runs an .onnx in ONNX Runtime (CPU), feeding inputs by graph name with the graph's dtypes.

    Threads are set, not left to ONNX Runtime's defaults: those use every core and spin-wait after
    each run, which slows whatever runs next in the process (the next runner, the teacher, a timer).
    """

    def __init__(self, path: Path, max_batch: int | None = None, threads: int = 1):
        ort = require("onnxruntime", EXTRA, "ONNX Runtime")
        self.max_batch = max_batch
        self._session = _session(ort, path, threads)
        # what the session was built with, read back from it (not what was asked)
        self.threads = int(self._session.get_session_options().intra_op_num_threads)
        self.inputs = [(i.name, _NUMPY_TYPES.get(i.type, np.float32)) for i in self._session.get_inputs()]
        self._outputs = [self._session.get_outputs()[0].name]
        self._run = self._session.run

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        if len(inputs) != len(self.inputs):
            raise UserError(f"the ONNX model takes {len(self.inputs)} inputs "
                            f"({', '.join(n for n, _ in self.inputs)}), got {len(inputs)}")
        feeds = {name: np.ascontiguousarray(x, dtype=dtype) for (name, dtype), x in zip(self.inputs, inputs)}
        return self._run(self._outputs, feeds)[0]


def _session(ort, path: Path, threads: int):
    """An InferenceSession on ``threads`` intra-op threads, sequential, without spin-waiting."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only; warnings are noise in a report
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph types for a bad file
        raise UserError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0][:200]}") from None


def load(path: Path, max_batch: int | None = None, threads: int = 1) -> OnnxRunner:
    """Load an .onnx for host inference with ONNX Runtime on ``threads`` intra-op threads (one inter-op)."""
    return OnnxRunner(path, max_batch, threads)
