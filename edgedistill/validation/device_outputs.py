"""Validate outputs produced elsewhere (a phone, an iPhone test, an edge board) from a bundle's golden inputs.

The outputs file is the one contract between edgedistill and the apps/runners that run a bundle; it
is documented for app authors in ``docs/device-outputs.md`` (keep the two in step):

``outputs.npz`` holds one array, ``logits`` (or ``probs``), of shape ``(N, num_classes)`` and a
float dtype, row ``i`` being the model's output for golden input ``i`` (``golden/golden.npz``, in
order, ``N`` = the manifest's ``golden.count``). ``logits`` are raw model outputs; ``probs`` are
softmax probabilities. Optional: ``model_sha256`` (a string, the manifest's ``sha256`` of the model
that ran; checked when present) and ``device`` (a string naming the device, shown in the report).
A raw little-endian float32 file (``.bin``, as ExecuTorch's ``executor_runner`` writes) of exactly
``N * num_classes`` values is read the same way as logits.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from edgedistill.bundle import read_golden
from edgedistill.config import Tolerance
from edgedistill.errors import UserError
from edgedistill.validation.checks import checks_for
from edgedistill.validation.harness import OpenBundle, bundle_row, measure, open_bundles, tolerance_for
from edgedistill.validation.results import Report, Row

_EPS = 1e-12


def _string(npz, key: str, path: Path) -> str | None:
    if key not in npz.files:
        return None
    value = npz[key]
    if value.shape != () or value.dtype.kind not in "US":
        raise UserError(f"device outputs {path}: '{key}' must be a single string, got {value.dtype} {value.shape}")
    return str(value)


def read_outputs(path: str | Path, count: int, num_classes: int) -> tuple[np.ndarray, dict[str, str | None]]:
    """Device outputs as logits of shape (count, num_classes) (probabilities become log-probabilities),
    and the optional ``model_sha256`` and ``device`` strings."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"device outputs not found: {path}")
    meta: dict[str, str | None] = {"model_sha256": None, "device": None}
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
                meta = {key: _string(npz, key, path) for key in meta}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise UserError(f"device outputs {path} are not a readable .npz: {str(exc)[:200]}") from None
    if values.shape != (count, num_classes):
        raise UserError(f"device outputs {path}: '{kind}' has shape {values.shape}, expected ({count}, {num_classes})")
    if not np.issubdtype(values.dtype, np.floating) or not np.isfinite(values).all():
        raise UserError(f"device outputs {path}: '{kind}' must be finite floats (found NaN, Inf or {values.dtype})")
    if kind == "probs":
        return np.log(np.clip(values.astype(np.float64), _EPS, None)), meta
    return values.astype(np.float32), meta


def _reference_row(role: str, parameters: int) -> Row:
    return Row(name=role, role=role, runtime="golden", format="golden", quantization="fp32", parameters=parameters)


def validate_device_outputs(bundle: OpenBundle | str | Path, outputs: str | Path, tolerances: dict[str, Tolerance], *,
                            top_k: int = 5, ece_bins: int = 10, name: str | None = None,
                            runtime: str | None = None) -> Report:
    """Compare device outputs with the golden teacher and fp32-student probabilities of ``bundle``.

    The report's last row is the device's (the first two are the golden teacher and student).
    """
    if not isinstance(bundle, OpenBundle):
        bundle = open_bundles([Path(bundle)])[0]
    golden = read_golden(bundle.folder)
    if "teacher_probs" not in golden:
        raise UserError(f"bundle {bundle.folder} has no teacher probabilities in its golden data (export with a teacher)")
    manifest = bundle.manifest
    count = int(golden["student_probs"].shape[0])
    logits, meta = read_outputs(outputs, count, manifest.num_classes)
    if meta["model_sha256"] and meta["model_sha256"] != manifest.sha256:
        raise UserError(f"device outputs {outputs} come from model sha256 {meta['model_sha256'][:12]}…, "
                        f"but bundle {bundle.folder} holds {manifest.sha256[:12]}…")
    teacher = np.log(np.clip(golden["teacher_probs"].astype(np.float64), _EPS, None))
    student = np.log(np.clip(golden["student_probs"].astype(np.float64), _EPS, None))
    y = golden.get("y")
    kw = {"top_k": top_k, "ece_bins": ece_bins}
    params = int(manifest.student.get("parameters", 0))
    teacher_row, student_row = _reference_row("teacher", 0), _reference_row("student", params)
    teacher_row.set_measured(measure(teacher, None, teacher, y, **kw))
    student_row.set_measured(measure(teacher, student, student, y, **kw))
    device = runtime or meta["device"] or "device"
    row = bundle_row(bundle, name or f"{Path(bundle.folder).name} on {device}", params)
    row.role, row.runtime, row.path = "device", device, str(outputs)
    row.set_measured(measure(teacher, student, logits, y, student_accuracy=student_row.accuracy, **kw))
    row.checks = checks_for(row.measured(), tolerance_for(tolerances, manifest.quantization))
    report = Report(rows=[teacher_row, student_row, row], samples=count, data=f"{Path(bundle.folder).name} golden inputs",
                    top_k=min(top_k, manifest.num_classes), num_classes=manifest.num_classes, labels=manifest.labels,
                    ece_bins=ece_bins)
    report.keep_outputs(teacher_row, teacher, y)
    report.keep_outputs(student_row, student)
    report.keep_outputs(row, logits)
    return report


def validate_device_run(bundles: list[OpenBundle], outputs: list[str | Path], tolerances: dict[str, Tolerance], *,
                        top_k: int = 5, ece_bins: int = 10) -> Report:
    """One report for several (bundle, outputs file) pairs, in order; reference rows come from the first bundle."""
    if len(outputs) != len(bundles):
        raise UserError(f"give one --device-outputs file per bundle: {len(bundles)} bundle(s), {len(outputs)} file(s)")
    reports = [validate_device_outputs(b, o, tolerances, top_k=top_k, ece_bins=ece_bins) for b, o in zip(bundles, outputs)]
    merged = reports[0]
    for bundle, extra in zip(bundles[1:], reports[1:]):
        if not np.array_equal(extra.outputs["teacher"], merged.outputs["teacher"]):
            raise UserError(f"bundle {bundle.folder} has other golden data than {bundles[0].folder}: "
                            "validate their device outputs in separate calls")
        row = extra.rows[-1]
        merged.rows.append(row)
        merged.keep_outputs(row, extra.outputs[row.name])
    return merged
