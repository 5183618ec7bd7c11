"""Execute a loaded ML Program op by op, rounding every tensor to the dtype the program declares.

Ops compute in float32 (fp16 inputs widened); each output is then stored in its declared dtype, so an
fp16 program is rounded to fp16 at every op boundary, as Core ML's fp16 compute paths store it. Steps
that depend only on constants (decoded weights, casts of weights) run once at load. Every inf/NaN is
tracked (``Numerics``) so a report shows what fp16 did to the model instead of a warning in a log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgedistill.coreml_reference.loader import LABEL, CannotCheck, Program, Step, plan, read_program
from edgedistill.coreml_reference.numerics import Numerics
from edgedistill.coreml_reference.ops_math import OPS as MATH
from edgedistill.coreml_reference.ops_nn import OPS as NN
from edgedistill.coreml_reference.ops_quant import OPS as QUANT
from edgedistill.coreml_reference.ops_shape import OPS as SHAPE

OPS = {**MATH, **SHAPE, **NN, **QUANT}


def _value(ref: Any, env: dict[str, Any]) -> Any:
    if isinstance(ref, list):
        return [_value(r, env) for r in ref]
    value = env[ref]
    return value.astype(np.float32) if isinstance(value, np.ndarray) and value.dtype == np.float16 else value


def execute(step: Step, env: dict[str, Any]) -> list[np.ndarray]:
    """Run one step on the values in ``env``; store and return its outputs in their declared dtypes."""
    args = {name: _value(ref, env) for name, ref in step.inputs.items()}
    try:
        with np.errstate(all="ignore"):  # inf/NaN are tracked by Numerics, not warned about
            result = OPS[step.op_type](args)
            outputs = result if isinstance(result, tuple) else (result,)
            values = [np.asarray(v).astype(dtype, copy=False) for v, (_, dtype) in zip(outputs, step.outputs)]
    except (ValueError, TypeError, IndexError, KeyError, NotImplementedError, RuntimeError) as exc:
        raise CannotCheck(f"cannot check: op {step.op_type} '{step.name}' ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:160] if str(exc) else 'no message'})") from None
    for (name, _), value in zip(step.outputs, values):
        env[name] = value
    return values


class ReferenceEvaluator:
    """Runs an ``.mlpackage`` with the reference evaluator; called like every format's host runner."""

    label = LABEL

    def __init__(self, path: Path | None, max_batch: int | None = None, program: Any = None):
        self.path, self.max_batch = path, max_batch
        self.program: Program = plan(program if program is not None else read_program(Path(path)), set(OPS))
        self.steps = self._fold_constants()
        self.numerics = Numerics(self.program.precision, self.program.constants)

    @classmethod
    def from_program(cls, program: Any) -> "ReferenceEvaluator":
        """An evaluator for an in-memory MIL program (as coremltools' builder makes it)."""
        return cls(None, program=program)

    def _fold_constants(self) -> list[Step]:
        """Run the steps that need no input once (weights decoded and cast); the rest run per call."""
        known, runtime = self.program.constants, []
        for step in self.program.steps:
            refs = [r for ref in step.inputs.values() for r in (ref if isinstance(ref, list) else [ref])]
            if all(r in known for r in refs):
                execute(step, known)
            else:
                runtime.append(step)
        return runtime

    def run(self, feed: dict[str, np.ndarray], record: bool = False) -> dict[str, np.ndarray]:
        """Every value of the program for the inputs ``feed`` (by input name); all of them when ``record``,
        else only the outputs."""
        env: dict[str, Any] = dict(self.program.constants)
        for name, dtype in self.program.inputs:
            env[name] = np.ascontiguousarray(feed[name], dtype=dtype)
        for step in self.steps:
            values = execute(step, env)
            self.numerics.observe(step, values)
        self.numerics.observe_outputs([env[name] for name in self.program.outputs])
        return env if record else {name: env[name] for name in self.program.outputs}

    def localize(self, student: Any, inputs: dict[str, np.ndarray], dynamic_batch: bool = True) -> dict[str, Any]:
        """The first op that diverges from ``student`` on ``inputs`` (see ``localize.first_divergence``)."""
        from edgedistill.coreml_reference.localize import first_divergence

        return first_divergence(self, student, inputs, dynamic_batch)

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        feed = {name: x for (name, _), x in zip(self.program.inputs, inputs)}
        return np.asarray(self.run(feed)[self.program.outputs[0]], dtype=np.float32)
