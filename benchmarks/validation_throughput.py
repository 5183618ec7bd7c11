"""Validation throughput (samples/s) per runtime on the demo's held-out set, measured in one run.

    python benchmarks/validation_throughput.py [--demo DIR] [--repeats 5]

DIR is the output folder of ``edgedistill demo`` (teacher.pt, student.pt, bundles/); without it a
short demo runs first. For every model the held-out split (450 digits samples) runs through the
same code path ``validate`` uses, at batch 256 (where the artifact allows it) and at batch 1; the
median of ``--repeats`` passes is reported, and each rate also as a ratio to the eager fp32 student,
since absolute numbers on a shared machine are noisy. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's edgedistill, not an installed one


def _rate(fn, inputs: dict[str, np.ndarray], batch: int, repeats: int) -> float:
    from edgedistill.formats.base import run_batched

    class _Fixed:  # run_batched's runner protocol around any callable
        max_batch = batch

        def __call__(self, *arrays):
            return fn(*arrays)

    run_batched(_Fixed(), inputs, batch)  # warm-up
    n = len(next(iter(inputs.values())))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_batched(_Fixed(), inputs, batch)
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, help="output folder of `edgedistill demo`")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    demo = args.demo
    if demo is None:
        demo = Path(tempfile.mkdtemp(prefix="edgedistill-bench-"))
        subprocess.run([sys.executable, "-m", "edgedistill", "demo", "--out", str(demo), "--no-memory"], check=True,
                       stdout=subprocess.DEVNULL)
    import torch

    from edgedistill.data import load_dataset, split
    from edgedistill.formats import get
    from edgedistill.modelref import load_model
    from edgedistill.quiet import quiet
    from edgedistill.validation.harness import open_bundles

    torch.set_num_threads(1)  # one thread for every runtime, so the comparison is like for like
    test = split(load_dataset("digits"), 0.25, 0.1, seed=0).test
    models = {}
    for role in ("teacher", "student"):
        model = load_model(str(demo / f"{role}.pt"))
        models[f"{role} (PyTorch eager)"] = (lambda m: lambda *a: m(*map(torch.from_numpy, a)).detach().numpy())(model)
    for bundle in open_bundles(sorted((demo / "bundles").iterdir())):
        with quiet():
            runner = get(bundle.manifest.format).load(bundle.model_path, bundle.manifest.max_batch)
        models[f"student {bundle.manifest.format} {bundle.manifest.quantization}"] = runner
    rows = []
    with torch.no_grad(), quiet():
        for name, fn in models.items():
            rows.append((name, _rate(fn, test.inputs, 256, args.repeats), _rate(fn, test.inputs, 1, args.repeats)))
    base = next(r for r in rows if r[0].startswith("student (PyTorch"))
    print(f"{len(test)} held-out digits samples, median of {args.repeats} passes, 1 thread\n")
    print("| model | samples/s, batch 256 | × eager student | samples/s, batch 1 | × eager student |")
    print("|---|---|---|---|---|")
    for name, big, one in rows:
        print(f"| {name} | {big:,.0f} | {big / base[1]:.2f} | {one:,.0f} | {one / base[2]:.2f} |")


if __name__ == "__main__":
    main()
