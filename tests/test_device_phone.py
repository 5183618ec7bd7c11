"""On a real phone: runs only when EDGEDISTILL_ADB_SERIAL names an attached device.

    EDGEDISTILL_ADB_SERIAL=<serial from `adb devices`> \\
    EDGEDISTILL_EXECUTOR_RUNNER=/path/to/android-arm64/executor_runner \\
    .venv/bin/python -m pytest -m device

EDGEDISTILL_EXECUTOR_RUNNER is an executor_runner built for the phone (ExecuTorch's Android build,
with XNNPACK); without it only the preflight test runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import run_cli

SERIAL = os.environ.get("EDGEDISTILL_ADB_SERIAL")
RUNNER = os.environ.get("EDGEDISTILL_EXECUTOR_RUNNER")
pytestmark = [pytest.mark.device,
              pytest.mark.skipif(not SERIAL, reason="no phone: set EDGEDISTILL_ADB_SERIAL to run on one")]


def test_phone_preflight_facts():
    from edgedistill.device.adb import AdbDevice

    device = AdbDevice(SERIAL)
    device.connect()
    facts = device.facts(30)
    assert facts.abi != "unknown" and facts.cores > 0 and facts.big_cores and not facts.fake_local
    assert device.thermal(30).status != "unknown"


@pytest.mark.skipif(not RUNNER, reason="set EDGEDISTILL_EXECUTOR_RUNNER to a phone-built executor_runner")
def test_phone_bench_fp32_and_int8(tmp_path, demo_out: Path):
    bundles = sorted((demo_out / "bundles").iterdir())
    out = tmp_path / "out"
    proc = run_cli("bench", *bundles, "--device", f"adb:{SERIAL}", "--runner", RUNNER, "--out", out, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "bench.json").read_text())
    assert report["measured_on"] == "device"
    assert all(r["validation"]["passed"] and r["latency_ms"]["n"] > 0 for r in report["results"])
