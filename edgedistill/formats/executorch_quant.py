"""How each quantization scheme prepares a model for ExecuTorch lowering (XNNPACK or Core ML delegate).

- ``fp16``: XNNPACK runs half-precision kernels when the graph itself is fp16, so the model is cast
  to half inside a wrapper that keeps float32 inputs and outputs (apps keep feeding float32).
  The Core ML delegate instead gets fp16 as its compute precision (see ``executorch.py``).
- ``int8``: pt2e static quantization calibrated on real inputs (XNNPACKQuantizer, or Core ML's
  quantizer for the Core ML delegate).
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
from edgedistill.formats.shared_coreml import int8_quantizer


class HalfPrecision(nn.Module):
    """Runs ``model`` in float16 while taking and returning float32 tensors."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = copy.deepcopy(model).half()

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        cast = [x.half() if x.is_floating_point() else x for x in inputs]
        return self.model(*cast).float()


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
            float_modules: Sequence[str] = ()) -> tuple[nn.Module, Any]:
    """The module to export for ``scheme`` on ``backend``, and its dynamic shapes.

    ``float_modules``: submodules kept in floating point under xnnpack int8 (accuracy-aware mixed precision).
    """
    if float_modules and (scheme != "int8" or backend != "xnnpack"):
        raise UserError("float_modules applies to the int8 scheme on the xnnpack backend only")
    shapes = dynamic_shapes(example_inputs, dynamic_batch, max_batch)
    if scheme == "fp16" and backend == "xnnpack":
        return HalfPrecision(model), dynamic_shapes(example_inputs, dynamic_batch, max_batch, varargs=True)
    if scheme == "int8":
        require_calibration(scheme, calibration)
        if backend == "coreml":
            return calibrated(model, example_inputs, int8_quantizer(), calibration, shapes), shapes
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer, get_symmetric_quantization_config)

        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        _keep_in_float(quantizer, model, float_modules)
        return calibrated(model, example_inputs, quantizer, calibration, shapes), shapes
    if scheme == "int8-dynamic":
        if backend != "xnnpack":
            raise UserError(f"executorch backend {backend} does not support int8-dynamic; use int8 or the xnnpack backend")
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer, get_symmetric_quantization_config)

        config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
        return calibrated(model, example_inputs, XNNPACKQuantizer().set_global(config), None, shapes), shapes
    return model, shapes
