"""Rewrites of exported PyTorch programs that converters need, shared by any format (not a format).

- ``fp16_safe_constants``: float literals beyond fp16's range clamped before an fp16 conversion;
- ``IntegerSafeQuantizer``: a pt2e quantizer wrapper that never observes integer tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


FP16_SAFE = float(np.finfo(np.float16).max) / 2


def fp16_safe_constants(program: Any) -> int:
    """Clamp float literals beyond fp16's range (attention masks fill with ``finfo(float32).min``) to
    ±``FP16_SAFE``, in place; returns how many changed. Cast to fp16 they would become ±inf, and an
    all-masked softmax row then gives NaN; half of fp16's max leaves room to add scores without overflow."""
    changed = 0

    def clamp(value: Any) -> Any:
        nonlocal changed
        if isinstance(value, float) and np.isfinite(value) and abs(value) > float(np.finfo(np.float16).max):
            changed += 1
            return float(np.sign(value)) * FP16_SAFE
        return value

    for node in program.graph.nodes:
        node.args = tuple(clamp(a) for a in node.args)
        node.kwargs = {k: clamp(v) for k, v in node.kwargs.items()}
    for name, value in list(program.constants.items()):  # lifted scalar tensors
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel() and value.abs().max() > FP16_SAFE * 2:
            program.constants[name] = value.clamp(-FP16_SAFE, FP16_SAFE)
            changed += 1
    return changed



class IntegerSafeQuantizer:
    """A pt2e quantizer that never observes integer tensors (token ids, masks, index arithmetic):
    CoreMLQuantizer annotates ops by pattern, so an ``add`` of int64 ids gets a fake-quantize that
    cannot run on integers ("not implemented for 'Long'")."""

    def __init__(self, quantizer: Any):
        self._quantizer = quantizer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._quantizer, name)

    def annotate(self, model: Any) -> Any:
        model = self._quantizer.annotate(model)
        for node in model.graph.nodes:
            note = node.meta.get("quantization_annotation")
            if note is None:
                continue
            if not _is_float(node):
                del node.meta["quantization_annotation"]
                continue
            for source in [n for n in note.input_qspec_map if not _is_float(n)]:
                del note.input_qspec_map[source]
        return model

    def validate(self, model: Any) -> None:
        self._quantizer.validate(model)


def _is_float(node: Any) -> bool:
    value = node.meta.get("val") if hasattr(node, "meta") else None
    return not isinstance(value, torch.Tensor) or value.dtype.is_floating_point
