"""Calibration sets: representative inputs for static quantization, with a recipe saying where they came from.

A set is ``NAME.npz`` (inputs as in datasets: ``x`` or ``x.<name>``) plus ``NAME.toml`` (source, size,
seed, what it was stratified by, per-class counts, the teacher's sha256). Sampling is stratified by the
teacher's predicted class (or the labels, without a teacher), round-robin over classes, so rare
classes are represented instead of being drowned by frequent ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgedistill.data import Dataset, Inputs, take
from edgedistill.errors import UserError
from edgedistill.fileio import atomic_path


def stratified_index(groups: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Up to ``n`` indices, taken round-robin over the groups (each shuffled, seeded)."""
    rng = np.random.default_rng(seed)
    queues = [list(rng.permutation(np.flatnonzero(groups == g))) for g in np.unique(groups)]
    chosen: list[int] = []
    while len(chosen) < n and any(queues):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(int(queue.pop()))
    return np.sort(np.array(chosen, dtype=np.int64))


def build(data: Dataset, n: int, teacher_logits: np.ndarray | None = None, seed: int = 0) -> tuple[Inputs, dict[str, Any]]:
    """Pick ``n`` representative inputs from ``data``; returns them and the recipe."""
    if len(data) == 0:
        raise UserError("cannot build a calibration set from an empty dataset")
    if teacher_logits is not None:
        groups, by = teacher_logits.argmax(-1), "teacher predicted class"
    elif data.y is not None:
        groups, by = data.y, "label"
    else:
        groups, by = np.zeros(len(data), dtype=np.int64), "nothing (no teacher, no labels): uniform"
    index = stratified_index(groups, n, seed)
    counts = np.bincount(groups[index]).tolist()
    recipe = {"source": data.name, "n": int(len(index)), "seed": seed, "stratified_by": by, "class_counts": counts,
              "inputs": {k: [*v.shape[1:]] for k, v in data.inputs.items()}}
    return take(data.inputs, index), recipe


def write(path: Path, inputs: Inputs, recipe: dict[str, Any]) -> Path:
    """Write ``path`` (.npz) and its recipe (.toml beside it), each atomically."""
    import tomli_w

    path = Path(path).with_suffix(".npz")
    keyed = {"x": inputs["x"]} if list(inputs) == ["x"] else {f"x.{k}": v for k, v in inputs.items()}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **keyed)
    with atomic_path(path.with_suffix(".toml")) as tmp:
        tmp.write_text(tomli_w.dumps(recipe), encoding="utf-8")
    return path


def read(path: str | Path, expected: Inputs) -> Inputs:
    """Load a calibration set and check it against the model's inputs (names, per-sample shapes, non-empty)."""
    from edgedistill.data import load_dataset

    path = Path(path)
    if path.suffix != ".npz":
        raise UserError(f"calibration set {path} must be an .npz (see edgedistill calibrate)")
    inputs = load_dataset(path).inputs
    if list(inputs) != list(expected):
        raise UserError(f"calibration set {path} has inputs {', '.join(inputs)}; the model takes {', '.join(expected)}")
    for name, array in inputs.items():
        if array.shape[1:] != expected[name].shape[1:]:
            raise UserError(f"calibration set {path}: input {name} has samples of shape {tuple(array.shape[1:])}, "
                            f"the model takes {tuple(expected[name].shape[1:])}")
    return inputs
