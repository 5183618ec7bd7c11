"""Weight-only int8 embedding tables, written with plain tensor ops so every runtime runs them.

In a text model the token-embedding table is most of the file (11.7 M of MiniLM's 22.7 M parameters),
and activation quantizers leave it in float32 because a lookup has no activations to observe. Stored
as int8 with one float scale per row, the table shrinks 4x; a lookup gathers the int8 row and its
scale and multiplies, ops every format's runtime has (no custom quantized-embedding kernel needed).
The int8 and int8-dynamic schemes of ExecuTorch (XNNPACK), ONNX and LiteRT all export the model this
way, so their files are about 0.25x the fp32 one for a text model, not ~0.75x.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

MIN_ROWS = 64  # smaller tables (token types, positions of short models) are not worth a scale per row


class Int8Embedding(nn.Module):
    """An ``nn.Embedding`` stored as int8 rows with a per-row symmetric scale."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        weight = embedding.weight.detach().float()
        scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
        self.register_buffer("qweight", torch.round(weight / scale).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(embedding.weight.dtype))
        self.num_embeddings, self.embedding_dim = embedding.num_embeddings, embedding.embedding_dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.qweight).to(self.scale.dtype) * F.embedding(ids, self.scale)


def int8_embedding_names(model: nn.Module, min_rows: int = MIN_ROWS, keep_float: Sequence[str] = ()) -> tuple[str, ...]:
    """The embedding tables ``with_int8_embeddings`` stores as int8: ``min_rows`` rows or more, not inside
    ``keep_float`` (modules a mixed-precision artifact keeps in float)."""
    from edgedistill.mixed_precision import inside

    return tuple(name for name, m in model.named_modules() if isinstance(m, nn.Embedding)
                 and m.num_embeddings >= min_rows and not inside(name, keep_float))


def with_int8_embeddings(model: nn.Module, min_rows: int = MIN_ROWS, keep_float: Sequence[str] = ()) -> nn.Module:
    """A copy of ``model`` whose embedding tables of ``min_rows`` rows or more are ``Int8Embedding``s
    (``model`` itself when it has none); tables inside ``keep_float`` (mixed precision) stay float."""
    names = int8_embedding_names(model, min_rows, keep_float)
    if not names:
        return model
    model = copy.deepcopy(model)
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, Int8Embedding(getattr(parent, attr)))
    return model
