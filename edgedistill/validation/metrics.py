"""Agreement metrics between a reference model (teacher or fp32 student) and a candidate, from logits."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis, in float64."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64."""
    return np.exp(log_softmax(logits))


def compare(reference_logits: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """Top-1 agreement, mean KL(reference || candidate) and max |Δp| over all samples and classes."""
    if reference_logits.shape != logits.shape:
        raise ValueError(f"cannot compare outputs of shapes {reference_logits.shape} and {logits.shape}")
    log_p, log_q = log_softmax(reference_logits), log_softmax(logits)
    p, q = np.exp(log_p), np.exp(log_q)
    kl = (p * (log_p - log_q)).sum(axis=-1)
    return {
        "top1_agreement": float((p.argmax(-1) == q.argmax(-1)).mean()),
        "mean_kl": float(kl.mean()),
        "max_abs_dp": float(np.abs(p - q).max()),
    }


def accuracy(logits: np.ndarray, labels: np.ndarray | None) -> float | None:
    """Top-1 accuracy, or None without labels."""
    if labels is None:
        return None
    return float((logits.argmax(-1) == labels).mean())
