"""Quantization ops of MIL: compressed weights decoded from their stored form, and the activation
quantize/dequantize pair of the int8 scheme.

- ``constexpr_affine_dequantize`` (iOS16, int8-weight): ``(q - zero_point) * scale`` along ``axis``;
- ``constexpr_lut_to_dense`` (iOS16, palettization): n-bit indices packed LSB first into bytes, looked
  up in a ``2**n`` table; its iOS18 successor takes unpacked indices and a per-block table;
- ``constexpr_blockwise_shift_scale`` (iOS18): ``(data - offset) * scale`` with blocks broadcast;
- ``quantize``/``dequantize`` (iOS17): ``clip(round(x / scale) + zero_point)`` and back.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

Args = dict[str, Any]


def _along(v: Any, rank: int, axis: int) -> np.ndarray:
    """A scalar or per-channel vector shaped to broadcast along ``axis`` of a rank-``rank`` tensor."""
    v = np.asarray(v, dtype=np.float32)
    if v.ndim == 0 or v.size == 1:
        return v.reshape(())
    shape = [1] * rank
    shape[axis] = v.size
    return v.reshape(shape)


def _affine_dequantize(a: Args) -> np.ndarray:
    q = a["quantized_data"]
    axis = int(a.get("axis", 0)) % max(q.ndim, 1)
    return (q.astype(np.float32) - _along(a["zero_point"], q.ndim, axis)) * _along(a["scale"], q.ndim, axis)


def unpack_bits(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """``count`` unsigned ``nbits``-bit numbers packed least significant bit first into ``packed`` bytes."""
    bits = np.unpackbits(packed.astype(np.uint8).reshape(-1), bitorder="little")[: count * nbits]
    return (bits.reshape(count, nbits).astype(np.uint32) << np.arange(nbits, dtype=np.uint32)).sum(1)


def _lut_to_dense(a: Args) -> np.ndarray:
    lut = np.asarray(a["lut"])
    if "shape" in a:  # iOS16: one flat table, indices packed into uint8
        shape = [int(s) for s in np.atleast_1d(a["shape"])]
        nbits = int(np.log2(lut.size))
        return lut[unpack_bits(a["indices"], nbits, int(np.prod(shape)))].reshape(shape)
    # iOS18: indices[shape], lut[blocks..., 2**n, vector_size]; each block of the tensor has its table
    indices = np.asarray(a["indices"]).astype(np.int64)
    if lut.shape[-1] != 1:
        raise NotImplementedError("vector palettization (vector_size > 1)")
    table = lut[..., 0]
    blocks = table.shape[:-1]
    out = np.empty(indices.shape, dtype=lut.dtype)
    step = [d // b for d, b in zip(indices.shape, blocks)]
    for block in np.ndindex(*blocks):
        where = tuple(slice(b * s, (b + 1) * s) for b, s in zip(block, step))
        out[where] = table[block][indices[where]]
    return out


def _blockwise(v: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Repeat a per-block parameter of ``v.shape`` over a tensor of ``shape``."""
    for axis, (d, b) in enumerate(zip(shape, v.shape)):
        v = np.repeat(v, d // b, axis=axis)
    return v


def _blockwise_shift_scale(a: Args) -> np.ndarray:
    data = a["data"].astype(np.float32)
    if a.get("offset") is not None:
        data = data - _blockwise(np.asarray(a["offset"], dtype=np.float32), data.shape)
    return data * _blockwise(np.asarray(a["scale"], dtype=np.float32), data.shape)


def _quantize(a: Args) -> np.ndarray:
    x = a["input"]
    axis = int(a["axis"]) % x.ndim if a.get("axis") is not None else 0
    zero = _along(a["zero_point"], x.ndim, axis) if a.get("zero_point") is not None else 0.0
    dtype = np.dtype({"int8": np.int8, "uint8": np.uint8}[str(a["output_dtype"])])
    info = np.iinfo(dtype)
    return np.clip(np.round(x / _along(a["scale"], x.ndim, axis)) + zero, info.min, info.max).astype(dtype)


def _dequantize(a: Args) -> np.ndarray:
    x = a["input"]
    axis = int(a["axis"]) % x.ndim if a.get("axis") is not None else 0
    zero = _along(a["zero_point"], x.ndim, axis) if a.get("zero_point") is not None else 0.0
    return (x.astype(np.float32) - zero) * _along(a["scale"], x.ndim, axis)


OPS: dict[str, Callable[[Args], Any]] = {
    "constexpr_affine_dequantize": _affine_dequantize, "constexpr_lut_to_dense": _lut_to_dense,
    "constexpr_blockwise_shift_scale": _blockwise_shift_scale, "constexpr_cast": lambda a: a["source_val"],
    "quantize": _quantize, "dequantize": _dequantize,
}
