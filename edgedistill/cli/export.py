"""``edgedistill export``: lower a trained student to deployable bundles."""

from __future__ import annotations

import argparse
import logging

from edgedistill.cli import common
from edgedistill.cli.distill import add_model_flags

log = logging.getLogger("edgedistill")
FLAGS = {"teacher": "teacher.model", "student": "student.model", "data": "data.source",
         "formats": "export.formats", "quantization": "export.quantization",
         "calibration_samples": "export.calibration_samples", "target": "export.target",
         "calibration": "export.calibration", "select": "export.select", "device": "export.select_device",
         "runner": "export.select_runners"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a student checkpoint to bundles (model + manifest + golden data)")
    common.add_common(p)
    add_model_flags(p)
    p.add_argument("--format", "--formats", dest="formats", type=common.comma_list, help="e.g. executorch")
    p.add_argument("--quantization", "-q", type=common.comma_list, help="e.g. fp32,int8")
    p.add_argument("--target", metavar="PROFILE", help="ios, android, linux-arm64 or a profile .toml "
                   "(replaces --format/-q; see edgedistill targets)")
    p.add_argument("--calibration", metavar="NPZ", help="calibration set from edgedistill calibrate")
    p.add_argument("--calibration-samples", type=int, help="inputs drawn from the training split to calibrate "
                   "int8 when no --calibration is given (default 256)")
    p.add_argument("--select", choices=("fastest", "smallest"), help="build every candidate of --target, validate and "
                   "time each, copy the best passing one to bundles/default (writes selection.md/.json)")
    p.add_argument("--device", metavar="DEVICE", help="with --select: time candidates there with bench "
                   "(adb, adb:SERIAL, ssh://user@host) instead of on this machine")
    p.add_argument("--runner", action="append", metavar="PATH", help="with --select --device: a device-built "
                   "executor_runner, benchmark_model or onnxruntime_perf_test (repeat: one per format)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = common.resolve(args, FLAGS, from_record=True)  # unset: what distill recorded in OUT/run.json
    if common.dry_run(args, config):
        return 0
    if config.export.select:
        from edgedistill.selection import select

        chosen = select(config, config.export.select, config.export.select_device)
        for c in chosen.candidates:
            print(f"{c.status:>10}  {c.name}" + (f"  ({c.latency_ms:.4f} ms, {c.size_bytes:,} B)" if c.latency_ms else ""))
        if chosen.default is None:
            print("no candidate passed validation: no default bundle")
            return 1
        print(f"default: {chosen.default} ({chosen.candidates[0].name})")
        return 0
    if config.export.select_device or config.export.select_runners:
        from edgedistill.errors import UserError

        raise UserError("--device and --runner time candidates for --select; without --select use edgedistill bench")
    from edgedistill.stages import export

    for folder in export(config):
        print(folder)
    if args.recorded:
        log.info("%s", args.recorded)
    return 0
