"""Validate outputs produced elsewhere (a phone, an iPhone test, an edge board) from a bundle's golden inputs.

The outputs file is the one contract between edgedistill and the apps/runners that run a bundle:

``outputs.npz`` holds one array, ``logits`` (or ``probs``), of shape ``(N, num_classes)`` and a
float dtype, row ``i`` being the model's output for golden input ``i`` (``golden/golden.npz``, in
order, ``N`` = the manifest's ``golden.count``). ``logits`` are raw model outputs; ``probs`` are
softmax probabilities. A raw little-endian float32 file (``.bin``, as ExecuTorch's
``executor_runner`` writes) of exactly ``N * num_classes`` values is read the same way as logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedistill.bundle import read_bundle, read_golden
from edgedistill.config import Tolerance
from edgedistill.errors import UserError
from edgedistill.validation import metrics
from edgedistill.validation.harness import Report, Row, checks_for

_EPS = 1e-12


def read_outputs(path: str | Path, count: int, num_classes: int) -> np.ndarray:
    """Device outputs as logits of shape (count, num_classes); probabilities become log-probabilities."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"device outputs not found: {path}")
    if path.suffix == ".bin":
        raw = np.fromfile(path, dtype="<f4")
        if raw.size != count * num_classes:
            raise UserError(f"device outputs {path}: {raw.size} float32 values, expected {count} x {num_classes}")
        values, kind = raw.reshape(count, num_classes), "logits"
    else:
        try:
            with np.load(path, allow_pickle=False) as npz:
                kind = "logits" if "logits" in npz.files else "probs" if "probs" in npz.files else None
                if kind is None:
                    raise UserError(f"device outputs {path} have neither 'logits' nor 'probs' (found: {', '.join(npz.files)})")
                values = npz[kind]
        except (ValueError, OSError, EOFError) as exc:
            raise UserError(f"device outputs {path} are not a readable .npz: {exc}") from None
    if values.shape != (count, num_classes):
        raise UserError(f"device outputs {path}: '{kind}' has shape {values.shape}, expected ({count}, {num_classes})")
    if not np.issubdtype(values.dtype, np.floating) or not np.isfinite(values).all():
        raise UserError(f"device outputs {path}: '{kind}' must be finite floats (found NaN, Inf or {values.dtype})")
    return np.log(np.clip(values, _EPS, None)) if kind == "probs" else values.astype(np.float32)


def validate_device_outputs(bundle: str | Path, outputs: str | Path, tolerances: dict[str, Tolerance],
                            name: str | None = None, runtime: str = "device") -> Report:
    """Compare device outputs with the golden teacher and fp32-student probabilities of ``bundle``."""
    manifest, _ = read_bundle(bundle)
    golden = read_golden(bundle)
    if "teacher_probs" not in golden:
        raise UserError(f"bundle {bundle} has no teacher probabilities in its golden data (export with a teacher)")
    count = int(golden["student_probs"].shape[0])
    logits = read_outputs(outputs, count, manifest.num_classes)
    teacher_logits = np.log(np.clip(golden["teacher_probs"], _EPS, None))
    student_logits = np.log(np.clip(golden["student_probs"], _EPS, None))
    vs_teacher = metrics.compare(teacher_logits, logits)
    vs_student = metrics.compare(student_logits, logits)
    tol = tolerances.get(manifest.quantization) or tolerances.get("fp32") or Tolerance()
    row = Row(name=name or f"{Path(bundle).name} on {runtime}", runtime=runtime, quantization=manifest.quantization,
              parameters=int(manifest.student.get("parameters", 0)), size_bytes=manifest.size_bytes,
              accuracy=metrics.accuracy(logits, golden.get("y")), vs_teacher=vs_teacher, vs_student=vs_student,
              latency_ms=None, peak_memory_mb=None, path=str(outputs), delegation=manifest.delegation,
              checks=checks_for(vs_teacher, vs_student, tol))
    return Report(rows=[row], samples=count, data=f"{Path(bundle).name} golden inputs")
