"""Run the teacher, the fp32 student and each exported artifact over held-out data and check them.

Every artifact runs in its own runtime (loaded from the bundle on disk, as an app would) and is
compared with the teacher (agreement, KL, |Δp|) and with the fp32 student (|Δp|): the first says
whether distillation kept the teacher's answers, the second whether export/quantization broke them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgedistill.bundle import read_bundle
from edgedistill.config import Tolerance
from edgedistill.data import Dataset
from edgedistill.errors import UserError
from edgedistill.formats import get as get_format
from edgedistill.formats.base import HostRunUnavailable, run_batched
from edgedistill.distillation.trainer import predict_logits
from edgedistill.modelref import count_parameters
from edgedistill.quiet import quiet
from edgedistill.validation import metrics
from edgedistill.validation.profile import median_latency_ms, peak_memory_mb


@dataclass
class Check:
    """One pass/fail bound on one metric."""

    name: str
    value: float
    bound: float
    kind: str  # "min" or "max"
    passed: bool


@dataclass
class Row:
    """One model in the comparison: the teacher, the fp32 student, or an exported artifact."""

    name: str
    runtime: str
    quantization: str
    parameters: int
    size_bytes: int | None
    accuracy: float | None
    vs_teacher: dict[str, float]
    vs_student: dict[str, float] | None
    latency_ms: float | None
    peak_memory_mb: float | None
    path: str | None = None
    delegation: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    skipped: str | None = None  # why this artifact could not run here (e.g. Core ML off macOS): not a pass

    @property
    def passed(self) -> bool:
        return self.skipped is None and all(c.passed for c in self.checks)

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else "pass" if self.passed else "fail"


@dataclass
class Report:
    """All rows of one validation run; ``passed`` is the CI gate."""

    rows: list[Row]
    samples: int
    data: str

    @property
    def passed(self) -> bool:
        """Every artifact that ran agrees; skipped ones are listed, neither passed nor failed."""
        return all(r.passed for r in self.rows if r.skipped is None)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, "passed": self.passed, "samples": self.samples, "data": self.data,
                "rows": [{**asdict(r), "passed": r.passed, "status": r.status} for r in self.rows]}


def checks_for(vs_teacher: dict[str, float], vs_student: dict[str, float], tol: Tolerance) -> list[Check]:
    agree, dp = vs_teacher["top1_agreement"], vs_student["max_abs_dp"]
    return [
        Check("top1_agreement_vs_teacher", agree, tol.min_teacher_top1, "min", agree >= tol.min_teacher_top1),
        Check("max_abs_dp_vs_student", dp, tol.max_student_abs_dp, "max", dp <= tol.max_student_abs_dp),
    ]


def _torch_row(name: str, model: nn.Module, data: Dataset, teacher_logits: np.ndarray,
               student_logits: np.ndarray | None, checkpoint: Path | None, latency_samples: int,
               measure_memory: bool) -> tuple[Row, np.ndarray]:
    logits = predict_logits(model, data.inputs).numpy()
    with torch.no_grad():
        latency = median_latency_ms(lambda *a: model(*(torch.from_numpy(v) for v in a)), data.inputs, latency_samples)
    memory = peak_memory_mb("checkpoint", checkpoint, data.inputs) if (measure_memory and checkpoint) else None
    row = Row(name=name, runtime="pytorch", quantization="fp32", parameters=count_parameters(model),
              size_bytes=checkpoint.stat().st_size if checkpoint else None,
              accuracy=metrics.accuracy(logits, data.y), vs_teacher=metrics.compare(teacher_logits, logits),
              vs_student=None if student_logits is None else metrics.compare(student_logits, logits),
              latency_ms=latency, peak_memory_mb=memory, path=str(checkpoint) if checkpoint else None)
    return row, logits


def validate_bundles(bundles: list[Path], *, teacher: nn.Module, student: nn.Module, data: Dataset,
                     tolerances: dict[str, Tolerance], teacher_checkpoint: Path | None = None,
                     student_checkpoint: Path | None = None, latency_samples: int = 200,
                     measure_memory: bool = True) -> Report:
    """Compare each bundle (run in its real runtime) with the teacher and the fp32 student."""
    opened = [(Path(b), *read_bundle(b)) for b in bundles]
    teacher_logits = predict_logits(teacher, data.inputs).numpy()
    n_classes = teacher_logits.shape[1]
    for folder, manifest, _ in opened:
        if manifest.num_classes != n_classes:
            raise UserError(f"teacher has {n_classes} classes but bundle {folder} has {manifest.num_classes}")
    teacher_row, _ = _torch_row("teacher", teacher, data, teacher_logits, None, teacher_checkpoint,
                                latency_samples, measure_memory)
    student_row, student_logits = _torch_row("student", student, data, teacher_logits, None, student_checkpoint,
                                             latency_samples, measure_memory)
    student_row.vs_student = metrics.compare(student_logits, student_logits)
    rows = [teacher_row, student_row]
    for folder, manifest, model_path in opened:
        fmt = get_format(manifest.format)
        try:
            with quiet():
                runner = fmt.load(model_path, manifest.max_batch)
        except HostRunUnavailable as exc:
            rows.append(Row(name=f"student .{model_path.suffix.lstrip('.')} {manifest.quantization}",
                            runtime=manifest.format, quantization=manifest.quantization,
                            parameters=student_row.parameters, size_bytes=manifest.size_bytes, accuracy=None,
                            vs_teacher={}, vs_student=None, latency_ms=None, peak_memory_mb=None, path=str(folder),
                            delegation=manifest.delegation, skipped=str(exc)))
            continue
        with quiet():
            logits = run_batched(runner, data.inputs)
            latency = median_latency_ms(runner, data.inputs, latency_samples)
        if logits.shape != teacher_logits.shape:
            raise UserError(f"bundle {folder} returned outputs of shape {logits.shape}, expected {teacher_logits.shape}")
        vs_teacher = metrics.compare(teacher_logits, logits)
        vs_student = metrics.compare(student_logits, logits)
        tol = tolerances.get(manifest.quantization) or tolerances.get("fp32") or Tolerance()
        rows.append(Row(
            name=f"student .{model_path.suffix.lstrip('.')} {manifest.quantization}", runtime=manifest.format,
            quantization=manifest.quantization, parameters=student_row.parameters, size_bytes=manifest.size_bytes,
            accuracy=metrics.accuracy(logits, data.y), vs_teacher=vs_teacher, vs_student=vs_student,
            latency_ms=latency, peak_memory_mb=peak_memory_mb("bundle", folder, data.inputs) if measure_memory else None,
            path=str(folder), delegation=manifest.delegation, checks=checks_for(vs_teacher, vs_student, tol),
        ))
    if opened and all(r.skipped for r in rows[2:]):  # a gate must not pass on nothing having run
        raise UserError(f"no bundle can run on this machine, nothing was validated: {rows[2].skipped}")
    return Report(rows=rows, samples=len(data), data=data.name)
