"""Explain failing artifacts, and repair them by keeping layers in floating point (``validate --repair``).

For each artifact that fails a check against the fp32 student:

1. re-export the student with the artifact's format and scheme: if that passes, the bundle is stale
   or was modified after export, and there is nothing to localize;
2. otherwise localize the first layer whose error jumps (``localize.py``);
3. with ``repair``: keep that layer in float, re-export, check; if it still fails, localize again with
   the layers kept so far and keep the next one, until the tolerance holds or every layer is kept.
   A repair that passes is written as a new bundle ``<bundle>-repaired`` next to the original, and
   validated like any bundle (its row is added to the report). The exit code still judges the
   bundles that were given: CI never silently ships a different artifact.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgedistill.bundle import read_golden
from edgedistill.text_preprocessing import read_vocabulary
from edgedistill.config import ArtifactSpec, PipelineConfig, Tolerance
from edgedistill.data import Splits
from edgedistill.exporter import calibration_set, export_bundle
from edgedistill.formats import get as get_format
from edgedistill.formats.base import NEEDS_CALIBRATION
from edgedistill.validation.checks import checks_for
from edgedistill.validation.harness import OpenBundle, check_artifact, measure, open_bundles, tolerance_for
from edgedistill.validation.localize import PrefixProbe, localize
from edgedistill.validation.results import Report, Row

log = logging.getLogger("edgedistill")


def _failed_checks(report: Report, logits, tol: Tolerance) -> list[str]:
    student = report.row("student")
    measured = measure(report.outputs["teacher"], report.outputs["student"], logits, report.y, top_k=report.top_k,
                       ece_bins=report.ece_bins, student_accuracy=student.accuracy)
    return [c.name for c in checks_for(measured, tol) if c.failed]


def _write_repaired(bundle: OpenBundle, probe: PrefixProbe, kept: list[str], splits: Splits, config: PipelineConfig) -> Path:
    """The repaired artifact as a complete bundle ``<bundle>-repaired`` (written atomically)."""
    m = bundle.manifest
    final = bundle.folder.parent / f"{bundle.folder.name}-repaired"
    staging = Path(tempfile.mkdtemp(prefix=".repair-", dir=bundle.folder.parent))
    try:
        info = {"labels": m.labels, "preprocessing": m.preprocessing, "temperature": m.temperature,
                "student": dict(m.student), "float_modules": list(kept)}
        spec = ArtifactSpec(format=m.format, quantization=m.quantization,
                            options={**probe.options, "float_modules": list(kept)})
        written = export_bundle(probe.student, spec, out_dir=staging, sample=splits.test.inputs,
                                calibration=probe.calibration, golden=read_golden(bundle.folder), info=info,
                                dynamic_batch=m.dynamic_batch, vocab=read_vocabulary(bundle.folder))
        if final.exists():
            shutil.rmtree(final)
        os.replace(written, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _repair(report: Report, row: Row, bundle: OpenBundle, probe: PrefixProbe, first: dict[str, Any], tol: Tolerance,
            splits: Splits, config: PipelineConfig) -> dict[str, Any]:
    kept, steps, located = list(bundle.manifest.float_modules), [], first
    while located["culprit"] is not None:
        kept.append(located["culprit"])
        failed = _failed_checks(report, probe.run_full(tuple(kept)), tol)
        steps.append({"kept_float": list(kept), "failed_checks": failed})
        log.info("validate: repair %s: kept %s in float -> %s", bundle.folder.name, ", ".join(kept),
                 "passes" if not failed else "still fails " + ", ".join(failed))
        if not failed:
            break
        located = localize(probe, tuple(kept))
    result: dict[str, Any] = {"bundle": str(bundle.folder), "kept_float": kept, "steps": steps,
                              "passed": bool(steps) and not steps[-1]["failed_checks"], "repaired_bundle": None}
    if not result["passed"]:
        result["summary"] = f"no repair: still failing with {', '.join(kept) or 'nothing'} kept in float"
        return result
    folder = _write_repaired(bundle, probe, kept, splits, config)
    repaired = open_bundles([folder])[0]
    new_row, logits = check_artifact(repaired, data=splits.test, teacher_logits=report.outputs["teacher"],
                                     student_logits=report.outputs["student"], student_row=report.row("student"), tol=tol,
                                     top_k=report.top_k, ece_bins=report.ece_bins, batch_size=config.validate_.batch_size,
                                     latency_samples=config.validate_.latency_samples,
                                     measure_memory=config.validate_.measure_memory, name=f"{row.name} repaired")
    report.rows.append(new_row)
    if logits is not None:
        report.keep_outputs(new_row, logits)
    result.update(repaired_bundle=str(folder), passed=new_row.passed,
                  summary=f"{folder} {'passes' if new_row.passed else 'FAILS'} with {', '.join(kept)} kept in float "
                          f"({len(steps)} step{'s' * (len(steps) > 1)}); validate it to gate on it")
    return result


def _calibration(config: PipelineConfig, splits: Splits):
    """The calibration set the export stage used (a calibration file, else drawn from the training split)."""
    e = config.export
    if e.calibration:
        from edgedistill.calibrate import read as read_calibration

        return read_calibration(e.calibration, splits.test.inputs)
    return calibration_set(splits.train, e.calibration_samples)


def _not_localized(summary: str) -> dict[str, Any]:
    return {"available": False, "culprit": None, "layers": [], "summary": summary}


def diagnose(report: Report, bundles: list[OpenBundle], *, student, splits: Splits, config: PipelineConfig,
             repair: bool = False) -> None:
    """Attach a localization to every artifact failing against the fp32 student; repair them if asked."""
    by_path = {str(b.folder): b for b in bundles}
    for row in [r for r in report.rows if r.role == "artifact" and not r.passed]:
        bundle, m = by_path[row.path], by_path[row.path].manifest
        if not any(c.failed and c.name.endswith("_vs_student") for c in row.checks):
            row.localization = _not_localized("every check against the fp32 student passes: the gap to the teacher "
                                              "comes from distillation, not from export")
            continue
        fmt = get_format(m.format)
        problem = fmt.missing()
        if problem:
            row.localization = _not_localized(f"not localized: {problem}")
            continue
        calibration = _calibration(config, splits) if m.quantization in NEEDS_CALIBRATION else None
        probe = PrefixProbe(student, m.format, m.quantization, splits.test.inputs, calibration,
                            config.export.options.get(m.format), m.dynamic_batch)
        tol = tolerance_for(config.validate_.tolerances, m.quantization)
        try:
            failing = {c.name for c in row.checks if c.failed}
            if not failing & set(_failed_checks(report, probe.run_full(tuple(m.float_modules)), tol)):
                row.localization = _not_localized(
                    f"not reproduced: exporting the student again as {m.format} {m.quantization} passes "
                    f"{', '.join(sorted(failing))}, so {bundle.folder} was not exported from this student or was "
                    "modified after export; export it again")
                continue
            row.localization = {**localize(probe, tuple(m.float_modules)), "reproduced": True}
            if repair and row.localization["available"]:
                if m.quantization == "fp32" or not fmt.FLOAT_MODULES:
                    report.repairs.append({"bundle": str(bundle.folder), "passed": False, "kept_float": [], "steps": [],
                                           "repaired_bundle": None, "summary": f"cannot repair: {m.format} "
                                           f"{m.quantization} has no layers to keep in floating point"})
                    continue
                report.repairs.append(_repair(report, row, bundle, probe, row.localization, tol, splits, config))
        finally:
            probe.close()
