"""``edgedistill bench --device adb --app``: measure through the installed Android example app.

A second measuring path beside pushed runner binaries: push the whole bundle (model, manifest,
golden inputs, tokenizer), run examples/android's instrumentation test with ``am instrument``
(warm-ups, timed runs, then every golden input), pull the ``outputs.npz`` it writes (the
device-outputs format, docs/device-outputs.md, with its timing keys) and validate it against the
bundle's golden teacher probabilities. The app must be installed first
(``./gradlew installDebug installDebugAndroidTest`` in examples/android).
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from edgedistill.bundle import read_bundle
from edgedistill.config import Tolerance
from edgedistill.device.bench import BundleResult, cool_down, validation_summary
from edgedistill.device.jobs import BenchSettings, safe_name
from edgedistill.device.stats import Timings, summarize
from edgedistill.device.transport import DeviceError, Transport
from edgedistill.errors import UserError

log = logging.getLogger("edgedistill")
APP_PACKAGE = "org.edgedistill.example"
INSTRUMENTATION = f"{APP_PACKAGE}.test/androidx.test.runner.AndroidJUnitRunner"
TEST_CLASS = f"{APP_PACKAGE}.BundleInstrumentationTest"
STATUS_OUTPUTS, STATUS_ERROR = "edgedistill_outputs", "edgedistill_error"
TIMING_KEYS = ("runtime", "load_ms", "first_inference_ms", "warmup", "latency_ms")  # in device-outputs.schema.json
RUNTIMES = {"executorch": "android-app (executorch)", "litert": "android-app (litert)"}


def check_bundles(bundles: list[Path]) -> None:
    """Only the formats the example app runs: ExecuTorch .pte and LiteRT .tflite."""
    for folder in bundles:
        manifest, _ = read_bundle(folder)
        if manifest.format not in RUNTIMES:
            raise UserError(f"bundle {folder} is {manifest.format}: the Android example app runs "
                            f"{' and '.join(RUNTIMES)} bundles (use --runner for others)")


def instrument_argv(remote_bundle: str, warmup: int, runs: int, threads: int | None) -> list[str]:
    """The ``am instrument`` command that runs the example's golden-input test on one pushed bundle."""
    extras = {"bundle": remote_bundle, "warmup": str(warmup), "runs": str(runs), "class": TEST_CLASS}
    if threads:
        extras["threads"] = str(threads)
    return ["am", "instrument", "-w", "-r", *[a for k, v in extras.items() for a in ("-e", k, v)], INSTRUMENTATION]


def parse_instrument(output: str) -> str:
    """The outputs path the test reported; a failed or missing test is a one-line reason (ValueError)."""
    status = {}
    for line in output.replace("\r\n", "\n").splitlines():
        if line.startswith("INSTRUMENTATION_STATUS: ") and "=" in line:
            key, _, value = line[len("INSTRUMENTATION_STATUS: "):].partition("=")
            status.setdefault(key, value.strip())
    if STATUS_ERROR in status:
        raise ValueError(status[STATUS_ERROR])
    if "INSTRUMENTATION_FAILED" in output or "Error" in status:
        raise ValueError(status.get("Error") or "instrumentation failed: is the example app installed?")
    if "FAILURES!!!" in output or "Process crashed" in output:
        raise ValueError("the instrumentation test failed: " + (status.get("stack", "").splitlines() or ["no stack"])[0])
    if STATUS_OUTPUTS not in status:
        raise ValueError("the instrumentation test reported no outputs file")
    return status[STATUS_OUTPUTS]


def read_timings(path: Path) -> Timings:
    """The timing keys of an app's outputs.npz as bench Timings (absent keys stay None); ValueError when unreadable."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            get = lambda key: float(npz[key]) if key in npz.files else None  # noqa: E731
            samples = [float(v) for v in np.ravel(npz["latency_ms"])] if "latency_ms" in npz.files else []
            return Timings(samples_ms=samples, load_ms=get("load_ms"), first_ms=get("first_inference_ms"))
    except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"outputs.npz from the app is unreadable: {str(exc)[:200]}") from None


class AppBench:
    """One bundle through the example app: push the bundle, am instrument, pull outputs, validate."""

    def __init__(self, device: Transport, facts, folder: Path, settings: BenchSettings,
                 tolerances: dict[str, Tolerance], raw: Path, remote: str):
        manifest, _ = read_bundle(folder, verify=False)  # check_bundles verified the sha256
        self.device, self.facts, self.s, self.folder = device, facts, settings, folder
        self.tolerances, self.raw, self.remote = tolerances, raw, remote
        self.threads = settings.threads
        self.result = BundleResult(bundle=folder.name, format=manifest.format, quantization=manifest.quantization,
                                   runner=RUNTIMES[manifest.format], model_sha256=manifest.sha256,
                                   model_size_bytes=manifest.size_bytes, threads=settings.threads or 0,
                                   core_mask="app", batch=1, warmup=settings.warmup,
                                   measured_on="fake-local" if facts.fake_local else "device")

    def step(self, what: str) -> str:
        return f"{what} ({self.folder.name})"

    def run(self) -> BundleResult:
        """Push, run, pull; then validate. A DeviceError leaves what was measured in ``self.result``."""
        d, t = self.device, self.s.timeout
        outputs = self.raw / "outputs.npz"
        remote_outputs = None
        try:
            d.run(["rm", "-rf", self.remote], step=self.step("clean"), timeout=t)
            for path in sorted(p for p in self.folder.rglob("*") if p.is_file()):
                relative = path.relative_to(self.folder).as_posix()
                if "/" in relative:
                    d.run(["mkdir", "-p", f"{self.remote}/{relative.rsplit('/', 1)[0]}"], step=self.step("mkdir"), timeout=t)
                d.push(path, f"{self.remote}/{relative}", step=self.step(f"push {relative}"), timeout=t)
            d.run(["chmod", "-R", "a+rX", self.remote], step=self.step("push bundle"), timeout=t)  # the app is another user
            self.result.thermal_before = vars(cool_down(d, self.s))
            step = self.step("am instrument")
            done = d.run(instrument_argv(self.remote, self.s.warmup, self.s.runs, self.threads), step=step, timeout=t)
            (self.raw / "instrument.log").write_text(done.output)
            try:
                remote_outputs = parse_instrument(done.output)
            except ValueError as exc:
                raise DeviceError(d.name, step, str(exc)[:300]) from None
            d.pull(remote_outputs, outputs, step=self.step("pull outputs"), timeout=t)
            try:
                timings = read_timings(outputs)
            except ValueError as exc:
                raise DeviceError(d.name, self.step("pull outputs"), str(exc)) from None
            self.result.latency_ms = summarize([timings])
            self.result.load_ms, self.result.first_inference_ms = timings.load_ms, timings.first_ms
            self.result.processes.append({"process": 1, "n": len(timings.samples_ms), "load_ms": timings.load_ms,
                                          "first_inference_ms": timings.first_ms, "peak_memory_mb": None,
                                          "fake_local": self.facts.fake_local})
            self.result.thermal_after = vars(d.thermal(t))
        finally:
            self._cleanup(remote_outputs)
        from edgedistill.validation.device_outputs import validate_device_outputs

        report = validate_device_outputs(self.folder, outputs, self.tolerances,
                                         name=f"{self.folder.name} on {self.device.name} (app)", runtime=self.device.name)
        self.result.validation = validation_summary(report, outputs)
        return self.result

    def _cleanup(self, remote_outputs: str | None) -> None:
        # a device that is gone keeps its files; the report says so (remote_removed false)
        try:
            if remote_outputs:
                self.device.run(["rm", "-f", remote_outputs], step=self.step("clean up"), timeout=self.s.timeout)
            self.device.run(["rm", "-rf", self.remote], step=self.step("clean up"), timeout=self.s.timeout)
            self.result.remote_removed = True
        except DeviceError as exc:
            log.debug("%s: %s not removed: %s", self.device.name, self.remote, exc.reason)


def check_app_installed(device: Transport, timeout: float) -> None:
    """The example's instrumentation must be on the device (``pm list instrumentation``)."""
    listing = device.run(["pm", "list", "instrumentation"], step="preflight (pm list instrumentation)",
                         timeout=timeout).output
    if INSTRUMENTATION not in listing:
        raise DeviceError(device.name, "preflight", f"the example app is not installed ({INSTRUMENTATION} not listed): "
                          "run ./gradlew installDebug installDebugAndroidTest in examples/android")


def app_remote_folder(root: str, folder: Path, index: int) -> str:
    """One remote folder per bundle (numbered: two bundles may share a name)."""
    return f"{root.rstrip('/')}/app-{index}-{safe_name(folder.name)}"
