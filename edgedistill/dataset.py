"""The in-memory dataset: named model inputs sharing a first (sample) axis, and optional labels.

Every source (``edgedistill.data`` and ``edgedistill.sources``) builds one; this module imports none
of them, so sources depend on it and the loader in ``data`` depends on the sources, never back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgedistill.errors import UserError

Inputs = dict[str, np.ndarray]
RESERVED = frozenset({"y", "labels", "teacher_probs", "student_probs", "outputs", "text"})


def take(inputs: Inputs, index: Any) -> Inputs:
    """The same rows (an index array or a slice) of every input."""
    return {k: v[index] for k, v in inputs.items()}


def num_samples(inputs: Inputs) -> int:
    """Number of samples (first axis) shared by all inputs."""
    return int(next(iter(inputs.values())).shape[0])


@dataclass
class Dataset:
    """Named inputs in memory (first axis = samples, shared), optional integer labels ``y``."""

    inputs: Inputs
    y: np.ndarray | None = None
    labels: list[str] | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    name: str = "data"
    texts: np.ndarray | None = None  # the raw text of each sample, for text data (golden data carries it to apps)

    def __post_init__(self) -> None:
        if isinstance(self.inputs, np.ndarray):
            self.inputs = {"x": self.inputs}
        if not self.inputs:
            raise UserError(f"dataset {self.name} has no inputs")
        sizes = {k: v.shape[0] if v.ndim else 0 for k, v in self.inputs.items()}
        if len(set(sizes.values())) != 1:
            raise UserError(f"dataset {self.name}: inputs have different numbers of samples: {sizes}")
        clash = RESERVED & set(self.inputs)
        if clash:
            raise UserError(f"dataset {self.name}: input name(s) {', '.join(sorted(clash))} are reserved")
        if self.y is not None and len(self.y) and self.labels is not None and int(self.y.max()) >= len(self.labels):
            raise UserError(f"dataset {self.name}: label {int(self.y.max())} is out of range for its "
                            f"{len(self.labels)} label names")

    def __len__(self) -> int:
        return num_samples(self.inputs)

    @property
    def x(self) -> np.ndarray:
        """The single input (a UserError for multi-input data)."""
        if len(self.inputs) != 1:
            raise UserError(f"dataset {self.name} has several inputs ({', '.join(self.inputs)}), not one x")
        return next(iter(self.inputs.values()))

    def subset(self, index: np.ndarray, name: str | None = None) -> "Dataset":
        """The samples at ``index``, keeping labels and preprocessing."""
        y = None if self.y is None else self.y[index]
        texts = None if self.texts is None else self.texts[index]
        return Dataset(take(self.inputs, index), y, self.labels, self.preprocessing, name or self.name, texts)
