"""The three stages driven by one PipelineConfig, chained by files on disk.

``distill`` writes ``teacher.pt`` (when it trains one) and ``student.pt``; ``export`` reads the
student checkpoint and writes bundles; ``validate`` reads bundles and writes the report. The CLI
and the Python API both call these, so the Python API gets every check the CLI has.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch

from edgedistill import run_record
from edgedistill.calibrate import read as read_calibration
from edgedistill.config import PipelineConfig
from edgedistill.data import Splits, load_dataset, split
from edgedistill.distillation.distributed import process_group
from edgedistill.distillation.recipe import (build_student, check_feature_names, derives_student, objective_for,
                                             teacher_outputs_for)
from edgedistill.distillation.students import check_vocabulary
from edgedistill.distillation.trainer import TrainResult, TrainSettings, train
from edgedistill.errors import UserError
from edgedistill.exporter import check_requested, export_student
from edgedistill.fileio import check_writable_dir
from edgedistill.huggingface import hf_directory
from edgedistill.inference import check_compatible
from edgedistill.modelref import (check_loadable, count_parameters, factory_of, has_weights, load_model,
                                  save_checkpoint, teacher_training_epochs)
from edgedistill.text_preprocessing import recorded_preprocessing
from edgedistill.trust import within_config
from edgedistill.validation.device_outputs import validate_device_run
from edgedistill.validation.harness import Report, check_bundle_classes, open_bundles, validate_bundles
from edgedistill.validation.report import write_reports

log = logging.getLogger("edgedistill")
PRETRAINED_LR = 1e-4  # fine-tuning rate for students holding pretrained transformer layers


def is_pretrained_transformer(model: torch.nn.Module) -> bool:
    """Whether ``model`` holds a Hugging Face transformer (its weights come from pretraining, not from scratch)."""
    return any(getattr(getattr(m, "config", None), "model_type", None) for m in model.modules())


@dataclass
class DistillOutput:
    teacher_checkpoint: Path
    student_checkpoint: Path
    result: TrainResult


def load_splits(config: PipelineConfig) -> Splits:
    """The config's data, split the same way in every stage (so the test split stays held out)."""
    d = config.data
    tokenizer = d.tokenizer or hf_directory(config.teacher.model)  # text defaults to the teacher's tokenizer
    max_length = d.max_length
    if Path(d.source).suffix in (".jsonl", ".ndjson") and (tokenizer is None or "max_length" not in d.model_fields_set):
        # as distill tokenized it: the checkpoints (or the teacher's factory) record the tokenizer and length
        recorded = recorded_preprocessing([config.teacher, config.student])
        tokenizer = tokenizer or recorded.get("tokenizer")
        if "max_length" not in d.model_fields_set and recorded.get("max_length"):
            max_length = int(recorded["max_length"])
    data = load_dataset(d.source, tokenizer=tokenizer, max_length=max_length, text_field=d.text_field,
                        label_field=d.label_field, image_size=d.image_size, image_mean=d.image_mean, image_std=d.image_std)
    return split(data, d.test_fraction, d.val_fraction, d.seed)


@within_config
def distill(config: PipelineConfig) -> DistillOutput:
    """Train the teacher if it is a bare factory (demo), then distill the student; write both checkpoints.

    Under torchrun every rank runs this; ranks share the work of each step and only rank 0 writes.
    """
    with process_group() as dist:
        if not dist.is_writer:  # one voice per job
            log.setLevel(logging.WARNING)
        return _distill(config, dist.is_writer)


def _resume_path(config: PipelineConfig, out: Path) -> Path | None:
    resume = config.distill.resume
    if not resume:
        return None
    path = out / "checkpoints" / "last.pt" if resume == "last" else Path(resume)
    if not path.is_file():
        raise UserError(f"nothing to resume: no training checkpoint at {path}")
    return path


def _distill(config: PipelineConfig, is_writer: bool) -> DistillOutput:
    out = check_writable_dir(Path(config.out))  # created when the first file is written
    resume = _resume_path(config, out)
    splits = load_splits(config)
    torch.manual_seed(config.distill.seed)
    teacher = load_model(config.teacher)
    check_vocabulary(teacher, splits.train, "teacher")
    student = None
    if not derives_student(config):  # a derived student is made after the teacher is trained
        student, student_factory, student_kwargs = build_student(config, teacher, splits.train)
        check_vocabulary(student, splits.train, "student")
        check_compatible(teacher, student, splits.train)
    check_feature_names(config, teacher, student)
    if splits.train.y is None and config.distill.alpha < 1 and "alpha" not in config.distill.model_fields_set:
        log.info("the data has no labels: distilling on the teacher's soft labels alone (alpha = 1)")
        config = config.model_copy(update={"distill": config.distill.model_copy(update={"alpha": 1.0})})
    if splits.train.y is None and config.distill.alpha < 1:
        raise UserError(f"the data has no labels, so distill.alpha must be 1 (got {config.distill.alpha})")

    d = config.distill
    settings = TrainSettings(**{f.name: getattr(d, f.name) for f in fields(TrainSettings)})
    trained_teacher = out / "teacher.pt"
    teacher_epochs = teacher_training_epochs(config.teacher)
    if teacher_epochs and resume is not None and trained_teacher.is_file():
        teacher = load_model(str(trained_teacher))  # the run being resumed trained it already
    elif teacher_epochs:
        if splits.train.y is None:
            raise UserError(f"teacher.train_epochs = {teacher_epochs} asks to train the teacher, but the data has no "
                            f"labels (set teacher.train_epochs = 0 to use the teacher as it is)")
        train(teacher, splits.train, val=splits.val, settings=settings, epochs=teacher_epochs,
              lr=config.teacher.train_lr, patience=0, desc="teacher")
    # later stages read the teacher from one self-describing checkpoint file
    teacher_ckpt = Path(config.teacher.model)
    if not teacher_ckpt.is_file():
        teacher_ckpt = trained_teacher
        if is_writer:
            factory, kwargs = factory_of(config.teacher)
            save_checkpoint(teacher, teacher_ckpt, factory, kwargs,
                            meta={"role": "teacher", "preprocessing": splits.train.preprocessing})

    if student is None:
        student, student_factory, student_kwargs = build_student(config, teacher, splits.train)
        check_compatible(teacher, student, splits.train)
    unknown = _report_unknown_tokens(student_kwargs, splits)
    t_params, s_params = count_parameters(teacher), count_parameters(student)
    log.info("teacher %s parameters, student %s (%.1f%%)", f"{t_params:,}", f"{s_params:,}", 100 * s_params / t_params)

    if "lr" not in d.model_fields_set and is_pretrained_transformer(student):
        # the digits-sized default (1e-2) wrecks pretrained attention weights in a few steps
        settings = replace(settings, lr=PRETRAINED_LR)
        log.info("student starts from pretrained transformer weights: learning rate %g (set distill.lr to change)", settings.lr)
    objective = objective_for(config, student, teacher, splits.train, student_kwargs)
    with objective.attached():  # feature losses: hooks on the student and teacher while training
        result = train(student, splits.train, teacher=teacher, val=splits.val, settings=settings,
                       checkpoint_path=out / "checkpoints" / "last.pt", resume=resume, objective=objective,
                       teacher_logits=teacher_outputs_for(config, teacher, splits.train, objective))
    if d.qat == "int8":
        student = _quantization_aware(config, student, teacher, splits)
    student_ckpt = out / "student.pt"
    if is_writer:
        save_checkpoint(student, student_ckpt, student_factory, student_kwargs,
                        meta={"role": "student", "temperature": d.temperature, "alpha": d.alpha,
                              "teacher": str(teacher_ckpt), "best_epoch": result.best_epoch,
                              "preprocessing": splits.train.preprocessing, **unknown,
                              **({"qat": {"scheme": "int8", "epochs": d.qat_epochs}} if d.qat != "off" else {})})
        run_record.write(config, student=student_ckpt, teacher=teacher_ckpt)  # export/validate need no flags
    return DistillOutput(teacher_ckpt, student_ckpt, result)


def _check_inputs(config: PipelineConfig) -> None:
    """Read the teacher's and student's checkpoint files (an empty, corrupt or untrusted one is refused) and
    check the output folder, without building a model: what fails fast should fail before slow work."""
    check_writable_dir(Path(config.out))
    for ref in (config.student, config.teacher):
        if has_weights(ref):
            check_loadable(ref)


def _quantization_aware(config: PipelineConfig, student, teacher, splits):
    """``distill --qat int8``: the distilled student fine-tuned under simulated int8 against the teacher."""
    from edgedistill.distillation.qat import qat_distill
    from edgedistill.exporter import calibration_set
    from edgedistill.inference import predict_logits

    d = config.distill
    return qat_distill(student, splits.train, predict_logits(teacher, splits.train.inputs),
                       calibration=calibration_set(splits.train, config.export.calibration_samples),
                       epochs=d.qat_epochs, temperature=d.temperature, alpha=d.alpha)


def _report_unknown_tokens(recipe: dict, splits: Splits) -> dict:
    """With a pruned vocabulary: how many held-out tokens now read [UNK] (logged, and kept in the checkpoint)."""
    if not recipe.get("vocab"):
        return {}
    from edgedistill.distillation.compact import unknown_share

    test = splits.test.inputs
    unknown, total = unknown_share(test["input_ids"], test.get("attention_mask", test["input_ids"] != 0), recipe["vocab"])
    log.info("pruned vocabulary: %s of %s held-out tokens (%.2f%%) fall to [UNK]", f"{unknown:,}", f"{total:,}",
             100 * unknown / max(total, 1))
    return {"held_out_unknown_tokens": unknown, "held_out_tokens": total}


@within_config
def export(config: PipelineConfig) -> list[Path]:
    """Export the student named by ``config.student`` to every configured format and scheme."""
    if not has_weights(config.student):
        raise UserError(f"export needs a trained student: give its checkpoint (--student PATH), not {config.student.model}")
    check_writable_dir(Path(config.out) / "bundles")
    artifacts = config.export.artifacts()
    _check_inputs(config)  # every input is read before the backends load (seconds each)
    splits = load_splits(config)
    e = config.export
    calibration = read_calibration(e.calibration, splits.test.inputs) if e.calibration else None
    check_requested(artifacts)  # unknown format/scheme or missing backend: fail before loading any model
    student = load_model(config.student)
    teacher = load_model(config.teacher) if has_weights(config.teacher) else None
    check_compatible(teacher or student, student, splits.test)
    bundles = export_student(student, artifacts, out_dir=Path(config.out) / "bundles",
                             train=splits.train, test=splits.test, calibration_samples=e.calibration_samples,
                             teacher=teacher, temperature=config.distill.temperature, dynamic_batch=dynamic_batch_for(e),
                             student_info={"checkpoint": config.student.model, "parameters": count_parameters(student)},
                             calibration=calibration)
    checkpoint = lambda ref: Path(ref.model) if Path(ref.model).is_file() else None  # noqa: E731
    # validate (no flags) then checks exactly these bundles, with this run's models, data and target
    run_record.write(config, student=checkpoint(config.student), teacher=checkpoint(config.teacher), bundles=bundles,
                     target=e.target)
    return bundles


def runtime_threads(config: PipelineConfig) -> int:
    """Threads the host runtimes use: ``validate.threads``, else the target profile's ``threads``, else 1."""
    if config.validate_.threads:
        return config.validate_.threads
    if config.export.target:
        from edgedistill.target_profiles import load_profile

        return load_profile(config.export.target, check_formats=False).threads
    return 1


def dynamic_batch_for(export_config) -> bool:
    """The target profile's batch choice (device targets: static batch 1), else ``export.dynamic_batch``."""
    if export_config.target:
        from edgedistill.target_profiles import load_profile

        chosen = load_profile(export_config.target).dynamic_batch
        if chosen is not None:
            return chosen
    return export_config.dynamic_batch


@within_config
def validate(config: PipelineConfig, bundles: list[Path], device_outputs: list[Path] | None = None) -> Report:
    """Validate bundles against the teacher and the fp32 student on the held-out split; write reports.

    With ``device_outputs`` (one file per bundle), compare outputs produced on a device from each
    bundle's golden inputs instead (no teacher or student needed: the golden data holds their outputs).
    """
    if not bundles:
        raise UserError("no bundles to validate")
    v = config.validate_
    check_writable_dir(Path(config.out))  # a report that cannot be written fails before any model runs
    opened = open_bundles(bundles)  # missing files or a tampered model fail before anything runs
    if device_outputs:
        report = validate_device_run(opened, device_outputs, v.tolerances, top_k=v.top_k, ece_bins=v.ece_bins)
    else:
        for ref, role in ((config.teacher, "teacher"), (config.student, "student")):
            if not has_weights(ref):
                raise UserError(f"validate needs the trained {role}: give its checkpoint (--{role} PATH)")
        splits = load_splits(config)
        teacher, student = load_model(config.teacher), load_model(config.student)
        check_bundle_classes(teacher, splits.test, opened)
        check_compatible(teacher, student, splits.test)
        ckpt = lambda ref: Path(ref.model) if Path(ref.model).is_file() else None  # noqa: E731
        report = validate_bundles(opened, teacher=teacher, student=student, data=splits.test, tolerances=v.tolerances,
                                  teacher_checkpoint=ckpt(config.teacher), student_checkpoint=ckpt(config.student),
                                  latency_samples=v.latency_samples, measure_memory=v.measure_memory, top_k=v.top_k,
                                  ece_bins=v.ece_bins, batch_size=v.batch_size, threads=runtime_threads(config))
        if v.localize or v.repair != "off":
            from edgedistill.validation.repair import diagnose

            diagnose(report, opened, student=student, teacher=teacher, splits=splits, config=config,
                     repair=v.repair)
    write_reports(report, Path(config.out), plots=v.plots)
    return report


@within_config
def run_pipeline(config: PipelineConfig) -> Report:
    """distill -> export -> validate, each stage reading what the previous one wrote."""
    _check_inputs(config)
    check_requested(config.export.artifacts())  # a bad format or scheme fails before training, not after
    produced = distill(config)
    chained = config.model_copy(deep=True)
    chained.teacher = chained.teacher.model_copy(update={"model": str(produced.teacher_checkpoint), "checkpoint": None, "kwargs": {}})
    chained.student = chained.student.model_copy(update={"model": str(produced.student_checkpoint), "checkpoint": None, "kwargs": {}})
    bundles = export(chained)
    return validate(chained, bundles)
