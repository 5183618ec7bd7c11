"""Agreement metrics between a reference model (teacher or fp32 student) and a candidate, from logits.

Definitions (documented for users in docs/validation.md):

- top-1 agreement: fraction of samples whose argmax equals the reference's argmax;
- top-k agreement: fraction of samples whose reference argmax is among the candidate's k largest;
- KL: KL(reference || candidate) per sample, summed over classes; mean and max over samples;
- |Δp|: absolute difference of softmax probabilities over all samples × classes; max and 99th percentile;
- ECE: expected calibration error on the labels, equal-width confidence bins weighted by their size.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

METRICS = ("top1_agreement", "topk_agreement", "mean_kl", "max_kl", "max_abs_dp", "p99_abs_dp")


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis, in float64."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64."""
    return np.exp(log_softmax(logits))


def topk_hits(reference_logits: np.ndarray, logits: np.ndarray, k: int) -> np.ndarray:
    """Per sample: is the reference's argmax among the candidate's ``k`` largest outputs."""
    k = min(k, logits.shape[-1])
    top = np.argpartition(-logits, k - 1, axis=-1)[:, :k]
    return (top == reference_logits.argmax(-1)[:, None]).any(-1)


def compare(reference_logits: np.ndarray, logits: np.ndarray, k: int = 5) -> dict[str, float]:
    """Every metric of ``METRICS`` for ``logits`` against ``reference_logits``."""
    if reference_logits.shape != logits.shape:
        raise ValueError(f"cannot compare outputs of shapes {reference_logits.shape} and {logits.shape}")
    log_p, log_q = log_softmax(reference_logits), log_softmax(logits)
    p, q = np.exp(log_p), np.exp(log_q)
    kl = (p * (log_p - log_q)).sum(axis=-1)
    dp = np.abs(p - q)
    return {
        "top1_agreement": float((p.argmax(-1) == q.argmax(-1)).mean()),
        "topk_agreement": float(topk_hits(reference_logits, logits, k).mean()),
        "mean_kl": float(kl.mean()),
        "max_kl": float(kl.max()),
        "max_abs_dp": float(dp.max()),
        "p99_abs_dp": float(np.percentile(dp, 99)),
    }


def accuracy(logits: np.ndarray, labels: np.ndarray | None) -> float | None:
    """Top-1 accuracy, or None without labels."""
    if labels is None:
        return None
    return float((logits.argmax(-1) == labels).mean())


def reliability(logits: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Per equal-width confidence bin: sample count, mean confidence and accuracy (empty bins omitted)."""
    probs = softmax(logits)
    confidence, correct = probs.max(-1), probs.argmax(-1) == labels
    # bin i holds confidences in (i/bins, (i+1)/bins]; a confidence is never below 1/classes > 0
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    return [{"lower": i / bins, "upper": (i + 1) / bins, "count": int((index == i).sum()),
             "confidence": float(confidence[index == i].mean()), "accuracy": float(correct[index == i].mean())}
            for i in range(bins) if (index == i).any()]


def expected_calibration_error(logits: np.ndarray, labels: np.ndarray | None, bins: int = 10) -> float | None:
    """Σ_bins (count / N) · |accuracy − confidence|, or None without labels."""
    if labels is None:
        return None
    n = len(labels)
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in reliability(logits, labels, bins)))


def disagreement_flips(reference_logits: np.ndarray, logits: np.ndarray, top: int = 5) -> list[dict[str, int]]:
    """The most frequent (reference class -> candidate class) pairs among samples where they disagree."""
    ref, got = reference_logits.argmax(-1), logits.argmax(-1)
    pairs = Counter(zip(ref[ref != got].tolist(), got[ref != got].tolist()))
    return [{"reference": a, "candidate": b, "count": c}
            for (a, b), c in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


def per_class_agreement(reference_logits: np.ndarray, logits: np.ndarray) -> list[float | None]:
    """For each class the reference predicts: fraction of those samples where the candidate agrees."""
    ref, got = reference_logits.argmax(-1), logits.argmax(-1)
    return [float((got[ref == c] == c).mean()) if (ref == c).any() else None for c in range(logits.shape[-1])]
