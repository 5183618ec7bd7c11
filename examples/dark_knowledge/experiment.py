"""Dark knowledge, reproduced: a soft-target student matches its teacher's whole distribution far
better than a hard-label student, although both are about as accurate.

Three overlapping Gaussian classes in 2-D. The teacher (an MLP softmax classifier) learns from
plenty of data. Two identical students then learn from the same small transfer set: one from the
teacher's soft targets at temperature T (alpha = 1), one from the hard labels only. We compare each
student with the teacher over a dense grid of points: mean total-variation distance and mean
KL(teacher || student). Run it:  python examples/dark_knowledge/experiment.py
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

from edgedistill.data import Dataset
from edgedistill.distillation.trainer import train
from edgedistill.inference import predict_logits
from edgedistill.validation.metrics import log_softmax

CENTRES = np.array([[0.0, 1.2], [-1.0, -0.6], [1.0, -0.6]])


def points(n: int, seed: int, spread: float = 0.9) -> Dataset:
    """``n`` points, classes balanced, each class a Gaussian around its centre."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = CENTRES[y] + rng.normal(scale=spread, size=(n, 2))
    return Dataset({"x": x.astype(np.float32)}, y.astype(np.int64), labels=["a", "b", "c"], name=f"points-{seed}")


def classifier(hidden: int) -> nn.Module:
    """A small MLP softmax classifier on 2-D points."""
    return nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 3))


def grid(steps: int = 80, extent: float = 3.5) -> np.ndarray:
    """A dense grid of points covering the classes and the space between them."""
    axis = np.linspace(-extent, extent, steps, dtype=np.float32)
    return np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)


def distance_to_teacher(teacher: nn.Module, student: nn.Module, x: np.ndarray) -> dict[str, float]:
    """Mean total-variation distance and mean KL(teacher || student) over the points ``x``."""
    log_p = log_softmax(predict_logits(teacher, x).numpy())
    log_q = log_softmax(predict_logits(student, x).numpy())
    p, q = np.exp(log_p), np.exp(log_q)
    return {"tv": float(0.5 * np.abs(p - q).sum(-1).mean()), "kl": float((p * (log_p - log_q)).sum(-1).mean())}


def accuracy(model: nn.Module, data: Dataset) -> float:
    """Top-1 accuracy on labelled data."""
    return float((predict_logits(model, data.x).argmax(1).numpy() == data.y).mean())


def run(seed: int = 0, transfer: int = 150, temperature: float = 4.0, epochs: int = 150) -> dict[str, dict[str, float]]:
    """Teacher, soft-target student and hard-label student; their accuracy and distance to the teacher."""
    torch.manual_seed(seed)
    teacher = classifier(64)
    train(teacher, points(3000, seed), epochs=40, lr=3e-3, weight_decay=0.0, seed=seed, desc="teacher")
    test, dense = points(3000, seed + 1), grid()
    transfer_set = points(transfer, seed + 2)
    results = {"teacher": {"accuracy": accuracy(teacher, test), "tv": 0.0, "kl": 0.0}}
    for name, kwargs in (("soft-target student", {"teacher": teacher, "alpha": 1.0, "temperature": temperature}),
                         ("hard-label student", {})):
        torch.manual_seed(seed)
        student = classifier(32)
        train(student, transfer_set, epochs=epochs, lr=1e-2, weight_decay=0.0, seed=seed, desc=name, **kwargs)
        results[name] = {"accuracy": accuracy(student, test), **distance_to_teacher(teacher, student, dense)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--transfer", type=int, default=150, help="points the students learn from")
    parser.add_argument("--temperature", "-T", type=float, default=4.0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny models: thread hand-offs cost more than they save
    results = run(args.seed, args.transfer, args.temperature)
    print(f"{'model':22} {'test acc':>9} {'TV to teacher':>14} {'KL(teacher||model)':>19}")
    for name, row in results.items():
        print(f"{name:22} {row['accuracy']:9.2%} {row['tv']:14.4f} {row['kl']:19.4f}")


if __name__ == "__main__":
    main()
