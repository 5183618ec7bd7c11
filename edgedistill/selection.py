"""``export --select fastest|smallest``: build every candidate a target allows, keep the best one that passes.

Each candidate of the profile (``artifacts`` and ``candidates``: format x scheme x options) is
exported, validated against the teacher and the fp32 student with the target's tolerances, and
timed on the profile's ``threads``: on this machine (all candidates interleaved in one process, one
sample per call, median of per-round medians) or, with a device, by ``bench`` there (one session,
each candidate with its format's device-built runner from ``export.select_runners``, or the board's
Python runtimes over ssh; outputs computed on the device are checked too, and a candidate whose device
outputs fail cannot win). The device is reached before anything is built, so an unreachable one fails
in one line (exit 2) at once. ``selection_rank`` orders them; the winner
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
    """Build, validate and time every candidate of ``config.export.target``; copy the winner to bundles/default.

    ``device`` (``adb``, ``adb:SERIAL``, ``ssh://...``; default ``export.select_device``) times the
    candidates there with bench instead of on this machine."""
    from edgedistill.stages import dynamic_batch_for, runtime_threads
    from edgedistill.target_profiles import load_profile

    e = config.export
    device = device or e.select_device
    if not e.target:
        raise UserError("--select needs a --target: the profile says which candidates may be built")
    if e.select_runners and not device:
        raise UserError("--runner gives device-built runners for --select --device; without --device candidates "
                        "are timed on this machine")
    profile = load_profile(e.target)
    specs = [s.model_copy(update={"options": {**e.options.get(s.format, {}), **s.options}})
             for s in profile.selection_candidates()]
    threads = runtime_threads(config)
    on_device = _DeviceTiming.open(config, device, {s.format for s in specs}) if device else None
    out = Path(config.out)
    built, candidates = _build(config, specs, out / "bundles", dynamic_batch_for(e))
    _validate(config, built)
    runnable = [c for c in candidates if c.passed or c.status == "fail"]
    machine = on_device.time(runnable, threads) if on_device else time_on_host(runnable, threads, rounds, calls)
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
    """Median single-sample latency of each candidate on ``threads`` runtime threads, all interleaved round
    by round in this process."""
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
            runner = get_format(manifest.format).load(model_path, manifest.max_batch, threads)
            c.threads = getattr(runner, "threads", None)  # read back from the runtime (None: it has no setting)
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
    return {**machine_facts(threads), "where": "host", "timed_on": "host", "rounds": rounds, "calls_per_round": calls}


class _DeviceTiming:
    """Candidates timed on a device by bench: the device is reached (and the runners matched to formats)
    before anything is built, then one bench session times every candidate that has a runner."""

    def __init__(self, config: PipelineConfig, transport: Any, runners: dict[str, Path]):
        self.config, self.transport, self.runners = config, transport, runners

    @classmethod
    def open(cls, config: PipelineConfig, device: str, formats: set[str]) -> "_DeviceTiming":
        from edgedistill.device.session import open_device

        runners = device_runners(config.export.select_runners)
        transport = open_device(device, timeout=config.bench.timeout)
        timed = {f for f in formats if f in runners or transport.default_runner}
        if not timed:
            raise UserError(f"--device {device} times candidates with device-built runners: give --runner PATH for "
                            f"{' / '.join(_runner_names(formats))} (the profile's formats: {', '.join(sorted(formats))})")
        transport.connect()  # an unreachable device fails here, in one line, before minutes of exports
        return cls(config, transport, runners)

    def time(self, candidates: list[Candidate], threads: int) -> dict[str, Any]:
        """Median latency of each candidate measured by ``bench`` on the device (its outputs checked there too)."""
        from edgedistill.device.jobs import BenchSettings
        from edgedistill.device.session import run_session

        settings = BenchSettings(**{**self.config.bench.model_dump(), "threads": self.config.bench.threads or threads},
                                 cores=None)
        device = self.transport
        timed = []
        for c in candidates:
            if c.format in self.runners or device.default_runner:
                timed.append(c)
            else:  # listed, never ranked: a latency from another machine would not compare
                c.passed, c.status = False, "not run"
                c.reason = f"not timed on {device.name}: no device runner for {c.format} (--runner PATH/{_runner_names({c.format})[0]})"
        if not timed:
            return {"where": device.name, "timed_on": device.name, "threads": settings.threads, "cpu": "?"}
        report = run_session(device, [Path(c.folder) for c in timed], out=Path(self.config.out) / "selection-bench",
                             settings=settings, tolerances=self.config.validate_.tolerances, runner=self.runners or None)
        where = f"{device.name} ({report.measured_on})"
        by_bundle = {r.bundle: r for r in report.results}
        for c in timed:
            result = by_bundle.get(Path(c.folder).name)
            c.measured_on = where
            if result is None or result.latency_ms.get("median") is None:
                c.passed, c.status, c.reason = False, "not run", f"bench on {device.name} measured no median latency"
                continue
            c.latency_ms, c.threads = float(result.latency_ms["median"]), result.threads
            spread = result.latency_ms
            c.latency_spread = ((spread.get("p90") or c.latency_ms) - (spread.get("min") or c.latency_ms)) / c.latency_ms
            c.extra["device_runner"] = result.runner
            if result.validation is not None:
                c.extra["device_outputs_passed"] = result.validation["passed"]
                if c.passed and not result.validation["passed"]:
                    failed = [k["name"] for k in result.validation["checks"] if k.get("status") == "fail"]
                    c.passed, c.status = False, "fail"
                    c.reason = f"outputs on {device.name} outside tolerance: {', '.join(failed) or 'see bench.json'}"
        facts = report.device or {}
        return {"where": where, "timed_on": where, "measured_on": report.measured_on, "device": facts,
                "threads": settings.threads, "cpu": " · ".join(v for v in (facts.get("model"), facts.get("soc")) if v) or "?",
                "bench": str(Path(self.config.out) / "selection-bench" / "bench.json"),
                "warmup": settings.warmup, "runs": settings.runs, "processes": settings.processes}


def _runner_names(formats: set[str]) -> list[str]:
    from edgedistill.device.runners import DEFAULT_FOR_FORMAT

    return sorted(DEFAULT_FOR_FORMAT.get(f, f"<runner for {f}>") for f in formats)


def device_runners(paths: list[str]) -> dict[str, Path]:
    """``--runner`` files by the format each runs (told by the file name: executor_runner, benchmark_model,
    onnxruntime_perf_test); a missing file, an unknown name or two runners for one format is a UserError."""
    from edgedistill.device import runners

    by_format: dict[str, Path] = {}
    for given in paths:
        path = Path(given)
        if not path.is_file():
            raise UserError(f"runner not found: {path}")
        kind = path.name.split(".")[0]
        if kind not in runners.names() or kind == "python":
            raise UserError(f"cannot tell which runner {path.name} is: name it "
                            f"{', '.join(sorted(set(runners.DEFAULT_FOR_FORMAT.values())))}")
        for fmt in runners.get(kind).FORMATS:
            if fmt in by_format:
                raise UserError(f"two runners for {fmt}: {by_format[fmt]} and {path}")
            by_format[fmt] = path
    return by_format


def _publish_default(bundles: Path, winner: Candidate) -> Path:
    """Copy the winner's bundle to ``bundles/default`` (atomically: an old default stays until replaced)."""
    from edgedistill.fileio import atomic_path

    final = bundles / DEFAULT
    with atomic_path(final, is_dir=True) as tmp:
        shutil.copytree(winner.folder, tmp, dirs_exist_ok=True)
        (tmp / "SELECTED").write_text(f"{winner.name}\n", encoding="utf-8")
    log.info("default bundle for this target: %s (copied to %s)", winner.name, final)
    return final
