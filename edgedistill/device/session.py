"""A bench session: connect, read device facts, bench every bundle in turn, write the report.

The report is written whatever happens: a device fault ends the session with a one-line error
(exit 2) after the runs that completed before it have been saved.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import asdict
from pathlib import Path

from edgedistill.config import Tolerance
from edgedistill.device.bench import BundleBench
from edgedistill.device.jobs import BenchSettings, check_runners, prepare_jobs, remote_folders
from edgedistill.device.facts import DeviceFacts
from edgedistill.device.report import BenchReport, write_bench_reports
from edgedistill.device.transport import DeviceError, Transport
from edgedistill.errors import UserError
from edgedistill.fileio import ensure_writable_dir

log = logging.getLogger("edgedistill")


def open_device(spec: str, *, identity: Path | None = None, known_hosts: Path | None = None,
                python: str = "python3", timeout: float = 30.0, remote_dir: str | None = None) -> Transport:
    """The transport a device spec names: ``adb``, ``adb:SERIAL`` or ``ssh://user@host[:port]``."""
    if spec == "adb" or spec.startswith("adb:"):
        from edgedistill.device.adb import AdbDevice

        device: Transport = AdbDevice(spec[4:] or None, timeout=timeout)
    elif spec.startswith("ssh://"):
        from edgedistill.device.ssh import SshDevice

        device = SshDevice.from_url(spec, identity=identity, known_hosts=known_hosts, python=python, timeout=timeout)
    else:
        raise UserError(f"--device {spec!r}: use adb, adb:SERIAL or ssh://user@host[:port]")
    if remote_dir:
        device.remote_root = remote_dir.rstrip("/") or "/"
    return device


def run_session(device: Transport, bundles: list[Path], *, out: Path, settings: BenchSettings,
                tolerances: dict[str, Tolerance], runner: Path | dict[str, Path] | None = None,
                runner_kind: str | None = None, app: bool = False) -> BenchReport:
    """Bench ``bundles`` on ``device``; writes bench.json, bench.md and raw logs under ``out``.

    ``runner``: one device-built runner for every bundle, or one per bundle format.
    ``app``: measure through the installed Android example app (device/app.py) instead of a runner.
    """
    from edgedistill.device import app as example_app

    if app:
        if device.kind != "adb" or runner is not None:
            raise UserError("--app drives the Android example app: use it with --device adb and without --runner")
        example_app.check_bundles(bundles)
    jobs = [] if app else prepare_jobs(bundles, runner, runner_kind, device.default_runner)
    out = ensure_writable_dir(Path(out))
    report = BenchReport(device=None, settings=asdict(settings))
    try:
        device.connect()
        facts: DeviceFacts = device.facts(settings.timeout)
        report.device = facts.to_dict()
        if app:
            example_app.check_app_installed(device, settings.timeout)
            benches = [example_app.AppBench(device, facts, folder, settings, tolerances,
                                            ensure_writable_dir(out / "raw" / folder.name),
                                            example_app.app_remote_folder(device.remote_root, folder, k))
                       for k, folder in enumerate(bundles)]
        else:
            check_runners(jobs, facts)
            benches = [BundleBench(device, facts, job, settings, tolerances,
                                   ensure_writable_dir(out / "raw" / job.folder.name), remote)
                       for job, remote in zip(jobs, remote_folders(device.remote_root, jobs))]
        for bench in benches:
            log.debug("%s: %s", device.name, bench.result.bundle)
            try:
                report.results.append(bench.run())
            except DeviceError as exc:
                bench.result.error = str(exc)
                report.results.append(bench.result)
                raise
    except DeviceError as exc:
        report.error = str(exc)
        raise
    finally:
        if report.device is not None:
            _remove_root(device, settings.timeout)
        write_bench_reports(report, out)
    return report


def _remove_root(device: Transport, timeout: float) -> None:
    """Remove the (now empty) remote root; a device that is gone keeps it, and the report says why."""
    try:
        device.run(f"rmdir {shlex.quote(device.remote_root)} 2>/dev/null; true", step="clean up", timeout=timeout)
    except DeviceError as exc:
        log.debug("%s: %s not removed: %s", device.name, device.remote_root, exc.reason)
