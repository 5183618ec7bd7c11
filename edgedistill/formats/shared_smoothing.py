"""SmoothQuant-style outlier migration before static int8 (W8A8) quantization, shared by formats.

Transformer activations have a few outlier channels: in the pretrained MiniLM the LayerNorm outputs
that feed the FFN and Q/K/V reach 20-25 while 99.9 % of values are below 2.4, and one per-tensor
uint8 scale over that range rounds the ordinary channels away. ``smooth`` rewrites a float model,
keeping its function, so that each such Linear input is divided per channel by
``s_j = max|X_j|^alpha / max|W_:,j|^(1 - alpha)`` (from calibration activations) and the Linear's
weight columns are multiplied by ``s`` (per-channel int8 weights absorb it): the outlier range
moves from the activations into the weights (Xiao et al., SmoothQuant, 2023).

Where the scale goes depends on who else reads the LayerNorm's output:

- only Linears (pre-LN transformers): ``1/s`` is folded into the LayerNorm's weight and bias, no op added;
- also something else (a residual add: every LayerNorm of post-LN BERT/MiniLM and ``TinyEncoder``):
  folding would change what the residual path sees, so the LayerNorm stays untouched and each
  consumer Linear becomes ``SmoothedLinear``, an explicit per-channel multiply before the Linear.
  The multiply must read the unquantized LayerNorm output (``float_smoothing_inputs`` keeps its
  input in float, for quantizers that annotate ``mul``): only its smoothed output is quantized.

Pairs are found in the exported graph (``torch.export``), so any module tree works: a LayerNorm node
whose output reaches ``aten.linear`` nodes of ``nn.Linear`` modules (through eval-mode dropouts).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch
from torch import nn

_PASS_THROUGH = {"dropout", "clone", "alias", "contiguous", "identity"}


class SmoothedLinear(nn.Module):
    """``linear(x * inv_scale)``, with ``linear``'s weight columns already multiplied by the scale."""

    def __init__(self, linear: nn.Linear, scale: torch.Tensor):
        super().__init__()
        self.linear = linear
        self.register_buffer("inv_scale", (1.0 / scale).to(linear.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x * self.inv_scale)


@dataclass
class SmoothedNorm:
    """One LayerNorm and the Linears that read its output; ``folded``: the scale went into the norm."""

    norm: str
    linears: list[str]
    folded: bool
    others: list[str] = field(default_factory=list)  # non-Linear readers of the norm's output


def _module_path(node: torch.fx.Node) -> str | None:
    stack = node.meta.get("nn_module_stack")
    return list(stack.values())[-1][0] if stack else None


def _op_name(node: torch.fx.Node) -> str:
    target = node.target
    return getattr(target, "__name__", str(target)).split(".")[0]


def norm_consumers(model: nn.Module, example_inputs: tuple[torch.Tensor, ...]) -> list[SmoothedNorm]:
    """Every ``nn.LayerNorm`` of ``model`` whose output is an input of at least one ``nn.Linear``, with
    those Linears and the other readers (found in ``torch.export``'s graph; eval-mode dropouts and
    clones are looked through)."""
    modules = dict(model.named_modules())
    graph = torch.export.export(model, example_inputs).graph
    found = []
    for node in graph.nodes:
        path = _module_path(node) if node.op == "call_function" else None
        if _op_name(node) != "layer_norm" or not isinstance(modules.get(path), nn.LayerNorm):
            continue
        linears, others, frontier = [], [], list(node.users)
        source = {user: node for user in node.users}
        while frontier:
            user = frontier.pop(0)
            name = _op_name(user)
            where = _module_path(user)
            if name in _PASS_THROUGH:
                frontier.extend(u for u in user.users if u not in source)
                source.update({u: user for u in user.users})
            elif (name == "linear" and user.args[0] is source[user] and isinstance(modules.get(where), nn.Linear)
                  and where not in linears):
                linears.append(where)
            else:
                others.append(f"{name} in {where or 'the top module'}")
        if linears:
            found.append(SmoothedNorm(path, linears, folded=not others, others=others))
    return found


def _input_maxima(model: nn.Module, linears: Iterable[str], batches: Sequence[tuple[torch.Tensor, ...]]) -> dict[str, torch.Tensor]:
    """Per input channel max |x| of each named Linear over ``batches``."""
    modules = dict(model.named_modules())
    maxima: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Any:
        def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            value = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(0).float()
            maxima[name] = torch.maximum(maxima[name], value) if name in maxima else value
        return record

    handles = [modules[name].register_forward_pre_hook(hook(name)) for name in linears]
    run_hooked(model, handles, batches)
    return maxima


def run_hooked(model: nn.Module, handles: list, batches: Sequence[tuple[torch.Tensor, ...]]) -> None:
    """Run ``model`` on ``batches`` without gradients so its hooks see them; the hooks are removed after."""
    try:
        with torch.no_grad():
            for batch in batches:
                model(*batch)
    finally:
        for handle in handles:
            handle.remove()


def smooth(model: nn.Module, batches: Sequence[tuple[torch.Tensor, ...]], alpha: float = 0.5,
           skip: Sequence[str] = ()) -> tuple[nn.Module, list[SmoothedNorm]]:
    """A copy of ``model`` with every LayerNorm -> Linear input smoothed (module docstring), and what was done.

    ``batches``: calibration inputs (the first also traces the graph); ``alpha``: how much of the range moves
    into the weights (0: none, 1: all); ``skip``: Linears left alone (e.g. modules kept in float anyway)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    model = copy.deepcopy(model).eval()
    pairs = []
    for pair in norm_consumers(model, tuple(batches[0])):
        kept = [name for name in pair.linears if name not in skip]
        if kept:  # a skipped Linear also reads the norm: folding would change its input
            pair.folded, pair.linears = pair.folded and kept == pair.linears, kept
            pairs.append(pair)
    maxima = _input_maxima(model, [n for p in pairs for n in p.linears], batches)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for pair in pairs:
            weights = [modules[name].weight for name in pair.linears]
            x_max = torch.stack([maxima[name] for name in pair.linears]).amax(0)
            w_max = torch.stack([w.detach().abs().amax(0).float() for w in weights]).amax(0)
            scale = (x_max.clamp(min=1e-5) ** alpha / w_max.clamp(min=1e-5) ** (1.0 - alpha)).clamp(min=1e-5)
            for weight in weights:
                weight.mul_(scale.to(weight.dtype))
            if pair.folded:
                norm = modules[pair.norm]
                norm.weight.div_(scale.to(norm.weight.dtype))
                norm.bias.div_(scale.to(norm.bias.dtype))
            else:
                for name in pair.linears:
                    parent, _, child = name.rpartition(".")
                    setattr(modules[parent] if parent else model, child, SmoothedLinear(modules[name], scale))
    return model, pairs


def is_smoothing_mul(node: torch.fx.Node) -> bool:
    """A node of ``SmoothedLinear``'s per-channel multiply (in a pt2e graph)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack or _op_name(node) != "mul":
        return False
    kind = list(stack.values())[-1][1]
    return getattr(kind, "__name__", str(kind)).endswith("SmoothedLinear")


def float_smoothing_inputs(model: torch.fx.GraphModule) -> None:
    """Drop the input quantization of every ``SmoothedLinear`` multiply: it reads the float LayerNorm
    output (quantizing that per tensor would bring back the outlier range it exists to remove)."""
    for node in model.graph.nodes:
        note = node.meta.get("quantization_annotation")
        if note is not None and is_smoothing_mul(node):
            note.input_qspec_map.clear()
