"""A tiny transformer encoder classifier (``input_ids`` + ``attention_mask``) and a synthetic task for it.

Written with plain matmul/softmax attention so every format can lower it; used by tests and
examples that need a model with several integer inputs.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from edgedistill.data import Dataset


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, h: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        b, n, d = h.shape
        q, k, v = self.qkv(h).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        # masked_fill rather than adding a -1e4 bias: an int8 quantizer would give that add a range of
        # 1e4 and one scale step of ~80, wiping out the attention scores
        scores = (q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)).masked_fill(padding, -1e4)
        att = torch.softmax(scores, dim=-1)
        h = self.norm1(h + self.proj((att @ v).transpose(1, 2).reshape(b, n, d)))
        return self.norm2(h + self.ff(h))


class TinyEncoder(nn.Module):
    """Embeddings, ``layers`` encoder blocks, masked mean pooling, linear head."""

    def __init__(self, vocab: int = 64, dim: int = 32, layers: int = 2, heads: int = 2, max_len: int = 16,
                 num_classes: int = 4):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(layers))
        self.head = nn.Linear(dim, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.to(self.pos.dtype)  # follows the model dtype, so a half-precision export stays fp16
        h = self.embed(input_ids) + self.pos[: input_ids.shape[1]]
        padding = (attention_mask == 0)[:, None, None, :]
        for block in self.blocks:
            h = block(h, padding)
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        return self.head(pooled)


def encoder(vocab: int = 64, dim: int = 32, layers: int = 2, heads: int = 2, max_len: int = 16,
            num_classes: int = 4) -> nn.Module:
    """Factory for ``TinyEncoder`` (``edgedistill.zoo.text:encoder``)."""
    return TinyEncoder(vocab, dim, layers, heads, max_len, num_classes)


def synthetic_dataset(n: int = 1200, seq_len: int = 16, vocab: int = 64, num_classes: int = 4, seed: int = 0) -> Dataset:
    """Token sequences of varying length, padded with 0; the label is the class whose token band
    (vocab split into ``num_classes`` bands, token 0 reserved for padding) occurs most often."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(seq_len // 3, seq_len + 1, size=n)
    mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.int64)
    labels = rng.integers(0, num_classes, size=n)
    band = (vocab - 1) // num_classes
    noise = rng.integers(1, vocab, size=(n, seq_len))
    favoured = 1 + labels[:, None] * band + rng.integers(0, band, size=(n, seq_len))
    ids = np.where(rng.random((n, seq_len)) < 0.45, favoured, noise) * mask
    return Dataset(inputs={"input_ids": ids.astype(np.int64), "attention_mask": mask}, y=labels.astype(np.int64),
                   labels=[f"band{i}" for i in range(num_classes)], name="synthetic-text")
