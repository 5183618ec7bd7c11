"""Mixed precision: which submodules of a student a quantized export keeps in floating point.

The unit is a *quantizable module*: a leaf ``Linear`` or ``Conv`` (where int8 arithmetic happens in
every format this project exports). ``float_modules`` may also name a parent (``layer2.1``): every
quantizable module inside it stays float. Each format maps these names onto its own graph
(ExecuTorch: the pt2e quantizer's module filter; ONNX: nodes whose name scopes hold the module;
LiteRT: ops whose tensor scopes hold it; Core ML: the quantizer's per-module config).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from torch import nn

from edgedistill.errors import UserError

QUANTIZED_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def quantizable_modules(model: nn.Module) -> list[str]:
    """Qualified names of the model's quantizable leaf modules, in definition order."""
    return [name for name, m in model.named_modules() if name and isinstance(m, QUANTIZED_TYPES)]


def check_float_modules(model: nn.Module, names: Iterable[str]) -> tuple[str, ...]:
    """``names`` as a tuple, or a UserError naming those that are not submodules of ``model``."""
    names = tuple(names)
    unknown = sorted(set(names) - {n for n, _ in model.named_modules() if n})
    if unknown:
        raise UserError(f"float_modules {', '.join(unknown)} are not submodules of the model")
    return names


def inside(name: str, parents: Iterable[str]) -> bool:
    """Whether module ``name`` is one of ``parents`` or nested in one of them."""
    return any(name == p or name.startswith(p + ".") for p in parents)


def precision_summary(model: nn.Module, scheme: str, float_modules: Sequence[str]) -> dict:
    """What a bundle really holds: the quantizable modules kept in float, their share, and the scheme mix.

    Written into the manifest, so that a mixed-precision int8 artifact never reads as plain int8.
    """
    every = quantizable_modules(model)
    kept = [n for n in every if inside(n, float_modules)]
    quantized = len(every) - len(kept)
    mix = f"{scheme} ({quantized} of {len(every)} modules)"
    if kept:
        mix += f" + fp32 ({len(kept)}: {', '.join(kept)})"
    return {"quantizable_modules": len(every), "float_modules": kept,
            "float_share": round(len(kept) / max(len(every), 1), 4), "scheme_mix": mix}
