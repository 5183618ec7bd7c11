"""``edgedistill validate``: run bundles in their runtimes and gate on agreement with the teacher."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from edgedistill.cli import common
from edgedistill.cli.distill import add_model_flags
from edgedistill.config import PipelineConfig
from edgedistill.errors import UserError

FLAGS = {"teacher": "teacher.model", "student": "student.model", "data": "data.source", "top_k": "validate.top_k",
         "batch_size": "validate.batch_size", "memory": "validate.measure_memory", "plots": "validate.plots",
         "localize": "validate.localize", "repair": "validate.repair",
         "target": "export.target"}
log = logging.getLogger("edgedistill")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check bundles against the teacher; exit 1 outside tolerance",
                       description="Runs each bundle in its real runtime on the held-out split and compares its "
                       "softmax with the teacher's and the fp32 student's. Writes report.json, report.md, junit.xml "
                       "and plots into --out. Exit 0 pass, 1 a check failed, 2 bad input.")
    p.add_argument("bundles", nargs="*", type=Path, metavar="BUNDLE",
                   help="bundle folders (default: those edgedistill export last wrote into --out)")
    common.add_common(p)
    add_model_flags(p)
    p.add_argument("--device-outputs", action="append", type=Path, metavar="NPZ",
                   help="outputs computed on a device from the bundle's golden inputs (one per bundle, in order; "
                   "see docs/device-outputs.md); teacher and student are then not needed")
    p.add_argument("--tolerance", action="append", default=[], metavar="[SCHEME.]KEY=X",
                   help="set a bound, e.g. max_student_mean_kl=0.01 (every scheme) or int8.min_student_top1=0.98 "
                   "(config: validate.tolerances.SCHEME.KEY); repeatable")
    p.add_argument("--min-teacher-top1", type=float, metavar="X",
                   help="every scheme: minimum top-1 agreement with the teacher, in [0, 1]")
    p.add_argument("--max-student-dp", type=float, metavar="X",
                   help="every scheme: maximum |Δp| against the fp32 student, in [0, 1]")
    p.add_argument("--target", metavar="PROFILE", help="apply the tolerances of a device profile (ios, android, "
                   "linux-arm64 or a profile .toml); your own config and flags still win")
    p.add_argument("--top-k", type=int, metavar="K", help="k of top-k agreement (default 5)")
    p.add_argument("--batch-size", type=int, metavar="N", help="samples per runtime call (default 256)")
    p.add_argument("--repair", nargs="?", const="mixed", choices=("mixed", "equalize", "qat", "auto"),
                   help="repair failing int8 artifacts: mixed (default: keep the modules whose quantization costs "
                   "most in float, writes BUNDLE-repaired), equalize (cross-layer equalization, then PTQ again, "
                   "everything int8, writes BUNDLE-equalized), qat (quantization-aware distillation against the "
                   "teacher from the equalized student, everything int8, writes BUNDLE-qat), auto (the cheapest "
                   "that passes: equalize, else mixed, else qat)")
    p.add_argument("--no-localize", dest="localize", action="store_const", const=False,
                   help="do not look for the layer where a failing artifact goes wrong")
    p.add_argument("--no-plots", dest="plots", action="store_const", const=False, help="skip the PNG plots")
    p.add_argument("--no-memory", dest="memory", action="store_const", const=False, help="skip peak-memory probes")
    p.set_defaults(run=run)


def apply_tolerances(config: PipelineConfig, items: list[str]) -> None:
    """Apply ``[SCHEME.]KEY=VALUE`` bounds; without a scheme, to every scheme's tolerance."""
    from pydantic import ValidationError

    from edgedistill.config import Tolerance, format_validation_error

    tolerances = config.validate_.tolerances
    for item in items:
        target, sep, raw = item.partition("=")
        scheme, _, key = target.strip().rpartition(".")
        if not sep or key not in Tolerance.model_fields:
            raise UserError(f"--tolerance expects [SCHEME.]KEY=VALUE with KEY one of {', '.join(Tolerance.model_fields)}; got {item!r}")
        if scheme and scheme not in tolerances:
            tolerances[scheme] = tolerances.get("fp32", Tolerance()).model_copy()
        try:
            for tol in [tolerances[scheme]] if scheme else tolerances.values():
                setattr(tol, key, float(raw))
        except ValueError as exc:
            detail = format_validation_error(exc, "--tolerance") if isinstance(exc, ValidationError) else str(exc)
            raise UserError(f"{detail} ({item!r})") from None


def run(args: argparse.Namespace) -> int:
    # unset student, teacher, data and target: what distill and export recorded in OUT/run.json
    config = common.resolve(args, FLAGS, from_record=not args.device_outputs, record_target=True)
    items = list(args.tolerance)
    for flag, key in (("min_teacher_top1", "min_teacher_top1"), ("max_student_dp", "max_student_abs_dp")):
        value = getattr(args, flag)
        if value is not None:
            if not 0.0 <= value <= 1.0:
                raise UserError(f"--{flag.replace('_', '-')} must be in [0, 1], got {value}")
            items.append(f"{key}={value}")
    apply_tolerances(config, items)
    if common.dry_run(args, config):
        return 0
    from edgedistill.run_record import recorded_bundles
    from edgedistill.stages import validate
    from edgedistill.validation.report import text_table

    bundles = args.bundles or recorded_bundles(config)
    report = validate(config, bundles, device_outputs=args.device_outputs)
    print(text_table(report))
    log.info("wrote report.json, report.md, junit.xml%s in %s", " and plots" if report.plots else "", config.out)
    if args.recorded:
        log.info("%s", args.recorded)
    if report.status == "not run":  # a gate that checked nothing must not look green
        raise UserError(f"no bundle can run on this machine, nothing was validated (reports in {config.out})")
    return 0 if report.passed else 1
