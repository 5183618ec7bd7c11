"""Layer ops of MIL: linear, matmul, convolution, pooling and normalization (via PyTorch's kernels,
which compute in float32 like the numpy ops)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

Args = dict[str, Any]


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _linear(a: Args) -> np.ndarray:
    bias = a.get("bias")
    return F.linear(_t(a["x"]), _t(a["weight"]), None if bias is None else _t(bias)).numpy()


def _matmul(a: Args) -> np.ndarray:
    x, y = _t(a["x"]), _t(a["y"])
    if bool(a.get("transpose_x", False)):
        x = x.transpose(-1, -2)
    if bool(a.get("transpose_y", False)):
        y = y.transpose(-1, -2)
    return torch.matmul(x, y).numpy()


def _spatial_padding(a: Args, x: torch.Tensor, kernel: list[int], strides: list[int],
                     dilations: list[int]) -> list[int]:
    """Per spatial axis (begin, end) padding for MIL's pad_type: valid, custom, same, same_lower."""
    pad_type = str(a.get("pad_type", "valid"))
    n = len(kernel)
    if pad_type == "valid":
        return [0] * (2 * n)
    if pad_type == "custom":
        return [int(p) for p in np.atleast_1d(a["pad"])]
    pads = []
    for size, k, s, d in zip(x.shape[2:], kernel, strides, dilations):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        pads += [large, small] if pad_type == "same_lower" else [small, large]
    return pads


def _pad_input(x: torch.Tensor, pads: list[int], value: float = 0.0) -> torch.Tensor:
    # F.pad takes the last axis first
    order = [p for i in reversed(range(len(pads) // 2)) for p in (pads[2 * i], pads[2 * i + 1])]
    return F.pad(x, order, value=value) if any(order) else x


def _conv(a: Args) -> np.ndarray:
    x, w = _t(a["x"]), _t(a["weight"])
    n = w.ndim - 2
    strides = [int(s) for s in np.atleast_1d(a.get("strides", [1] * n))]
    dilations = [int(d) for d in np.atleast_1d(a.get("dilations", [1] * n))]
    x = _pad_input(x, _spatial_padding(a, x, list(w.shape[2:]), strides, dilations))
    bias = a.get("bias")
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[n]
    return conv(x, w, None if bias is None else _t(bias), strides, 0, dilations, int(a.get("groups", 1))).numpy()


def _pool(kind: str) -> Callable[[Args], np.ndarray]:
    def run(a: Args) -> np.ndarray:
        x = _t(a["x"])
        kernel = [int(k) for k in np.atleast_1d(a["kernel_sizes"])]
        strides = [int(s) for s in np.atleast_1d(a.get("strides", kernel))]
        pads = _spatial_padding(a, x, kernel, strides, [1] * len(kernel))
        ceil = bool(a.get("ceil_mode", False))
        pool = {("max", 1): F.max_pool1d, ("max", 2): F.max_pool2d, ("max", 3): F.max_pool3d,
                ("avg", 1): F.avg_pool1d, ("avg", 2): F.avg_pool2d, ("avg", 3): F.avg_pool3d}[kind, len(kernel)]
        if kind == "max":
            return pool(_pad_input(x, pads, float("-inf")), kernel, strides, 0, ceil_mode=ceil).numpy()
        total = pool(_pad_input(x, pads), kernel, strides, 0, ceil_mode=ceil, count_include_pad=True)
        if not bool(a.get("exclude_padding_from_average", False)) or not any(pads):
            return total.numpy()
        ones = pool(_pad_input(torch.ones_like(x[:1, :1]), pads), kernel, strides, 0, ceil_mode=ceil,
                    count_include_pad=True)
        return (total / ones).numpy()
    return run


def _layer_norm(a: Args) -> np.ndarray:
    x = a["x"].astype(np.float32)
    axes = tuple(int(i) for i in np.atleast_1d(a["axes"])) if a.get("axes") is not None else tuple(range(x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(var + float(a.get("epsilon", 1e-5)))
    if a.get("gamma") is not None:
        out = out * a["gamma"]
    return out + a["beta"] if a.get("beta") is not None else out


def _channel(v: np.ndarray, rank: int) -> np.ndarray:
    return np.asarray(v).reshape([1, -1] + [1] * (rank - 2))


def _batch_norm(a: Args) -> np.ndarray:
    x = a["x"]
    out = (x - _channel(a["mean"], x.ndim)) / np.sqrt(_channel(a["variance"], x.ndim) + float(a.get("epsilon", 1e-5)))
    if a.get("gamma") is not None:
        out = out * _channel(a["gamma"], x.ndim)
    return out + _channel(a["beta"], x.ndim) if a.get("beta") is not None else out


def _instance_norm(a: Args) -> np.ndarray:
    return _layer_norm({**a, "axes": list(range(2, a["x"].ndim)), "gamma": None, "beta": None}) * \
        _channel(a.get("gamma", 1.0), a["x"].ndim) + _channel(a.get("beta", 0.0), a["x"].ndim)


OPS: dict[str, Callable[[Args], Any]] = {
    "linear": _linear, "matmul": _matmul, "conv": _conv,
    "max_pool": _pool("max"), "avg_pool": _pool("avg"),
    "layer_norm": _layer_norm, "batch_norm": _batch_norm, "instance_norm": _instance_norm,
}
