"""Parsers of the real runners' output formats (recorded fixtures), device facts, stats and ABI checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgedistill.device import facts, stats
from edgedistill.device.elf import binary_abi, check_abi
from edgedistill.device.runners import executorch, litert, onnxruntime
from edgedistill.device.transport import STATUS_MARKER, quote_argv, split_status
from edgedistill.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures" / "device"


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_executor_runner_per_iteration_lines_drop_warmups():
    t = executorch.parse(text("executor_runner_1.3.txt"), warmup=2)
    assert t.samples_ms == [0.077, 0.079, 0.071]
    assert t.first_ms == 0.312 and t.load_ms == 2.349
    assert stats.summarize([t])["median"] == pytest.approx(0.077)


def test_executor_runner_logcat_lines_parse_like_stderr():
    t = executorch.parse(text("executor_runner_logcat.txt"), warmup=1)
    assert t.samples_ms == [0.101, 0.099] and t.load_ms == 1.87


def test_executor_runner_total_only_gives_the_mean_and_nothing_made_up():
    t = executorch.parse(text("executor_runner_1.0.txt"), warmup=5)
    s = stats.summarize([t, t])
    assert s["n"] == 40 and s["mean"] == pytest.approx(0.155)
    assert s["median"] is None and s["p90"] is None and s["std"] is None


def test_executor_runner_without_timing_is_an_error_that_says_why():
    with pytest.raises(UserError, match="no timing lines"):
        executorch.parse(text("executor_runner_0.2.txt"), warmup=0)


def test_benchmark_model_uses_the_timed_phase_not_the_warmup():
    t = litert.parse(text("benchmark_model_percentiles.txt"), warmup=5)
    assert t.summary["n"] == 20 and t.summary["mean"] == pytest.approx(0.06035)
    assert t.summary["median"] == pytest.approx(0.058) and t.summary["p95"] == pytest.approx(0.081)
    assert t.load_ms == pytest.approx(3.118) and t.first_ms == pytest.approx(0.412)
    assert t.peak_memory_mb == pytest.approx(3.10938)


def test_benchmark_model_classic_format():
    t = litert.parse(text("benchmark_model_classic.txt"), warmup=1)
    assert t.summary["n"] == 50 and t.summary["min"] == pytest.approx(128.64) and "median" not in t.summary
    assert t.load_ms == pytest.approx(4.211)
    assert litert.parse("INFO: count=1 curr=1234\n", 0).summary["median"] == pytest.approx(1.234)


def test_benchmark_model_whole_microseconds_can_be_zero():
    """benchmark_model prints whole microseconds: a tiny model's fastest run is 0 µs, a real value."""
    t = litert.parse("INFO: count=30 first=3 curr=0 min=0 max=3 avg=0.4 std=0 p5=0 median=0 p95=1\n", 0)
    assert t.summary["n"] == 30 and t.summary["min"] == 0.0 and t.summary["median"] == 0.0
    assert t.summary["max"] == pytest.approx(0.003)


def test_onnxruntime_perf_test_percentiles_and_summary_formats():
    t = onnxruntime.parse(text("onnxruntime_perf_test_percentiles.txt"), warmup=1)
    assert t.summary["n"] == 20 and t.summary["p90"] == pytest.approx(0.122) and t.summary["median"] == pytest.approx(0.101)
    assert t.load_ms == pytest.approx(12.3411) and t.first_ms == 1 and t.peak_memory_mb == pytest.approx(20.109375)
    old = onnxruntime.parse(text("onnxruntime_perf_test_summary.txt"), warmup=1)
    assert old.summary == {"n": 100, "mean": 0.418} and old.first_ms is None
    pooled = stats.summarize([t, old])
    assert pooled["n"] == 120 and pooled["min"] is None and pooled["p90"] is None


def test_pixel_facts_big_cores_and_thermal():
    props = facts.parse_getprop(text("getprop.txt"))
    assert props["ro.product.model"] == "Pixel 7" and props["ro.product.cpu.abilist"].startswith("arm64-v8a")
    freqs = facts.parse_max_freqs(text("cpuinfo_max_freq.txt"))
    assert facts.big_cores(freqs) == [4, 5, 6, 7] and facts.mask_of([4, 5, 6, 7]) == "f0"
    assert facts.big_cores({0: 1000, 1: 1000}) == [0, 1]
    thermal = facts.parse_android_thermal(text("dumpsys_thermalservice.txt"))
    assert thermal.status == "moderate" and not thermal.normal
    assert facts.parse_linux_thermal("45000\n71500\n").status == "71.5C"


def test_status_marker_and_quoting():
    assert split_status(f"out\r\n{STATUS_MARKER}139\r\n") == (139, "out\n")
    assert split_status("error: device 'X' not found\n")[0] is None  # lost connection, not a status
    assert quote_argv(["rm", "-rf", "/data/local/tmp/a b;touch x"]) == "rm -rf '/data/local/tmp/a b;touch x'"


def _elf(machine: int, elf_class: int = 2) -> bytes:
    return b"\x7fELF" + bytes([elf_class, 1, 1]) + bytes(9) + (2).to_bytes(2, "little") + machine.to_bytes(2, "little")


def test_runner_abi_checked_against_the_device(tmp_path):
    arm64 = tmp_path / "executor_runner"
    arm64.write_bytes(_elf(183) + bytes(44))
    assert check_abi(arm64, ["arm64-v8a", "armeabi-v7a"]) == "arm64-v8a"
    host = Path(shutil.which("ls"))
    assert binary_abi(host) == "x86_64" or binary_abi(host) == "arm64-v8a"
    with pytest.raises(UserError, match="built for x86_64 but the device runs arm64-v8a"):
        check_abi(_write(tmp_path / "x86", _elf(62)), ["arm64-v8a"])
    with pytest.raises(UserError, match="neither an ELF"):
        binary_abi(_write(tmp_path / "junk", b"hello world, not a binary"))
    assert binary_abi(_write(tmp_path / "script", b"#!/bin/sh\necho hi\n")) is None


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data + bytes(64))
    return path
