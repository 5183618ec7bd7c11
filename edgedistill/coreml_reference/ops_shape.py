"""Data-movement ops of MIL: shapes, reshapes, slicing, gathering, concatenation, casts."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

Args = dict[str, Any]
_DTYPES = {"fp16": np.float16, "fp32": np.float32, "fp64": np.float64, "int8": np.int8, "uint8": np.uint8,
           "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "int64": np.int64, "bool": np.bool_}


def _reshape(a: Args) -> np.ndarray:
    x, shape = a["x"], [int(s) for s in np.atleast_1d(a["shape"])]
    shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]  # iOS17: 0 copies the input's dim
    return x.reshape(shape)


def _slice_by_index(a: Args) -> np.ndarray:
    x = a["x"]
    n = x.ndim
    begin, end = np.atleast_1d(a["begin"]), np.atleast_1d(a["end"])
    stride = np.atleast_1d(a.get("stride") if a.get("stride") is not None else np.ones(n, int))
    begin_mask = np.atleast_1d(a.get("begin_mask") if a.get("begin_mask") is not None else np.zeros(n, bool))
    end_mask = np.atleast_1d(a.get("end_mask") if a.get("end_mask") is not None else np.zeros(n, bool))
    squeeze = np.atleast_1d(a.get("squeeze_mask") if a.get("squeeze_mask") is not None else np.zeros(n, bool))
    index = []
    for i in range(n):
        if squeeze[i]:
            index.append(int(begin[i]))
            continue
        index.append(slice(None if begin_mask[i] else int(begin[i]), None if end_mask[i] else int(end[i]), int(stride[i])))
    return x[tuple(index)]


def _slice_by_size(a: Args) -> np.ndarray:
    x = a["x"]
    index = tuple(slice(int(b), None if int(s) == -1 else int(b) + int(s))
                  for b, s in zip(np.atleast_1d(a["begin"]), np.atleast_1d(a["size"])))
    return x[index]


def _gather(a: Args) -> np.ndarray:
    x, indices, axis = a["x"], a["indices"].astype(np.int64), int(a.get("axis", 0))
    batch_dims = int(a.get("batch_dims", 0) or 0)
    if batch_dims == 0:
        return np.take(x, indices, axis=axis)
    # gather independently in each of the leading batch_dims slices
    return np.stack([_gather({"x": xi, "indices": ii, "axis": axis - 1, "batch_dims": batch_dims - 1})
                     for xi, ii in zip(x, indices)])


def _gather_nd(a: Args) -> np.ndarray:
    x, indices = a["x"], a["indices"].astype(np.int64)
    batch_dims = int(a.get("batch_dims", 0) or 0)
    if batch_dims:
        return np.stack([_gather_nd({"x": xi, "indices": ii, "batch_dims": batch_dims - 1}) for xi, ii in zip(x, indices)])
    return x[tuple(np.moveaxis(indices, -1, 0))]


def _split(a: Args) -> tuple[np.ndarray, ...]:
    x, axis = a["x"], int(a["axis"])
    sizes = a.get("split_sizes")
    if sizes is None:
        return tuple(np.split(x, int(a["num_splits"]), axis=axis))
    return tuple(np.split(x, np.cumsum(np.atleast_1d(sizes))[:-1], axis=axis))


def _concat(a: Args) -> np.ndarray:
    values, axis = [np.atleast_1d(v) for v in a["values"]], int(a["axis"])
    if bool(a.get("interleave", False)):
        stacked = np.stack(values, axis=axis + 1 if axis >= 0 else axis)
        shape = list(values[0].shape)
        shape[axis] *= len(values)
        return stacked.reshape(shape)
    return np.concatenate(values, axis=axis)


def _pad(a: Args) -> np.ndarray:
    x, pad = a["x"], np.atleast_1d(a["pad"]).astype(int).reshape(-1, 2)
    widths = [(0, 0)] * (x.ndim - len(pad)) + [tuple(p) for p in pad]
    mode = str(a.get("mode", "constant"))
    if mode == "constant":
        return np.pad(x, widths, constant_values=float(a.get("constant_val", 0.0)))
    return np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge"}[mode])


def _cast(a: Args) -> np.ndarray:
    x, dtype = a["x"], _DTYPES[str(a["dtype"])]
    return np.trunc(x).astype(dtype) if np.issubdtype(dtype, np.integer) and x.dtype.kind == "f" else x.astype(dtype)


OPS: dict[str, Callable[[Args], Any]] = {
    "reshape": _reshape,
    "transpose": lambda a: np.transpose(a["x"], [int(p) for p in a["perm"]]),
    "expand_dims": lambda a: np.expand_dims(a["x"], tuple(int(i) for i in np.atleast_1d(a["axes"]))),
    "squeeze": lambda a: np.squeeze(a["x"], None if a.get("axes") is None else tuple(int(i) for i in np.atleast_1d(a["axes"]))),
    "shape": lambda a: np.array(a["x"].shape, dtype=np.int32),
    "slice_by_index": _slice_by_index, "slice_by_size": _slice_by_size,
    "gather": _gather, "gather_nd": _gather_nd,
    "gather_along_axis": lambda a: np.take_along_axis(a["x"], a["indices"].astype(np.int64), axis=int(a.get("axis", 0))),
    "concat": _concat, "split": _split,
    "stack": lambda a: np.stack(a["values"], axis=int(a["axis"])),
    "tile": lambda a: np.tile(a["x"], [int(r) for r in np.atleast_1d(a["reps"])]),
    "fill": lambda a: np.full([int(s) for s in np.atleast_1d(a["shape"])], a.get("value", 0.0)),
    "fill_like": lambda a: np.full(a["ref_tensor"].shape, a.get("value", 0.0)),
    "range_1d": lambda a: np.arange(a["start"], a["end"], a["step"]),
    "identity": lambda a: a["x"],
    "flatten2d": lambda a: a["x"].reshape(int(np.prod(a["x"].shape[: int(a.get("axis", 1))])), -1),
    "pad": _pad, "cast": _cast,
    "reverse": lambda a: np.flip(a["x"], None if a.get("axes") is None else tuple(int(i) for i in np.atleast_1d(a["axes"]))),
}
