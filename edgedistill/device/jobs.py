"""What a session will run, decided before the device is touched: settings, bundles, runners, folders.

Every bundle is read (manifest, sha256, golden data) and matched with a runner first, so bad input
fails in one line before anything is pushed; the runner binary's ABI is checked once the device
has told its ABI list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedistill.bundle import Manifest, read_bundle, read_golden
from edgedistill.device import runners
from edgedistill.device.elf import check_abi
from edgedistill.device.facts import DeviceFacts
from edgedistill.errors import UserError


@dataclass
class BenchSettings:
    """How to measure (see ``edgedistill bench --help``)."""

    warmup: int = 5
    runs: int = 20
    processes: int = 3
    threads: int | None = None  # default: one per big core
    cores: list[int] | None = None  # default: the big cores
    cooldown: float | None = None  # fixed seconds; None = wait for normal thermal status
    cooldown_max: float = 120.0
    timeout: float = 120.0


@dataclass
class BundleJob:
    """A bundle read and checked before any device work."""

    folder: Path
    manifest: Manifest
    model: Path
    golden: dict[str, np.ndarray]
    kind: str
    runner: Path | None


def prepare_jobs(bundles: list[Path], runner: Path | dict[str, Path] | None, runner_kind: str | None,
                 default_kind: str | None) -> list[BundleJob]:
    """Read every bundle and pick its runner before touching the device (bad input fails fast).

    ``runner`` is one runner for every bundle, or one per bundle format (``export --select --device``)."""
    by_format = runner if isinstance(runner, dict) else None
    for given in by_format.values() if by_format is not None else [runner]:
        if given is not None and not Path(given).is_file():
            raise UserError(f"runner not found: {given}")
    jobs = []
    for folder in bundles:
        manifest, model = read_bundle(folder)
        this = by_format.get(manifest.format) if by_format is not None else runner
        kind = runner_kind or runners.detect(this, manifest.format, default_kind)
        module = runners.get(kind)
        if manifest.format not in module.FORMATS:
            raise UserError(f"runner {kind} does not run {manifest.format} bundles ({Path(folder).name})")
        if this is None and kind != "python":
            raise UserError(f"bundle {Path(folder).name} needs a device-built {kind}: give it with --runner PATH")
        jobs.append(BundleJob(Path(folder), manifest, model, read_golden(folder, manifest), kind, this))
    return jobs


def remote_folders(root: str, jobs: list[BundleJob]) -> list[str]:
    """One remote folder per bundle: its name with anything but ``[A-Za-z0-9._-]`` replaced, numbered.

    Safe names keep comma-separated runner flags (``--inputs a,b``) and scp globbing out of trouble;
    the remote root itself may hold any character (every command quotes it).
    """
    return [f"{root}/{i + 1}-{safe_name(job.folder.name)}" for i, job in enumerate(jobs)]


def safe_name(name: str) -> str:
    """A file name for the device: anything but ``[A-Za-z0-9._-]`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def check_runners(jobs: list[BundleJob], facts: DeviceFacts) -> None:
    """Every device-built runner must match the device's ABI before anything is pushed."""
    for job in {j.runner for j in jobs if j.runner is not None}:
        check_abi(job, facts.abilist)
