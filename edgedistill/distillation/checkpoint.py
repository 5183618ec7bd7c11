"""Training checkpoints for exact resume: everything that decides the rest of a run, and nothing else.

A checkpoint holds the student's weights (current and best-so-far), the optimizer and scheduler
state, every random-number state (torch, CUDA, numpy, python, and the generator that shuffles
the data), the data position (epoch, step within it, and that epoch's permutation), the epoch's
running totals and the history. It never holds the teacher: the teacher is named by a fingerprint
of its weights, so a resume with another teacher is refused instead of silently mixing runs.

Files are written atomically (temporary sibling, then rename), so a SIGKILL leaves the previous
checkpoint intact; they load with ``weights_only=True``, so a checkpoint can never run code.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgedistill.data import Dataset
from edgedistill.distillation.distributed import Dist
from edgedistill.errors import UserError
from edgedistill.fileio import atomic_path
from edgedistill.modelref import read_checkpoint

KIND = "edgedistill.training-state/1"


@dataclass
class Progress:
    """Where a run is: the data position, this epoch's running totals, and the best epoch so far."""

    epoch: int = 1  # the epoch being trained, 1-based
    step: int = 0  # optimizer steps done within it
    global_step: int = 0
    order: torch.Tensor | None = None  # this epoch's permutation of the training rows
    loss_sum: float = 0.0
    agree: float = 0.0
    seen: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    best_score: float = -math.inf
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    since_best: int = 0  # epochs without improvement, for early stopping
    finished: bool = False

    def end_epoch(self, row: dict[str, float], model: nn.Module, patience: int, epochs: int) -> bool:
        """Record an evaluated epoch, keep the weights if it is the best so far (validation accuracy, else
        agreement, else lowest loss), and move to the next epoch. True when early stopping ends the run."""
        self.history.append(row)
        score = row.get("val_acc", row.get("val_agree", -row["loss"]))
        if score > self.best_score:
            self.best_score, self.best_epoch, self.since_best = score, self.epoch, 0
            self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            self.since_best += 1
        stop_early = 0 < patience <= self.since_best
        self.finished = stop_early or self.epoch == epochs
        self.epoch, self.step = self.epoch + 1, 0
        self.loss_sum = self.agree = self.seen = 0.0
        return stop_early


def digest(*parts: Any) -> str:
    """sha256 over tensors, arrays and strings (weights, data), for telling runs apart."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            part = part.detach().cpu().contiguous().numpy() if part.dtype != torch.bfloat16 else part.float().numpy()
        h.update(np.ascontiguousarray(part).tobytes() if isinstance(part, np.ndarray) else str(part).encode())
    return h.hexdigest()[:16]


def module_digest(model: nn.Module) -> str:
    """Fingerprint of a model's weights (names, shapes and values)."""
    return digest(*(x for k, v in model.state_dict().items() for x in (k, v)))


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": [py_version, list(py_internal), py_gauss],
        "data": generator.get_state(),
    }


def _restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    generator.set_state(state["data"])


def save(path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, progress: Progress,
         generator: torch.Generator, fingerprint: dict[str, Any]) -> Path:
    """Write the training state atomically (a kill during the write leaves the previous file intact)."""
    payload = {
        "kind": KIND,
        "fingerprint": fingerprint,
        "student": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "progress": asdict(progress),
        "rng": _rng_state(generator),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def fingerprint(model: nn.Module, data: Dataset, teacher: nn.Module | None, settings: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint must share with this run to be resumed by it (student shape, teacher, data, settings)."""
    shapes = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    labels = data.y if data.y is not None else "no labels"
    kept = {f"distill.{k}": v for k, v in settings.items() if k not in ("checkpoint_every", "device")}
    return {"student architecture": digest(*shapes), "data": digest(*data.inputs.values(), labels),
            "teacher weights": module_digest(teacher) if teacher is not None else None, **kept}


def save_from_job(path: Path, dist: Dist, device: torch.device, progress: Progress, state: dict[str, Any]) -> None:
    """Every rank joins the sum of the epoch's running totals; rank 0 writes them with the rest of the state."""
    loss_sum, agree, seen = dist.sum([progress.loss_sum, progress.agree, progress.seen], device)
    if dist.is_writer:
        save(path, progress=replace(progress, loss_sum=loss_sum, agree=agree, seen=seen), **state)


def load_verified(path: Path, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """Read a checkpoint written by ``save`` and check it belongs to this run (same ``fingerprint``).

    A corrupt file, a file that is not a training checkpoint, or one from a different run (other
    student, teacher, data or settings) is a one-line UserError naming what differs.
    """
    data = read_checkpoint(path)
    if data.get("kind") != KIND:
        found = data.get("kind") or "a plain state dict"
        raise UserError(f"{path} is not an edgedistill training checkpoint (found {found}); "
                        f"--resume takes a file from <out>/checkpoints/")
    saved = data.get("fingerprint", {})
    for key, value in fingerprint.items():
        if saved.get(key) != value:
            raise UserError(f"checkpoint {path} belongs to a different run: {key} is {_short(saved.get(key))} "
                            f"there but {_short(value)} here")
    return data


def restore(data: dict[str, Any], *, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
            generator: torch.Generator, **_: Any) -> Progress:
    """Put a verified checkpoint's state into the run's objects; returns where the run stood."""
    try:
        model.load_state_dict(data["student"])
        optimizer.load_state_dict(data["optimizer"])
        scheduler.load_state_dict(data["scheduler"])
        known = {f.name for f in fields(Progress)}
        progress = Progress(**{k: v for k, v in data["progress"].items() if k in known})
        _restore_rng(data["rng"], generator)
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise UserError(f"checkpoint is incomplete or damaged: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160] if str(exc) else ''}") from None
    return progress


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
