"""Elementwise, activation and reduction ops of MIL (iOS15–iOS18 opsets), in numpy.

Every function takes the op's resolved inputs (float tensors already widened to float32; the evaluator
rounds each output to the dtype the program declares) and returns the output array.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

Args = dict[str, Any]


def _binary(fn: Callable[[Any, Any], Any]) -> Callable[[Args], np.ndarray]:
    return lambda a: fn(a["x"], a["y"])


def _unary(fn: Callable[[Any], Any]) -> Callable[[Args], np.ndarray]:
    return lambda a: fn(a["x"])


def _erf(x: np.ndarray) -> np.ndarray:
    return torch.special.erf(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def _gelu(a: Args) -> np.ndarray:
    x, mode = a["x"], str(a.get("mode", "EXACT"))
    if mode == "EXACT":
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    return x / (1.0 + np.exp(-1.702 * x))  # SIGMOID_APPROXIMATION


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _axes(a: Args) -> tuple[int, ...] | None:
    axes = a.get("axes")
    return None if axes is None else tuple(int(i) for i in np.atleast_1d(axes))


def _reduce(fn: Callable[..., np.ndarray]) -> Callable[[Args], np.ndarray]:
    return lambda a: fn(a["x"], axis=_axes(a), keepdims=bool(a.get("keep_dims", False)))


def _softmax(a: Args) -> np.ndarray:
    x, axis = a["x"], int(a.get("axis", -1))
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _arg(fn: Callable[..., np.ndarray]) -> Callable[[Args], np.ndarray]:
    def run(a: Args) -> np.ndarray:
        axis = int(a.get("axis", -1))
        out = fn(a["x"], axis=axis)
        return np.expand_dims(out, axis) if bool(a.get("keep_dims", False)) else out
    return run


def _div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.true_divide(x, y)


def _floor_div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.floor_divide(x, y)


OPS: dict[str, Callable[[Args], Any]] = {
    "add": _binary(np.add), "sub": _binary(np.subtract), "mul": _binary(np.multiply), "real_div": _binary(_div),
    "floor_div": _binary(_floor_div), "mod": _binary(np.mod), "pow": _binary(np.power),
    "maximum": _binary(np.maximum), "minimum": _binary(np.minimum),
    "equal": _binary(np.equal), "not_equal": _binary(np.not_equal), "greater": _binary(np.greater),
    "greater_equal": _binary(np.greater_equal), "less": _binary(np.less), "less_equal": _binary(np.less_equal),
    "logical_and": _binary(np.logical_and), "logical_or": _binary(np.logical_or), "logical_xor": _binary(np.logical_xor),
    "logical_not": _unary(np.logical_not),
    "abs": _unary(np.abs), "sign": _unary(np.sign), "ceil": _unary(np.ceil), "floor": _unary(np.floor),
    "round": _unary(np.round), "exp": _unary(np.exp), "exp2": _unary(np.exp2), "log": _unary(np.log),
    "sqrt": _unary(np.sqrt), "rsqrt": lambda a: 1.0 / np.sqrt(a["x"] + float(a.get("epsilon", 1e-12))),
    "inverse": lambda a: 1.0 / (a["x"] + float(a.get("epsilon", 1e-4))), "square": _unary(np.square),
    "sin": _unary(np.sin), "cos": _unary(np.cos), "tanh": _unary(np.tanh), "erf": _unary(_erf),
    "relu": _unary(lambda x: np.maximum(x, 0)), "relu6": _unary(lambda x: np.clip(x, 0, 6)),
    "sigmoid": _unary(_sigmoid), "silu": _unary(lambda x: x * _sigmoid(x)),
    "softplus": _unary(lambda x: np.logaddexp(0, x)), "gelu": _gelu,
    "leaky_relu": lambda a: np.where(a["x"] >= 0, a["x"], a["x"] * float(a["alpha"])),
    "elu": lambda a: np.where(a["x"] > 0, a["x"], float(a.get("alpha", 1.0)) * np.expm1(a["x"])),
    "sigmoid_hard": lambda a: np.clip(float(a.get("alpha", 0.2)) * a["x"] + float(a.get("beta", 0.5)), 0, 1),
    "clip": lambda a: np.clip(a["x"], a["alpha"], a["beta"]),
    "select": lambda a: np.where(a["cond"], a["a"], a["b"]),
    "softmax": _softmax,
    "reduce_sum": _reduce(np.sum), "reduce_mean": _reduce(np.mean), "reduce_max": _reduce(np.max),
    "reduce_min": _reduce(np.min), "reduce_prod": _reduce(np.prod),
    "reduce_l2_norm": _reduce(lambda x, **k: np.sqrt(np.sum(x * x, **k))),
    "reduce_log_sum_exp": _reduce(lambda x, **k: np.log(np.sum(np.exp(x), **k))),
    "reduce_argmax": _arg(np.argmax), "reduce_argmin": _arg(np.argmin),
}
