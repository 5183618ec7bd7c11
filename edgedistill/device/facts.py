"""What a benchmark must record about the device: model, SoC, ABI, OS, big cores, thermal state.

Big cores are read from each core's ``cpuinfo_max_freq``: every core faster than the slowest cluster
(all cores when they are all alike). Android thermal status is ``dumpsys thermalservice``'s
``Thermal Status`` (0 = none ... 6 = shutdown); a Linux board reports its hottest thermal zone.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from edgedistill.device.transport import Transport

THERMAL_NAMES = ("none", "light", "moderate", "severe", "critical", "emergency", "shutdown")
# a Linux board counts as cool below this (°C): no thermal-status API there
LINUX_COOL_C = 60.0
_FREQ_LINE = re.compile(r"cpu(\d+)/cpufreq/cpuinfo_max_freq\s+(\d+)")
_PROP_LINE = re.compile(r"^\[([^\]]+)\]: \[(.*)\]$")


@dataclass
class Thermal:
    """A thermal reading: ``normal`` is what cool-down waits for."""

    status: str
    normal: bool
    detail: str = ""


@dataclass
class DeviceFacts:
    """Device facts recorded in the report."""

    transport: str
    name: str
    model: str = "unknown"
    soc: str = "unknown"
    abi: str = "unknown"
    abilist: list[str] = field(default_factory=list)
    os: str = "unknown"
    cores: int = 0
    max_freq_khz: dict[int, int] = field(default_factory=dict)
    big_cores: list[int] = field(default_factory=list)
    fake_local: bool = False

    @property
    def big_core_mask(self) -> str:
        """Hex CPU mask of the big cores, as ``taskset`` takes it."""
        return mask_of(self.big_cores)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "big_core_mask": self.big_core_mask}


def mask_of(cores: list[int]) -> str:
    """Hex affinity mask (no 0x) for a list of core indices."""
    return format(sum(1 << c for c in set(cores)), "x") if cores else "0"


def parse_getprop(text: str) -> dict[str, str]:
    """``getprop`` output (``[key]: [value]`` lines) -> dict."""
    return {m.group(1): m.group(2) for m in map(_PROP_LINE.match, text.splitlines()) if m}


def parse_max_freqs(text: str) -> dict[int, int]:
    """Lines ``.../cpuN/cpufreq/cpuinfo_max_freq KHZ`` -> {core: kHz}."""
    return {int(m.group(1)): int(m.group(2)) for m in map(_FREQ_LINE.search, text.splitlines()) if m}


def big_cores(freqs: dict[int, int]) -> list[int]:
    """Cores faster than the slowest cluster; every core when all run at the same top speed."""
    if not freqs:
        return []
    slowest = min(freqs.values())
    fast = [c for c, f in sorted(freqs.items()) if f > slowest]
    return fast or sorted(freqs)


def parse_android_thermal(text: str) -> Thermal:
    """``dumpsys thermalservice`` -> status (Android 10+ prints ``Thermal Status: N``)."""
    m = re.search(r"Thermal Status:\s*(\d+)", text)
    if not m:
        return Thermal("unknown", True, "no 'Thermal Status' in dumpsys thermalservice")
    level = int(m.group(1))
    name = THERMAL_NAMES[level] if level < len(THERMAL_NAMES) else str(level)
    return Thermal(name, level == 0, f"Thermal Status: {level}")


def parse_linux_thermal(text: str) -> Thermal:
    """Millidegree readings of ``/sys/class/thermal/thermal_zone*/temp`` -> hottest zone."""
    temps = [int(t) / 1000 for t in re.findall(r"^-?\d+$", text, flags=re.M)]
    if not temps:
        return Thermal("unknown", True, "no thermal zones readable")
    hottest = max(temps)
    return Thermal(f"{hottest:.1f}C", hottest < LINUX_COOL_C, f"hottest of {len(temps)} zones")


_FREQS_CMD = ("for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; "
              "do [ -r \"$f\" ] && echo \"$f $(cat \"$f\")\"; done; true")


def android_facts(device: Transport, timeout: float) -> DeviceFacts:
    """getprop model / SoC / ABI / Android version, per-core max frequency."""
    props = parse_getprop(device.run(["getprop"], step="preflight (getprop)", timeout=timeout).output)
    freqs = parse_max_freqs(device.run(_FREQS_CMD, step="preflight (cpufreq)", timeout=timeout).output)
    soc = " ".join(v for v in (props.get("ro.soc.manufacturer", ""), props.get("ro.soc.model", "")) if v)
    return DeviceFacts(
        transport="adb", name=device.name,
        model=" ".join(v for v in (props.get("ro.product.manufacturer", ""), props.get("ro.product.model", "")) if v)
        or "unknown",
        soc=soc or props.get("ro.board.platform", "unknown"), abi=props.get("ro.product.cpu.abi", "unknown"),
        abilist=[a for a in props.get("ro.product.cpu.abilist", "").split(",") if a],
        os=f"Android {props.get('ro.build.version.release', '?')} (SDK {props.get('ro.build.version.sdk', '?')})",
        cores=len(freqs), max_freq_khz=freqs, big_cores=big_cores(freqs),
        fake_local=props.get("ro.edgedistill.fake_local") == "1")


def android_thermal(device: Transport, timeout: float) -> Thermal:
    """Current Android thermal status."""
    done = device.run(["dumpsys", "thermalservice"], step="thermal", timeout=timeout, check=False)
    return parse_android_thermal(done.output)


_LINUX_ABI = {"aarch64": "arm64-v8a", "arm64": "arm64-v8a", "armv7l": "armeabi-v7a", "x86_64": "x86_64",
              "i686": "x86", "riscv64": "riscv64"}


def linux_facts(device: Transport, timeout: float) -> DeviceFacts:
    """uname, /proc/cpuinfo model, per-core max frequency (all cores when cpufreq is absent)."""
    out = device.run("uname -m; uname -sr; nproc; (cat /proc/device-tree/model 2>/dev/null | tr -d '\\0'; echo); "
                     "grep -m1 -E 'model name|Hardware' /proc/cpuinfo || true",
                     step="preflight (uname)", timeout=timeout).output.splitlines()
    machine, system, nproc, board = (out + ["", "", "0", ""])[:4]
    cpu = out[4].split(":", 1)[-1].strip() if len(out) > 4 else ""
    freqs = parse_max_freqs(device.run(_FREQS_CMD, step="preflight (cpufreq)", timeout=timeout).output)
    cores = len(freqs) or int(nproc or 0)
    abi = _LINUX_ABI.get(machine.strip(), machine.strip() or "unknown")
    return DeviceFacts(transport="ssh", name=device.name, model=board.strip() or "unknown", soc=cpu or "unknown",
                       abi=abi, abilist=[abi], os=system.strip(), cores=cores, max_freq_khz=freqs,
                       big_cores=big_cores(freqs) or list(range(cores)))


def linux_thermal(device: Transport, timeout: float) -> Thermal:
    """Hottest thermal zone of a Linux board."""
    done = device.run("cat /sys/class/thermal/thermal_zone*/temp 2>/dev/null; true", step="thermal",
                      timeout=timeout, check=False)
    return parse_linux_thermal(done.output)
