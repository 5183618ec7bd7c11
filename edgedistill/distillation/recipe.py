"""From a ``PipelineConfig`` to what the trainer takes: the student (built or derived from the teacher),
the loss objective, and the teacher's outputs (from the on-disk cache when it applies)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgedistill.config import PipelineConfig
from edgedistill.data import Dataset, take
from edgedistill.distillation.features import resolve_module
from edgedistill.distillation.objective import DistillObjective, build_objective
from edgedistill.distillation.students import derive_student
from edgedistill.distillation.distributed import current
from edgedistill.distillation.teacher_cache import cached_teacher_outputs, refuse_augmented
from edgedistill.distillation.teacher_logits import Online, TeacherLogits
from edgedistill.errors import UserError
from edgedistill.inference import as_tensors
from edgedistill.modelref import factory_of, load_model

log = logging.getLogger("edgedistill")
DERIVED_FACTORY = "edgedistill.distillation.students:derived"


def derives_student(config: PipelineConfig) -> bool:
    """Whether the student is derived from the teacher rather than built by ``student.model``."""
    s = config.student
    return bool(s.keep_every or s.keep_layers or _width(config) or s.prune_vocab)


def _width(config: PipelineConfig) -> dict[str, int]:
    s = config.student
    return {k: v for k, v in (("hidden_size", s.hidden_size), ("heads", s.heads), ("ffn", s.ffn)) if v}


def sample_inputs(data: Dataset, n: int = 2) -> list[torch.Tensor]:
    """The first ``n`` samples as model arguments."""
    return as_tensors(take(data.inputs, slice(0, n)))


def build_student(config: PipelineConfig, teacher: nn.Module, data: Dataset) -> tuple[nn.Module, str, dict[str, Any]]:
    """The student, and the factory + kwargs that rebuild its architecture for the checkpoint."""
    if not derives_student(config):
        factory, kwargs = factory_of(config.student)
        return load_model(config.student), factory, kwargs
    s = config.student
    if s.keep_every or s.keep_layers:
        student, recipe = derive_student(teacher, keep_every=s.keep_every, keep=s.keep_layers, sample=sample_inputs(data))
        log.info("student derived from the teacher, keeping its layers %s", ", ".join(map(str, recipe["layers"])))
    else:
        student, recipe = teacher, {"layers": []}
    teacher_factory, teacher_kwargs = factory_of(config.teacher)
    if _width(config):
        from edgedistill.distillation.compact import narrow

        student = narrow(student, **_width(config))
        recipe["width"] = _width(config)
        log.info("student narrowed to %s, keeping the teacher's most important dimensions, heads and neurons",
                 ", ".join(f"{k} {v}" for k, v in recipe["width"].items()))
    if s.prune_vocab:
        student, recipe["vocab"], recipe["unk_id"] = _pruned(student, data)
    return student, DERIVED_FACTORY, {"teacher": teacher_factory, "teacher_kwargs": teacher_kwargs, **recipe}


def _pruned(student: nn.Module, data: Dataset) -> tuple[nn.Module, list[int], int]:
    from edgedistill.distillation.compact import prune_vocabulary, vocabulary_to_keep

    tokenizer = data.preprocessing.get("tokenizer")
    if "input_ids" not in data.inputs or not tokenizer:
        raise UserError("student.prune_vocab needs text data tokenized by a Hugging Face tokenizer (input_ids)")
    kept, unk = vocabulary_to_keep(data.inputs["input_ids"], tokenizer)
    log.info("vocabulary pruned to the %s tokens seen in the training data (+ special tokens)", f"{len(kept):,}")
    return prune_vocabulary(student, kept, unk), kept, unk


def hidden_state_features(config: PipelineConfig, student: nn.Module, recipe: dict[str, Any]) -> list[Any]:
    """For a narrowed student without configured feature losses: each student layer's output distilled toward
    the teacher layer it came from, through a learned projection (cosine: independent of the states' scale)."""
    from edgedistill.config import FeatureMapping

    if config.distill.losses.features or not recipe.get("width"):
        return list(config.distill.losses.features)
    from edgedistill.distillation.students import layer_stack

    found = layer_stack(student)
    if found is None:
        return []
    name, layers = found
    teacher_layers = recipe.get("layers") or list(range(len(layers)))
    return [FeatureMapping(student=f"{name}.{i}", teacher=f"{name}.{t}", loss="cosine") for i, t in enumerate(teacher_layers)]


def check_feature_names(config: PipelineConfig, teacher: nn.Module, student: nn.Module | None) -> None:
    """Fail before any training when a feature mapping names a module that does not exist (a derived
    student's names are checked when it is made)."""
    for mapping in config.distill.losses.features:
        resolve_module(teacher, mapping.teacher, "teacher")
        if student is not None:
            resolve_module(student, mapping.student, "student")


def objective_for(config: PipelineConfig, student: nn.Module, teacher: nn.Module, data: Dataset,
                  recipe: dict[str, Any] | None = None) -> DistillObjective:
    """The loss from ``[distill]`` and ``[distill.losses]`` (plus hidden-state losses for a narrowed student,
    ``recipe`` being how it was derived); unknown module names fail here, before training."""
    d = config.distill
    features = hidden_state_features(config, student, recipe or {})
    return build_objective(student, teacher, list(data.inputs), sample_inputs(data), temperature=d.temperature,
                           alpha=d.alpha, soft_target=d.losses.soft_target, features=features)


def teacher_outputs_for(config: PipelineConfig, teacher: nn.Module, data: Dataset,
                        objective: DistillObjective) -> TeacherLogits | None:
    """Where the trainer gets teacher logits: ``Online`` for feature losses (the teacher's hidden states
    are needed on every batch), the on-disk cache, or None (the trainer's in-memory default) when the
    cache is off, the data is augmented (under ``auto``) or the job runs on several processes."""
    if objective.needs_teacher_forward:
        return Online(teacher)
    mode = config.distill.teacher_cache
    if mode == "off":
        return None
    refusal = refuse_augmented(data)
    if refusal and mode == "on":
        raise UserError(refusal)
    if refusal or current().world > 1:
        log.info("teacher cache not used: %s", "the data is augmented" if refusal else "torchrun shares the teacher's work")
        return None
    cache_dir = Path(config.distill.cache_dir) if config.distill.cache_dir else Path(config.out) / "teacher-cache"
    return cached_teacher_outputs(teacher, data, cache_dir, top_k=config.distill.cache_top_k)
