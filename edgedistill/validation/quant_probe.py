"""Run one student quantized in one format and scheme, with a chosen set of modules kept in float.

Where the format exports and runs fast here (ONNX, LiteRT: the float graph is converted once and only
re-quantized), every probe is the real artifact in its real runtime. ExecuTorch and Core ML lower a
whole program per export (seconds to minutes), so their many probes run the pt2e-quantized graph in
PyTorch instead (the same observers, scales and rounding the lowering receives; Core ML's quantizer
traces its pattern graphs once per process, ``shared_coreml.memoize_coreml_patterns``); ``final()``
always exports and runs the real artifact (Core ML: Apple's runtime on macOS, the reference evaluator
elsewhere).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgedistill import formats
from edgedistill.data import Inputs
from edgedistill.formats.base import HostRunUnavailable, run_batched
from edgedistill.quiet import quiet

SIMULATED = ("executorch", "coreml")  # probes measured on the pt2e graph in PyTorch


class QuantProbe:
    """Exports (or simulates) the student with ``float_modules`` kept in float and returns its logits; cached."""

    def __init__(self, student: nn.Module, fmt_name: str, scheme: str, inputs: Inputs, calibration: Inputs | None,
                 options: dict[str, Any] | None = None, dynamic_batch: bool = True):
        student.eval()  # (a converted pt2e graph's .eval() returns None)
        self.student, self.fmt_name, self.scheme = student, fmt_name, scheme
        self.inputs, self.calibration = inputs, calibration
        self.fmt = formats.get(fmt_name)
        self.options, self.dynamic_batch = dict(options or {}), dynamic_batch
        self.method = "pt2e graph in PyTorch" if fmt_name in SIMULATED and scheme == "int8" else "runtime"
        self._cache: dict[tuple[str, ...], np.ndarray] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="edgedistill-probe-")
        self.exports = 0

    def example(self, n: int = 2) -> tuple[torch.Tensor, ...]:
        return tuple(torch.as_tensor(v[:n]) for v in self.inputs.values())

    def run(self, float_modules: tuple[str, ...] = ()) -> np.ndarray:
        """Logits of the student quantized with ``float_modules`` in float (simulated where exports are slow)."""
        key = tuple(sorted(float_modules))
        if key not in self._cache:
            self._cache[key] = self._simulate(key) if self.method != "runtime" else self.export_and_run(key)[1]
        return self._cache[key]

    def final(self, float_modules: tuple[str, ...]) -> tuple[Path | None, np.ndarray]:
        """The real artifact (path) and its logits in its runtime; (None, simulated logits) where it cannot run here."""
        try:
            return self.export_and_run(tuple(sorted(float_modules)))
        except HostRunUnavailable:
            return None, self.run(float_modules)

    def export_and_run(self, float_modules: tuple[str, ...]) -> tuple[Path, np.ndarray]:
        """Export the artifact with ``float_modules`` kept in float and run it in the format's runtime."""
        options = {**self.options, "input_names": list(self.inputs),
                   **({"float_modules": list(float_modules)} if float_modules else {})}
        self.exports += 1
        path = Path(self._tmp.name) / f"probe{self.exports}{self.fmt.SUFFIX}"
        example = self.example(2 if self.dynamic_batch else 1)
        with quiet():
            info = self.fmt.export(self.student, example, scheme=self.scheme, path=path, calibration=self.calibration,
                                   dynamic_batch=self.dynamic_batch, options=options)
            max_batch = (info.max_batch or self.fmt.MAX_BATCH) if info.dynamic_batch else 1
            return path, run_batched(self.fmt.load(path, max_batch), self.inputs)

    def _simulate(self, float_modules: tuple[str, ...]) -> np.ndarray:
        from edgedistill.formats.base import calibrated, dynamic_shapes
        from edgedistill.formats.executorch_quant import prepare

        example, batch = self.example(), 256
        with quiet(), torch.no_grad():
            if self.fmt_name == "coreml":
                from edgedistill.formats.shared_coreml import int8_quantizer, smoothed_for_int8

                shapes = dynamic_shapes(example, True, batch)
                student = smoothed_for_int8(self.student, self.calibration, float_modules)  # as coreml export does
                graph = calibrated(student, example, int8_quantizer(float_modules), self.calibration, shapes)
            else:
                graph, _ = prepare(self.student, example, scheme="int8", backend="xnnpack", calibration=self.calibration,
                                   dynamic_batch=True, max_batch=batch, float_modules=float_modules)
            # an exported graph refuses .eval() (what predict_logits calls): it is already in inference form
            arrays = [torch.as_tensor(v) for v in self.inputs.values()]
            return torch.cat([graph(*(a[i : i + batch] for a in arrays)) for i in range(0, len(arrays[0]), batch)]).numpy()

    def close(self) -> None:
        self._tmp.cleanup()
