"""Facts about this machine that a timing depends on: CPU model, ISA extensions, cores, threads, load.

Every benchmark and every host-timed selection prints these next to its numbers, since a ratio
measured on an AVX-512 VNNI server says little about an AVX2 laptop (or an ARM phone).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

# the extensions that change which int8/fp32 kernels the runtimes pick
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
             "avx512_bf16", "amx_int8", "asimd", "asimddp", "i8mm", "sve", "fphp")


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def machine_facts(threads: int | None = None) -> dict[str, Any]:
    """CPU model, the ISA flags that matter, logical cores, the threads used, and the load average."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"cpu": info.get("model name") or info.get("Hardware") or platform.processor() or platform.machine(),
            "arch": platform.machine(), "isa": [f for f in ISA_FLAGS if f in flags], "cores": os.cpu_count(),
            "threads": threads, "load_average": load}


def describe(facts: dict[str, Any]) -> str:
    """One line for a benchmark's header."""
    return (f"{facts['cpu']} ({facts['arch']}; {' '.join(facts['isa']) or 'no listed ISA flags'}), "
            f"{facts['cores']} logical cores, {facts['threads']} thread(s), load average {facts['load_average']}")
