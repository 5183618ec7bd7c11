"""Name the first op of a Core ML program that diverges from the PyTorch student.

coremltools names each MIL op after the torch.export node it came from (``addmm_3``, with suffixes
such as ``_cast_fp16`` where fp16 casts were inserted). The student is exported the way the Core ML
exporter exports it (default decompositions, same dynamic batch), run node by node in PyTorch, and
every op whose name maps to a node of the same size is compared on the same inputs. The first op
whose relative error exceeds the precision's threshold is the culprit: a corrupted weight or a
swapped transpose shows at the op that consumes it, not only in the logits.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
from torch import nn

# relative L2 error an op may show from rounding alone: fp32 ≈ 1e-6, fp16 ≈ 1e-3, compressed weights more
THRESHOLD = {"fp32": 1e-3, "fp16": 5e-2}
_SUFFIX = re.compile(r"(_cast_fp16|_cast_fp32|_to_fp16|_to_fp32|_cast_uint16|_cast_int16)+$")


def student_activations(student: nn.Module, inputs: dict[str, np.ndarray], dynamic_batch: bool) -> dict[str, np.ndarray]:
    """Every floating-point node output of the student's exported (decomposed) program, by node name."""
    example = tuple(torch.as_tensor(v) for v in inputs.values())
    shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=1024)
        shapes = tuple({0: batch} for _ in example)
    program = torch.export.export(student.eval(), example, dynamic_shapes=shapes).run_decompositions()
    module = program.module()
    seen: dict[str, np.ndarray] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node: torch.fx.Node) -> Any:
            out = super().run_node(node)
            value = out[0] if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor) else out
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                seen[node.name] = value.detach().float().numpy()
            return out

    with torch.no_grad():
        Recorder(module).run(*example)
    return seen


def relative_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    """‖candidate − reference‖ / ‖reference‖ over the finite elements; an inf/NaN where the reference
    has none (or a different one) counts as infinitely wrong."""
    candidate = candidate.astype(np.float64).reshape(-1)
    reference = reference.astype(np.float64).reshape(-1)
    finite = np.isfinite(reference)
    if not np.array_equal(finite, np.isfinite(candidate)):
        return float("inf")
    if not np.array_equal(candidate[~finite], reference[~finite], equal_nan=True):
        return float("inf")
    candidate, reference = candidate[finite], reference[finite]
    return float(np.linalg.norm(candidate - reference) / max(np.linalg.norm(reference), 1e-12))


def first_divergence(evaluator: Any, student: nn.Module, inputs: dict[str, np.ndarray],
                     dynamic_batch: bool = True) -> dict[str, Any]:
    """The per-op errors against the student and the first op beyond the threshold (a localization dict)."""
    reference = student_activations(student, inputs, dynamic_batch)
    values = evaluator.run({name: x for (name, _), x in zip(evaluator.program.inputs, inputs.values())}, record=True)
    threshold = THRESHOLD.get(evaluator.program.precision, THRESHOLD["fp16"])
    layers, previous, culprit = [], 0.0, None
    for step in evaluator.steps:
        for name, _ in step.outputs:
            base = _SUFFIX.sub("", name)
            ref, got = reference.get(base), values.get(name)
            if ref is None or got is None or got.dtype.kind != "f" or ref.size != got.size:
                continue
            error = relative_error(ref, got)
            layers.append({"layer": name, "type": step.op_type, "error": error, "jump": error - previous, "float": False})
            previous = error
            if culprit is None and error > threshold:
                culprit = layers[-1]
    mapped = f"{len(layers)} ops compared with the student's nodes by name"
    if not layers:
        return {"available": False, "culprit": None, "layers": [],
                "summary": "not localized: no op of the program maps to a node of the student by name"}
    if culprit is None:
        return {"available": True, "culprit": None, "layers": layers,
                "summary": f"no op diverges beyond {threshold:g} relative error ({mapped})"}
    return {"available": True, "culprit": culprit["layer"], "layers": layers,
            "summary": f"first diverging op: {culprit['type']} '{culprit['layer']}' (relative error "
                       f"{culprit['error']:.3g} > {threshold:g} against the student; {mapped})"}
