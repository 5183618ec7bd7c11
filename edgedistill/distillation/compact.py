"""Compact transformer students: narrower than the teacher (hidden size, heads, FFN width) and with a
pruned vocabulary, initialised from the teacher's weights.

Width: the student keeps the teacher's most important hidden dimensions (one subset for the whole
residual stream: embeddings, every layer, the head), heads (per layer, by the norm of their output
projection) and FFN neurons (by |input row| x |output column|), so it starts close to the teacher
and distillation only has to repair the difference. Supports BERT-style Hugging Face encoders.

Vocabulary: the token-embedding table is most of a small text model. Only the tokens seen in the
training data (and the special tokens) keep a row; every other id maps to ``[UNK]``'s row through a
lookup table inside the model, so apps keep the teacher's tokenizer and ids unchanged.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Sequence

import torch
from torch import nn

from edgedistill.errors import UserError

log = logging.getLogger("edgedistill")


def _bert(model: nn.Module) -> tuple[nn.Module, nn.Module, str]:
    """The BERT encoder inside an HFClassifier, its parent module and the attribute holding it."""
    inner = getattr(model, "model", None)
    for parent, attr in ((inner, "bert"), (model, "model")):
        candidate = getattr(parent, attr, None) if parent is not None else None
        if candidate is not None and hasattr(candidate, "encoder") and hasattr(candidate, "embeddings") \
                and hasattr(getattr(candidate, "config", None), "num_attention_heads"):
            return candidate, parent, attr
    raise UserError("a narrower student (hidden size, heads, FFN) needs a BERT-style Hugging Face encoder teacher "
                    f"(embeddings + encoder.layer.N.attention.self.query ...), not {type(model).__name__}")


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    return torch.sort(torch.topk(scores, k).indices).values


def _linear(old: nn.Linear, rows: torch.Tensor | None, cols: torch.Tensor | None) -> nn.Linear:
    weight = old.weight.detach()
    weight = weight[rows] if rows is not None else weight
    weight = weight[:, cols] if cols is not None else weight
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=old.bias is not None)
    with torch.no_grad():
        new.weight.copy_(weight)
        if old.bias is not None:
            new.bias.copy_(old.bias.detach()[rows] if rows is not None else old.bias.detach())
    return new


def _norm(old: nn.LayerNorm, keep: torch.Tensor) -> nn.LayerNorm:
    new = nn.LayerNorm(len(keep), eps=old.eps)
    with torch.no_grad():
        new.weight.copy_(old.weight.detach()[keep])
        new.bias.copy_(old.bias.detach()[keep])
    return new


def narrow(model: nn.Module, *, hidden_size: int = 0, heads: int = 0, ffn: int = 0) -> nn.Module:
    """A copy of ``model`` (an HFClassifier over BERT) with ``hidden_size`` / ``heads`` / ``ffn`` (0 = as is),
    keeping the teacher's most important dimensions, heads and neurons with their weights."""
    model = copy.deepcopy(model)
    bert, _, _ = _bert(model)
    cfg = bert.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    hidden_size, heads, ffn = hidden_size or cfg.hidden_size, heads or cfg.num_attention_heads, ffn or cfg.intermediate_size
    if hidden_size > cfg.hidden_size or heads > cfg.num_attention_heads or ffn > cfg.intermediate_size:
        raise UserError(f"a student cannot be wider than its teacher (hidden {cfg.hidden_size}, heads "
                        f"{cfg.num_attention_heads}, ffn {cfg.intermediate_size})")
    if heads * head_dim != hidden_size:
        raise UserError(f"hidden size {hidden_size} with {heads} heads: the teacher's heads are {head_dim} wide, so "
                        f"hidden size must be heads x {head_dim} (e.g. --hidden-size {heads * head_dim})")
    emb, layers = bert.embeddings, bert.encoder.layer
    # hidden dimensions: what the embeddings write and every layer norm scales up
    scores = emb.word_embeddings.weight.detach().norm(dim=0) + sum(
        m.weight.detach().abs() for m in bert.modules() if isinstance(m, nn.LayerNorm))
    keep = _top(scores, hidden_size)
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        old = getattr(emb, name, None)
        if isinstance(old, nn.Embedding):
            setattr(emb, name, nn.Embedding.from_pretrained(old.weight.detach()[:, keep].clone(), freeze=False,
                                                            padding_idx=old.padding_idx))
    emb.LayerNorm = _norm(emb.LayerNorm, keep)
    for layer in layers:
        att, out = layer.attention.self, layer.attention.output
        per_head = out.dense.weight.detach().norm(dim=0).view(-1, head_dim).sum(1)
        kept_heads = _top(per_head, heads)
        inner = (kept_heads[:, None] * head_dim + torch.arange(head_dim)).flatten()
        att.query, att.key, att.value = (_linear(getattr(att, n), inner, keep) for n in ("query", "key", "value"))
        for module in (att,):
            for attr in ("num_attention_heads", "all_head_size"):
                if hasattr(module, attr):
                    setattr(module, attr, heads if attr == "num_attention_heads" else heads * head_dim)
        out.dense, out.LayerNorm = _linear(out.dense, keep, inner), _norm(out.LayerNorm, keep)
        fc_in, fc_out = layer.intermediate.dense, layer.output.dense
        neurons = _top(fc_in.weight.detach().norm(dim=1) * fc_out.weight.detach().norm(dim=0), ffn)
        layer.intermediate.dense = _linear(fc_in, neurons, keep)
        layer.output.dense, layer.output.LayerNorm = _linear(fc_out, keep, neurons), _norm(layer.output.LayerNorm, keep)
    if getattr(bert, "pooler", None) is not None:
        bert.pooler.dense = _linear(bert.pooler.dense, keep, keep)
    for module in model.modules():  # heads reading the hidden state (classifier, mean-pool head)
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and child.in_features == cfg.hidden_size and not _inside(bert, child):
                setattr(module, name, _linear(child, None, keep))
    for config in {id(m.config): m.config for m in model.modules() if hasattr(m, "config")}.values():
        if hasattr(config, "hidden_size"):
            config.hidden_size, config.num_attention_heads, config.intermediate_size = hidden_size, heads, ffn
    return model


def _inside(root: nn.Module, module: nn.Module) -> bool:
    return any(m is module for m in root.modules())


class RemappedEmbedding(nn.Module):
    """A token embedding with rows for a subset of the vocabulary; other ids read ``[UNK]``'s row.

    Takes the teacher's token ids (so the tokenizer and ``vocab.txt`` stay the teacher's); ``remap`` turns
    them into rows of the small table with a gather, which every runtime has."""

    def __init__(self, embedding: nn.Embedding, kept: Sequence[int], unk_id: int):
        super().__init__()
        kept = sorted(set(int(i) for i in kept) | {int(unk_id)})
        remap = torch.full((embedding.num_embeddings,), kept.index(int(unk_id)), dtype=torch.long)
        remap[torch.tensor(kept)] = torch.arange(len(kept))
        self.register_buffer("remap", remap)
        self.table = nn.Embedding.from_pretrained(embedding.weight.detach()[kept].clone(), freeze=False)
        self.num_embeddings, self.embedding_dim = embedding.num_embeddings, embedding.embedding_dim

    @property
    def weight(self) -> torch.Tensor:  # what code reading ``get_input_embeddings().weight`` (dtype, device) needs
        return self.table.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # index_select, not an embedding lookup: LiteRT's lookup takes float tables only
        return self.table(torch.index_select(self.remap, 0, ids.reshape(-1)).reshape(ids.shape))


def prune_vocabulary(model: nn.Module, kept: Sequence[int], unk_id: int) -> nn.Module:
    """A copy of ``model`` whose token embedding keeps only the rows of ``kept`` ids (plus ``unk_id``)."""
    model = copy.deepcopy(model)
    bert, _, _ = _bert(model)
    bert.embeddings.word_embeddings = RemappedEmbedding(bert.embeddings.word_embeddings, kept, unk_id)
    return model


def vocabulary_to_keep(train_ids: Any, tokenizer_dir: str) -> tuple[list[int], int]:
    """The ids seen in the training inputs plus the tokenizer's special tokens, and the ``[UNK]`` id."""
    import numpy as np

    from edgedistill.sources.jsonl_text import load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    if tok.unk_token_id is None:
        raise UserError("vocabulary pruning needs a tokenizer with an unknown token ([UNK])")
    seen = set(np.unique(np.asarray(train_ids)).tolist()) | set(tok.all_special_ids)
    return sorted(int(i) for i in seen), int(tok.unk_token_id)


def unknown_share(ids: Any, mask: Any, kept: Sequence[int]) -> tuple[int, int]:
    """How many real (unpadded) tokens of ``ids`` fall outside ``kept`` (and so become ``[UNK]``), of how many."""
    import numpy as np

    ids, real = np.asarray(ids), np.asarray(mask).astype(bool)
    return int((~np.isin(ids, np.asarray(kept)) & real).sum()), int(real.sum())
