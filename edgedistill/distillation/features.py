"""Feature / hidden-state distillation between named modules of the student and the teacher.

A mapping pairs a student module with a teacher module (``encoder.layer.1`` <-> ``encoder.layer.3``).
Forward hooks capture both outputs during the normal forward passes; when the widths (last axis)
differ, a learned linear projection maps the student's features to the teacher's width. The
projections are parameters of ``FeatureDistiller`` and are trained with the student (they are not
part of the student checkpoint). Losses, each computed over the last axis:

- ``mse``: mean squared error over every element;
- ``cosine``: mean over positions of 1 - cos(student, teacher);
- ``distilbert-cosine``: the DistilBERT hidden-state loss: 1 - cos averaged over the tokens the
  ``attention_mask`` keeps (padding excluded); without a mask it equals ``cosine``.
"""

from __future__ import annotations

import contextlib
import difflib
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.errors import UserError

FEATURE_LOSSES = ("mse", "cosine", "distilbert-cosine")


@dataclass(frozen=True)
class FeaturePair:
    """One student module distilled toward one teacher module."""

    student: str
    teacher: str
    loss: str = "mse"
    weight: float = 1.0


def resolve_module(model: nn.Module, name: str, role: str) -> str:
    """The full name of the module ``name`` in ``model`` (exact, or a unique dotted suffix), else a
    one-line UserError listing close matches."""
    names = [n for n, _ in model.named_modules() if n]
    if name in names:
        return name
    suffixed = [n for n in names if n.endswith("." + name)]
    if len(suffixed) == 1:
        return suffixed[0]
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6) or suffixed[:5]
    hint = f"close matches: {', '.join(close)}" if close else f"its modules include: {', '.join(names[:8])}"
    raise UserError(f"feature mapping: the {role} has no module {name!r}; {hint}")


def feature_tensor(output: Any) -> torch.Tensor:
    """The hidden states in a module's output (a tensor, the first tensor of a tuple, or a HF ModelOutput)."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "last_hidden_state"):
        return output.last_hidden_state
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise UserError(f"feature mapping: a hooked module returned {type(output).__name__}, not a tensor")


def feature_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """One feature loss (``mse``, ``cosine`` or ``distilbert-cosine``) between same-shaped features."""
    if student.shape != teacher.shape:
        raise UserError(f"feature mapping: student features {tuple(student.shape)} and teacher features "
                        f"{tuple(teacher.shape)} differ beyond the last axis")
    teacher = teacher.detach().to(student.dtype)
    if kind == "mse":
        return F.mse_loss(student, teacher)
    if kind not in ("cosine", "distilbert-cosine"):
        raise UserError(f"unknown feature loss {kind!r}; choose one of {', '.join(FEATURE_LOSSES)}")
    distance = 1.0 - F.cosine_similarity(student, teacher, dim=-1)
    if kind == "distilbert-cosine" and mask is not None and distance.ndim == 2 and mask.shape == distance.shape:
        keep = mask.to(distance.dtype)
        return (distance * keep).sum() / keep.sum().clamp(min=1.0)
    return distance.mean()


class FeatureDistiller(nn.Module):
    """Hooks the mapped modules and turns their outputs into a weighted sum of feature losses."""

    def __init__(self, student: nn.Module, teacher: nn.Module, pairs: Sequence[FeaturePair],
                 sample: Sequence[torch.Tensor], mask_position: int | None = None):
        super().__init__()
        for pair in pairs:
            if pair.loss not in FEATURE_LOSSES:
                raise UserError(f"feature mapping {pair.student} -> {pair.teacher}: unknown loss {pair.loss!r}; "
                                f"choose one of {', '.join(FEATURE_LOSSES)}")
        self.pairs = [FeaturePair(resolve_module(student, p.student, "student"),
                                  resolve_module(teacher, p.teacher, "teacher"), p.loss, p.weight) for p in pairs]
        self.student_model, self.teacher_model = [student], [teacher]  # lists: not registered as submodules
        self.mask_position = mask_position
        self.captured: dict[tuple[str, str], torch.Tensor] = {}
        modes = student.training, teacher.training
        student.eval(), teacher.eval()  # the sample pass must not move BatchNorm statistics
        with self.attached(), torch.no_grad():  # one sample pass tells the feature widths
            student(*sample), teacher(*sample)
            widths = [(self.captured[("student", p.student)].shape[-1], self.captured[("teacher", p.teacher)].shape[-1])
                      for p in self.pairs]
        student.train(modes[0]), teacher.train(modes[1])
        self.projections = nn.ModuleList(nn.Identity() if s == t else nn.Linear(s, t) for s, t in widths)

    @contextlib.contextmanager
    def attached(self) -> Iterator["FeatureDistiller"]:
        """Forward hooks on every mapped module for the duration of the block."""
        handles = []
        for role, model in (("student", self.student_model[0]), ("teacher", self.teacher_model[0])):
            modules = dict(model.named_modules())
            for pair in self.pairs:
                name = getattr(pair, role)
                hook = lambda _m, _i, out, key=(role, name): self.captured.__setitem__(key, feature_tensor(out))  # noqa: E731
                handles.append(modules[name].register_forward_hook(hook))
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()
            self.captured.clear()

    def forward(self, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted feature losses for the last student and teacher forward passes (inside ``attached``)."""
        if not self.captured:
            raise RuntimeError("feature losses need their hooks: run training inside `with objective.attached():`")
        mask = batch[self.mask_position] if self.mask_position is not None else None
        total, parts = torch.zeros(()), {}
        for pair, projection in zip(self.pairs, self.projections):
            s = projection(self.captured[("student", pair.student)])
            loss = feature_loss(s, self.captured[("teacher", pair.teacher)], pair.loss, mask)
            parts[f"{pair.loss}:{pair.student}"] = float(loss.detach())
            total = total + pair.weight * loss
        return total, parts
