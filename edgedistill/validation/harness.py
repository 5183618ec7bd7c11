"""Run the teacher, the fp32 student and each exported artifact over held-out data and check them.

Every artifact runs in its own runtime (loaded from the bundle on disk, as an app would, through the
format registry) and is compared with the teacher and with the fp32 student: the first says whether
distillation kept the teacher's answers, the second whether export/quantization broke them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from edgedistill.bundle import Manifest, read_bundle, read_golden
from edgedistill.config import Tolerance
from edgedistill.data import Dataset, take
from edgedistill.errors import UserError
from edgedistill.formats import get as get_format
from edgedistill.formats.base import run_batched
from edgedistill.inference import predict_logits
from edgedistill.modelref import count_parameters
from edgedistill.quiet import quiet
from edgedistill.validation import metrics
from edgedistill.validation.checks import Check, checks_for
from edgedistill.validation.profile import median_latency_ms, peak_memory_mb
from edgedistill.validation.progress import Progress
from edgedistill.validation.results import Report, Row

__all__ = ["Check", "Report", "Row", "OpenBundle", "open_bundles", "validate_bundles", "measure", "tolerance_for"]


@dataclass
class OpenBundle:
    """A bundle folder whose manifest parsed, whose files exist and whose model matches its sha256."""

    folder: Path
    manifest: Manifest
    model_path: Path


def open_bundles(folders: list[Path]) -> list[OpenBundle]:
    """Read and verify every bundle before any model runs (a UserError names the first bad one)."""
    opened = []
    for folder in map(Path, folders):
        manifest, model_path = read_bundle(folder)
        read_golden(folder, manifest)  # a bundle without its golden data is incomplete for the apps
        opened.append(OpenBundle(folder, manifest, model_path))
    return opened


def tolerance_for(tolerances: dict[str, Tolerance], scheme: str) -> Tolerance:
    """The scheme's bounds (an unknown scheme gets fp32's, the strictest)."""
    return tolerances.get(scheme) or tolerances.get("fp32") or Tolerance()


def check_bundle_classes(teacher: nn.Module, data: Dataset, opened: list[OpenBundle]) -> int:
    """The teacher's number of classes, which every bundle must share."""
    n = int(predict_logits(teacher, take(data.inputs, slice(0, 2))).shape[-1])
    for b in opened:
        if b.manifest.num_classes != n:
            raise UserError(f"teacher has {n} classes but bundle {b.folder} has {b.manifest.num_classes}")
    return n


def measure(teacher_logits: np.ndarray, student_logits: np.ndarray | None, logits: np.ndarray,
            y: np.ndarray | None, *, top_k: int, ece_bins: int, student_accuracy: float | None = None) -> dict:
    """Everything a check can bound, plus the disagreement analysis, for one model's logits."""
    acc = metrics.accuracy(logits, y)
    return {
        "vs_teacher": metrics.compare(teacher_logits, logits, top_k),
        "vs_student": None if student_logits is None else metrics.compare(student_logits, logits, top_k),
        "accuracy": acc,
        "accuracy_drop": None if acc is None or student_accuracy is None else student_accuracy - acc,
        "ece": metrics.expected_calibration_error(logits, y, ece_bins),
        "flips_vs_teacher": metrics.disagreement_flips(teacher_logits, logits),
        "flips_vs_student": [] if student_logits is None else metrics.disagreement_flips(student_logits, logits),
        "per_class_agreement": metrics.per_class_agreement(teacher_logits, logits),
    }


def _run_torch(model: nn.Module, data: Dataset, desc: str, batch_size: int) -> tuple[np.ndarray, float]:
    progress = Progress(desc, len(data))
    parts = []
    for i in range(0, len(data), batch_size):
        parts.append(predict_logits(model, take(data.inputs, slice(i, i + batch_size))).numpy())
        progress.update(len(parts[-1]))
    return np.concatenate(parts), progress.close()


def _torch_row(role: str, model: nn.Module, data: Dataset, checkpoint: Path | None, batch_size: int,
               latency_samples: int, measure_memory: bool) -> tuple[Row, np.ndarray]:
    import torch

    logits, rate = _run_torch(model, data, role, batch_size)
    with torch.no_grad():
        latency = median_latency_ms(lambda *a: model(*(torch.from_numpy(v) for v in a)), data.inputs, latency_samples)
    row = Row(name=role, role=role, runtime="pytorch", format="pytorch", quantization="fp32",
              parameters=count_parameters(model), size_bytes=checkpoint.stat().st_size if checkpoint else None,
              path=str(checkpoint) if checkpoint else None, latency_ms=latency, samples_per_s=rate,
              peak_memory_mb=peak_memory_mb("checkpoint", checkpoint, data.inputs) if measure_memory and checkpoint else None)
    return row, logits


def artifact_name(bundle: OpenBundle) -> str:
    """How reports name an artifact: ``student .pte int8`` (plus the folder when that is ambiguous)."""
    return f"student {bundle.model_path.suffix} {bundle.manifest.quantization}"


def bundle_row(bundle: OpenBundle, name: str, parameters: int | None) -> Row:
    """A row for ``bundle`` with what its manifest says; metrics and checks are filled by the caller."""
    m = bundle.manifest
    return Row(name=name, role="artifact", runtime=m.backend, format=m.format, quantization=m.quantization,
               parameters=parameters if parameters is not None else int(m.student.get("parameters", 0)),
               size_bytes=m.size_bytes, path=str(bundle.folder), delegation=dict(m.delegation),
               float_modules=list(m.float_modules), sha256=m.sha256)


def run_bundle(bundle: OpenBundle, data: Dataset, desc: str, batch_size: int,
               threads: int = 1) -> tuple[np.ndarray, float, object]:
    """The artifact's logits on ``data`` in its own runtime (on ``threads`` threads), the samples/s, and the runner."""
    fmt = get_format(bundle.manifest.format)
    with quiet():
        runner = fmt.load(bundle.model_path, bundle.manifest.max_batch, threads)
    progress = Progress(desc, len(data))
    with quiet():
        logits = run_batched(runner, data.inputs, batch_size, on_batch=progress.update)
    rate = progress.close()
    expected = (len(data), bundle.manifest.num_classes)
    if logits.shape != expected:
        raise UserError(f"bundle {bundle.folder} returned outputs of shape {logits.shape}, expected {expected}")
    return logits, rate, runner


def not_runnable(bundle: OpenBundle) -> str | None:
    """Why this machine cannot run the bundle (None when it can): e.g. Core ML, or a .pte with the
    Core ML delegate, off macOS. Asked of the format, for the bundle's backend, on this machine."""
    fmt = get_format(bundle.manifest.format)
    return fmt.host_run_problem({"backend": bundle.manifest.backend})


def check_artifact(bundle: OpenBundle, *, data: Dataset, teacher_logits: np.ndarray, student_logits: np.ndarray,
                   student_row: Row, tol: Tolerance, top_k: int = 5, ece_bins: int = 10, batch_size: int = 256,
                   latency_samples: int = 200, measure_memory: bool = True, name: str | None = None,
                   student: nn.Module | None = None, threads: int = 1) -> tuple[Row, np.ndarray | None]:
    """Run one bundle in its runtime (unless it cannot run here) on ``threads`` threads and check it;
    returns the row and its logits."""
    row = bundle_row(bundle, name or artifact_name(bundle), student_row.parameters)
    reason = not_runnable(bundle)
    if reason:
        row.not_run = reason
        row.checks = checks_for({}, tol, not_run=reason)
        return row, None
    from edgedistill.coreml_reference import CannotCheck

    try:
        logits, row.samples_per_s, runner = run_bundle(bundle, data, f"{row.name} ({bundle.folder.name})", batch_size,
                                                       threads)
    except CannotCheck as exc:  # never a silent pass: every check fails, naming what could not be evaluated
        row.evaluator = getattr(get_format(bundle.manifest.format), "runtime_label", lambda: None)()
        row.checks = checks_for({}, tol, cannot_check=str(exc))
        return row, None
    row.evaluator = getattr(runner, "label", None)
    row.threads = getattr(runner, "threads", None)  # read back from the runtime; None: it has no setting
    numerics = getattr(runner, "numerics", None)
    row.numerics = numerics.to_dict() if numerics is not None else None
    with quiet():
        row.latency_ms = median_latency_ms(runner, data.inputs, latency_samples)
    if measure_memory:
        row.peak_memory_mb = peak_memory_mb("bundle", bundle.folder, data.inputs, threads=threads)
    row.set_measured(measure(teacher_logits, student_logits, logits, data.y, top_k=top_k, ece_bins=ece_bins,
                             student_accuracy=student_row.accuracy))
    row.checks = checks_for(row.measured(), tol)
    if not row.passed and student is not None and hasattr(runner, "localize"):
        with quiet():  # which op of the program diverges first from the student's own computation
            row.localization = runner.localize(student, take(data.inputs, slice(0, 16)), bundle.manifest.dynamic_batch)
    return row, logits


def validate_bundles(bundles: list[OpenBundle], *, teacher: nn.Module, student: nn.Module, data: Dataset,
                     tolerances: dict[str, Tolerance], teacher_checkpoint: Path | None = None,
                     student_checkpoint: Path | None = None, latency_samples: int = 200, measure_memory: bool = True,
                     top_k: int = 5, ece_bins: int = 10, batch_size: int = 256, threads: int = 1) -> Report:
    """Compare each bundle (run in its real runtime, on ``threads`` threads) with the teacher and the fp32 student."""
    n_classes = check_bundle_classes(teacher, data, bundles)
    teacher_row, teacher_logits = _torch_row("teacher", teacher, data, teacher_checkpoint, batch_size,
                                             latency_samples, measure_memory)
    student_row, student_logits = _torch_row("student", student, data, student_checkpoint, batch_size,
                                             latency_samples, measure_memory)
    kw = {"top_k": top_k, "ece_bins": ece_bins}
    teacher_row.set_measured(measure(teacher_logits, None, teacher_logits, data.y, **kw))
    student_row.set_measured(measure(teacher_logits, student_logits, student_logits, data.y, **kw))
    report = Report(rows=[teacher_row, student_row], samples=len(data), data=data.name, top_k=min(top_k, n_classes),
                    ece_bins=ece_bins, num_classes=n_classes, labels=data.labels)
    report.keep_outputs(teacher_row, teacher_logits, data.y)
    report.keep_outputs(student_row, student_logits)
    names = [artifact_name(b) for b in bundles]
    for bundle, name in zip(bundles, names):
        if names.count(name) > 1:  # two bundles of the same format and scheme: tell them apart
            name = f"{name} ({bundle.folder.name})"
        row, logits = check_artifact(bundle, data=data, teacher_logits=teacher_logits, student_logits=student_logits,
                                     student_row=student_row, tol=tolerance_for(tolerances, bundle.manifest.quantization),
                                     batch_size=batch_size, latency_samples=latency_samples,
                                     measure_memory=measure_memory, name=name, student=student, threads=threads, **kw)
        report.rows.append(row)
        if logits is not None:
            report.keep_outputs(row, logits)
    return report


def failed_checks(report: Report, logits, tol: Tolerance) -> list[str]:
    """Names of the checks ``logits`` (on the test split) fail against the report's teacher and student."""
    student = report.row("student")
    measured = measure(report.outputs["teacher"], report.outputs["student"], logits, report.y, top_k=report.top_k,
                       ece_bins=report.ece_bins, student_accuracy=student.accuracy)
    return [c.name for c in checks_for(measured, tol) if c.failed]
