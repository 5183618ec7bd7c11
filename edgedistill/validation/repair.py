"""Explain failing int8 artifacts, and repair them (``validate --repair [mixed|equalize|qat|auto]``).

For each artifact that fails a check against the fp32 student:

1. re-export the student with the artifact's format and scheme: if that passes, the bundle is stale
   or was modified after export, and there is nothing to localize;
2. otherwise localize (``localize.py``): per-module intermediate error where the runtime exposes it,
   and each module's sensitivity (agreement with only that module quantized);
3. ``mixed``: keep modules in float, most sensitive first, until the tolerance holds. It fails, and
   writes nothing, when that needs more than ``repair_max_float_share`` of the quantizable modules:
   an "int8" file that is mostly float is not what the user asked for, and never all of them;
   ``equalize``: cross-layer equalization of the student (``edgedistill/equalize.py``: data-free, the
   same float function), then the format's PTQ again, everything int8;
   ``qat``: quantization-aware distillation against the teacher, everything int8, starting from the
   equalized student (``qat_repair.py``);
   ``auto``: the cheapest that passes: equalize (one export, nothing in float), else mixed, else qat.
   A repair that passes is written as a new bundle next to the original (``-equalized`` / ``-repaired``
   / ``-qat``), its
   manifest saying what is kept in float and the real scheme mix, and validated like any bundle. The
   exit code still judges the bundles that were given: CI never silently ships a different artifact.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from torch import nn

from edgedistill.config import PipelineConfig, Tolerance
from edgedistill.data import Splits
from edgedistill.exporter import calibration_set
from edgedistill.formats import get as get_format
from edgedistill.mixed_precision import quantizable_modules
from edgedistill.validation.checks import checks_for
from edgedistill.validation.harness import OpenBundle, failed_checks, tolerance_for
from edgedistill.validation.localize import agreement, localize
from edgedistill.validation.quant_probe import QuantProbe
from edgedistill.validation.repaired_bundle import add_repaired
from edgedistill.validation.results import Report, Row

log = logging.getLogger("edgedistill")


def repair_mixed(report: Report, row: Row, bundle: OpenBundle, probe: QuantProbe, tol: Tolerance, splits: Splits,
                 config: PipelineConfig) -> dict[str, Any]:
    """Keep the most sensitive modules in float, one at a time, until the checks pass (or the cap is reached)."""
    start, every = time.perf_counter(), quantizable_modules(probe.student)
    cap = max(1, int(config.validate_.repair_max_float_share * len(every)))  # a tiny model may keep one
    kept, steps = list(bundle.manifest.float_modules), []
    result: dict[str, Any] = {"bundle": str(bundle.folder), "strategy": "mixed", "passed": False, "kept_float": kept,
                              "steps": steps, "repaired_bundle": None, "quantizable_modules": len(every)}
    for name in row.localization["ranking"]:
        if len(kept) + 1 > min(cap, len(every) - 1):
            result["summary"] = (f"no mixed-precision repair within {config.validate_.repair_max_float_share:.0%} of "
                                 f"{len(every)} quantizable modules in float (still failing with "
                                 f"{', '.join(kept) or 'nothing'} in float): keeping more would not be int8")
            break
        kept.append(name)
        failed = failed_checks(report, probe.run(tuple(kept)), tol)  # simulated probes: the bundle's run confirms
        steps.append({"kept_float": list(kept), "failed_checks": failed})
        log.info("validate: repair %s: %s in float -> %s", bundle.folder.name, ", ".join(kept),
                 "passes" if not failed else "still fails " + ", ".join(failed))
        if not failed:
            result["passed"] = True
            break
    result["float_share"] = round(len(kept) / max(len(every), 1), 4)
    result["seconds"] = round(time.perf_counter() - start, 2)
    if not result["passed"]:
        result.setdefault("summary", f"no repair: still failing with every ranked module tried ({', '.join(kept)})")
        return result
    return add_repaired(report, row, bundle, probe, tuple(kept), splits, config, result, suffix="repaired",
                        student=probe.student)


def repair_equalize(report: Report, row: Row, bundle: OpenBundle, probe: QuantProbe, tol: Tolerance, splits: Splits,
                    config: PipelineConfig) -> dict[str, Any]:
    """Cross-layer-equalize the student (same float function), quantize it again with the bundle's format."""
    from edgedistill.equalize import equalize

    start, every = time.perf_counter(), quantizable_modules(probe.student)
    kept = tuple(bundle.manifest.float_modules)
    result: dict[str, Any] = {"bundle": str(bundle.folder), "strategy": "equalize", "passed": False,
                              "kept_float": list(kept), "steps": [], "repaired_bundle": None,
                              "quantizable_modules": len(every), "float_share": round(len(kept) / max(len(every), 1), 4)}
    eq = equalize(probe.student)
    result["equalized"] = eq.summary()
    if not eq.pairs:
        result["seconds"] = round(time.perf_counter() - start, 2)
        return {**result, "summary": f"cannot equalize: {eq.skipped}"}
    equalized = QuantProbe(eq.model, probe.fmt_name, probe.scheme, probe.inputs, probe.calibration, probe.options,
                           probe.dynamic_batch)
    try:
        _, logits = equalized.final(kept)
        failed = failed_checks(report, logits, tol)
        result["steps"].append({"pairs": len(eq.pairs), "spread_before": result["equalized"]["spread_before"],
                                "spread_after": result["equalized"]["spread_after"], "failed_checks": failed,
                                "top1_vs_student": agreement(report.outputs["student"], logits)[0]})
        result["seconds"] = round(time.perf_counter() - start, 2)
        log.info("validate: equalize repair %s (%d pairs, channel-range spread %.1f -> %.1f) -> %s", bundle.folder.name,
                 len(eq.pairs), eq.spread_before, eq.spread_after,
                 "passes" if not failed else "still fails " + ", ".join(failed))
        if failed:
            return {**result, "summary": f"no repair: cross-layer equalization of {len(eq.pairs)} layer pair(s) "
                                         f"(channel-range spread {eq.spread_before:.1f} -> {eq.spread_after:.1f}), "
                                         f"then {probe.fmt_name} {probe.scheme}, still fails {', '.join(failed)}"}
        return add_repaired(report, row, bundle, equalized, kept, splits, config, result, suffix="equalized",
                            student=eq.model, extra={"equalized": eq.summary()})
    finally:
        equalized.close()


def _calibration(config: PipelineConfig, splits: Splits):
    """The calibration set the export stage used (a calibration file, else drawn from the training split)."""
    e = config.export
    if e.calibration:
        from edgedistill.calibrate import read as read_calibration

        return read_calibration(e.calibration, splits.test.inputs)
    return calibration_set(splits.train, e.calibration_samples)


def _not_localized(summary: str) -> dict[str, Any]:
    return {"available": False, "culprit": None, "modules": [], "ranking": [], "summary": summary}


def _cannot(bundle: OpenBundle, why: str) -> dict[str, Any]:
    return {"bundle": str(bundle.folder), "strategy": None, "passed": False, "kept_float": [], "steps": [],
            "repaired_bundle": None, "summary": f"cannot repair: {why}"}


def diagnose(report: Report, bundles: list[OpenBundle], *, student: nn.Module, splits: Splits, config: PipelineConfig,
             teacher: nn.Module | None = None, repair: str = "off") -> None:
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
        if problem or m.quantization != "int8" or not fmt.FLOAT_MODULES:
            why = problem or f"{m.format} {m.quantization} cannot keep single modules in float"
            row.localization = _not_localized(f"not localized: {why}")
            if repair != "off":
                report.repairs.append(_cannot(bundle, why))
            continue
        probe = QuantProbe(student, m.format, m.quantization, splits.test.inputs, _calibration(config, splits),
                           config.export.options.get(m.format), m.dynamic_batch)
        tol = tolerance_for(config.validate_.tolerances, m.quantization)
        try:
            failing = {c.name for c in row.checks if c.failed}
            if not failing & set(failed_checks(report, probe.final(tuple(m.float_modules))[1], tol)):
                row.localization = _not_localized(
                    f"not reproduced: exporting the student again as {m.format} {m.quantization} passes "
                    f"{', '.join(sorted(failing))}, so {bundle.folder} was not exported from this student or was "
                    "modified after export; export it again")
                continue
            row.localization = {**localize(probe, report.outputs["student"], tuple(m.float_modules)), "reproduced": True}

            def repaired() -> bool:
                return any(r["bundle"] == str(bundle.folder) and r["passed"] for r in report.repairs)

            if repair in ("equalize", "auto"):
                report.repairs.append(repair_equalize(report, row, bundle, probe, tol, splits, config))
            if (repair == "mixed" or (repair == "auto" and not repaired())) and row.localization["available"]:
                report.repairs.append(repair_mixed(report, row, bundle, probe, tol, splits, config))
            if repair == "qat" or (repair == "auto" and not repaired()):
                from edgedistill.validation.qat_repair import repair_qat

                report.repairs.append(repair_qat(report, row, bundle, probe, tol, splits, config, teacher))
        finally:
            probe.close()
