"""``export --select fastest`` is reproducible: the same candidates timed twice give the same winner, and it passes.

    PYTHONPATH=. python benchmarks/select_twice.py [--target android] [--models digits,mobilenet]

For each model: distil-free setup (digits: a short demo run; MobileNetV2-like: the student is its
own teacher on random images, reduced resolution so that six candidate exports fit in minutes),
then ``edgedistill.select`` (build, validate, time, rank) and a second, independent timing + ranking
of the same built candidates. Prints both rankings, the winner of each and whether it passed.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgedistill import run, select
from edgedistill.machine import describe, machine_facts
from edgedistill.modelref import save_checkpoint
from edgedistill.selection import time_on_host
from edgedistill.selection_rank import rank
from edgedistill.zoo import mobilenet


def digits_config(tmp: Path) -> dict:
    demo = {"data.source": "digits", "teacher.model": "edgedistill.zoo.digits:teacher",
            "student.model": "edgedistill.zoo.digits:student", "teacher.train_epochs": 20, "distill.epochs": 30,
            "export.formats": ["executorch"], "export.quantization": ["fp32"], "out": str(tmp / "demo"),
            "validate.measure_memory": False, "validate.plots": False}
    run(None, demo)
    return {"data.source": "digits", "teacher.model": str(tmp / "demo" / "teacher.pt"),
            "student.model": str(tmp / "demo" / "student.pt")}


def mobilenet_config(tmp: Path, resolution: int) -> dict:
    rng = np.random.default_rng(0)
    np.savez(tmp / "images.npz", x=rng.normal(size=(160, 3, resolution, resolution)).astype(np.float32),
             y=rng.integers(0, 10, 160))
    torch.manual_seed(0)
    ckpt = save_checkpoint(mobilenet.student(width=0.5).eval(), tmp / "mobilenet.pt",
                           "edgedistill.zoo.mobilenet:student", {"width": 0.5})
    return {"data.source": str(tmp / "images.npz"), "teacher.model": str(ckpt), "student.model": str(ckpt),
            "export.calibration_samples": 32}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="android")
    parser.add_argument("--models", default="digits,mobilenet")
    parser.add_argument("--resolution", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {describe(machine_facts(1))}\n")
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            base = digits_config(tmp) if name == "digits" else mobilenet_config(tmp, args.resolution)
            config = {**base, "export.target": args.target, "out": str(tmp / "select"),
                      "validate.measure_memory": False, "validate.latency_samples": 10, "validate.plots": False}
            first = select(None, "fastest", overrides=config)
            again = [copy.deepcopy(c) for c in first.candidates if c.latency_ms is not None]
            time_on_host(again, 1)
            second = rank(again + [c for c in first.candidates if c.latency_ms is None], "fastest")
            for label, ranked in (("run 1", first.candidates), ("run 2", second)):
                print(f"{name} {label}: " + ", ".join(
                    f"{c.name} {c.status} {c.latency_ms * 1000 if c.latency_ms else float('nan'):.1f} µs" for c in ranked))
            w1, w2 = first.candidates[0], second[0]
            print(f"{name}: winner run 1 {w1.name} (passed: {w1.passed}), run 2 {w2.name} (passed: {w2.passed}); "
                  f"same: {w1.name == w2.name}\n")
            print(json.dumps({"model": name, "winners": [w1.name, w2.name], "passed": [w1.passed, w2.passed]}))


if __name__ == "__main__":
    main()
