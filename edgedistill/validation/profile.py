"""Latency and peak memory of one model, measured the same way for PyTorch and every runtime.

Latency: median wall time of single-sample calls after warm-up, in this process.
Peak memory: in a fresh interpreter, the growth of peak RSS (VmHWM) from just before the model
is loaded to after it has run; so imports are not counted, the model and its working memory are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np


def median_latency_ms(fn: Callable[..., object], inputs: dict[str, np.ndarray], n: int, warmup: int = 20) -> float:
    """Median milliseconds of ``fn(*sample)`` on one sample at a time, over ``n`` samples of ``inputs``."""
    arrays = list(inputs.values())
    samples = [tuple(a[i : i + 1] for a in arrays) for i in range(min(len(arrays[0]), n))]
    for i in range(warmup):
        fn(*samples[i % len(samples)])
    times = []
    for i in range(n):
        sample = samples[i % len(samples)]
        start = time.perf_counter_ns()
        fn(*sample)
        times.append(time.perf_counter_ns() - start)
    return float(np.median(times) / 1e6)


THREADS_ENV = "EDGEDISTILL_PROBE_THREADS"  # the runtime threads the memory probe's bundle runs on


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_memory_mb(kind: str, path: Path, inputs: dict[str, np.ndarray], n: int = 20,
                   timeout: float = 120.0, threads: int = 1) -> float | None:
    """Peak RSS growth in MiB for loading and running an artifact (``kind``: 'bundle' or 'checkpoint',
    a bundle on ``threads`` runtime threads: each thread's stack and scratch memory count).

    Returns None where it cannot be measured (no /proc, probe failed): never a made-up number.
    """
    if not Path("/proc/self/status").exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "inputs.npz"
        np.savez(sample, **{k: v[:n] for k, v in inputs.items()})
        from edgedistill.trust import current

        # the probe loads the checkpoint afresh: it trusts what this process trusts, no more
        cmd = [sys.executable, "-m", "edgedistill.validation.profile", kind, str(path), str(sample), *current()]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, THREADS_ENV: str(threads)})
        except subprocess.TimeoutExpired:
            return None
    if done.returncode != 0:
        return None
    try:
        return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"])
    except (ValueError, KeyError, IndexError):
        return None


def _probe(kind: str, path: str, inputs: str, *trusted: str) -> float:
    import torch  # noqa: F401  (imported before the baseline so it is not counted)

    with np.load(inputs) as npz:
        arrays = [npz[k] for k in npz.files]
    if kind == "bundle":
        from edgedistill.bundle import read_bundle
        from edgedistill.formats import get

        manifest, model_path = read_bundle(path)
        fmt = get(manifest.format)
        fmt.missing()  # imports the runtime before the baseline, so it is not counted
        threads = int(os.environ.get(THREADS_ENV, "1"))
        load = lambda: fmt.load(model_path, manifest.max_batch, threads)  # noqa: E731
    else:
        from edgedistill.modelref import load_model
        from edgedistill.trust import trusting

        def load():
            with trusting(trusted):
                model = load_model(path)
            return lambda *a: model(*(torch.from_numpy(v) for v in a))

    baseline = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
    with torch.no_grad():
        run = load()
        for i in range(len(arrays[0])):
            run(*(a[i : i + 1] for a in arrays))
    return max(_status_kb("VmHWM") - baseline, 0) / 1024


if __name__ == "__main__":
    from edgedistill.quiet import quiet

    with quiet():
        peak = _probe(*sys.argv[1:])
    print(json.dumps({"peak_mb": peak}))
