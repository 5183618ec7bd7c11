"""Typed pipeline configuration: one TOML file, one model per stage, unknown keys rejected.

Every section has defaults that together describe the built-in digits demo, so an empty
config is a valid pipeline. CLI flags and ``--set section.key=value`` override the file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgedistill.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

Fraction = Field(ge=0.0, le=1.0)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelRef(_Section):
    """Where a model comes from: a factory ``package.module:function`` or an edgedistill checkpoint."""

    model: str
    checkpoint: str | None = Field(None, description="state dict for the factory (weights_only load)")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the factory")


class TeacherConfig(ModelRef):
    model: str = "edgedistill.zoo.digits:teacher"
    train_epochs: int = Field(40, ge=0, description="train the teacher on labels first (demo); 0 = use as is")
    train_lr: float = Field(3e-3, gt=0)


class StudentConfig(ModelRef):
    model: str = "edgedistill.zoo.digits:student"


class DataConfig(_Section):
    source: str = Field("digits", description="'digits' or a path to an .npz with x (and optional y)")
    test_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0


class DistillConfig(_Section):
    temperature: float = Field(4.0, gt=0.0)
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="weight of the KD term; 1 - alpha weights CE")
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


class ArtifactSpec(_Section):
    """One artifact to build: a format, a quantization scheme and the format's options."""

    format: str
    quantization: str = "fp32"
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def bundle_name(self) -> str:
        """Folder name of its bundle, e.g. ``student-executorch-int8`` or ``student-executorch-coreml-fp16``."""
        backend = self.options.get("backend")
        return "-".join(["student", self.format, *([str(backend)] if backend else []), self.quantization])


class ExportConfig(_Section):
    target: str | None = Field(None, description="device profile (ios, android, linux-arm64 or a .toml); "
                                                 "replaces formats x quantization")
    formats: list[str] = Field(default_factory=lambda: ["executorch"])
    quantization: list[str] = Field(default_factory=lambda: ["fp32", "int8"])
    calibration_samples: int = Field(256, ge=1)
    dynamic_batch: bool = True
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-format exporter options, e.g. [export.options.coreml]")
    calibration: str | None = Field(None, description="calibration .npz (edgedistill calibrate); "
                                                      "default: calibration_samples drawn from the training split")

    def artifacts(self) -> list[ArtifactSpec]:
        """What to build: the target profile's artifacts, or every format x quantization."""
        if self.target:
            from edgedistill.target_profiles import load_profile

            return [a.model_copy(update={"options": {**self.options.get(a.format, {}), **a.options}})
                    for a in load_profile(self.target).artifacts]
        return [ArtifactSpec(format=f, quantization=q, options=self.options.get(f, {}))
                for f in self.formats for q in self.quantization]


class Tolerance(_Section):
    """Bounds an artifact must meet to pass validation."""

    min_teacher_top1: float = Field(0.90, ge=0.0, le=1.0, description="top-1 agreement with the teacher")
    max_student_abs_dp: float = Field(0.05, ge=0.0, le=1.0, description="max |Δp| against the fp32 student")


def _default_tolerances() -> dict[str, Tolerance]:
    # keys are the quantization schemes of edgedistill.formats.base.SCHEMES
    lossy = Tolerance(min_teacher_top1=0.90, max_student_abs_dp=0.25)
    return {
        "fp32": Tolerance(min_teacher_top1=0.90, max_student_abs_dp=0.001),
        "fp16": Tolerance(min_teacher_top1=0.90, max_student_abs_dp=0.02),
        **{s: lossy.model_copy() for s in ("int8", "int8-dynamic", "int8-weight", "int4-weight",
                                           "palettize8", "palettize6", "palettize4")},
    }


class ValidateConfig(_Section):
    tolerances: dict[str, Tolerance] = Field(default_factory=_default_tolerances)

    @field_validator("tolerances", mode="before")
    @classmethod
    def _over_defaults(cls, given: Any) -> Any:
        """A file that sets one scheme's bound keeps every other default (merged key by key)."""
        if not isinstance(given, dict):
            return given
        merged = {k: v.model_dump() for k, v in _default_tolerances().items()}
        for scheme, bounds in given.items():
            bounds = bounds.model_dump() if isinstance(bounds, Tolerance) else bounds
            merged[scheme] = {**merged.get(scheme, {}), **bounds} if isinstance(bounds, dict) else bounds
        return merged
    latency_samples: int = Field(200, ge=1)
    measure_memory: bool = True


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
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    validate_: ValidateConfig = Field(default_factory=ValidateConfig, alias="validate")
    bench: BenchConfig = Field(default_factory=BenchConfig)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def tolerance_for(self, scheme: str) -> Tolerance:
        """Tolerance for a quantization scheme (falls back to fp32's for unknown schemes)."""
        tols = self.validate_.tolerances
        return tols.get(scheme) or tols.get("fp32") or Tolerance()

    def to_dict(self) -> dict[str, Any]:
        """Plain dict in TOML shape (None values dropped, since TOML has no null)."""
        return _drop_none(self.model_dump(by_alias=True))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


def format_validation_error(exc: ValidationError, prefix: str = "config") -> str:
    """One line describing every problem pydantic found."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}'")
        else:
            parts.append(f"{loc}: {err['msg']}" + (f" (got {err['input']!r})" if "input" in err else ""))
    return f"{prefix}: " + "; ".join(parts)


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
    if target:  # precedence: defaults < the target profile's tolerances < the user's own
        from edgedistill.target_profiles import tolerance_overrides

        validate = data.setdefault("validate", {})
        user = validate.get("tolerances", {})
        merged = tolerance_overrides(str(target))
        for scheme, bounds in user.items():
            merged[scheme] = {**merged.get(scheme, {}), **bounds}
        validate["tolerances"] = merged
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, prefix=f"config {path}" if path else "config")) from None


def dump_toml(config: PipelineConfig) -> str:
    """The resolved config as TOML: the file that reproduces this run."""
    import tomli_w

    return tomli_w.dumps(config.to_dict())
