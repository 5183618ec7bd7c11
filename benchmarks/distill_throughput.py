"""Training throughput, measured in one run: (a) supervised student, (b) online KD, (c) KD from stored teacher logits.

    python benchmarks/distill_throughput.py [--epochs 4] [--rounds 3] [--threads 1]

All three train the same student with the same loop (``edgedistill.distillation.trainer.train``)
on digits replicated to a larger epoch; they differ only in where the teacher's logits come from:
(a) none (cross-entropy on labels), (b) ``teacher_logits.Online`` (a teacher forward every step),
(c) the on-disk cache of ``edgedistill.distillation.teacher_cache`` when that module provides
``cached_logits(teacher, data, cache_dir)``, else ``teacher_logits.Precomputed`` (in memory).
The modes are interleaved over rounds and each reports the median over epochs (the first epoch of
each run is dropped as warm-up), so machine noise hits all of them alike. Target: (c)/(a) time per
epoch <= 1.15. The one-off cost of computing the teacher's logits for (c) is reported separately.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgedistill.data import Dataset, load_dataset
from edgedistill.distillation.teacher_logits import Online, Precomputed
from edgedistill.distillation.trainer import train
from edgedistill.machine import describe, machine_facts
from edgedistill.zoo import digits


def stored_logits(teacher: torch.nn.Module, data: Dataset, cache_dir: Path) -> tuple[object, str]:
    """The teacher-logit source for (c), and what it is."""
    try:
        from edgedistill.distillation import teacher_cache
    except ImportError:
        teacher_cache = None
    if teacher_cache is not None and hasattr(teacher_cache, "cached_logits"):
        return teacher_cache.cached_logits(teacher, data, cache_dir), "on-disk cache (teacher_cache)"
    return Precomputed(teacher, data), "in-memory precomputed logits"


def epoch_rates(student_seed: int, data: Dataset, epochs: int, batch_size: int, hidden: int,
                **kd) -> tuple[list[float], float]:
    """Samples/s of each epoch after the first (wall clock), and the run's CPU seconds per epoch.

    CPU time is what this process itself spent: on a shared machine, other jobs stretch the wall
    clock of whichever mode they happen to overlap, but not this process's CPU time (one thread)."""
    torch.manual_seed(student_seed)
    student = digits.student(hidden=hidden)
    cpu = time.process_time()
    result = train(student, data, epochs=epochs, batch_size=batch_size, desc="bench", **kd)
    return [row["samples_per_s"] for row in result.history[1:]], (time.process_time() - cpu) / epochs


def main() -> None:
    """Run the three modes interleaved and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=8, help="replicate digits this many times per epoch")
    parser.add_argument("--teacher-hidden", type=int, default=1024)
    parser.add_argument("--student-hidden", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    base = load_dataset("digits")
    data = Dataset({"x": np.concatenate([base.x] * args.repeat)}, np.concatenate([base.y] * args.repeat), name="digits")
    torch.manual_seed(0)
    teacher = digits.teacher(hidden=args.teacher_hidden).eval()  # throughput does not depend on its weights
    with tempfile.TemporaryDirectory() as cache_dir:
        started = time.perf_counter()
        stored, stored_kind = stored_logits(teacher, data, Path(cache_dir))
        precompute_s = time.perf_counter() - started
        modes = {
            "(a) supervised (CE on labels)": {},
            "(b) online KD (teacher forward each step)": {"teacher": teacher, "teacher_logits": Online(teacher)},
            f"(c) KD from {stored_kind}": {"teacher": teacher, "teacher_logits": stored},
        }
        rates: dict[str, list[float]] = {name: [] for name in modes}
        per_round: dict[str, list[float]] = {name: [] for name in modes}
        cpu_per_epoch: dict[str, list[float]] = {name: [] for name in modes}
        for _ in range(args.rounds):
            for name, kd in modes.items():
                epoch, cpu = epoch_rates(1, data, args.epochs, args.batch_size, args.student_hidden, **kd)
                rates[name] += epoch
                per_round[name].append(statistics.median(epoch))
                cpu_per_epoch[name].append(cpu)

    median = {name: statistics.median(r) for name, r in rates.items()}
    base_name = "(a) supervised (CE on labels)"
    base_rate = median[base_name]
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    print(f"{len(data):,} samples/epoch, batch {args.batch_size}, teacher {params(teacher):,} params, student "
          f"{params(digits.student(hidden=args.student_hidden)):,} params, {args.threads} thread(s), "
          f"{args.rounds} rounds x {args.epochs - 1} timed epochs per mode\n")
    print(f"machine: {describe(machine_facts(args.threads))}\n")
    print("| mode | samples/s | wall time per epoch vs (a) | noise | CPU time per epoch vs (a) | noise |")
    print("|---|---:|---:|---|---:|---|")
    base_cpu = statistics.median(cpu_per_epoch[base_name])
    for name, rate in median.items():
        ratios = [b / r for b, r in zip(per_round[base_name], per_round[name])]
        cpu_ratios = [c / b for b, c in zip(cpu_per_epoch[base_name], cpu_per_epoch[name])]
        print(f"| {name} | {rate:,.0f} | {base_rate / rate:.2f} | {min(ratios):.2f}–{max(ratios):.2f} | "
              f"{statistics.median(cpu_per_epoch[name]) / base_cpu:.2f} | {min(cpu_ratios):.2f}–{max(cpu_ratios):.2f} |")
    print(f"\none-off teacher pass for (c): {precompute_s:.2f} s ({len(data) / precompute_s:,.0f} samples/s)")


if __name__ == "__main__":
    main()
