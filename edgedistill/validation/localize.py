"""Where does a quantized artifact go wrong? Per-module error and sensitivity, for any graph, in every format.

Two measurements, both by the student's own module names (``layer2.1.conv2``, ``blocks.0.ff.0``):

- **intermediate error** (ONNX, LiteRT: ``intermediates.py``): each module's output in the artifact's
  runtime against the fp32 student's, as the mean over features of RMS(error) / RMS(fp32 activation)
  (features normalized one by one, so a single huge channel cannot hide the others being crushed);
- **sensitivity sweep** (every format): the student quantized with only that module in int8 (every
  other quantizable module kept in float), measured against the fp32 student: top-1 agreement and
  mean KL. ``quant_probe.py`` says where each probe runs (runtime, or the pt2e graph in PyTorch).

The modules are ranked by sensitivity (mean KL when quantized alone): the top ones are those whose
quantization costs the most agreement, and the order in which ``repair`` keeps modules in float.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgedistill.mixed_precision import quantizable_modules
from edgedistill.validation import intermediates
from edgedistill.validation.quant_probe import QuantProbe


def feature_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean over features of RMS(candidate − reference) / RMS(reference); dead features are ignored."""
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    got = candidate.reshape(len(candidate), -1).astype(np.float64)
    scale = np.sqrt((ref**2).mean(0))
    active = scale > max(scale.max(), 1e-30) * 1e-6
    return float((np.sqrt(((got - ref) ** 2).mean(0))[active] / scale[active]).mean())


def agreement(reference: np.ndarray, logits: np.ndarray) -> tuple[float, float]:
    """(top-1 agreement, mean KL(reference ‖ logits)) of two logit arrays."""
    def log_softmax(z: np.ndarray) -> np.ndarray:
        z = z.astype(np.float64) - z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))

    p, q = log_softmax(reference), log_softmax(logits)
    kl = float((np.exp(p) * (p - q)).sum(1).mean())
    return float((reference.argmax(1) == logits.argmax(1)).mean()), kl


def sensitivity(probe: QuantProbe, reference: np.ndarray, modules: list[str]) -> list[dict[str, Any]]:
    """Per module: agreement and KL against ``reference`` with only that module quantized; most sensitive first."""
    rows = []
    for name in modules:
        top1, kl = agreement(reference, probe.run(tuple(m for m in modules if m != name)))
        rows.append({"module": name, "alone_top1": top1, "alone_kl": kl})
    return sorted(rows, key=lambda r: (-r["alone_kl"], r["alone_top1"]))


def intermediate_errors(probe: QuantProbe, modules: list[str], float_modules: tuple[str, ...]) -> dict[str, float]:
    """Per module: error of its output in the artifact's runtime against fp32 ({} where the runtime shows none)."""
    if probe.fmt_name not in intermediates.FORMATS:
        return {}
    path, _ = probe.export_and_run(float_modules)
    ref = intermediates.reference(probe.student, modules, probe.inputs)
    got = intermediates.runtime(probe.fmt_name, path, probe.student, modules, probe.inputs)
    errors = {}
    for name in modules:
        value = intermediates.aligned(probe.fmt_name, ref[name], got[name]) if name in got and name in ref else None
        if value is not None:
            errors[name] = feature_error(ref[name], value)
    return errors


def localize(probe: QuantProbe, reference: np.ndarray, float_modules: tuple[str, ...] = ()) -> dict[str, Any]:
    """Per-module table (intermediate error where the runtime exposes it, sensitivity everywhere) and the culprits."""
    modules = [m for m in quantizable_modules(probe.student) if m not in float_modules]
    if not modules:
        return {"available": False, "culprit": None, "modules": [], "ranking": [],
                "summary": "every quantizable module is already kept in float"}
    ranked = sensitivity(probe, reference, modules)
    errors = intermediate_errors(probe, modules, float_modules)
    by_name = {r["module"]: r for r in ranked}
    table = [{**by_name[m], "intermediate_error": errors.get(m)} for m in modules]  # in definition order
    top = ranked[0]
    worst = ", ".join(f"{r['module']} (top-1 {r['alone_top1']:.1%}, KL {r['alone_kl']:.3g})" for r in ranked[:3])
    summary = (f"quantizing {top['module']} costs the most agreement; most sensitive modules when quantized alone: "
               f"{worst} [{probe.method}]")
    if errors:
        first = max(errors, key=errors.get)
        summary += f"; largest intermediate error in {probe.fmt_name}'s runtime at {first} ({errors[first]:.3g})"
    return {"available": True, "culprit": top["module"], "ranking": [r["module"] for r in ranked],
            "modules": table, "method": probe.method,
            "intermediates": "runtime" if errors else "none", "summary": summary}
