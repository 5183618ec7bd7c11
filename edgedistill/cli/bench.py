"""``edgedistill bench``: time bundles on a phone (adb) or an edge board (ssh) and validate their outputs."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgedistill.cli import common
from edgedistill.errors import UserError

FLAGS = {"warmup": "bench.warmup", "runs": "bench.runs", "processes": "bench.processes", "threads": "bench.threads",
         "cooldown": "bench.cooldown", "cooldown_max": "bench.cooldown_max", "timeout": "bench.timeout"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark bundles on a phone (adb) or edge board (ssh) and validate outputs",
                       description="Push each bundle, a device-built runner and the golden inputs to the device, "
                       "time warm-up + timed runs in separate pinned processes, pull the outputs and check them "
                       "against the teacher. Writes bench.json and bench.md. Exit 1 when outputs are outside "
                       "tolerance, 2 when a device step fails (the report keeps what was measured).")
    p.add_argument("bundles", nargs="+", type=Path, metavar="BUNDLE")
    p.add_argument("--device", required=True, metavar="SPEC",
                   help="adb, adb:SERIAL, or ssh://user@host[:port]")
    p.add_argument("--runner", type=Path, metavar="PATH",
                   help="device-built executor_runner, benchmark_model or onnxruntime_perf_test "
                   "(ssh default: the board's Python runtimes)")
    p.add_argument("--app", action="store_true",
                   help="adb: run the installed Android example app's instrumentation test (examples/android) "
                   "instead of a pushed runner; pulls and validates its outputs.npz")
    p.add_argument("--runner-kind", metavar="KIND", help="runner type when the file name does not say it")
    p.add_argument("--warmup", type=int, help="warm-up runs per process (config: bench.warmup, default 5)")
    p.add_argument("--runs", type=int, help="timed runs per process (config: bench.runs, default 20)")
    p.add_argument("--processes", type=int, help="runner processes per bundle (config: bench.processes, default 3)")
    p.add_argument("--threads", type=int, help="runner threads (default: one per big core)")
    p.add_argument("--cores", type=common.comma_list, metavar="LIST",
                   help="cores to pin to, e.g. 4,5,6,7 (default: the big cores)")
    p.add_argument("--cooldown", type=float, metavar="SECONDS",
                   help="fixed cool-down before timing (default: wait until thermal status is normal)")
    p.add_argument("--cooldown-max", type=float, metavar="SECONDS", help="longest thermal wait (default 120)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="limit for one remote command (default 120)")
    p.add_argument("--identity", type=Path, metavar="FILE", help="ssh: private key file")
    p.add_argument("--known-hosts", type=Path, metavar="FILE",
                   help="ssh: known_hosts file to use (an unknown host key is accepted into it on first contact)")
    p.add_argument("--remote-python", default="python3", metavar="CMD", help="ssh: the board's Python (default python3)")
    p.add_argument("--remote-dir", metavar="DIR", help="remote working folder (default /data/local/tmp/edgedistill "
                   "on Android, /tmp/edgedistill over ssh)")
    common.add_common(p)
    p.set_defaults(run=run)


def _cores(items: list[str] | None) -> list[int] | None:
    if not items:
        return None
    try:
        return sorted({int(c) for c in items})
    except ValueError:
        raise UserError(f"--cores takes core numbers like 4,5,6,7, got {','.join(items)}") from None


def run(args: argparse.Namespace) -> int:
    config = common.resolve(args, FLAGS)
    if common.dry_run(args, config):
        return 0
    from edgedistill import bench
    from edgedistill.device.report import markdown

    report = bench(args.bundles, args.device, runner=args.runner, config=config, identity=args.identity,
                   known_hosts=args.known_hosts, remote_python=args.remote_python, runner_kind=args.runner_kind,
                   cores=_cores(args.cores), remote_dir=args.remote_dir, app=args.app)
    print(markdown(report), end="")
    return 0 if report.passed else 1
