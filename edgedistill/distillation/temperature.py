"""How temperature softens a teacher: top probabilities and entropy at several T, as text and a plot,
so a user can choose ``distill.temperature`` by looking (``edgedistill inspect-teacher``)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from edgedistill.fileio import atomic_path
from edgedistill.validation.metrics import log_softmax


def softened(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) over the last axis."""
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64) / float(temperature)))


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats over the last axis."""
    return -(probs * np.log(np.clip(probs, 1e-300, None))).sum(-1)


def describe(logits: np.ndarray, temperatures: Sequence[float], labels: Sequence[str] | None = None,
             y: np.ndarray | None = None, top: int = 3, samples: int = 4) -> str:
    """A text table: for the first ``samples`` rows and each T, the top classes with their probabilities
    and the entropy; then the mean entropy per T over all rows, against the maximum log(classes)."""
    name = (lambda c: labels[c]) if labels else str
    lines = []
    for i, row in enumerate(logits[:samples]):
        truth = f" (label {name(int(y[i]))})" if y is not None else ""
        lines.append(f"sample {i}{truth}")
        for t in temperatures:
            p = softened(row, t)
            best = np.argsort(-p)[:top]
            shown = "  ".join(f"{name(int(c))}: {p[c]:.3f}" for c in best)
            lines.append(f"  T={t:<5g} {shown}   entropy {entropy(p):.3f}")
    means = "  ".join(f"T={t:g}: {entropy(softened(logits, t)).mean():.3f}" for t in temperatures)
    lines.append(f"mean entropy over {len(logits)} samples (nats, max {np.log(logits.shape[1]):.3f}): {means}")
    return "\n".join(lines)


def plot(logits: np.ndarray, temperatures: Sequence[float], path: Path, labels: Sequence[str] | None = None,
         top: int = 10, samples: int = 4) -> Path:
    """PNG: for the first ``samples`` rows, the top classes' probabilities at each T; and the mean
    entropy over all rows against T."""
    from edgedistill.errors import require

    require("matplotlib", "plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(samples, len(logits))
    fig, axes = plt.subplots(1, n + 1, figsize=(3.2 * (n + 1), 3.0), squeeze=False)
    for i, row in enumerate(logits[:n]):
        ax = axes[0][i]
        order = np.argsort(-row)[: min(top, len(row))]
        for t in temperatures:
            ax.plot(range(len(order)), softened(row, t)[order], marker="o", label=f"T={t:g}")
        ax.set_xticks(range(len(order)), [labels[c] if labels else str(c) for c in order], fontsize=7)
        ax.set_title(f"sample {i}", fontsize=9)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("probability")
    axes[0][0].legend(fontsize=7)
    ax = axes[0][n]
    ax.plot(list(temperatures), [entropy(softened(logits, t)).mean() for t in temperatures], marker="o")
    ax.axhline(np.log(logits.shape[1]), linestyle="--", color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("T")
    ax.set_title(f"mean entropy over {len(logits)} samples (nats)", fontsize=9)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)
