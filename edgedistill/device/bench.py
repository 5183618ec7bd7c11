"""One benchmark session on one device: several bundles side by side, then the report.

Per bundle: push the model, the runner and the golden inputs to ``<remote_root>/<bundle>/``, cool
down, run W warm-ups + N timed runs in each of K processes (thread count, ``taskset`` core mask),
run the golden inputs once more for outputs, pull them, remove the remote folder, and validate the
outputs against the bundle's golden teacher probabilities. A failing step ends the session with a
one-line DeviceError; everything measured before it stays in the report.
"""

from __future__ import annotations

import logging
import shlex
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgedistill.config import Tolerance
from edgedistill.device import runners
from edgedistill.device.facts import DeviceFacts, Thermal, mask_of
from edgedistill.device.jobs import BenchSettings, BundleJob, safe_name
from edgedistill.device.stats import Timings, first_of, summarize
from edgedistill.device.transport import DeviceError, Transport
from edgedistill.errors import UserError

log = logging.getLogger("edgedistill")
THERMAL_POLL_S = 5.0


@dataclass
class BundleResult:
    """Everything measured for one bundle (partial when a step failed)."""

    bundle: str
    format: str
    quantization: str
    runner: str
    model_sha256: str
    model_size_bytes: int
    threads: int
    core_mask: str
    batch: int | None = None
    warmup: int = 0
    latency_ms: dict[str, Any] = field(default_factory=dict)
    load_ms: float | None = None
    first_inference_ms: float | None = None
    peak_memory_mb: float | None = None
    thermal_before: dict[str, Any] | None = None
    thermal_after: dict[str, Any] | None = None
    processes: list[dict[str, Any]] = field(default_factory=list)
    validation: dict[str, Any] | None = None
    validation_note: str | None = None
    remote_removed: bool = False
    measured_on: str = "device"
    error: str | None = None


def cool_down(device: Transport, settings: BenchSettings) -> Thermal:
    """Wait a fixed time, or until the thermal status is normal (bounded by cooldown_max)."""
    if settings.cooldown is not None:
        time.sleep(settings.cooldown)
        return device.thermal(settings.timeout)
    deadline = time.monotonic() + settings.cooldown_max
    thermal = device.thermal(settings.timeout)
    while not thermal.normal and time.monotonic() < deadline:
        log.debug("%s: thermal status %s, cooling down", device.name, thermal.status)
        time.sleep(min(THERMAL_POLL_S, max(deadline - time.monotonic(), 0.0)))
        thermal = device.thermal(settings.timeout)
    return thermal


def _in_folder(remote: str, argv: list[str], mask: str | None = None) -> str:
    pin = ["taskset", mask] if mask else []
    return f"cd {shlex.quote(remote)} && " + " ".join(shlex.quote(a) for a in [*pin, *argv])


class BundleBench:
    """Runs one bundle through push, runs, pull, cleanup and validation on an open device."""

    def __init__(self, device: Transport, facts: DeviceFacts, job: BundleJob, settings: BenchSettings,
                 tolerances: dict[str, Tolerance], raw: Path, remote: str):
        self.device, self.facts, self.job, self.s = device, facts, job, settings
        self.tolerances, self.raw, self.remote = tolerances, raw, remote
        self.module = runners.get(job.kind)
        cores = settings.cores or facts.big_cores
        self.mask = mask_of(cores) if cores else None
        self.threads = settings.threads or max(len(cores), 1)
        binary = safe_name(job.runner.name) if job.runner else "remote_runner.py"
        self.result = BundleResult(bundle=job.folder.name, format=job.manifest.format,
                                   quantization=job.manifest.quantization, runner=job.kind,
                                   model_sha256=job.manifest.sha256, model_size_bytes=job.manifest.size_bytes,
                                   threads=self.threads, core_mask=self.mask or "all", warmup=settings.warmup,
                                   measured_on="fake-local" if facts.fake_local else "device")
        self.binary = binary

    def step(self, what: str) -> str:
        return f"{what} ({self.job.folder.name})"

    def run(self) -> BundleResult:
        """The whole bundle; a DeviceError leaves what was measured in ``self.result``."""
        with tempfile.TemporaryDirectory(prefix="edgedistill-bench-") as tmp:
            plan = runners.Plan(self.job.manifest, self.job.golden, Path(tmp), self.binary, self.threads,
                                options={"python": getattr(self.device, "python", "python3")})
            try:
                self._push(plan)
                self._time(plan)
                outputs = self._outputs(plan)
            finally:
                self._cleanup()
        self._validate(outputs)
        return self.result

    def _push(self, plan: runners.Plan) -> None:
        d, t = self.device, self.s.timeout
        d.run(["rm", "-rf", self.remote], step=self.step("clean"), timeout=t)
        d.run(["mkdir", "-p", self.remote], step=self.step("mkdir"), timeout=t)
        d.push(self.job.model, f"{self.remote}/{self.job.manifest.model_file}", step=self.step("push model"), timeout=t)
        runner = self.job.runner or Path(__file__).with_name("remote_runner.py")
        d.push(runner, f"{self.remote}/{self.binary}", step=self.step("push runner"), timeout=t)
        d.run(["chmod", "755", f"{self.remote}/{self.binary}"], step=self.step("push runner"), timeout=t)
        probe = getattr(self.module, "probe_argv", None)
        if probe is not None:
            plan.capabilities = d.run(f"cd {shlex.quote(self.remote)} && {probe(self.binary)}",
                                      step=self.step("probe runner"), timeout=t).output

    def _push_inputs(self, files: list[Path], step: str) -> None:
        for f in files:
            self.device.push(f, f"{self.remote}/{f.name}", step=self.step(step), timeout=self.s.timeout)

    def _time(self, plan: runners.Plan) -> None:
        invocation = self.module.timing_run(plan, self.s.warmup, self.s.runs)
        self._push_inputs(invocation.inputs, "push inputs")
        self.result.batch = invocation.batch
        self.result.thermal_before = vars(cool_down(self.device, self.s))
        runs: list[Timings] = []
        for k in range(self.s.processes):
            step = self.step(f"run, process {k + 1}/{self.s.processes}")
            done = self.device.run(_in_folder(self.remote, invocation.argv, self.mask), step=step,
                                   timeout=self.s.timeout)
            (self.raw / f"process-{k + 1}.log").write_text(done.output)
            try:
                timings = self.module.parse(done.output, self.s.warmup)
            except UserError as exc:
                raise DeviceError(self.device.name, step, str(exc)) from None
            runs.append(timings)
            self.result.processes.append({"process": k + 1, "n": len(timings.samples_ms) or timings.summary.get("n"),
                                          "load_ms": timings.load_ms, "first_inference_ms": timings.first_ms,
                                          "peak_memory_mb": timings.peak_memory_mb, "fake_local": timings.fake_local})
            self._summarize(runs)
        self.result.thermal_after = vars(self.device.thermal(self.s.timeout))

    def _summarize(self, runs: list[Timings]) -> None:
        r = self.result
        r.latency_ms = summarize(runs)
        r.load_ms, r.first_inference_ms = first_of(runs, "load_ms"), first_of(runs, "first_ms")
        r.peak_memory_mb = first_of(runs, "peak_memory_mb")
        if any(t.fake_local for t in runs) or self.facts.fake_local:
            r.measured_on = "fake-local"

    def _outputs(self, plan: runners.Plan) -> np.ndarray | None:
        invocations = self.module.validation_runs(plan)
        if not invocations:
            self.result.validation_note = getattr(self.module, "NO_OUTPUTS", f"{self.job.kind} writes no outputs")
            return None
        chunks = []
        for k, inv in enumerate(invocations):
            self._push_inputs(inv.inputs, "push golden inputs")
            step = self.step(f"golden run {k + 1}/{len(invocations)}")
            done = self.device.run(_in_folder(self.remote, inv.argv, self.mask), step=step, timeout=self.s.timeout)
            (self.raw / f"golden-{k + 1}.log").write_text(done.output)
            for name in inv.outputs:
                local = self.raw / name
                self.device.pull(f"{self.remote}/{name}", local, step=self.step(f"pull {name}"), timeout=self.s.timeout)
                chunks.append(self.module.read_output(local, inv.rows, self.job.manifest.num_classes))
        return np.concatenate(chunks)

    def _cleanup(self) -> None:
        try:
            self.device.run(["rm", "-rf", self.remote], step=self.step("clean up"), timeout=self.s.timeout)
            self.result.remote_removed = True
        except DeviceError as exc:
            # the report says so (remote_removed false); the session's own error stays the one line
            log.debug("%s: remote folder %s not removed: %s", self.device.name, self.remote, exc.reason)

    def _validate(self, logits: np.ndarray | None) -> None:
        if logits is None:
            return
        from edgedistill.validation.device_outputs import validate_device_outputs

        path = self.raw / "device_outputs.npz"
        np.savez(path, logits=logits.astype(np.float32))
        report = validate_device_outputs(self.job.folder, path, self.tolerances,
                                         name=f"{self.job.folder.name} on {self.device.name}", runtime=self.device.name)
        self.result.validation = validation_summary(report, path)


def validation_summary(report: Any, outputs: Path) -> dict[str, Any]:
    """The device row of a device-outputs report, as bench.json keeps it."""
    row = report.rows[-1]  # the device's row (the golden teacher and student come first)
    return {"passed": row.passed, "samples": report.samples, "vs_teacher": row.vs_teacher,
            "vs_student": row.vs_student, "accuracy": row.accuracy,
            "checks": [vars(c) for c in row.checks], "outputs": str(outputs)}
