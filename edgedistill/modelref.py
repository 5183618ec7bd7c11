"""Resolve model references: a factory ``package.module:function``, an edgedistill checkpoint, or a
local Hugging Face directory (``hf:PATH`` or a folder with config.json; see ``edgedistill.huggingface``).

Checkpoints are plain dicts of tensors and strings, always loaded with ``weights_only=True``:
a checkpoint can never run code. An edgedistill checkpoint records the factory that builds the
architecture, so the file alone is a complete reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgedistill.config import ModelRef
from edgedistill.errors import UserError
from edgedistill.factories import import_factory
from edgedistill.fileio import atomic_path

CHECKPOINT_KIND = "edgedistill.checkpoint/1"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; corrupt or foreign files are UserErrors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file; all mean the same to a user
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"checkpoint {path} is corrupt or not a weights-only PyTorch checkpoint: {reason[:200]}") from None
    if not isinstance(data, dict):
        raise UserError(f"checkpoint {path} holds a {type(data).__name__}, expected a state dict")
    return data


def _state_dict(data: dict[str, Any]) -> dict[str, torch.Tensor]:
    return data["state_dict"] if data.get("kind") == CHECKPOINT_KIND else data


def _build(factory: str, kwargs: dict[str, Any]) -> nn.Module:
    from edgedistill.huggingface import hf_directory, load_hf_model

    directory = hf_directory(factory)
    model = load_hf_model(directory, **kwargs) if directory is not None else import_factory(factory)(**kwargs)
    if not isinstance(model, nn.Module):
        raise UserError(f"factory {factory!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _load_weights(model: nn.Module, state: dict[str, Any], source: Path) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise UserError(f"checkpoint {source} does not fit the model: {' '.join(first[:2])[:300]}") from None


def names_checkpoint(ref: ModelRef) -> bool:
    """True when ``ref.model`` is a checkpoint path rather than a ``package.module:function`` factory
    or a Hugging Face directory."""
    from edgedistill.huggingface import hf_directory

    return (":" not in ref.model and hf_directory(ref.model) is None) or Path(ref.model).is_file()


def has_weights(ref: ModelRef) -> bool:
    """True when the reference carries trained weights (a checkpoint, a factory plus a state dict, or a
    Hugging Face directory)."""
    from edgedistill.huggingface import hf_directory

    return names_checkpoint(ref) or bool(ref.checkpoint) or hf_directory(ref.model) is not None


def teacher_training_epochs(ref: Any) -> int:
    """Epochs to train the teacher before distilling: ``train_epochs`` when given; unset, 0 (use as is) except
    for a factory that says it needs training (``factory.needs_training = True``, the demo's), which trains
    ``DEMO_TEACHER_EPOCHS``. A pretrained teacher is never fine-tuned unless asked."""
    from edgedistill.config import DEMO_TEACHER_EPOCHS

    if ref.train_epochs is not None:
        return int(ref.train_epochs)
    if has_weights(ref) or ":" not in ref.model:
        return 0
    return DEMO_TEACHER_EPOCHS if getattr(import_factory(ref.model), "needs_training", False) else 0


def load_model(ref: ModelRef | str) -> nn.Module:
    """Build the model a reference names, with its weights, in eval mode."""
    if isinstance(ref, str):
        ref = ModelRef(model=ref)
    path = Path(ref.model)
    if names_checkpoint(ref):
        data = read_checkpoint(path)
        if data.get("kind") != CHECKPOINT_KIND:
            raise UserError(
                f"{path} is a raw state dict, not an edgedistill checkpoint: give the factory as model "
                f"and this file as checkpoint"
            )
        model = _build(data["factory"], {**data.get("kwargs", {}), **ref.kwargs})
        _load_weights(model, data["state_dict"], path)
    else:
        model = _build(ref.model, ref.kwargs)
        if ref.checkpoint:
            _load_weights(model, _state_dict(read_checkpoint(ref.checkpoint)), Path(ref.checkpoint))
    return model.eval()


def factory_of(ref: ModelRef | str) -> tuple[str, dict[str, Any]]:
    """The factory string and kwargs that rebuild the architecture a reference names."""
    if isinstance(ref, str):
        ref = ModelRef(model=ref)
    if names_checkpoint(ref):
        data = read_checkpoint(ref.model)
        return data["factory"], {**data.get("kwargs", {}), **ref.kwargs}
    return ref.model, dict(ref.kwargs)


def save_checkpoint(model: nn.Module, path: str | Path, factory: str, kwargs: dict[str, Any] | None = None,
                    meta: dict[str, Any] | None = None) -> Path:
    """Write model weights plus the factory that rebuilds them, atomically."""
    path = Path(path)
    payload = {
        "kind": CHECKPOINT_KIND,
        "factory": factory,
        "kwargs": dict(kwargs or {}),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())
