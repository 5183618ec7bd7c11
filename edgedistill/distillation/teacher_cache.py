"""Offline distillation: the teacher's outputs computed once, stored on disk, reused across epochs and runs.

One cache entry per dataset (``<cache_dir>/<data.name>/``) holds ``meta.json`` and memory-mapped
float16 arrays: ``logits.npy`` (samples x classes), or above ``DENSE_MAX_CLASSES`` classes only the
top-k logits, ``values.npy`` (descending) and ``indices.npy`` (int32). The entry is keyed by a
fingerprint of the teacher's weights, the dataset's arrays and its preprocessing: if any of them
changed, or the files do not match their metadata, the entry is rebuilt (logged with the reason),
never silently used. Data with random augmentation cannot be cached: its inputs change every epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedistill.data import Dataset, take
from edgedistill.distillation.losses import TopK
from edgedistill.errors import UserError
from edgedistill.fileio import atomic_path
from edgedistill.inference import frozen, predict_logits

log = logging.getLogger("edgedistill")
FORMAT = "edgedistill.teacher-cache/1"
DENSE_MAX_CLASSES = 1000
META = "meta.json"


def _digest(chunks) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk if isinstance(chunk, bytes) else str(chunk).encode())
    return h.hexdigest()[:32]


def fingerprint(teacher: nn.Module, data: Dataset) -> dict[str, str]:
    """Hashes of the teacher's weights (and class), the dataset's arrays and its preprocessing."""
    def tensors():
        yield type(teacher).__qualname__
        for name, value in sorted(teacher.state_dict().items()):
            value = value.detach().cpu().contiguous()
            yield f"{name}{value.dtype}{tuple(value.shape)}"
            yield value.reshape(-1).view(torch.uint8).numpy().tobytes()

    def arrays():
        for name, value in data.inputs.items():
            yield f"{name}{value.dtype}{value.shape}"
            yield np.ascontiguousarray(value).tobytes()

    return {"teacher": _digest(tensors()), "data": _digest(arrays()),
            "preprocessing": _digest([json.dumps(data.preprocessing, sort_keys=True, default=str)])}


@dataclass
class TeacherOutputs:
    """Cached teacher outputs; ``outputs[idx]`` gives float32 logits, or ``TopK`` for many classes."""

    path: Path
    num_classes: int
    arrays: dict[str, np.ndarray]
    rebuilt: bool

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __getitem__(self, index: torch.Tensor | np.ndarray | slice) -> torch.Tensor | TopK:
        index = index.numpy() if isinstance(index, torch.Tensor) else index
        if "logits" in self.arrays:
            return torch.from_numpy(self.arrays["logits"][index].astype(np.float32))
        return TopK(torch.from_numpy(self.arrays["values"][index].astype(np.float32)),
                    torch.from_numpy(self.arrays["indices"][index].astype(np.int64)))

    def batch(self, index: torch.Tensor, inputs: list[torch.Tensor]) -> torch.Tensor | TopK:
        """The trainer's ``TeacherLogits`` seam: these rows, on the inputs' device."""
        rows = self[index.cpu()]
        device = inputs[0].device
        return TopK(*(t.to(device) for t in rows)) if isinstance(rows, TopK) else rows.to(device)


def refuse_augmented(data: Dataset) -> str | None:
    """Why ``data`` cannot be cached (random augmentation), or None."""
    augmentation = data.preprocessing.get("augmentation")
    if augmentation:
        return (f"dataset {data.name} applies random augmentation ({augmentation}): its inputs change every "
                f"epoch, so cached teacher logits would not match them; set distill.teacher_cache = 'off'")
    return None


def _open(entry: Path, key: dict[str, str], n: int) -> tuple[dict[str, np.ndarray], int] | str:
    """The entry's arrays when they match ``key`` and ``n`` samples, else why they cannot be used."""
    if not (entry / META).is_file():
        return "no cache yet"
    try:
        meta = json.loads((entry / META).read_text(encoding="utf-8"))
        changed = [part for part in ("teacher", "data", "preprocessing") if meta["fingerprint"].get(part) != key[part]]
        if meta.get("format") != FORMAT:
            return f"format {meta.get('format')} is not {FORMAT}"
        if changed:
            return f"the {' and '.join(changed)} changed"
        arrays = {name: np.load(entry / f"{name}.npy", mmap_mode="r") for name in meta["arrays"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"it is unreadable ({type(exc).__name__}: {str(exc)[:80]})"
    if any(a.shape[0] != n for a in arrays.values()) or any(str(a.dtype) != meta["arrays"][k] for k, a in arrays.items()):
        return "its arrays do not match its metadata"
    return arrays, int(meta["num_classes"])


def _build(entry: Path, teacher: nn.Module, data: Dataset, key: dict[str, str], top_k: int, batch_size: int) -> None:
    n = len(data)
    with frozen(teacher):
        first = predict_logits(teacher, take(data.inputs, slice(0, 1)))
    num_classes = int(first.shape[1])
    dense = num_classes <= DENSE_MAX_CLASSES
    k = min(top_k, num_classes)
    shapes = {"logits": ((n, num_classes), np.float16)} if dense else \
        {"values": ((n, k), np.float16), "indices": ((n, k), np.int32)}
    with atomic_path(entry, is_dir=True) as tmp:
        arrays = {name: np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)
                  for name, (shape, dtype) in shapes.items()}
        with frozen(teacher):
            for start in range(0, n, batch_size):
                logits = predict_logits(teacher, take(data.inputs, slice(start, start + batch_size)), batch_size)
                rows = slice(start, start + len(logits))
                if dense:
                    arrays["logits"][rows] = logits.numpy()
                else:
                    values, indices = torch.topk(logits, k, dim=1)
                    arrays["values"][rows], arrays["indices"][rows] = values.numpy(), indices.numpy()
        for name, array in arrays.items():
            if array.dtype == np.float16 and not np.isfinite(array).all():
                raise UserError(f"teacher logits on {data.name} exceed the float16 range of the cache; "
                                f"set distill.teacher_cache = 'off'")
            array.flush()
        meta = {"format": FORMAT, "fingerprint": key, "num_classes": num_classes, "samples": n, "top_k": None if dense else k,
                "arrays": {name: str(np.dtype(dtype)) for name, (_, dtype) in shapes.items()}, "dataset": data.name}
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        del arrays


def cached_teacher_outputs(teacher: nn.Module, data: Dataset, cache_dir: str | Path, *, top_k: int = 100,
                           batch_size: int = 1024) -> TeacherOutputs:
    """The teacher's outputs on ``data`` from ``cache_dir``, (re)built first when missing or stale."""
    refusal = refuse_augmented(data)
    if refusal:
        raise UserError(refusal)
    if len(data) == 0:
        raise UserError(f"dataset {data.name} is empty: nothing to cache")
    entry = Path(cache_dir) / data.name
    key = fingerprint(teacher, data)
    opened = _open(entry, key, len(data))
    rebuilt = isinstance(opened, str)
    if rebuilt:
        log.info("teacher cache %s: building (%s)", entry, opened)
        _build(entry, teacher, data, key, top_k, batch_size)
        opened = _open(entry, key, len(data))
        if isinstance(opened, str):  # written a moment ago: a failure here is a bug or a full disk
            raise UserError(f"teacher cache {entry} could not be read back: {opened}")
    else:
        log.debug("teacher cache %s: reused", entry)
    arrays, num_classes = opened
    return TeacherOutputs(entry, num_classes, arrays, rebuilt)


# the name benchmarks/distill_throughput.py looks for
cached_logits = cached_teacher_outputs
