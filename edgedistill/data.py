"""Datasets the pipeline reads: the built-in ``digits``, ``.npz`` files, and (``edgedistill.sources``)
image folders, JSON Lines text and Python dataset factories.

A dataset holds one or more named model inputs, in the order of the model's positional
arguments. An ``.npz`` gives a single input as ``x``, or several as ``x.<name>`` (for example
``x.input_ids`` and ``x.attention_mask``), plus optional integer labels ``y`` and ``labels``.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Dataset, Inputs and take are re-exported: data stays their public home; they live in dataset so that
# the sources, which build Datasets, do not import this loader (which imports them)
from edgedistill.dataset import Dataset, Inputs, num_samples, take  # noqa: F401
from edgedistill.errors import UserError


@dataclass
class Splits:
    train: Dataset
    val: Dataset
    test: Dataset


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    return Dataset(
        inputs={"x": x},
        y=bunch.target.astype(np.int64),
        labels=[str(i) for i in range(10)],
        preprocessing={"layout": "8x8 grayscale, row-major, flattened to 64", "scale": 1 / 16, "offset": 0.0},
        name="digits",
    )


def _load_npz(path: Path) -> Dataset:
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise UserError(f"data file {path} is not a readable .npz: {exc}") from None
    names = {k[2:]: k for k in arrays if k.startswith("x.")} or ({"x": "x"} if "x" in arrays else {})
    if not names:
        raise UserError(f"data file {path} has no array 'x' (found: {', '.join(sorted(arrays)) or 'nothing'})")
    inputs = {}
    for name, key in names.items():
        x = arrays[key]
        if x.ndim < 2 or x.shape[0] == 0:
            raise UserError(f"data file {path}: '{key}' must have a sample axis and at least one sample, got shape {x.shape}")
        if np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
        elif np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
            x = x.astype(np.int64)
        else:
            raise UserError(f"data file {path}: '{key}' must be numeric, got dtype {x.dtype}")
        inputs[name] = x
    n = num_samples(inputs)
    y = arrays.get("y")
    if y is not None:
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
            raise UserError(f"data file {path}: 'y' must be integer labels of shape ({n},), got {y.dtype} {y.shape}")
        if y.min() < 0:
            raise UserError(f"data file {path}: labels must be >= 0, found {int(y.min())}")
        y = y.astype(np.int64)
    labels = [str(s) for s in arrays["labels"].tolist()] if "labels" in arrays else None
    return Dataset(inputs=inputs, y=y, labels=labels, preprocessing={}, name=path.stem)


SOURCES = "'digits', an .npz, a folder of class sub-folders of images, a .jsonl text file, or package.module:function"


def load_dataset(source: str | Path, *, tokenizer: str | Path | None = None, max_length: int = 128,
                 text_field: str = "text", label_field: str = "label", image_size: list[int] | None = None,
                 image_mean: list[float] | None = None, image_std: list[float] | None = None) -> Dataset:
    """Load a dataset from any source in ``SOURCES``; empty data and unknown sources are one-line UserErrors.

    ``tokenizer`` .. ``label_field`` apply to ``.jsonl`` text, ``image_*`` to image folders.
    """
    text, path = str(source), Path(source)
    if text == "digits":
        data = _load_digits()
    elif path.suffix == ".npz":
        data = _load_npz(path)
    elif path.suffix in (".jsonl", ".ndjson"):
        from edgedistill.sources.jsonl_text import load_jsonl_text

        data = load_jsonl_text(path, tokenizer=tokenizer, max_length=max_length, text_field=text_field,
                               label_field=label_field)
    elif path.is_dir():
        from edgedistill.sources.image_folder import load_image_folder

        data = load_image_folder(path, size=image_size, mean=image_mean, std=image_std)
    elif re.fullmatch(r"[\w.]+:[\w.]+", text):
        from edgedistill.sources.python_dataset import load_python_dataset

        data = load_python_dataset(text)
    elif not path.exists() and path.suffix:
        raise UserError(f"data not found: {path}")
    else:
        raise UserError(f"unknown data source {text!r}: use {SOURCES}")
    if len(data) == 0:
        raise UserError(f"dataset {data.name} is empty")
    return data


def split(data: Dataset, test_fraction: float, val_fraction: float, seed: int = 0) -> Splits:
    """Deterministic train/val/test split, stratified by label when labels exist."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(data.y == c) for c in np.unique(data.y)] if data.y is not None else [np.arange(len(data))]
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for idx in groups:
        idx = rng.permutation(idx)
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round(len(idx) * val_fraction))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    chosen = {k: np.sort(np.concatenate(v)) for k, v in parts.items()}
    if len(chosen["train"]) == 0 or len(chosen["test"]) == 0:
        raise UserError(f"dataset {data.name} with {len(data)} samples is too small to split")
    return Splits(*(data.subset(chosen[k], f"{data.name}-{k}") for k in ("train", "val", "test")))
