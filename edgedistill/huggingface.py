"""Models from local Hugging Face directories (a folder with ``config.json`` and weights); never the hub.

A reference is ``hf:PATH`` or a directory holding ``config.json``. With no ``head`` it loads as
``AutoModelForSequenceClassification`` (``num_labels`` from the directory's config unless given);
with ``head = "package.module:function"`` it loads the base ``AutoModel`` and the factory builds the
head, called with ``hidden_size=`` and returning a module ``head(last_hidden_state, attention_mask)
-> logits``. Either way the model is wrapped so it takes ``(input_ids, attention_mask)`` positionally
and returns a logits tensor, like every other model in the pipeline.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgedistill.errors import UserError, require

PREFIX = "hf:"
log = logging.getLogger("edgedistill")


def hf_directory(ref: str) -> Path | None:
    """The directory a Hugging Face reference names (``hf:PATH`` or a folder with config.json), else None."""
    if ref.startswith(PREFIX):
        path = Path(ref[len(PREFIX):])
        if not (path / "config.json").is_file():
            raise UserError(f"{ref}: {path} is not a Hugging Face model directory (no config.json)")
        return path
    path = Path(ref)
    return path if path.is_dir() and (path / "config.json").is_file() else None


# added to masked attention scores: exp(-1e4) is 0 after softmax, and unlike finfo(float32).min it fits in fp16
MASKED_SCORE = -1e4


class HFClassifier(nn.Module):
    """A Hugging Face model called as ``model(input_ids, attention_mask) -> logits``.

    An encoder runs with eager attention and gets its additive 4-D mask built here with plain arithmetic,
    so exported graphs hold matmul/softmax/add (which on-device delegates take) instead of the
    scaled-dot-product-attention decomposition and transformers' index/gather mask code (which they do not).
    """

    def __init__(self, model: nn.Module, head: nn.Module | None = None):
        super().__init__()
        self.model, self.head = model, head
        config = getattr(model, "config", None)
        self.additive_mask = bool(config is not None and not getattr(config, "is_decoder", False)
                                  and hasattr(model, "set_attn_implementation"))
        if self.additive_mask:
            model.set_attn_implementation("eager")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask
        if self.additive_mask:
            dtype = next(p.dtype for p in self.model.parameters() if p.is_floating_point())
            mask = (1.0 - attention_mask[:, None, None, :].to(dtype)) * MASKED_SCORE
        extra = {}
        if self.additive_mask and getattr(self.model.config, "type_vocab_size", 0):
            extra["token_type_ids"] = torch.zeros_like(input_ids)  # else BERT gathers them from a buffer
        out = self.model(input_ids=input_ids, attention_mask=mask, **extra)
        if self.head is None:
            return out.logits
        return self.head(out.last_hidden_state, attention_mask)


class MeanPoolHead(nn.Module):
    """Masked mean of the token states, then a linear layer (a ready-made ``head`` factory)."""

    def __init__(self, hidden_size: int, num_classes: int = 2):
        super().__init__()
        self.linear = nn.Linear(hidden_size, num_classes)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # the sum of the states and the token count as one batched matmul (mask . [hidden, mask]):
        # on-device delegates run that, not reductions over the middle axis
        mask = attention_mask.to(hidden.dtype)
        sums = torch.bmm(mask[:, None, :], torch.cat([hidden, mask[..., None]], dim=-1))[:, 0]
        return self.linear(sums[:, :-1] / sums[:, -1:].clamp(min=1.0))


def mean_pool_head(hidden_size: int, num_classes: int = 2) -> nn.Module:
    """Factory for ``MeanPoolHead`` (``edgedistill.huggingface:mean_pool_head``)."""
    return MeanPoolHead(hidden_size, num_classes)


def load_hf_model(directory: str | Path, *, num_labels: int | None = None, head: str | None = None,
                  head_kwargs: dict[str, Any] | None = None, **unknown: Any) -> HFClassifier:
    """Load a local Hugging Face model as a logits classifier; weights missing from the directory are
    initialised with a fixed seed (so a teacher is reproducible) and named in a warning."""
    if unknown:
        raise UserError(f"kwargs {', '.join(sorted(unknown))} do not apply to a Hugging Face model "
                        f"(it takes num_labels, head, head_kwargs)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers = require("transformers", "hf", "Hugging Face transformers")
    from edgedistill.factories import import_factory
    from edgedistill.quiet import quiet

    directory = Path(directory)
    extra = {} if num_labels is None else {"num_labels": int(num_labels)}
    auto = transformers.AutoModel if head else transformers.AutoModelForSequenceClassification
    try:
        with quiet(), torch.random.fork_rng():
            torch.manual_seed(0)
            model, info = auto.from_pretrained(str(directory), local_files_only=True, output_loading_info=True, **extra)
            head_module = import_factory(head)(hidden_size=model.config.hidden_size, **(head_kwargs or {})) if head else None
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{directory} does not load with transformers: {str(exc).strip().splitlines()[0][:200]}") from None
    fresh = sorted(info.get("missing_keys", []))
    if fresh or head:
        what = ", ".join(fresh[:4]) + (" ..." if len(fresh) > 4 else "") if fresh else f"the head from {head}"
        log.warning("%s: %s not in the directory, initialised with seed 0 (train or load them before relying on "
                    "its outputs)", directory.name, what)
    return HFClassifier(model, head_module).eval()
