"""``edgedistill demo``: the whole pipeline on the built-in default (digits), or on a config file."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from edgedistill.cli import common

FLAGS = {"epochs": "distill.epochs", "teacher_epochs": "teacher.train_epochs", "formats": "export.formats",
         "quantization": "export.quantization", "memory": "validate.measure_memory"}
log = logging.getLogger("edgedistill")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train a digits teacher, distill, export to ExecuTorch fp32+int8, validate",
                       description="Run distill -> export -> validate end to end and print the comparison table. "
                       "Exit 1 when an artifact is outside tolerance.")
    common.add_common(p)
    p.add_argument("--epochs", type=int, help="distillation epochs (config: distill.epochs)")
    p.add_argument("--teacher-epochs", type=int, help="teacher training epochs (config: teacher.train_epochs)")
    p.add_argument("--formats", type=common.comma_list, help="comma list of formats (config: export.formats)")
    p.add_argument("--quantization", type=common.comma_list, help="comma list, e.g. fp32,int8")
    p.add_argument("--no-memory", dest="memory", action="store_const", const=False,
                   help="skip peak-memory probes (config: validate.measure_memory)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = common.resolve(args, FLAGS)
    if common.dry_run(args, config):
        return 0
    from edgedistill.stages import run_pipeline
    from edgedistill.validation.report import text_table

    report = run_pipeline(config)
    print(text_table(report))
    out = Path(config.out)
    log.info("wrote %s, %s and bundles under %s", out / "report.md", out / "report.json", out / "bundles")
    return 0 if report.passed else 1
