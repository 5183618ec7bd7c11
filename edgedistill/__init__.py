"""edgedistill: distill a PyTorch teacher into a small student, export it for phones and edge boards,
and validate it against the teacher in the real runtime.

The public functions import torch and the backends only when called, so importing the package is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgedistill.config import PipelineConfig
    from edgedistill.device.report import BenchReport
    from edgedistill.selection import Selection
    from edgedistill.stages import DistillOutput
    from edgedistill.validation.harness import Report

__all__ = ["distill", "export", "select", "validate", "run", "bench"]


def _config(config: "PipelineConfig | str | Path | None", overrides: dict[str, Any] | None,
            trust_factories: list[str] | None = None) -> "PipelineConfig":
    """The config to run; ``trust_factories`` (modules whose factories checkpoints may call) adds to its own list."""
    from edgedistill.config import PipelineConfig, load_config

    if isinstance(config, PipelineConfig):
        resolved = load_config(None, {**config.to_dict(), **(overrides or {})}) if overrides else config
    else:
        resolved = load_config(config, overrides)
    if trust_factories:
        resolved = resolved.model_copy(update={"trust_factories": [*resolved.trust_factories, *trust_factories]})
    return resolved


def distill(config: "PipelineConfig | str | Path | None" = None, overrides: dict[str, Any] | None = None, *,
            trust_factories: list[str] | None = None) -> "DistillOutput":
    """Distill ``config.student`` from ``config.teacher``; returns checkpoint paths and the training history.

    ``trust_factories`` (here and in every stage): modules whose factories a checkpoint may call,
    beyond edgedistill's own and the ones the config names (see ``edgedistill.trust``).
    """
    from edgedistill import stages

    return stages.distill(_config(config, overrides, trust_factories))


def export(config: "PipelineConfig | str | Path | None" = None, overrides: dict[str, Any] | None = None, *,
           trust_factories: list[str] | None = None) -> list[Path]:
    """Export the trained ``config.student`` to every configured format and scheme; returns bundle folders."""
    from edgedistill import stages

    return stages.export(_config(config, overrides, trust_factories))


def select(config: "PipelineConfig | str | Path | None" = None, goal: str = "fastest",
           overrides: dict[str, Any] | None = None, device: str | None = None) -> "Selection":
    """Build every candidate of ``config.export.target``, validate and time each (on this machine, or on
    ``device`` with bench), and copy the fastest (``goal="smallest"``: smallest) passing one to
    ``<out>/bundles/default``; writes selection.json and selection.md. See ``edgedistill.selection_rank``."""
    from edgedistill.selection import select as run_selection

    return run_selection(_config(config, overrides), goal, device)


def validate(config: "PipelineConfig | str | Path | None", bundles: list[str | Path],
             overrides: dict[str, Any] | None = None, device_outputs: list[str | Path] | None = None, *,
             trust_factories: list[str] | None = None) -> "Report":
    """Validate bundles against the teacher and fp32 student; ``report.passed`` is the gate.

    Writes report.json, report.md, junit.xml and plots into ``config.out``. With ``device_outputs``
    (one file per bundle, see docs/device-outputs.md) outputs computed on a device are checked instead.
    Tolerances, top-k, localization and repair come from ``config.validate``.
    """
    from edgedistill import stages

    outputs = [Path(o) for o in device_outputs] if device_outputs else None
    return stages.validate(_config(config, overrides, trust_factories), [Path(b) for b in bundles],
                           device_outputs=outputs)


def run(config: "PipelineConfig | str | Path | None" = None, overrides: dict[str, Any] | None = None, *,
        trust_factories: list[str] | None = None) -> "Report":
    """The whole pipeline, distill -> export -> validate (what ``edgedistill demo`` runs)."""
    from edgedistill import stages

    return stages.run_pipeline(_config(config, overrides, trust_factories))


def bench(bundles: list[str | Path], device: str = "adb", *, runner: str | Path | None = None,
          config: "PipelineConfig | str | Path | None" = None, overrides: dict[str, Any] | None = None,
          identity: str | Path | None = None, known_hosts: str | Path | None = None, remote_python: str = "python3",
          runner_kind: str | None = None, cores: list[int] | None = None, remote_dir: str | None = None,
          app: bool = False) -> "BenchReport":
    """Benchmark bundles on a phone (``adb``, ``adb:SERIAL``) or a board (``ssh://user@host[:port]``).

    Settings come from the config's ``[bench]`` section; the report (``bench.json``, ``bench.md``)
    goes to ``config.out``. A failing device step raises ``DeviceError`` after the report is written.
    ``app=True`` measures through the installed Android example app (examples/android) with ``am instrument``.
    """
    from edgedistill.device.jobs import BenchSettings
    from edgedistill.device.session import open_device, run_session

    from edgedistill.bundle import read_bundle, read_golden
    from edgedistill.fileio import check_writable_dir

    cfg = _config(config, overrides)
    check_writable_dir(Path(cfg.out))
    for folder in bundles:  # a bad or escaping bundle fails in one line before any device is looked for
        read_golden(folder, read_bundle(folder)[0])
    settings = BenchSettings(**cfg.bench.model_dump(), cores=cores)
    target = open_device(device, identity=Path(identity) if identity else None,
                         known_hosts=Path(known_hosts) if known_hosts else None, python=remote_python,
                         timeout=settings.timeout, remote_dir=remote_dir)
    return run_session(target, [Path(p) for p in bundles], out=Path(cfg.out), settings=settings,
                       tolerances=cfg.validate_.tolerances, runner=Path(runner) if runner else None,
                       runner_kind=runner_kind, app=app)
