"""Where does a quantized artifact go wrong? Compare intermediate activations layer by layer.

The student must be an ``nn.Sequential`` (a chain of layers). For each layer with parameters (and
the last one) the prefix of the chain that ends there is exported with the artifact's format and
scheme, run in the real runtime, and its output compared with the fp32 prefix in PyTorch. The
error of a prefix is the mean, over output features, of RMS(error) / RMS(fp32 activation): features
are normalized one by one so that a single huge channel cannot hide the others being crushed. The
first layer whose error jumps (by at least half of the largest jump) is named.

Works through the format registry, so any format's exporter and runner plug in.
"""

from __future__ import annotations

import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgedistill import formats
from edgedistill.data import Inputs
from edgedistill.formats.base import run_batched
from edgedistill.inference import predict_logits
from edgedistill.quiet import quiet


def feature_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean over features of RMS(candidate − reference) / RMS(reference); dead features are ignored."""
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    got = candidate.reshape(len(candidate), -1).astype(np.float64)
    scale = np.sqrt((ref**2).mean(0))
    active = scale > max(scale.max(), 1e-30) * 1e-6
    return float((np.sqrt(((got - ref) ** 2).mean(0))[active] / scale[active]).mean())


class PrefixProbe:
    """Exports prefixes of one student in one format and scheme, and runs them; results are cached."""

    def __init__(self, student: nn.Module, fmt_name: str, scheme: str, inputs: Inputs, calibration: Inputs | None,
                 options: dict[str, Any] | None = None, dynamic_batch: bool = True):
        self.student, self.scheme, self.inputs, self.calibration = student.eval(), scheme, inputs, calibration
        self.fmt = formats.get(fmt_name)
        self.options, self.dynamic_batch = dict(options or {}), dynamic_batch
        self.children = list(student.named_children()) if isinstance(student, nn.Sequential) else []
        self._cache: dict[tuple[int, tuple[str, ...]], np.ndarray] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="edgedistill-localize-")

    @property
    def layers(self) -> list[int]:
        """Indices of the children where a prefix ends: those with parameters, and the last one."""
        last = len(self.children) - 1
        return [i for i, (_, child) in enumerate(self.children) if i == last or any(True for _ in child.parameters())]

    def name(self, index: int) -> str:
        return self.children[index][0]

    def describe(self, index: int) -> str:
        return f"{self.children[index][0]} ({type(self.children[index][1]).__name__})"

    def prefix(self, upto: int) -> nn.Module:
        """Layers 0..upto as a model of their own (the full student when ``upto`` is the last)."""
        if upto == len(self.children) - 1:
            return self.student
        return nn.Sequential(OrderedDict(self.children[: upto + 1])).eval()

    def run_full(self, float_modules: tuple[str, ...] = ()) -> np.ndarray:
        """The whole student exported and run (any model, Sequential or not)."""
        return self.run(len(self.children) - 1, float_modules)

    def reference(self, upto: int) -> np.ndarray:
        """The fp32 prefix's output in PyTorch."""
        return predict_logits(self.prefix(upto), self.inputs).numpy()

    def run(self, upto: int, float_modules: tuple[str, ...] = ()) -> np.ndarray:
        """The prefix exported (``float_modules`` of it kept in float) and run in the format's runtime."""
        full = upto == len(self.children) - 1
        inside = tuple(sorted(set(float_modules) if full else set(float_modules) & {n for n, _ in self.children[: upto + 1]}))
        key = (upto, inside)
        if key not in self._cache:
            options = {**self.options, "input_names": list(self.inputs),
                       **({"float_modules": list(inside)} if inside else {})}
            path = Path(self._tmp.name) / f"prefix{upto}-{len(self._cache)}{self.fmt.SUFFIX}"
            example = tuple(torch.as_tensor(v[:2]) for v in self.inputs.values())
            with quiet():
                info = self.fmt.export(self.prefix(upto), example, scheme=self.scheme, path=path,
                                       calibration=self.calibration, dynamic_batch=self.dynamic_batch, options=options)
                max_batch = self.fmt.MAX_BATCH if info.dynamic_batch else 1
                self._cache[key] = run_batched(self.fmt.load(path, max_batch), self.inputs)
        return self._cache[key]

    def close(self) -> None:
        self._tmp.cleanup()


def localize(probe: PrefixProbe, float_modules: tuple[str, ...] = ()) -> dict[str, Any]:
    """Per-layer errors of the exported prefixes and the first layer (not already in float) whose error jumps."""
    if not probe.children:
        return {"available": False, "culprit": None, "layers": [],
                "summary": "not localized: the student is not an nn.Sequential, so it has no layer prefixes to export"}
    layers, previous = [], 0.0
    for index in probe.layers:
        error = feature_error(probe.reference(index), probe.run(index, float_modules))
        layers.append({"layer": probe.name(index), "type": type(probe.children[index][1]).__name__,
                       "error": error, "jump": error - previous, "float": probe.name(index) in float_modules})
        previous = error
    candidates = [entry for entry in layers if not entry["float"]]
    culprit = None
    if candidates:
        largest = max(entry["jump"] for entry in candidates)
        culprit = next(entry for entry in candidates if entry["jump"] >= 0.5 * largest)
    table = ", ".join(f"{e['layer']} {e['type']} {e['error']:.3g}" + (" (float)" if e["float"] else "") for e in layers)
    if culprit is None:
        summary = f"every layer is already kept in float (errors: {table})"
    else:
        before = culprit["error"] - culprit["jump"]
        summary = (f"first error jump at layer '{culprit['layer']}' ({culprit['type']}): relative error "
                   f"{before:.3g} → {culprit['error']:.3g} (per layer: {table})")
    return {"available": True, "culprit": None if culprit is None else culprit["layer"], "layers": layers,
            "summary": summary}
