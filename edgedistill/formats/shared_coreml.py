"""Core ML pieces shared by the ``coreml`` format and the ExecuTorch Core ML delegate (``executorch``
with ``backend = "coreml"``): the compile options both accept, the SmoothQuant-style outlier migration
both apply before int8 (``smoothed_for_int8``), and the pt2e int8 quantizer both use (which never
observes integer tensors: token ids and masks stay integers; nor the attention-mask path; nor the
float input of a smoothing multiply).
"""

from __future__ import annotations

import copy
import importlib
from typing import Any

import torch

from edgedistill.errors import UserError, require
from edgedistill.formats.graph_rewrites import IntegerSafeQuantizer

OPTIONS = ("minimum_deployment_target", "compute_precision", "compute_units", "weight_threshold")


def _enum(kind: Any, value: str, key: str) -> Any:
    if value not in kind.__members__:
        raise UserError(f"coreml option {key} = {value!r} is unknown; use one of {', '.join(kind.__members__)}")
    return kind[value]


def compile_options(options: dict[str, Any], scheme: str) -> tuple[Any, Any, Any]:
    """(deployment target, compute precision, compute units) as coremltools enums, from options and scheme."""
    import coremltools as ct

    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise UserError(f"unknown coreml option(s) {', '.join(sorted(unknown))}; known: {', '.join(OPTIONS)}")
    target = _enum(ct.target, str(options.get("minimum_deployment_target", "iOS17")), "minimum_deployment_target")
    wanted = {"fp32": "fp32", "fp16": "fp16"}.get(scheme)
    precision = str(options.get("compute_precision", wanted or "fp16"))
    if precision not in ("fp16", "fp32") or (wanted and precision != wanted):
        raise UserError(f"coreml compute_precision {precision!r} does not fit scheme {scheme} (use fp16 or fp32)")
    if scheme == "int8" and target < ct.target.iOS17:
        raise UserError("coreml int8 activation quantization needs minimum_deployment_target iOS17 or later")
    units = _enum(ct.ComputeUnit, str(options.get("compute_units", "ALL")), "compute_units")
    return target, ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16, units


class MaskSafeQuantizer(IntegerSafeQuantizer):
    """``IntegerSafeQuantizer`` that also keeps the attention-mask path in float (``unquantize_masks``).

    CoreMLQuantizer annotates every ``add`` and ``mul``, so a Hugging Face encoder's additive mask
    ``(1 - mask) * -1e4`` and ``scores + mask`` got uint8 outputs: one per-tensor scale over [-1e4, max
    score] has a step of ~80, every unmasked score rounds to the same value, and attention becomes a
    plain average (pretrained MiniLM, pt2e program in PyTorch, 200 held-out texts: top-1 against the fp32
    student 0.545 with the mask quantized, 0.685 without; the rest is per-tensor uint8's own loss).

    The per-channel multiply of a ``shared_smoothing.SmoothedLinear`` keeps a float input too: it reads
    the LayerNorm output whose outlier range it removes before the (quantized) Linear input."""

    def annotate(self, model: Any) -> Any:
        from edgedistill.formats.shared_masks import unquantize_masks  # the rule XNNPACK's int8 uses
        from edgedistill.formats.shared_smoothing import float_smoothing_inputs

        model = super().annotate(model)
        unquantize_masks(model)
        float_smoothing_inputs(model)
        return model


def _pattern_key(pattern: Any, example_inputs: tuple[Any, ...], is_cuda: bool) -> tuple | None:
    """What a CoreMLQuantizer pattern graph depends on: the pattern's code, the values its closure captured
    (ops, activation functions, flags), the example inputs' shapes and dtypes. None when unhashable."""
    forward = getattr(type(pattern), "forward", None)
    code = getattr(forward, "__code__", None)
    if code is None:
        return None
    try:
        captured = tuple(cell.cell_contents for cell in forward.__closure__ or ())
        shapes = tuple((tuple(x.shape), x.dtype) if isinstance(x, torch.Tensor) else x for x in example_inputs)
        key = (code, captured, shapes, bool(is_cuda))
        hash(key)
    except (TypeError, ValueError):  # an empty cell, or an unhashable capture: trace it as before
        return None
    return key


def memoize_coreml_patterns() -> bool:
    """Trace each of CoreMLQuantizer's ~400 pattern graphs once per process, not once per ``annotate``.

    Its ``annotate`` re-traces every pattern with ``torch.export`` (strict) on each call: ~100 s of CPU
    whatever the model, so a Core ML int8 sensitivity sweep of N probes cost N × 100 s. The pattern graphs
    depend only on the pattern (``_pattern_key``); each caller gets its own deep copy, since the matcher
    rewrites the graph it is given. True when installed (False where ExecuTorch's private helper moved:
    then every call traces, as before)."""
    try:
        utils = importlib.import_module("executorch.backends.apple.coreml.quantizer._coreml_quantizer_utils")
    except ImportError:
        return False
    original = getattr(utils, "_get_aten_graph_module", None)
    if original is None:
        return False
    if getattr(original, "edgedistill_memo", None) is not None:
        return True
    memo: dict[tuple, torch.fx.GraphModule] = {}

    def traced(pattern: Any, example_inputs: tuple[Any, ...], is_cuda: bool = False) -> torch.fx.GraphModule:
        key = _pattern_key(pattern, example_inputs, is_cuda)
        if key is None:
            return original(pattern, example_inputs, is_cuda)
        if key not in memo:
            memo[key] = original(pattern, example_inputs, is_cuda)
        return copy.deepcopy(memo[key])

    traced.edgedistill_memo = memo
    utils._get_aten_graph_module = traced
    return True
SMOOTHING_ALPHA = 0.5  # SmoothQuant's default; measured on the pretrained MiniLM (docs/formats-coreml-executorch.md)


def smoothed_for_int8(model: torch.nn.Module, calibration: dict[str, Any] | None,
                      float_modules: tuple[str, ...] = ()) -> torch.nn.Module:
    """``model`` with its LayerNorm -> Linear activation outliers migrated into the weights before Core ML
    int8 (``shared_smoothing.smooth``, alpha ``SMOOTHING_ALPHA``, from the calibration set's activations);
    the model itself when it has no LayerNorm feeding a Linear or there is no calibration set.

    Pretrained MiniLM, packages in the Core ML reference evaluator (benchmarks/coreml_int8_smoothing.py):
    topic classifier, 100 held-out sentences, top-1 / max |dp| 0.99 / 0.58 without, 1.00 / 0.14 with (within
    the int8 tolerance); the random-head test student 0.705 -> 0.66 top-1 (outside it either way: its loss
    is in the residual adds). Linears in ``float_modules`` are left alone."""
    from edgedistill.formats.base import calibration_batches
    from edgedistill.formats.shared_smoothing import smooth

    if not calibration or not any(isinstance(m, torch.nn.LayerNorm) for m in model.modules()):
        return model
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    skip = [n for n in names if any(n == f or n.startswith(f + ".") for f in float_modules)]
    return smooth(model, calibration_batches(calibration, 32), SMOOTHING_ALPHA, skip)[0]


def int8_quantizer(float_modules: tuple[str, ...] = ()) -> Any:
    """Core ML's pt2e quantizer: int8 per-channel symmetric weights, uint8 activations (iOS 17+);
    ``float_modules`` get no config, so they stay float (mixed precision). Integer tensors, the
    attention-mask path and the input of ``SmoothedLinear``'s multiply are never quantized (``MaskSafeQuantizer``)."""
    import coremltools as ct

    # coremltools' own copy targets the retired torch.ao pt2e; ExecuTorch's works with torchao's
    CoreMLQuantizer = require("executorch.backends.apple.coreml.quantizer", "executorch",
                              "ExecuTorch (Core ML int8 uses its CoreMLQuantizer)").CoreMLQuantizer
    memoize_coreml_patterns()
    config = ct.optimize.torch.quantization.LinearQuantizerConfig(
        global_config=ct.optimize.torch.quantization.ModuleLinearQuantizerConfig(
            quantization_scheme="symmetric", activation_dtype=torch.quint8, weight_dtype=torch.qint8,
            weight_per_channel=True),
        module_name_configs={name: None for name in float_modules})
    return MaskSafeQuantizer(CoreMLQuantizer(config))
