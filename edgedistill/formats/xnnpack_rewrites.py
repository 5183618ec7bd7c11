"""Module rewrites that let XNNPACK take a transformer whole (ExecuTorch 1.4's XNNPACK has no layer norm).

XNNPACK runs fully-connected layers, element-wise arithmetic and ``rsqrt`` but not ``native_layer_norm``
(and ``mean`` only over the inner dims of 4-D tensors), so every ``nn.LayerNorm`` stayed in the slow
portable kernels and split the delegated graph at each layer. ``MatmulLayerNorm`` computes the same
normalisation with a 1-output linear layer for the mean and variance, which XNNPACK delegates.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F


class MatmulLayerNorm(nn.Module):
    """``nn.LayerNorm`` over the last axis written as linear/sub/mul/rsqrt/add (XNNPACK-delegable)."""

    def __init__(self, norm: nn.LayerNorm):
        super().__init__()
        width = norm.normalized_shape[-1]
        self.eps = norm.eps
        self.weight, self.bias = norm.weight, norm.bias
        # a linear layer whose one output is the average of the inputs: a mean XNNPACK runs as a matmul
        self.register_buffer("averager", torch.full((1, width), 1.0 / width, dtype=norm.weight.dtype
                                                    if norm.weight is not None else torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - F.linear(x, self.averager)
        y = centred * torch.rsqrt(F.linear(centred * centred, self.averager) + self.eps)
        if self.weight is not None:
            y = y * self.weight
        return y + self.bias if self.bias is not None else y


def with_matmul_layer_norms(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """A copy of ``model`` whose last-axis ``nn.LayerNorm``s are ``MatmulLayerNorm``s, and their names
    (so a quantizer can keep them in float: int8 variances would lose the small components)."""
    norms = [name for name, m in model.named_modules()
             if isinstance(m, nn.LayerNorm) and len(m.normalized_shape) == 1 and name]
    if not norms:
        return model, []
    model = copy.deepcopy(model)
    for name in norms:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, MatmulLayerNorm(getattr(parent, attr)))
    return model, norms


def delegable_reshapes(graph_module: torch.fx.GraphModule) -> "PassResult":
    """Edge-graph pass: reshapes XNNPACK can take under a dynamic batch.

    XNNPACK rejects a ``view_copy`` whose target shape holds a symbolic size (the batch) or two ``-1``,
    so every attention reshape fell to the portable kernels and split the delegate at each head
    split/merge. Written with its concrete sizes and ``-1`` for the one symbolic size, it is delegated. An ``expand_copy`` to the shape
    its input already has (matmul's broadcast of equal batch dims) is dropped.
    """
    from executorch.exir.pass_base import PassResult

    changed = False
    for node in list(graph_module.graph.nodes):
        if node.op != "call_function":
            continue
        name = str(node.target)
        if "view_copy" in name and len(node.args) >= 2:
            # the output's concrete sizes, and -1 for its one symbolic size (which the runtime infers)
            shape = [size if isinstance(size, int) else -1 for size in node.meta["val"].shape]
            if shape.count(-1) == 1 and list(node.args[1]) != shape:
                node.args = (node.args[0], shape, *node.args[2:])
                changed = True
        elif "expand_copy" in name:
            source = node.args[0]
            if isinstance(source, torch.fx.Node) and str(source.meta["val"].shape) == str(node.meta["val"].shape):
                node.replace_all_uses_with(source)
                graph_module.graph.erase_node(node)
                changed = True
    if changed:
        graph_module.graph.eliminate_dead_code()
        graph_module.recompile()
    return PassResult(graph_module, changed)
