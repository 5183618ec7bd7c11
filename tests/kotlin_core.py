"""Compile and run the plain-Kotlin part of examples/android (core/) on this machine's JVM.

kotlinc, a JDK and JUnit 4 come from Debian's `kotlin` and `junit4` packages (.ci/run installs them);
without them the tests that need Kotlin skip, saying which one is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "examples" / "android" / "core" / "src"
JAR_DIRS = (Path("/usr/share/java"),)


def _jar(name: str) -> Path | None:
    return next((d / name for d in JAR_DIRS if (d / name).is_file()), None)


def build(out: Path) -> list[str]:
    """Compile core/src/main and core/src/test into one jar; the java class path to run it."""
    kotlinc, java = shutil.which("kotlinc"), shutil.which("java")
    junit, hamcrest = _jar("junit4.jar"), _jar("hamcrest-core.jar") or _jar("hamcrest.jar")
    missing = [n for n, v in (("kotlinc (apt-get install kotlin)", kotlinc), ("java", java),
                              ("JUnit 4 (apt-get install junit4)", junit), ("hamcrest", hamcrest)) if not v]
    if missing:
        pytest.skip("cannot compile the Kotlin example core here: no " + ", ".join(missing))
    jar = out / "core.jar"
    sources = sorted(str(p) for p in CORE.rglob("*.kt"))
    done = subprocess.run([kotlinc, *sources, "-cp", str(junit), "-include-runtime", "-d", str(jar)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and jar.is_file(), done.stderr[-3000:]
    return [java, "-cp", ":".join(map(str, (jar, junit, hamcrest)))]


def run(java: list[str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a class of the compiled core (``org.edgedistill.core.ContractCli`` and friends)."""
    return subprocess.run([*java, *map(str, args)], capture_output=True, text=True, timeout=timeout)
