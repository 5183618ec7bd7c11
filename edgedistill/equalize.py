"""Cross-layer equalization (CLE): a data-free, function-preserving rescaling before int8 quantization.

For a producer ``Linear``/``Conv`` (optionally followed by a ``BatchNorm``), a positively homogeneous
activation (``ReLU``, ``LeakyReLU``) and a consumer ``Linear``/``Conv``, channel ``c`` of the
intermediate can be scaled by any ``s_c > 0`` (producer row and bias divided by ``s_c``, consumer
column multiplied by it) without changing the function, since ``relu(x / s) = relu(x) / s``.
CLE (Nagel et al., "Data-Free Quantization", 2019; the AIMET white paper) picks
``s_c = sqrt(r1_c / r2_c)``, ``r1_c`` the producer's range for output channel ``c`` and ``r2_c`` the
consumer's range for input channel ``c``, so both become ``sqrt(r1_c * r2_c)``; chains are iterated
until the scales settle. A channel that is 30x the others because its producer row is 30x larger
(and its consumer column 30x smaller) comes back to the others' range, so a per-tensor int8
activation scale fits every channel again.

Pairs are found in the model's ``torch.fx`` graph (``nn.Sequential`` and any symbolically traceable
model): only chains whose every intermediate value has one user and passes through ops that commute
with a positive per-channel scale (the activation, then optionally ``Dropout``, ``Identity``,
max/average pooling). Anything else (GELU, ReLU6, residual adds, reshapes, a module called twice,
grouped consumers, a model fx cannot trace) is left alone: a pair is only rescaled where the rewrite is
provably exact.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

log = logging.getLogger("edgedistill")

LINEAR_LIKE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
HOMOGENEOUS_MODULES = (nn.ReLU, nn.LeakyReLU)  # f(s x) = s f(x) for s > 0
HOMOGENEOUS_FUNCTIONS = (F.relu, torch.relu, F.leaky_relu, torch.relu_)
HOMOGENEOUS_METHODS = ("relu", "relu_")
PASS_THROUGH = (nn.Dropout, nn.Identity, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d,
                nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)


@dataclass
class Pair:
    """One equalizable chain: ``producer`` (and its ``batch_norm``, if any) -> activation -> ``consumer``."""

    producer: str
    consumer: str
    batch_norm: str | None = None


@dataclass
class Equalized:
    """The equalized copy, the pairs it rescaled, and the largest channel-range spread before and after
    (max over pairs of max_c r1_c / median_c r1_c: how far one channel stands out of its layer)."""

    model: nn.Module
    pairs: list[Pair] = field(default_factory=list)
    skipped: str | None = None  # why nothing could be equalized, when nothing was
    spread_before: float = 1.0
    spread_after: float = 1.0
    iterations: int = 0

    def summary(self) -> dict:
        return {"pairs": [[p.producer, p.consumer] for p in self.pairs], "iterations": self.iterations,
                "spread_before": round(self.spread_before, 2), "spread_after": round(self.spread_after, 2),
                **({"skipped": self.skipped} if self.skipped else {})}


def _sole_user(node: torch.fx.Node) -> torch.fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _is_homogeneous(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], HOMOGENEOUS_MODULES)
    if node.op == "call_function":
        if node.target in (F.leaky_relu,):
            slope = node.kwargs.get("negative_slope", node.args[1] if len(node.args) > 1 else 0.01)
            return isinstance(slope, (int, float))
        return node.target in HOMOGENEOUS_FUNCTIONS
    return node.op == "call_method" and node.target in HOMOGENEOUS_METHODS and len(node.args) == 1


def _family(module: nn.Module) -> str:
    return "linear" if isinstance(module, nn.Linear) else f"conv{module.weight.dim() - 2}d"


def find_pairs(model: nn.Module) -> tuple[list[Pair], str | None]:
    """The chains of ``model`` that CLE may rescale exactly, or ([], why) when the model cannot be traced."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as exc:  # dynamic control flow, non-traceable wrappers: nothing is proven exact
        return [], f"not fx-traceable ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    once = {name for name, n in calls.items() if n == 1}  # a module called twice cannot be rescaled for one call
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or node.target not in once or not isinstance(modules[node.target], LINEAR_LIKE):
            continue
        producer, batch_norm, cur = modules[node.target], None, _sole_user(node)
        if cur is not None and cur.op == "call_module" and cur.target in once \
                and isinstance(modules[cur.target], BATCH_NORMS) and modules[cur.target].affine \
                and isinstance(producer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and cur.args[0] is node:
            batch_norm, prev, cur = cur.target, cur, _sole_user(cur)
        else:
            prev = node
        if cur is None or not _is_homogeneous(cur, modules) or cur.args[0] is not prev:
            continue
        prev, cur = cur, _sole_user(cur)
        while cur is not None and cur.op == "call_module" and cur.target in once \
                and isinstance(modules[cur.target], PASS_THROUGH) and cur.args[0] is prev:
            prev, cur = cur, _sole_user(cur)
        if cur is None or cur.op != "call_module" or cur.target not in once or len(cur.args) != 1 \
                or cur.args[0] is not prev or cur.kwargs:
            continue
        consumer = modules[cur.target]
        if not isinstance(consumer, LINEAR_LIKE) or _family(consumer) != _family(producer) \
                or getattr(consumer, "groups", 1) != 1 or consumer.weight.shape[1] != producer.weight.shape[0]:
            continue
        pairs.append(Pair(node.target, cur.target, batch_norm))
    return pairs, None


def _producer_range(producer: nn.Module, bn: nn.Module | None) -> torch.Tensor:
    """Per output channel max |weight| of the producer (batch norm folded in)."""
    r = producer.weight.detach().abs().flatten(1).amax(1)
    if bn is not None:
        r = r * (bn.weight.detach().abs() / torch.sqrt(bn.running_var + bn.eps))
    return r


def _consumer_range(consumer: nn.Module) -> torch.Tensor:
    """Per input channel max |weight| of the consumer."""
    return consumer.weight.detach().abs().transpose(0, 1).flatten(1).amax(1)


def _spread(ranges: torch.Tensor) -> float:
    median = float(ranges.median())
    return float(ranges.max()) / median if median > 0 else float("inf")


@torch.no_grad()
def _rescale(pair: Pair, modules: dict[str, nn.Module]) -> float:
    """Equalize one pair in place; the largest relative change of a scale (0 when settled)."""
    producer, consumer = modules[pair.producer], modules[pair.consumer]
    bn = modules[pair.batch_norm] if pair.batch_norm else None
    r1, r2 = _producer_range(producer, bn), _consumer_range(consumer)
    s = torch.where((r1 > 0) & (r2 > 0), torch.sqrt(r1 / r2.clamp_min(1e-30)), torch.ones_like(r1))
    s = s.clamp(1e-6, 1e6)
    if bn is not None:  # scaling batch norm's affine scales its output exactly (eps untouched)
        bn.weight.div_(s)
        bn.bias.div_(s)
    else:
        producer.weight.div_(s.view(-1, *([1] * (producer.weight.dim() - 1))))
        if producer.bias is not None:
            producer.bias.div_(s)
    consumer.weight.mul_(s.view(1, -1, *([1] * (consumer.weight.dim() - 2))))
    return float((s - 1).abs().max())


def equalize(model: nn.Module, *, iterations: int = 50, tol: float = 1e-4) -> Equalized:
    """A cross-layer-equalized copy of ``model`` (in eval mode; the original is untouched)."""
    model = copy.deepcopy(model).eval()
    pairs, why = find_pairs(model)
    if not pairs:
        return Equalized(model, skipped=why or "no Linear/Conv -> ReLU -> Linear/Conv chain it can rescale exactly")
    modules = dict(model.named_modules())

    def spread() -> float:
        return max(_spread(_producer_range(modules[p.producer], modules[p.batch_norm] if p.batch_norm else None)) for p in pairs)

    before, done = spread(), 0
    for done in range(1, iterations + 1):
        if max(_rescale(p, modules) for p in pairs) < tol:
            break
    result = Equalized(model, pairs, spread_before=before, spread_after=spread(), iterations=done)
    log.info("equalize: %d pair(s), channel-range spread %.1f -> %.1f (%d iterations)", len(pairs), before,
             result.spread_after, done)
    return result
