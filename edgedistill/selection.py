"""``export --select fastest|smallest``: build every candidate a target allows, keep the best one that passes.

Each candidate of the profile (``artifacts`` and ``candidates``: format x scheme x options) is
exported, validated against the teacher and the fp32 student with the target's tolerances, and
timed: on this machine (all candidates interleaved in one process, one sample per call, median of
per-round medians) or, with a device, by ``bench`` there. ``selection_rank`` orders them; the winner
is copied to ``<out>/bundles/default/`` (a plain copy: an app or CI step always finds the target's
default bundle at one path) and ``selection.json`` / ``selection.md`` say why it won.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedistill.config import PipelineConfig
from edgedistill.errors import UserError
from edgedistill.selection_rank import Candidate, rank, write_selection

log = logging.getLogger("edgedistill")
DEFAULT = "default"


@dataclass
class Selection:
    """The ranked candidates (best first) and the default bundle folder (None when none passed)."""

    goal: str
    candidates: list[Candidate]
    default: Path | None


def select(config: PipelineConfig, goal: str, device: str | None = None, rounds: int = 7, calls: int = 30) -> Selection:
    """Build, validate and time every candidate of ``config.export.target``; copy the winner to bundles/default."""
    from edgedistill.stages import dynamic_batch_for
    from edgedistill.target_profiles import load_profile

    e = config.export
    if not e.target:
        raise UserError("--select needs a --target: the profile says which candidates may be built")
    profile = load_profile(e.target)
    specs = [s.model_copy(update={"options": {**e.options.get(s.format, {}), **s.options}})
             for s in profile.selection_candidates()]
    out = Path(config.out)
    built, candidates = _build(config, specs, out / "bundles", dynamic_batch_for(e))
    _validate(config, built)
    runnable = [c for c in candidates if c.passed or c.status == "fail"]
    machine = _time_on_device(config, runnable, device) if device else time_on_host(runnable, profile.threads, rounds, calls)
    ranked = rank(candidates, goal)
    default = _publish_default(out / "bundles", ranked[0]) if ranked and ranked[0].passed else None
    write_selection(out, goal, profile.name, ranked, machine)
    return Selection(goal, ranked, default)


def _build(config: PipelineConfig, specs, bundles: Path, dynamic_batch: bool) -> tuple[dict[str, Candidate], list[Candidate]]:
    from edgedistill import formats
    from edgedistill.calibrate import read as read_calibration
    from edgedistill.exporter import export_student
    from edgedistill.modelref import count_parameters, load_model
    from edgedistill.quiet import quiet
    from edgedistill.stages import load_splits

    splits = load_splits(config)
    student, teacher = load_model(config.student), load_model(config.teacher)
    e = config.export
    calibration = read_calibration(e.calibration, splits.test.inputs) if e.calibration else None
    built, candidates = {}, []
    for spec in specs:
        candidate = Candidate(spec.bundle_name, spec.format, spec.quantization)
        candidates.append(candidate)
        with quiet():
            missing = formats.get(spec.format).missing()
        if missing:
            candidate.status, candidate.reason = "not built", missing
            continue
        try:
            folder = export_student(student, [spec], out_dir=bundles, train=splits.train, test=splits.test,
                                    calibration_samples=e.calibration_samples, teacher=teacher,
                                    temperature=config.distill.temperature, dynamic_batch=dynamic_batch,
                                    student_info={"checkpoint": config.student.model,
                                                  "parameters": count_parameters(student)},
                                    calibration=calibration)[0]
        except UserError as exc:  # a candidate the format cannot lower is reported, not fatal
            candidate.status, candidate.reason = "not built", str(exc)
            continue
        candidate.folder = str(folder)
        built[str(folder)] = candidate
    return built, candidates


def _validate(config: PipelineConfig, built: dict[str, Candidate]) -> None:
    from edgedistill.stages import validate

    if not built:
        return
    v = config.model_copy(deep=True)
    v.out = str(Path(config.out) / "selection-validation")
    # a failing candidate is simply not chosen: localizing or repairing it is a separate, explicit step
    v.validate_.localize = v.validate_.repair = False
    report = validate(v, [Path(f) for f in built])
    for row in report.rows:
        candidate = built.get(str(row.path))
        if candidate is None:
            continue
        candidate.passed, candidate.status = row.status == "pass", row.status
        failed = [c.name for c in row.checks if c.failed]
        candidate.reason = row.not_run or (f"outside tolerance: {', '.join(failed)}" if failed else None)
        candidate.size_bytes, candidate.peak_memory_mb = row.size_bytes, row.peak_memory_mb
        candidate.teacher_top1 = (row.vs_teacher or {}).get("top1_agreement")
        candidate.student_top1 = (row.vs_student or {}).get("top1_agreement")


def time_on_host(candidates: list[Candidate], threads: int, rounds: int = 7, calls: int = 30) -> dict[str, Any]:
    """Median single-sample latency of each candidate, all interleaved round by round in this process."""
    from edgedistill.bundle import read_bundle, read_golden
    from edgedistill.formats import get as get_format
    from edgedistill.machine import machine_facts
    from edgedistill.quiet import quiet

    runs = []
    for c in candidates:
        manifest, model_path = read_bundle(Path(c.folder))
        golden = read_golden(Path(c.folder))
        sample = [golden[spec.name][:1] for spec in manifest.inputs]
        with quiet():
            runner = get_format(manifest.format).load(model_path, manifest.max_batch)
            for _ in range(20):
                runner(*sample)  # warm-up: first calls allocate and pick kernels
        runs.append((c, runner, sample))
    medians: dict[str, list[float]] = {c.name: [] for c, _, _ in runs}
    with quiet():
        for _ in range(rounds):
            for c, runner, sample in runs:
                times = []
                for _ in range(calls):
                    start = time.perf_counter_ns()
                    runner(*sample)
                    times.append(time.perf_counter_ns() - start)
                medians[c.name].append(statistics.median(times) / 1e6)
    for c, _, _ in runs:
        m = medians[c.name]
        c.latency_ms = statistics.median(m)
        c.latency_spread = (max(m) - min(m)) / c.latency_ms if c.latency_ms else 0.0
    return {**machine_facts(threads), "where": "host", "rounds": rounds, "calls_per_round": calls}


def _time_on_device(config: PipelineConfig, candidates: list[Candidate], device: str) -> dict[str, Any]:
    """Median latency of each candidate measured by ``bench`` on ``device``."""
    from edgedistill.device.jobs import BenchSettings
    from edgedistill.device.session import open_device, run_session

    settings = BenchSettings(**config.bench.model_dump(), cores=None)
    target = open_device(device, timeout=settings.timeout)
    report = run_session(target, [Path(c.folder) for c in candidates], out=Path(config.out) / "selection-bench",
                         settings=settings, tolerances=config.validate_.tolerances)
    by_bundle = {Path(r.bundle).name: r for r in report.results}
    for c in candidates:
        result = by_bundle.get(Path(c.folder).name)
        if result is None or result.latency_ms.get("median") is None:
            c.passed, c.status, c.reason = False, "not run", f"bench on {device} measured nothing"
            continue
        c.latency_ms, c.measured_on = float(result.latency_ms["median"]), report.measured_on
        spread = result.latency_ms
        c.latency_spread = ((spread.get("p90") or c.latency_ms) - (spread.get("min") or c.latency_ms)) / c.latency_ms
    return {"where": f"{device} ({report.measured_on})", "device": report.device or {},
            "threads": (report.settings or {}).get("threads", "?"), "cpu": (report.device or {}).get("model", "?")}


def _publish_default(bundles: Path, winner: Candidate) -> Path:
    """Copy the winner's bundle to ``bundles/default`` (atomically: an old default stays until replaced)."""
    from edgedistill.fileio import atomic_path

    final = bundles / DEFAULT
    with atomic_path(final, is_dir=True) as tmp:
        shutil.copytree(winner.folder, tmp, dirs_exist_ok=True)
        (tmp / "SELECTED").write_text(f"{winner.name}\n", encoding="utf-8")
    log.info("default bundle for this target: %s (copied to %s)", winner.name, final)
    return final
