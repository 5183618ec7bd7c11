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
    from edgedistill.stages import DistillOutput
    from edgedistill.validation.harness import Report

__all__ = ["distill", "export", "validate", "run", "bench"]


def _config(config: "PipelineConfig | str | Path | None", overrides: dict[str, Any] | None) -> "PipelineConfig":
    from edgedistill.config import PipelineConfig, load_config

    if isinstance(config, PipelineConfig):
        return load_config(None, {**config.to_dict(), **(overrides or {})}) if overrides else config
    return load_config(config, overrides)


def distill(config: "PipelineConfig | str | Path | None" = None, overrides: dict[str, Any] | None = None) -> "DistillOutput":
    """Distill ``config.student`` from ``config.teacher``; returns checkpoint paths and the training history."""
    from edgedistill import stages

    return stages.distill(_config(config, overrides))


def export(config: "PipelineConfig | str | Path | None" = None, overrides: dict[str, Any] | None = None) -> list[Path]:
    """Export the trained ``config.student`` to every configured format and scheme; returns bundle folders."""
    from edgedistill import stages

    return stages.export(_config(config, overrides))


def validate(config: "PipelineConfig | str | Path | None", bundles: list[str | Path],
             overrides: dict[str, Any] | None = None, device_outputs: list[str | Path] | None = None) -> "Report":
    """Validate bundles against the teacher and fp32 student; ``report.passed`` is the gate.

    Writes report.json, report.md, junit.xml and plots into ``config.out``. With ``device_outputs``
    (one file per bundle, see docs/device-outputs.md) outputs computed on a device are checked instead.
    Tolerances, top-k, localization and repair come from ``config.validate``.
    """
    from edgedistill import stages

    outputs = [Path(o) for o in device_outputs] if device_outputs else None
    return stages.validate(_config(config, overrides), [Path(b) for b in bundles], device_outputs=outputs)


def run(config: "PipelineConfig | str | Path | None" = None, overrides: dict[str, Any] | None = None) -> "Report":
    """The whole pipeline, distill -> export -> validate (what ``edgedistill demo`` runs)."""
    from edgedistill import stages

    return stages.run_pipeline(_config(config, overrides))


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

    cfg = _config(config, overrides)
    settings = BenchSettings(**cfg.bench.model_dump(), cores=cores)
    target = open_device(device, identity=Path(identity) if identity else None,
                         known_hosts=Path(known_hosts) if known_hosts else None, python=remote_python,
                         timeout=settings.timeout, remote_dir=remote_dir)
    return run_session(target, [Path(p) for p in bundles], out=Path(cfg.out), settings=settings,
                       tolerances=cfg.validate_.tolerances, runner=Path(runner) if runner else None,
                       runner_kind=runner_kind, app=app)
