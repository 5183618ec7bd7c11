"""The int8 rule both quantizers (XNNPACK's and Core ML's) share: attention-mask arithmetic stays in float."""

from __future__ import annotations

import torch


def unquantize_masks(model: torch.fx.GraphModule) -> None:
    """Keep mask arithmetic, and adds of a mask to a signal, in float.

    A mask is computed from integer inputs and constants alone (no weights, no float input). Adding an
    additive attention mask (0 / -1e4) to the scores in int8 gives that add a range of 1e4, one scale
    step of ~80, and wipes out the scores; the mask itself needs no quantization either.
    """
    masks: set[torch.fx.Node] = set()
    for node in model.graph.nodes:
        value = node.meta.get("val")
        if node.op == "placeholder":
            if isinstance(value, torch.Tensor) and not value.dtype.is_floating_point:
                masks.add(node)
        elif node.op == "get_attr":
            if isinstance(value, torch.Tensor) and value.dim() == 0:  # a scalar constant, not a weight
                masks.add(node)
        elif node.op == "call_function" and all(arg in masks for arg in node.all_input_nodes):
            masks.add(node)
    for node in model.graph.nodes:
        if node.op != "call_function" or "quantization_annotation" not in node.meta:
            continue
        adds_mask = node.target == torch.ops.aten.add.Tensor and any(arg in masks for arg in node.all_input_nodes)
        if node in masks or adds_mask:
            del node.meta["quantization_annotation"]
