"""Any ``package.module:function`` returning a map-style PyTorch dataset (or an edgedistill ``Dataset``).

Items may be ``(x, y)``, ``x`` alone (no labels), or a dict of named inputs with an optional
``label`` / ``y`` entry. The dataset is read once into memory. Reading sample 0 twice tells
whether it applies random augmentation; that is recorded in ``preprocessing["augmentation"]``
(the teacher cache then refuses it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgedistill.dataset import Dataset
from edgedistill.errors import UserError

LABEL_KEYS = ("label", "labels", "y")


def _as_array(value: Any, what: str) -> np.ndarray:
    array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        return array.astype(np.int64)
    raise UserError(f"{what} must be numeric, got {array.dtype}")


def _split_item(item: Any, spec: str) -> tuple[dict[str, np.ndarray], int | None]:
    label = None
    if isinstance(item, dict):
        inputs = {k: v for k, v in item.items() if k not in LABEL_KEYS}
        label = next((item[k] for k in LABEL_KEYS if k in item), None)
    elif isinstance(item, (tuple, list)):
        if len(item) not in (1, 2):
            raise UserError(f"dataset {spec}: items must be (x, y), x, or a dict; got a tuple of {len(item)}")
        x = item[0]
        inputs = dict(x) if isinstance(x, dict) else {"x": x}
        label = item[1] if len(item) == 2 else None
    else:
        inputs = {"x": item}
    arrays = {k: _as_array(v, f"dataset {spec}: input {k!r}") for k, v in inputs.items()}
    return arrays, None if label is None else int(label)


def load_python_dataset(spec: str) -> Dataset:
    """Call the factory ``spec`` and read its dataset into memory."""
    from edgedistill.factories import import_factory

    made = import_factory(spec)()
    if isinstance(made, Dataset):
        return made
    if not (hasattr(made, "__len__") and hasattr(made, "__getitem__")):
        raise UserError(f"dataset factory {spec!r} returned {type(made).__name__}, not a map-style dataset "
                        f"(__len__ and __getitem__)")
    n = len(made)
    if n == 0:
        raise UserError(f"dataset {spec} is empty")
    rows = [_split_item(made[i], spec) for i in range(n)]
    names = list(rows[0][0])
    if any(list(r[0]) != names for r in rows):
        raise UserError(f"dataset {spec}: items do not all have the same inputs ({', '.join(names)})")
    has_label = [r[1] is not None for r in rows]
    if any(has_label) and not all(has_label):
        raise UserError(f"dataset {spec}: item {has_label.index(False)} has no label but others do")
    try:
        inputs = {k: np.stack([r[0][k] for r in rows]) for k in names}
    except ValueError as exc:
        raise UserError(f"dataset {spec}: items have different shapes: {exc}") from None
    y = np.array([r[1] for r in rows], dtype=np.int64) if all(has_label) else None
    if y is not None and y.min() < 0:
        raise UserError(f"dataset {spec}: labels must be >= 0, found {int(y.min())}")
    again, _ = _split_item(made[0], spec)
    preprocessing = dict(getattr(made, "preprocessing", None) or {})
    preprocessing["source"] = spec
    if any(not np.array_equal(again[k], rows[0][0][k]) for k in names):
        preprocessing["augmentation"] = "random: two reads of sample 0 differ"
    classes = getattr(made, "classes", None)
    labels = [str(c) for c in classes] if isinstance(classes, (list, tuple)) else None
    return Dataset(inputs=inputs, y=y, labels=labels, preprocessing=preprocessing, name=spec.rpartition(":")[2])
