"""Load the ML Program of a saved ``.mlpackage`` as a plan of steps the evaluator executes.

coremltools' MIL loader (``milproto.load``) rebuilds the program from the spec and the weight file on
any OS. Each non-const op becomes a ``Step`` (its op type, inputs by name or constant value, output
names and dtypes); every op type must have an implementation, else ``CannotCheck`` names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgedistill.errors import UserError

LABEL = "Core ML reference evaluator (not Apple's runtime)"
WEIGHTS = Path("Data") / "com.apple.CoreML" / "weights"


class CannotCheck(UserError):
    """The program uses an op the reference evaluator does not implement: the artifact cannot be checked."""


@dataclass
class Step:
    """One op of the program: ``inputs`` maps each parameter to a value name (str), a list of them, or
    a constant (numpy); ``outputs`` are (name, numpy dtype) pairs."""

    op_type: str
    name: str
    inputs: dict[str, Any]
    outputs: list[tuple[str, np.dtype]]


@dataclass
class Program:
    """The main function: its inputs (name, dtype), steps in order, constants and output names."""

    inputs: list[tuple[str, np.dtype]]
    steps: list[Step]
    constants: dict[str, np.ndarray]
    outputs: list[str]
    precision: str = "fp32"  # "fp16" when any float tensor of the program is fp16
    meta: dict[str, Any] = field(default_factory=dict)


def _nptype(var: Any) -> np.dtype:
    from coremltools.converters.mil.mil import types

    dtype = var.dtype if not types.is_tensor(var.sym_type) else var.sym_type.get_primitive()
    return np.dtype(types.nptype_from_builtin(dtype))


def _ref(value: Any, constants: dict[str, np.ndarray]) -> Any:
    if isinstance(value, (list, tuple)):
        return [_ref(v, constants) for v in value]
    if value.name not in constants and value.op is not None and value.op.op_type == "const":
        constants[value.name] = np.asarray(value.val) if not isinstance(value.val, str) else value.val
    return value.name


def read_program(package: Path) -> Any:
    """The MIL program of ``package`` (a saved ``.mlpackage`` folder), via coremltools' loader."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load

    from edgedistill.quiet import quiet

    spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    if spec.WhichOneof("Type") != "mlProgram":
        raise UserError(f"{Path(package).name} is not an ML Program (it is a {spec.WhichOneof('Type')})")
    with quiet():
        return load(spec, specification_version=spec.specificationVersion,
                    file_weights_dir=str(Path(package) / WEIGHTS))


def plan(program: Any, implemented: set[str]) -> Program:
    """The main function of a MIL ``program`` as steps; ``CannotCheck`` for an op not in ``implemented``."""
    fn = program.functions["main"]
    missing = sorted({op.op_type for op in fn.operations if op.op_type != "const" and op.op_type not in implemented})
    if missing:
        raise CannotCheck(f"cannot check: op {', '.join(missing)} (the Core ML reference evaluator does not implement it)")
    constants: dict[str, np.ndarray] = {}
    steps = []
    for op in fn.operations:
        if op.op_type == "const":
            _ref(op.outputs[0], constants)
            continue
        inputs = {k: _ref(v, constants) for k, v in op.inputs.items()}
        steps.append(Step(op.op_type, op.name, inputs, [(o.name, _nptype(o)) for o in op.outputs]))
    floats = {dt for s in steps for _, dt in s.outputs} | {np.asarray(c).dtype for c in constants.values()}
    return Program(inputs=[(name, _nptype(var)) for name, var in fn.inputs.items()], steps=steps,
                   constants=constants, outputs=[v.name for v in fn.outputs],
                   precision="fp16" if np.dtype(np.float16) in floats else "fp32")
