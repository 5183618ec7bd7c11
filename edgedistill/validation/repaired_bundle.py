"""Write a repaired artifact as a complete bundle next to the original, and validate it like any bundle."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from edgedistill.bundle import read_golden
from edgedistill.config import ArtifactSpec, PipelineConfig
from edgedistill.data import Splits
from edgedistill.exporter import export_bundle
from edgedistill.fileio import atomic_path
from edgedistill.text_preprocessing import read_vocabulary
from edgedistill.validation.harness import OpenBundle, check_artifact, open_bundles
from edgedistill.validation.quant_probe import QuantProbe
from edgedistill.validation.results import Report, Row


def write_bundle(bundle: OpenBundle, student: nn.Module, probe: QuantProbe, float_modules: tuple[str, ...],
                 splits: Splits, suffix: str, extra: dict[str, Any] | None = None,
                 program: nn.Module | None = None) -> Path:
    """``<bundle>-<suffix>``: ``student`` exported as the bundle's format and scheme, ``float_modules`` in float
    (``program``, e.g. a converted QAT graph, is exported in its place with ``probe``'s options; the
    manifest's precision still counts ``student``'s modules)."""
    m = bundle.manifest
    final = bundle.folder.parent / f"{bundle.folder.name}-{suffix}"
    staging = Path(tempfile.mkdtemp(prefix=".repair-", dir=bundle.folder.parent))
    try:
        info = {"labels": m.labels, "preprocessing": m.preprocessing, "temperature": m.temperature,
                "student": {**m.student, **(extra or {})}, "float_modules": list(float_modules)}
        options = {**probe.options, **({"float_modules": list(float_modules)} if float_modules else {})}
        written = export_bundle(program if program is not None else student, ArtifactSpec(format=m.format, quantization=m.quantization, options=options),
                                out_dir=staging, sample=splits.test.inputs, calibration=probe.calibration,
                                golden=read_golden(bundle.folder), info=info, dynamic_batch=m.dynamic_batch,
                                vocab=read_vocabulary(bundle.folder), precision_of=student)
        with atomic_path(final, is_dir=True) as tmp:  # the old repaired bundle stays whole until the swap
            tmp.rmdir()
            os.replace(written, tmp)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def add_repaired(report: Report, row: Row, bundle: OpenBundle, probe: QuantProbe, float_modules: tuple[str, ...],
                 splits: Splits, config: PipelineConfig, result: dict[str, Any], *, suffix: str,
                 student: nn.Module, extra: dict[str, Any] | None = None,
                 program: nn.Module | None = None) -> dict[str, Any]:
    """Write the repaired bundle, validate it (its row joins the report) and complete ``result`` with
    its size and latency next to the original's."""
    folder = write_bundle(bundle, student, probe, float_modules, splits, suffix, extra, program)
    repaired = open_bundles([folder])[0]
    v = config.validate_
    new_row, logits = check_artifact(repaired, data=splits.test, teacher_logits=report.outputs["teacher"],
                                     student_logits=report.outputs["student"], student_row=report.row("student"),
                                     tol=report_tolerance(config, repaired.manifest.quantization),
                                     top_k=report.top_k, ece_bins=report.ece_bins, batch_size=v.batch_size,
                                     latency_samples=v.latency_samples, measure_memory=v.measure_memory,
                                     name=f"{row.name} {suffix}", threads=row.threads or 1)  # as the original ran
    report.rows.append(new_row)
    if logits is not None:
        report.keep_outputs(new_row, logits)
    mix = repaired.manifest.precision.get("scheme_mix", repaired.manifest.quantization)
    result.update(repaired_bundle=str(folder), passed=new_row.passed, scheme_mix=mix,
                  size_bytes=new_row.size_bytes, original_size_bytes=row.size_bytes,
                  latency_ms=new_row.latency_ms, original_latency_ms=row.latency_ms,
                  top1_vs_student=(new_row.vs_student or {}).get("top1_agreement"),
                  original_top1_vs_student=(row.vs_student or {}).get("top1_agreement"),
                  summary=f"{folder} {'passes' if new_row.passed else 'FAILS'} as {mix}; "
                          f"{_kib(new_row.size_bytes)} (was {_kib(row.size_bytes)}); validate it to gate on it")
    return result


def report_tolerance(config: PipelineConfig, scheme: str):
    from edgedistill.validation.harness import tolerance_for

    return tolerance_for(config.validate_.tolerances, scheme)


def _kib(size: int | None) -> str:
    return "?" if size is None else f"{size / 1024:.1f} KiB"
