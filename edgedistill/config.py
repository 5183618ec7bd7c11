"""Typed pipeline configuration: one TOML file, one model per stage, unknown keys rejected.

Every section has defaults that together describe the built-in digits demo, so an empty
config is a valid pipeline. CLI flags and ``--set section.key=value`` override the file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from edgedistill.errors import UserError
from edgedistill.formats.schemes import SCHEMES
# ArtifactSpec, Tolerance and format_validation_error stay importable from here; they live in sections
# because target profiles (which this module reads) are made of them too
from edgedistill.sections import ArtifactSpec, Section as _Section, Tolerance, format_validation_error
from edgedistill.target_profiles import TargetProfile, check_formats_of, load_profile, tolerance_overrides

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

Fraction = Field(ge=0.0, le=1.0)
DEMO_TEACHER_EPOCHS = 40


class ModelRef(_Section):
    """Where a model comes from: a factory ``package.module:function`` or an edgedistill checkpoint."""

    model: str
    checkpoint: str | None = Field(None, description="state dict for the factory (weights_only load)")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the factory")


class TeacherConfig(ModelRef):
    """``[teacher]``: the model to distil from (default: the digits demo teacher, trained on labels first)."""

    model: str = "edgedistill.zoo.digits:teacher"
    train_epochs: int | None = Field(
        None, ge=0, description="train (or fine-tune) the teacher on labels first for N epochs; 0 = use as is; "
        f"unset = use as is, except a factory marked needs_training (the demo's) trains {DEMO_TEACHER_EPOCHS}")
    train_lr: float = Field(3e-3, gt=0)


class StudentConfig(ModelRef):
    """``[student]``: the model to train, built by its factory or derived from the teacher by keeping layers."""

    model: str = "edgedistill.zoo.digits:student"
    keep_every: int = Field(0, ge=0, description="derive the student from the teacher, keeping every k-th layer "
                            "(or block); 0 = build student.model")
    keep_layers: list[int] = Field(default_factory=list, description="derive: exactly these teacher layers")
    hidden_size: int = Field(0, ge=0, description="derive a narrower student: hidden size (teacher's most important "
                             "dimensions); 0 = the teacher's")
    heads: int = Field(0, ge=0, description="derive: attention heads per layer (most important kept); 0 = the teacher's")
    ffn: int = Field(0, ge=0, description="derive: FFN width per layer (most important neurons kept); 0 = the teacher's")
    prune_vocab: bool = Field(False, description="derive: keep embedding rows only for tokens seen in the training "
                              "data (+ special tokens); other ids read [UNK]'s row")


class DataConfig(_Section):
    """``[data]``: where the samples come from, how text and images become model inputs, and the seeded split."""

    source: str = Field("digits", description="'digits', an .npz, an image folder, a .jsonl text file, "
                        "or package.module:function returning a dataset")
    tokenizer: str | None = Field(None, description=".jsonl: local Hugging Face tokenizer directory "
                                  "(default: the teacher's, when it is one)")
    max_length: int = Field(128, ge=1, description=".jsonl: tokens per sample (padded / truncated)")
    text_field: str = "text"
    label_field: str = "label"
    image_size: list[int] | None = Field(None, description="image folder: resize to [height, width]")
    image_mean: list[float] | None = Field(None, description="image folder: per-channel mean to subtract")
    image_std: list[float] | None = Field(None, description="image folder: per-channel std to divide by")
    test_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0


class FeatureMapping(_Section):
    """Distil the output of one student module toward one teacher module."""

    student: str = Field(description="student module name, e.g. encoder.layer.1")
    teacher: str = Field(description="teacher module name, e.g. encoder.layer.3")
    loss: Literal["mse", "cosine", "distilbert-cosine"] = "mse"
    weight: float = Field(1.0, ge=0.0)


class LossesConfig(_Section):
    """What the distillation loss is made of (the defaults are the classic KL + CE blend)."""

    soft_target: Literal["kl", "reverse-kl", "mse"] = Field("kl", description="the alpha-weighted KD term")
    features: list[FeatureMapping] = Field(default_factory=list, description="[[distill.losses.features]] mappings")


class DistillConfig(_Section):
    """``[distill]``: the training run: KD temperature and weight, optimiser and schedule, checkpoints,
    device, and where the teacher's logits come from (in memory or a disk cache)."""

    temperature: float = Field(4.0, gt=0.0)
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="weight of the KD term; 1 - alpha weights CE")
    qat: Literal["off", "int8"] = Field("off", description="after distilling, fine-tune under simulated int8 "
                                        "(quantization-aware distillation) so int8 exports keep agreement")
    qat_epochs: int = Field(4, ge=1, description="epochs of quantization-aware distillation (distill.qat)")
    epochs: int = Field(60, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-2, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    seed: int = 0
    warmup_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of steps warming the lr up, then cosine")
    grad_clip: float = Field(1.0, ge=0.0, description="max global gradient norm; 0 = no clipping")
    patience: int = Field(0, ge=0, description="stop after N epochs without a better validation score; 0 = never")
    checkpoint_every: int = Field(0, ge=0, description="also checkpoint every N steps (always at each epoch's end)")
    resume: str | None = Field(None, description="training checkpoint to continue from; 'last' = <out>/checkpoints/last.pt")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = Field(True, description="bf16 autocast when training on a GPU (CPU always trains in fp32)")
    losses: LossesConfig = Field(default_factory=LossesConfig)
    teacher_cache: Literal["auto", "on", "off"] = Field(
        "off", description="store teacher logits on disk (float16) and reuse them across epochs and runs; "
        "auto = unless the data is augmented; off (default) = in memory, float32, each run")
    cache_dir: str | None = Field(None, description="teacher cache folder (default: <out>/teacher-cache)")
    cache_top_k: int = Field(100, ge=1, description="above 1000 classes, cache only the top-k logits")


class ExportConfig(_Section):
    """``[export]``: what to build (formats x schemes, or a target profile) and how to calibrate it."""

    _profile: tuple[str, TargetProfile] | None = PrivateAttr(None)  # (target, profile) read by load_config
    target: str | None = Field(None, description="device profile (ios, android, linux-arm64 or a .toml); "
                                                 "replaces formats x quantization")
    formats: list[str] = Field(default_factory=lambda: ["executorch"])
    quantization: list[str] = Field(default_factory=lambda: ["fp32", "int8"])
    calibration_samples: int = Field(256, ge=1)
    dynamic_batch: bool = True
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-format exporter options, e.g. [export.options.coreml]")
    select: Literal["fastest", "smallest"] | None = Field(
        None, description="build every candidate of the target, validate and time each, keep the best passing one "
                          "as bundles/default (needs a target)")
    select_device: str | None = Field(None, description="time the candidates there with bench (adb, ssh://...) "
                                                        "instead of on this machine")
    select_runners: list[str] = Field(default_factory=list, description="device-built runners for select_device, one "
                                      "per format (executor_runner, benchmark_model, onnxruntime_perf_test)")
    calibration: str | None = Field(None, description="calibration .npz (edgedistill calibrate); "
                                                      "default: calibration_samples drawn from the training split")

    def artifacts(self) -> list[ArtifactSpec]:
        """What to build: the target profile's artifacts, or every format x quantization."""
        if self.target:
            profile = self._profile if self._profile is not None and self._profile[0] == self.target else None
            profile = profile[1] if profile else load_profile(self.target, check_formats=False)
            check_formats_of(profile, self.target)
            return [a.model_copy(update={"options": {**self.options.get(a.format, {}), **a.options}})
                    for a in profile.artifacts]
        return [ArtifactSpec(format=f, quantization=q, options=self.options.get(f, {}))
                for f in self.formats for q in self.quantization]


def _default_tolerances() -> dict[str, Tolerance]:
    """One tolerance per scheme of ``formats.schemes.SCHEMES``: tight for fp32 and fp16, else the lossy bounds."""
    lossy = Tolerance(min_teacher_top1=0.90, max_student_abs_dp=0.25, min_student_top1=0.95, max_accuracy_drop=0.03)
    exact = {
        "fp32": Tolerance(min_teacher_top1=0.90, max_student_abs_dp=0.001, min_student_top1=0.999),
        "fp16": Tolerance(min_teacher_top1=0.90, max_student_abs_dp=0.02, min_student_top1=0.99),
    }
    return {s: exact.get(s, lossy).model_copy() for s in SCHEMES}


class ValidateConfig(_Section):
    """``[validate]``: per-scheme tolerances (over the defaults), metric settings, and what to do on a
    failure (localize the layer, repair by keeping layers in float)."""

    tolerances: dict[str, Tolerance] = Field(default_factory=_default_tolerances)
    top_k: int = Field(5, ge=1, description="k of top-k agreement (capped at the number of classes)")
    batch_size: int = Field(256, ge=1, description="samples per call, where the artifact takes batches")
    ece_bins: int = Field(10, ge=1, description="equal-width confidence bins of the calibration error")
    latency_samples: int = Field(200, ge=1)
    threads: int | None = Field(None, ge=1, description="threads the artifacts' runtimes run on (ONNX Runtime intra-op, "
                                "LiteRT, ExecuTorch's XNNPACK pool); default: the target profile's threads, else 1")
    measure_memory: bool = True
    plots: bool = Field(True, description="write PNG plots next to the reports (needs matplotlib)")
    localize: bool = Field(True, description="when an artifact fails against the student, find the layer")
    repair: Literal["off", "mixed", "equalize", "qat", "auto"] = Field(
        "off", description="repair failing int8 artifacts: mixed (keep the most sensitive modules in float), "
        "equalize (cross-layer equalization, then PTQ again, everything int8), qat (quantization-aware "
        "distillation from the equalized student, everything int8), auto (equalize, else mixed, else qat)")
    repair_max_float_share: float = Field(
        0.3, gt=0.0, lt=1.0, description="mixed repair fails (auto then tries qat) when it needs a larger share "
        "of the quantizable modules in float")
    qat_epochs: int = Field(4, ge=1, description="epochs of quantization-aware distillation (repair qat)")

    @field_validator("repair", mode="before")
    @classmethod
    def _repair_flag(cls, value: Any) -> Any:
        """``repair = true`` (the flag before strategies existed) means mixed precision."""
        return {True: "mixed", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("tolerances", mode="before")
    @classmethod
    def _over_defaults(cls, value: Any) -> Any:
        """A config's ``[validate.tolerances.<scheme>]`` changes only the keys it names."""
        if not isinstance(value, dict):
            return value
        merged: dict[str, Any] = {k: v.model_dump() for k, v in _default_tolerances().items()}
        for scheme, bounds in value.items():
            given = bounds.model_dump(exclude_unset=True) if isinstance(bounds, Tolerance) else bounds
            merged[scheme] = {**merged.get(scheme, {}), **given} if isinstance(given, dict) else given
        return merged


class BenchConfig(_Section):
    """On-device benchmark settings (``edgedistill bench``)."""

    warmup: int = Field(5, ge=0, description="warm-up runs per process, not timed")
    runs: int = Field(20, ge=1, description="timed runs per process")
    processes: int = Field(3, ge=1, description="separate runner processes per bundle")
    threads: int | None = Field(None, ge=1, description="runner threads (default: one per big core)")
    cooldown: float | None = Field(None, ge=0, description="fixed cool-down seconds (default: until thermal status is normal)")
    cooldown_max: float = Field(120.0, ge=0, description="longest wait for a normal thermal status")
    timeout: float = Field(120.0, gt=0, description="seconds one remote command may take")


class PipelineConfig(_Section):
    """The whole pipeline: teacher, student, data, distillation, export, validation."""

    out: str = "edgedistill-out"
    trust_factories: list[str] = Field(
        default_factory=list, description="modules (or module:function) whose factories a checkpoint may call; "
        "edgedistill's own and the teacher/student factories named here are always trusted (see edgedistill.trust)")
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    validate_: ValidateConfig = Field(default_factory=ValidateConfig, alias="validate")
    bench: BenchConfig = Field(default_factory=BenchConfig)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict in TOML shape (None values dropped, since TOML has no null)."""
        return _drop_none(self.model_dump(by_alias=True))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


def parse_override(item: str) -> tuple[str, Any]:
    """Parse ``section.key=value``; the value is read as TOML, else kept as a string."""
    if "=" not in item:
        raise UserError(f"--set expects section.key=value, got {item!r}")
    key, raw = item.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def _apply(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"cannot set {dotted}: {part} is not a section")
        node = child
    node[leaf] = value


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Load a pipeline config from TOML (or defaults), apply dotted overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file not found: {path}")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"config file {path} is not valid TOML: {exc}") from None
    for key, value in (overrides or {}).items():
        if value is not None:
            _apply(data, key, value)
    target = data.get("export", {}).get("target") if isinstance(data.get("export"), dict) else None
    profile = load_profile(str(target), check_formats=False) if target else None  # read once, here
    if profile is not None:  # precedence: defaults < the target profile's tolerances < the user's own
        validate = data.setdefault("validate", {})
        user = validate.get("tolerances", {}) if isinstance(validate, dict) else None
        if isinstance(user, dict):  # anything else is reported by the schema below, in one line
            merged = tolerance_overrides(profile)
            for scheme, bounds in user.items():
                merged[scheme] = {**merged.get(scheme, {}), **bounds} if isinstance(bounds, dict) else bounds
            validate["tolerances"] = merged
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, prefix=f"config {path}" if path else "config")) from None
    if profile is not None:
        config.export._profile = (str(target), profile)
    return config


def dump_toml(config: PipelineConfig) -> str:
    """The resolved config as TOML: the file that reproduces this run."""
    import tomli_w

    return tomli_w.dumps(config.to_dict())
