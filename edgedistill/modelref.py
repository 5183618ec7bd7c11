"""Resolve model references: a factory ``package.module:function``, an edgedistill checkpoint, or a
local Hugging Face directory (``hf:PATH`` or a folder with config.json; see ``edgedistill.huggingface``).

Checkpoints are plain dicts of tensors and strings, always loaded with ``weights_only=True``, so
unpickling one runs no code. An edgedistill checkpoint records the factory that builds the
architecture, so the file alone is a complete reference; that factory is called only when
``edgedistill.trust`` allows it (edgedistill's own, named for this run, or ``--trust-factory``).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from edgedistill.config import ModelRef
from edgedistill.errors import UserError
from edgedistill.factories import import_factory
from edgedistill.fileio import atomic_path
from edgedistill.trust import check_checkpoint, trusting

CHECKPOINT_KIND = "edgedistill.checkpoint/1"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; corrupt or foreign files are UserErrors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # a raw pickle makes torch warn about its protocol: our one line says it all
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file; all mean the same to a user
        raise UserError(_refusal(path, str(exc))) from None
    if not isinstance(data, dict):
        raise UserError(f"checkpoint {path} holds a {type(data).__name__}, expected a state dict")
    return data


def _refusal(path: Path, message: str) -> str:
    """One line for a checkpoint torch would not load: the pickled global it refused, never the unsafe switch."""
    refused = re.search(r"GLOBAL ([\w.]+)", message)
    if refused:
        return (f"checkpoint {path} is a pickled object that needs {refused.group(1)} to load, and edgedistill loads "
                f"only weights: save model.state_dict() and give it as checkpoint next to its factory")
    unpickler = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", message)
    if unpickler:
        return (f"checkpoint {path} is a pickle edgedistill does not load ({unpickler.group(1).strip()[:120]}); "
                f"it loads only weights: save model.state_dict() with torch.save")
    if "weights_only" in message or "Weights only" in message:  # torch's advice is the unsafe switch: never relay it
        return f"checkpoint {path} holds pickled objects, and edgedistill loads only weights (a state dict)"
    reason = message.strip().splitlines()[0] if message.strip() else "unreadable"
    return f"checkpoint {path} is corrupt or not a PyTorch checkpoint of weights: {reason[:200]}"


def _recorded(data: dict[str, Any], path: Path) -> tuple[str, dict[str, Any]]:
    """The factory and kwargs an edgedistill checkpoint records (a UserError for anything else)."""
    if data.get("kind") != CHECKPOINT_KIND:
        raise UserError(f"{path} is a raw state dict, not an edgedistill checkpoint: give the factory as model "
                        f"and this file as checkpoint")
    factory, kwargs = data.get("factory"), data.get("kwargs", {})
    if not isinstance(factory, str) or not isinstance(kwargs, dict):
        raise UserError(f"checkpoint {path} is damaged: its factory is not a string or its kwargs not a table")
    return factory, kwargs


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
    if not isinstance(state, dict):
        raise UserError(f"checkpoint {source} is damaged: it holds no state dict of weights")
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError, ValueError) as exc:
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


def load_model(ref: ModelRef | str, trust: Iterable[str] = ()) -> nn.Module:
    """Build the model a reference names, with its weights, in eval mode.

    A checkpoint's recorded factory must be trusted (``edgedistill.trust``): edgedistill's own, or
    covered by ``trust`` (modules, or exact ``module:function``) or by the stage running this.
    """
    if isinstance(ref, str):
        ref = ModelRef(model=ref)
    path = Path(ref.model)
    if names_checkpoint(ref):
        data = read_checkpoint(path)
        factory, kwargs = _recorded(data, path)
        with trusting(trust):
            check_checkpoint(path, factory, kwargs)  # before anything it names is imported
            model = _build(factory, {**kwargs, **ref.kwargs})
        _load_weights(model, data.get("state_dict"), path)
    else:
        model = _build(ref.model, ref.kwargs)
        if ref.checkpoint:
            _load_weights(model, _state_dict(read_checkpoint(ref.checkpoint)), Path(ref.checkpoint))
    return model.eval()


def check_loadable(ref: ModelRef) -> None:
    """Read a reference's checkpoint files and check their factories are trusted, without building anything:
    cheap, so a stage can reject an empty, corrupt or untrusted file before its slow work."""
    if names_checkpoint(ref):
        path = Path(ref.model)
        check_checkpoint(path, *_recorded(read_checkpoint(path), path))
    elif ref.checkpoint:
        read_checkpoint(ref.checkpoint)


def factory_of(ref: ModelRef | str) -> tuple[str, dict[str, Any]]:
    """The factory string and kwargs that rebuild the architecture a reference names."""
    if isinstance(ref, str):
        ref = ModelRef(model=ref)
    if names_checkpoint(ref):
        factory, kwargs = _recorded(read_checkpoint(ref.model), Path(ref.model))
        return factory, {**kwargs, **ref.kwargs}
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
