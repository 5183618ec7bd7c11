"""Data-aware weight palettization for Core ML (``palettize8/6/4`` with a calibration set).

Plain k-means palettization (coremltools' ``mode="kmeans"``) spends a weight tensor's 2^n table entries
to minimize the weights' own squared error, as if every weight mattered equally. What matters is the
layer's output error: for ``y = W x`` the error of row i is ``sum_j ΔW_ij x_j``, whose expected square
is, keeping only the diagonal of ``E[x xᵀ]``, ``sum_j ΔW_ij² E[x_j²]``. So each weight is weighted by
the second moment of its input channel over the calibration data (``E[x_j²]`` of Linear column j; of
input channel c for a convolution), and the table is that weighted k-means (the sensitivity-weighted
k-means of SqueezeLLM, with GPTQ's diagonal Hessian ``E[x xᵀ]`` as the sensitivity). Channels that
carry large activations (a transformer's outlier dimensions, the digits' central pixels) get table
entries where their weights lie; weights fed by channels that are always zero cost nothing.

The 1-D weighted k-means is Lloyd's algorithm on the sorted distinct values (prefix sums make an
iteration O(k log n)), started from weighted quantiles and from several weighted k-means++ seeds, the
lowest weighted cost kept. A Linear's weights are then assigned to the (fp16-rounded) table column by
column with GPTQ's error feedback: each column's rounding error is spread over the columns not yet
rounded through ``E[x xᵀ]`` (damped by 1 % of its mean diagonal), so correlated inputs compensate each
other; other weights go to their nearest entry. The result is an ordinary ``constexpr_lut_to_dense``:
coremltools' ``mode="custom"`` with this ``lut_function``, which Apple's runtime and the reference
evaluator decode like any other table. Measured before/after: benchmarks/README.md ("Core ML
data-aware palettization"); the digits student's palettize4 max |Δp| goes from 0.261 to 0.093.

Statistics are collected with forward hooks on every ``nn.Linear``, ``nn.Conv1d/2d`` (groups 1) and
``nn.Embedding`` (a Linear on one-hot inputs: a row's importance is how often its token occurs),
and found again in the converted program by value: each weight constant coremltools hands to the
``lut_function`` is matched to its module by its bytes (fp16 or fp32, as stored, or transposed).
A constant no module claims (a folded constant, a module of another kind) gets plain (unweighted) k-means.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
from torch import nn

RESTARTS = 4  # k-means++ seeds besides the quantile start
ITERATIONS = 60
MAX_GRAM = 4096  # inputs of a Linear up to which E[x xᵀ] is kept (4096² float64: 128 MiB)
DAMP = 0.01  # GPTQ's damping: this share of the mean diagonal is added to E[x xᵀ]
BLOCK = 128  # GPTQ's lazy-update block of columns


class Statistics(NamedTuple):
    """What the calibration data says about one layer's input: ``E[x_j²]`` per input channel and, for a
    Linear of at most ``MAX_GRAM`` inputs, ``E[x xᵀ]`` (GPTQ's Hessian, for error feedback)."""

    moment: np.ndarray
    gram: np.ndarray | None


def input_statistics(model: nn.Module, batches: list[tuple[torch.Tensor, ...]]) -> dict[nn.Module, Statistics]:
    """The input statistics of every Linear, Conv1d/2d (groups 1) and Embedding of ``model`` over ``batches``.

    An Embedding is a Linear on one-hot inputs, so ``E[x_r²]`` of its row r is how often token r occurs;
    each row also gets an equal share of one calibration set's worth of weight (``total / rows``), so
    that rows the calibration text never reaches still count (half the total weight is the whole table's)."""
    sums: dict[nn.Module, torch.Tensor] = {}
    grams: dict[nn.Module, torch.Tensor] = {}
    counts: dict[nn.Module, int] = {}

    def hook(module: nn.Module, args: tuple, _output: Any) -> None:
        if isinstance(module, nn.Embedding):
            ids = args[0].detach().reshape(-1).to(torch.int64)
            sums[module] = sums.get(module, 0) + torch.bincount(ids, minlength=module.num_embeddings).to(torch.float64)
            counts[module] = counts.get(module, 0) + ids.numel()
            return
        x = args[0].detach().to(torch.float64)
        if isinstance(module, nn.Linear):
            flat = x.reshape(-1, x.shape[-1])
            if flat.shape[1] <= MAX_GRAM:
                grams[module] = grams.get(module, 0) + flat.T @ flat
        else:  # (N, C, *spatial) -> (N * spatial, C)
            flat = x.movedim(1, -1).reshape(-1, x.shape[1])
        sums[module] = sums.get(module, 0) + (flat * flat).sum(0)
        counts[module] = counts.get(module, 0) + flat.shape[0]

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Linear, nn.Embedding)) or (isinstance(m, (nn.Conv1d, nn.Conv2d)) and m.groups == 1)]
    from edgedistill.formats.shared_smoothing import run_hooked

    run_hooked(model, handles, batches)
    stats = {}
    for m in sums:
        moment = (sums[m] / counts[m]).numpy()
        if isinstance(m, nn.Embedding):  # rows first: the moment runs along axis 0, as a Linear's transposed
            stats[m] = Statistics(moment + moment.sum() / len(moment), None)
        else:
            stats[m] = Statistics(moment, (grams[m] / counts[m]).numpy() if m in grams else None)
    return stats


class Claim(NamedTuple):
    """A weight constant's statistics as stored: its elements' importance, the Gram matrix of its input
    and whether the constant holds the weight transposed (input channels first)."""

    importance: np.ndarray
    gram: np.ndarray | None
    transposed: bool


def _key(value: np.ndarray) -> tuple:
    value = np.ascontiguousarray(value)
    return value.shape, str(value.dtype), hashlib.sha1(value.tobytes()).hexdigest()


def claims_by_value(stats: dict[nn.Module, Statistics]) -> dict[tuple, Claim]:
    """Each module's statistics keyed by its weight's bytes as a converted program may store it: fp32 or
    fp16, as is or transposed (2-D)."""
    table: dict[tuple, Claim] = {}
    for module, stat in stats.items():
        weight = module.weight.detach().cpu().numpy()
        if isinstance(module, nn.Embedding):  # (rows, dim): the weight of a Linear on one-hot rows, transposed
            weight = weight.T
        shape = [1] * weight.ndim
        shape[1] = -1
        importance = np.broadcast_to(stat.moment.reshape(shape), weight.shape)
        forms = [(weight, Claim(np.ascontiguousarray(importance), stat.gram, False))]
        if weight.ndim == 2:
            forms.append((weight.T, Claim(np.ascontiguousarray(importance.T), stat.gram, True)))
        for value, claim in forms:
            for dtype in (np.float32, np.float16):
                table.setdefault(_key(value.astype(dtype)), claim)
    return table


def weighted_kmeans_1d(values: np.ndarray, weights: np.ndarray | None, k: int, seed: int = 0) -> np.ndarray:
    """A table of ``k`` centres (sorted) minimizing ``sum w (x - c(x))²``; uniform weights when None."""
    x = np.asarray(values, np.float64).reshape(-1)
    w = np.ones_like(x) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    if w.sum() <= 0:
        w = np.ones_like(x)
    w = w + 1e-9 * w.mean()  # a weight no data reaches still gets a (negligible) say
    ux, inverse = np.unique(x, return_inverse=True)
    uw = np.bincount(inverse.reshape(-1), w)
    if len(ux) <= k:
        return np.concatenate([ux, np.full(k - len(ux), ux[-1])])
    cw = np.concatenate([[0.0], np.cumsum(uw)])
    cwx = np.concatenate([[0.0], np.cumsum(uw * ux)])
    cwxx = np.concatenate([[0.0], np.cumsum(uw * ux * ux)])

    def lloyd(centres: np.ndarray) -> tuple[np.ndarray, float]:
        c = np.sort(centres)
        for _ in range(ITERATIONS):
            cuts = np.concatenate([[0], np.searchsorted(ux, (c[:-1] + c[1:]) / 2), [len(ux)]])
            mass = cw[cuts[1:]] - cw[cuts[:-1]]
            moment = cwx[cuts[1:]] - cwx[cuts[:-1]]
            new = np.where(mass > 0, moment / np.where(mass > 0, mass, 1), c)
            new.sort()
            if np.allclose(new, c, rtol=0, atol=1e-12 * (ux[-1] - ux[0] + 1e-30)):
                c = new
                break
            c = new
        cuts = np.concatenate([[0], np.searchsorted(ux, (c[:-1] + c[1:]) / 2), [len(ux)]])
        mass = cw[cuts[1:]] - cw[cuts[:-1]]
        moment = cwx[cuts[1:]] - cwx[cuts[:-1]]
        cost = (cwxx[cuts[1:]] - cwxx[cuts[:-1]]) - moment ** 2 / np.where(mass > 0, mass, 1)
        return c, float(cost.sum())

    starts = [np.interp((np.arange(k) + 0.5) / k * cw[-1], cw[1:], ux)]  # weighted quantiles
    rng = np.random.default_rng(seed)
    p = uw / uw.sum()
    for _ in range(RESTARTS):  # weighted k-means++
        chosen = [ux[rng.choice(len(ux), p=p)]]
        d = (ux - chosen[0]) ** 2 * uw
        for _ in range(k - 1):
            chosen.append(ux[rng.choice(len(ux), p=d / d.sum())] if d.sum() > 0 else ux[rng.integers(len(ux))])
            d = np.minimum(d, (ux - chosen[-1]) ** 2 * uw)
        starts.append(np.asarray(chosen))
    return min((lloyd(s) for s in starts), key=lambda r: r[1])[0]


def nearest(values: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Index of the nearest entry of the sorted ``lut`` for each value (flat uint8)."""
    x = np.asarray(values, np.float64).reshape(-1)
    table = np.asarray(lut, np.float64)
    right = np.clip(np.searchsorted(table, x), 1, len(table) - 1)
    left = right - 1
    pick = np.where(np.abs(x - table[left]) <= np.abs(table[right] - x), left, right)
    return pick.astype(np.uint8)


def error_feedback_indices(weight: np.ndarray, lut: np.ndarray, gram: np.ndarray) -> np.ndarray:
    """GPTQ with a fixed table: input channels are rounded one at a time to their nearest table entry and
    each rounding error is spread over the channels not yet rounded, in proportion to how the calibration
    inputs correlate (``E[x xᵀ]``), so the layer's output error, not the weights', is what stays small.
    ``weight`` is (out, in); returns flat uint8 indices."""
    w = np.array(weight, np.float64)
    table = np.asarray(lut, np.float64)
    h = np.array(gram, np.float64)
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0  # an input that is always zero: uncorrelated, its weights simply round to nearest
    h[np.diag_indices_from(h)] += DAMP * np.mean(np.diag(h))
    try:
        upper = np.linalg.cholesky(np.linalg.inv(h)).T  # rows: Hinv's Cholesky factor (GPTQ)
    except np.linalg.LinAlgError:
        return nearest(weight, lut)
    n_in = w.shape[1]
    indices = np.zeros(w.shape, np.uint8)
    for start in range(0, n_in, BLOCK):
        stop = min(start + BLOCK, n_in)
        block = w[:, start:stop].copy()
        errors = np.zeros_like(block)
        for i in range(stop - start):
            col = block[:, i]
            idx = nearest(col, table)
            indices[:, start + i] = idx
            err = (col - table[idx]) / upper[start + i, start + i]
            block[:, i:] -= np.outer(err, upper[start + i, start + i:stop])
            errors[:, i] = err
        w[:, stop:] -= errors @ upper[start:stop, stop:]
    return indices.reshape(-1)


def lut_function(nbits: int, claims: dict[tuple, Claim], used: dict[str, int]) -> Callable:
    """coremltools' ``lut_function``: (weight) -> (table of 2^nbits entries in the weight's dtype, flat uint8
    indices). ``used`` counts the tensors clustered with and without data ("weighted", "plain")."""

    def palettize(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        claim = claims.get(_key(value))
        used["weighted" if claim is not None else "plain"] += 1
        lut = np.sort(weighted_kmeans_1d(value, None if claim is None else claim.importance, 1 << nbits)
                      .astype(value.dtype))
        if claim is None or claim.gram is None:
            return lut, nearest(value, lut)
        if claim.transposed:  # (in, out) as stored: rounded as (out, in), indices returned as stored
            return lut, error_feedback_indices(value.T, lut, claim.gram).reshape(value.T.shape).T.reshape(-1)
        return lut, error_feedback_indices(value, lut, claim.gram)

    return palettize

