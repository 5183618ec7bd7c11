"""``validate --repair qat``: quantization-aware distillation of the student, everything int8."""

from __future__ import annotations

import logging
import time
from typing import Any

from torch import nn

from edgedistill.config import PipelineConfig, Tolerance
from edgedistill.data import Splits
from edgedistill.distillation.qat import qat_distill
from edgedistill.inference import predict_logits
from edgedistill.validation.harness import OpenBundle, failed_checks
from edgedistill.validation.localize import agreement
from edgedistill.validation.quant_probe import QuantProbe
from edgedistill.validation.repaired_bundle import add_repaired
from edgedistill.validation.results import Report, Row

log = logging.getLogger("edgedistill")


def repair_qat(report: Report, row: Row, bundle: OpenBundle, probe: QuantProbe, tol: Tolerance, splits: Splits,
               config: PipelineConfig, teacher: nn.Module | None) -> dict[str, Any]:
    """Fine-tune the student under int8 fake quantization against the teacher, export it all-int8, check it."""
    result: dict[str, Any] = {"bundle": str(bundle.folder), "strategy": "qat", "passed": False, "kept_float": [],
                              "steps": [], "repaired_bundle": None, "float_share": 0.0}
    if teacher is None:
        return {**result, "summary": "cannot repair with qat: it needs the teacher"}
    start = time.perf_counter()
    d = config.distill
    alpha = d.alpha if splits.train.y is not None else 1.0
    student = qat_distill(probe.student, splits.train, predict_logits(teacher, splits.train.inputs),
                          calibration=probe.calibration, epochs=config.validate_.qat_epochs,
                          temperature=d.temperature, alpha=alpha)
    trained = QuantProbe(student, probe.fmt_name, probe.scheme, probe.inputs, probe.calibration, probe.options,
                         probe.dynamic_batch)
    try:
        _, logits = trained.final(())
        failed = failed_checks(report, logits, tol)
        top1, _ = agreement(report.outputs["student"], logits)
        result["steps"].append({"qat_epochs": config.validate_.qat_epochs, "failed_checks": failed,
                                "top1_vs_student": top1})
        result["seconds"] = round(time.perf_counter() - start, 2)
        log.info("validate: qat repair %s -> %s", bundle.folder.name, "passes" if not failed else "still fails " + ", ".join(failed))
        if failed:
            return {**result, "summary": f"no repair: after {config.validate_.qat_epochs} epochs of quantization-aware "
                                         f"distillation the int8 artifact still fails {', '.join(failed)}"}
        return add_repaired(report, row, bundle, trained, (), splits, config, result, suffix="qat", student=student,
                            extra={"qat": {"epochs": config.validate_.qat_epochs, "temperature": d.temperature,
                                           "alpha": alpha}})
    finally:
        trained.close()
