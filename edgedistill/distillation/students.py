"""Students: built by a user factory (``student.model``), or derived from the teacher.

Deriving copies the teacher and keeps a subset of its layers, initialised with the teacher's
weights (the DistilBERT recipe): for Hugging Face encoders (``encoder.layer``) and other models with
a ``ModuleList`` of layers, every k-th layer counted from the last (so the layer feeding the head is
kept: 6 layers, k = 2 -> 1, 3, 5), with embeddings and head copied; for ``nn.Sequential`` stacks, the
same over its shape-preserving blocks (a parameterised child plus the activations after it).
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from edgedistill.data import Dataset
from edgedistill.errors import UserError

log = logging.getLogger("edgedistill")
STACK_NAMES = ("encoder.layer", "transformer.layer", "layers", "blocks", "layer", "h")


def layer_stack(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """The model's repeated layers: the first ``ModuleList`` (2+ items) whose name ends like ``STACK_NAMES``."""
    lists = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) >= 2]
    for suffix in STACK_NAMES:
        for name, module in lists:
            if name == suffix or name.endswith("." + suffix):
                return name, module
    return None


def sequential_blocks(model: nn.Sequential, sample: Sequence[torch.Tensor]) -> list[list[int]]:
    """Child indices of the droppable blocks: a child with parameters whose output has its input's
    shape, together with the parameter-free shape-preserving children that follow it."""
    shapes, h = [], sample[0]
    with torch.no_grad():
        for child in model:
            out = child(h)
            shapes.append(tuple(out.shape) == tuple(h.shape))
            h = out
    blocks: list[list[int]] = []
    for i, child in enumerate(model):
        has_params = any(True for _ in child.parameters())
        if shapes[i] and has_params:
            blocks.append([i])
        elif shapes[i] and blocks and blocks[-1][-1] == i - 1:
            blocks[-1].append(i)
    return blocks


def kept_layers(total: int, keep_every: int = 0, keep: Sequence[int] = ()) -> list[int]:
    """Which of ``total`` layers to keep: explicit indices, or every k-th counted back from the last."""
    chosen = sorted(set(keep)) if keep else sorted(range(total - 1, -1, -keep_every)) if keep_every else []
    if not chosen:
        raise UserError("deriving a student needs student.keep_every >= 1 or student.keep_layers")
    if chosen[0] < 0 or chosen[-1] >= total:
        raise UserError(f"student.keep_layers {list(keep)} is out of range: the teacher has {total} layers (0..{total - 1})")
    if len(chosen) == total:
        raise UserError(f"keeping {chosen} keeps all {total} teacher layers: the student would be as large as the teacher")
    return chosen


def derive_student(teacher: nn.Module, *, keep_every: int = 0, keep: Sequence[int] = (),
                   sample: Sequence[torch.Tensor] | None = None,
                   children: Sequence[int] = ()) -> tuple[nn.Module, dict[str, list[int]]]:
    """A copy of ``teacher`` with only some of its layers (weights equal to the teacher's).

    Returns the student and its recipe: ``layers`` (kept teacher layers, or blocks of a Sequential) and,
    for ``nn.Sequential``, ``children`` (kept child indices). ``sample`` inputs find a Sequential's blocks;
    ``children`` rebuilds a known recipe without them.
    """
    student = copy.deepcopy(teacher).eval()  # eval: finding a Sequential's blocks must not move BatchNorm statistics
    if isinstance(student, nn.Sequential) and children:
        return nn.Sequential(*(student[i] for i in children)), {"layers": list(keep), "children": list(children)}
    found = layer_stack(student)
    if found is not None:
        name, layers = found
        chosen = kept_layers(len(layers), keep_every, keep)
        parent_name, _, attr = name.rpartition(".")
        parent = student.get_submodule(parent_name) if parent_name else student
        setattr(parent, attr, nn.ModuleList(layers[i] for i in chosen))
        _renumber(student, getattr(parent, attr), len(chosen))
        return student, {"layers": chosen}
    if isinstance(student, nn.Sequential):
        if sample is None:
            raise UserError("deriving a student from an nn.Sequential teacher needs sample inputs")
        blocks = sequential_blocks(student, sample)
        if len(blocks) < 2:
            raise UserError(f"the teacher's nn.Sequential has {len(blocks)} shape-preserving block(s): nothing to drop")
        chosen = kept_layers(len(blocks), keep_every, keep)
        dropped = {i for b, block in enumerate(blocks) if b not in chosen for i in block}
        kept = [i for i in range(len(student)) if i not in dropped]
        return nn.Sequential(*(student[i] for i in kept)), {"layers": chosen, "children": kept}
    raise UserError(f"cannot derive a student from {type(teacher).__name__}: it has no layer list "
                    f"({', '.join(STACK_NAMES)}) and is not an nn.Sequential; give student.model instead")


def _renumber(model: nn.Module, layers: nn.ModuleList, count: int) -> None:
    """Keep Hugging Face bookkeeping consistent: the layer count in the config and each layer's index."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "num_hidden_layers"):
            config.num_hidden_layers = count
    for index, layer in enumerate(layers):
        for sub in layer.modules():
            if getattr(sub, "layer_idx", None) is not None:
                sub.layer_idx = index


def derived(teacher: str, layers: list[int], children: list[int] | None = None,
            teacher_kwargs: dict[str, Any] | None = None, teacher_checkpoint: str | None = None,
            width: dict[str, int] | None = None, vocab: list[int] | None = None, unk_id: int | None = None) -> nn.Module:
    """Factory that rebuilds a derived student's architecture (``edgedistill.distillation.students:derived``);
    its weights then come from the student checkpoint. ``layers`` empty = all of the teacher's."""
    from edgedistill.config import ModelRef
    from edgedistill.distillation.compact import narrow, prune_vocabulary
    from edgedistill.modelref import load_model

    built = load_model(ModelRef(model=teacher, kwargs=dict(teacher_kwargs or {}), checkpoint=teacher_checkpoint))
    student = derive_student(built, keep=layers, children=children or ())[0] if layers else built
    if width:
        student = narrow(student, **width)
    if vocab:
        student = prune_vocabulary(student, vocab, int(unk_id))
    return student


def check_vocabulary(model: nn.Module, data: Dataset, role: str) -> None:
    """``input_ids`` (and the tokenizer's vocabulary, when known) fit the model's token embedding."""
    if "input_ids" not in data.inputs:
        return
    getter = getattr(getattr(model, "model", model), "get_input_embeddings", None)
    embedding = getter() if callable(getter) else next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)
    if embedding is None:
        return
    rows = embedding.num_embeddings
    largest = int(np.max(data.inputs["input_ids"]))
    vocab = data.preprocessing.get("vocab_size")
    if largest >= rows or (vocab is not None and int(vocab) > rows):
        found = f"the tokenizer has {vocab} tokens" if vocab is not None and int(vocab) > rows else f"input_ids go up to {largest}"
        raise UserError(f"vocabulary mismatch: {found} but the {role}'s embedding has {rows} rows "
                        f"(use the tokenizer the {role} was trained with)")
