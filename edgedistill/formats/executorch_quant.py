"""How each quantization scheme prepares a model for ExecuTorch lowering (XNNPACK or Core ML delegate).

- ``fp16``: XNNPACK runs half-precision kernels when the graph itself is fp16, so the model is cast
  to half inside a wrapper that keeps float32 inputs and outputs (apps keep feeding float32).
  The Core ML delegate instead gets fp16 as its compute precision (see ``executorch.py``).
- ``int8``: pt2e static quantization calibrated on real inputs (XNNPACKQuantizer, or Core ML's
  quantizer for the Core ML delegate, after SmoothQuant-style outlier migration: ``shared_coreml``).
- ``int8-dynamic``: pt2e dynamic quantization (int8 weights per channel, activations quantized
  per call), XNNPACK only.

Weight-only int8/int4 are not offered: XNNPACK in ExecuTorch 1.4 has no weight-only kernels, so
the int weights are folded back to float32 at lowering (same file size, no speed-up) or fail to
find a kernel (``torchao::dequantize_affine``).
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from edgedistill.errors import UserError
from edgedistill.formats.base import calibrated, dynamic_shapes
from edgedistill.formats.schemes import require_calibration
from edgedistill.formats.shared_coreml import int8_quantizer, smoothed_for_int8
from edgedistill.formats.shared_masks import unquantize_masks


class HalfPrecision(nn.Module):
    """Runs ``model`` in float16 while taking and returning float32 tensors."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = copy.deepcopy(model).half()

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        cast = [x.half() if x.is_floating_point() else x for x in inputs]
        return self.model(*cast).float()


def _xnnpack_quantizer(config: Any) -> Any:
    """XNNPACKQuantizer with ``config`` globally, whose scalar-to-attribute step leaves integer arithmetic alone.

    The stock step turns every scalar operand of add/mul into a float32 constant, so the integer
    ``arange(kv_len) + 0`` of transformers' attention-mask code becomes float and then fails as an
    index ("tensors used as indices must be long ..."). Only floating-point add/mul are quantized,
    so only their scalars need to become tensors.
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer

    class FloatScalarsQuantizer(XNNPACKQuantizer):
        def transform_for_annotation(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            return float_scalars_to_attrs(model)

        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            annotate_conv_hardtanh(model, self.global_config, self.filter_fn)
            model = super().annotate(model)
            unquantize_masks(model)
            return model

    return FloatScalarsQuantizer().set_global(config)


def annotate_conv_hardtanh(model: torch.fx.GraphModule, config: Any, filter_fn: Any = None) -> None:
    """Annotate conv -> hardtanh (ReLU6, as in MobileNets) as one fused pattern, like the stock conv -> relu.

    The stock XNNPACKQuantizer fuses only ReLU into a convolution's output; a ReLU6 gets its own
    quantize/dequantize pair, so XNNPACK cannot fold the clamp into the convolution (its
    ``FuseActivationPass`` needs the clamp right after the op) and runs a separate int8 clamp with a
    requantization on every activation map. Annotated as one pattern, only the clamp's output is
    observed (a tighter [0, 6] range) and the lowered graph has one convolution with an output min/max.
    """
    if config is None or config.input_activation is None or config.input_activation.is_dynamic:
        return
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer_utils import (
        _is_annotated, _is_conv_node, _mark_nodes_as_annotated, get_bias_qspec, get_input_act_qspec,
        get_output_act_qspec, get_weight_qspec)
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    clamps = (torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default)
    for clamp in model.graph.nodes:
        if clamp.op != "call_function" or clamp.target not in clamps:
            continue
        conv = clamp.args[0]
        if not isinstance(conv, torch.fx.Node) or not _is_conv_node(conv) or len(conv.users) > 1:
            continue
        partition = [clamp, conv, conv.args[1]]
        qspecs = {conv.args[0]: get_input_act_qspec(config), conv.args[1]: get_weight_qspec(config)}
        bias = conv.args[2] if len(conv.args) > 2 else None
        if isinstance(bias, torch.fx.Node):
            qspecs[bias] = get_bias_qspec(config)
            partition.append(bias)
        if _is_annotated(partition) or (filter_fn and not all(filter_fn(n) for n in partition)):
            continue
        conv.meta["quantization_annotation"] = QuantizationAnnotation(input_qspec_map=qspecs, _annotated=True)
        clamp.meta["quantization_annotation"] = QuantizationAnnotation(
            output_qspec=get_output_act_qspec(config), _annotated=True)
        _mark_nodes_as_annotated(partition)


def float_scalars_to_attrs(model: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Scalar operands of floating-point add/mul become float32 constant attributes (so the quantizer can
    observe them); integer add/mul keep their scalars."""
    targets = (torch.ops.aten.add.Tensor, torch.ops.aten.mul.Tensor)
    count = 0
    for node in list(model.graph.nodes):
        value = node.meta.get("val")
        if node.op != "call_function" or node.target not in targets or not isinstance(value, torch.Tensor):
            continue
        if not value.dtype.is_floating_point:
            continue
        args = []
        for arg in node.args:
            if isinstance(arg, (int, float)) and not isinstance(arg, bool):
                while hasattr(model, f"_float_scalar_{count}"):
                    count += 1
                name, constant = f"_float_scalar_{count}", torch.tensor(float(arg))
                model.register_buffer(name, constant)
                with model.graph.inserting_before(node):
                    attr = model.graph.create_node("get_attr", name, (), {})
                attr.meta["val"] = value.fake_mode.from_tensor(constant, static_shapes=True)
                arg = attr
            args.append(arg)
        node.args = tuple(args)
    model.recompile()
    return model


def _keep_in_float(quantizer: Any, model: nn.Module, float_modules: Sequence[str]) -> None:
    unknown = sorted(set(float_modules) - {name for name, _ in model.named_modules()})
    if unknown:
        raise UserError(f"float_modules {', '.join(unknown)} are not submodules of the model")
    if float_modules:  # set_module_name(name, None) is "not supported yet" in executorch 1.4: filter instead
        from torchao.quantization.pt2e.quantizer.utils import get_module_name_filter

        in_float = [get_module_name_filter(name) for name in float_modules]
        quantizer.set_filter_function(lambda node: not any(f(node) for f in in_float))


def prepare(model: nn.Module, example_inputs: tuple[torch.Tensor, ...], *, scheme: str, backend: str,
            calibration: dict[str, np.ndarray] | None, dynamic_batch: bool, max_batch: int,
            float_modules: Sequence[str] = (), float_norms: Sequence[str] = ()) -> tuple[nn.Module, Any]:
    """The module to export for ``scheme`` on ``backend``, and its dynamic shapes.

    ``float_modules``: submodules kept in floating point under xnnpack int8 (accuracy-aware mixed precision);
    ``float_norms``: normalisation submodules always kept in float under int8 and int8-dynamic.
    """
    if float_modules and (scheme != "int8" or backend != "xnnpack"):
        raise UserError("float_modules applies to the int8 scheme on the xnnpack backend only")
    shapes = dynamic_shapes(example_inputs, dynamic_batch, max_batch)
    if scheme == "fp16" and backend == "xnnpack":
        return HalfPrecision(model), dynamic_shapes(example_inputs, dynamic_batch, max_batch, varargs=True)
    if scheme in ("int8", "int8-dynamic") and backend == "xnnpack":
        from edgedistill.formats.shared_int8_embeddings import with_int8_embeddings

        model = with_int8_embeddings(model)  # activation quantizers leave lookup tables in float32
    if scheme == "int8":
        require_calibration(scheme, calibration)
        if backend == "coreml":
            model = smoothed_for_int8(model, calibration)
            return calibrated(model, example_inputs, int8_quantizer(), calibration, shapes), shapes
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config

        quantizer = _xnnpack_quantizer(get_symmetric_quantization_config(is_per_channel=True))
        _keep_in_float(quantizer, model, [*float_modules, *float_norms])
        return calibrated(model, example_inputs, quantizer, calibration, shapes), shapes
    if scheme == "int8-dynamic":
        if backend != "xnnpack":
            raise UserError(f"executorch backend {backend} does not support int8-dynamic; use int8 or the xnnpack backend")
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config

        config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
        quantizer = _xnnpack_quantizer(config)
        _keep_in_float(quantizer, model, float_norms)
        return calibrated(model, example_inputs, quantizer, None, shapes), shapes
    return model, shapes
