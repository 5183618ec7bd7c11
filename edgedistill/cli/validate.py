"""``edgedistill validate``: run bundles in their runtimes and gate on agreement with the teacher."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgedistill.cli import common
from edgedistill.cli.distill import add_model_flags
from edgedistill.errors import UserError

FLAGS = {"teacher": "teacher.model", "student": "student.model", "data": "data.source"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check bundles against the teacher; exit 1 outside tolerance",
                       description="Runs each bundle in its real runtime on the held-out split and compares its "
                       "softmax with the teacher's and the fp32 student's. Writes report.json and report.md.")
    p.add_argument("bundles", nargs="+", type=Path, metavar="BUNDLE")
    common.add_common(p)
    add_model_flags(p)
    p.add_argument("--min-teacher-top1", type=float, metavar="X",
                   help="every scheme: minimum top-1 agreement with the teacher, in [0, 1]")
    p.add_argument("--max-student-dp", type=float, metavar="X",
                   help="every scheme: maximum |Δp| against the fp32 student, in [0, 1]")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = common.resolve(args, FLAGS)
    for scheme in config.validate_.tolerances:
        for flag, key in (("min_teacher_top1", "min_teacher_top1"), ("max_student_dp", "max_student_abs_dp")):
            value = getattr(args, flag)
            if value is not None:
                if not 0.0 <= value <= 1.0:
                    raise UserError(f"--{flag.replace('_', '-')} must be in [0, 1], got {value}")
                setattr(config.validate_.tolerances[scheme], key, value)
    if common.dry_run(args, config):
        return 0
    from edgedistill.stages import validate
    from edgedistill.validation.report import text_table

    report = validate(config, args.bundles)
    print(text_table(report))
    return 0 if report.passed else 1
