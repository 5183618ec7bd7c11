"""What fp16 (or any precision) did to a program: where inf/NaN first appear, and whether they reach
the outputs. A non-finite constant (an fp32 mask value such as ``finfo(float32).min`` overflowed to
-inf in fp16, or an infinity the model uses on purpose) is listed; the first op producing inf/NaN is
named; the outputs say whether it mattered."""

from __future__ import annotations

from typing import Any

import numpy as np


def _kind(x: np.ndarray) -> str:
    return "NaN" if np.isnan(x).any() else ("+inf" if np.isposinf(x).any() else "-inf")


class Numerics:
    """Accumulates, over every call, the non-finite values of one program."""

    def __init__(self, precision: str, constants: dict[str, Any]):
        self.precision = precision
        self.constants = sorted(name for name, v in constants.items()
                                if isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.isfinite(v).all())
        self.first_op: dict[str, str] | None = None  # first op with an inf or NaN in its output
        self.first_nan: dict[str, str] | None = None  # first op with a NaN (what usually does the damage)
        self.samples = 0
        self.bad_samples = 0

    def observe(self, step: Any, values: list[np.ndarray]) -> None:
        if self.first_nan is not None:
            return
        for value in values:
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                where = {"op": step.name, "type": step.op_type, "value": _kind(value)}
                self.first_op = self.first_op or where
                if where["value"] == "NaN":
                    self.first_nan = where
                return

    def observe_outputs(self, outputs: list[np.ndarray]) -> None:
        first = outputs[0].reshape(len(outputs[0]), -1) if outputs[0].ndim else outputs[0].reshape(1, 1)
        self.samples += len(first)
        self.bad_samples += int((~np.isfinite(first.astype(np.float32))).any(axis=1).sum())

    @property
    def clean(self) -> bool:
        return not self.constants and self.first_op is None

    def to_dict(self) -> dict[str, Any]:
        """For report.json: precision, non-finite constants, first non-finite op, samples affected, summary."""
        return {"precision": self.precision, "nonfinite_constants": self.constants, "first_nonfinite_op": self.first_op,
                "first_nan_op": self.first_nan,
                "samples": self.samples, "nonfinite_output_samples": self.bad_samples, "summary": self.summary()}

    def summary(self) -> str:
        """One line: clean, harmless (inf inside, finite outputs) or harmful (inf/NaN outputs)."""
        if self.clean:
            return f"{self.precision} program: no inf or NaN in any op on {self.samples} samples"
        parts = []
        if self.constants:
            parts.append(f"constant(s) {', '.join(self.constants[:3])} are inf/NaN (an infinity in the model, "
                         f"or a value beyond the precision's range)")
        if self.first_op:
            parts.append(f"first {self.first_op['value']} at op {self.first_op['type']} '{self.first_op['op']}'")
        if self.first_nan and self.first_nan is not self.first_op:
            parts.append(f"first NaN at op {self.first_nan['type']} '{self.first_nan['op']}'")
        verdict = (f"outputs inf/NaN on {self.bad_samples} of {self.samples} samples" if self.bad_samples
                   else f"outputs finite on all {self.samples} samples (harmless here)")
        return f"{self.precision} program: " + "; ".join(parts) + f"; {verdict}"
