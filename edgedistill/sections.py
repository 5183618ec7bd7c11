"""Config models shared by the pipeline config (``config``) and target profiles (``target_profiles``).

A target profile is made of the same artifact specs and tolerances as a pipeline config, so both
import them from here; this module imports neither of them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ArtifactSpec(Section):
    """One artifact to build: a format, a quantization scheme and the format's options."""

    format: str
    quantization: str = "fp32"
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def bundle_name(self) -> str:
        """Folder name of its bundle, e.g. ``student-executorch-int8`` or ``student-executorch-coreml-fp16``."""
        backend = self.options.get("backend")
        return "-".join(["student", self.format, *([str(backend)] if backend else []), self.quantization])


class Tolerance(Section):
    """Bounds an artifact must meet to pass validation; a bound left at None is not checked.

    Names read ``min|max _ teacher|student _ metric``: the metric of the artifact against the teacher
    or against the fp32 student (see ``edgedistill.validation.metrics.compare``).
    """

    min_teacher_top1: float | None = Field(0.90, ge=0.0, le=1.0, description="top-1 agreement with the teacher")
    min_teacher_topk: float | None = Field(None, ge=0.0, le=1.0, description="teacher's top-1 within the artifact's top-k")
    max_teacher_mean_kl: float | None = Field(None, ge=0.0, description="mean KL(teacher || artifact)")
    max_teacher_max_kl: float | None = Field(None, ge=0.0, description="worst-sample KL(teacher || artifact)")
    max_teacher_abs_dp: float | None = Field(None, ge=0.0, le=1.0, description="max |Δp| against the teacher")
    max_teacher_p99_dp: float | None = Field(None, ge=0.0, le=1.0, description="99th percentile |Δp| vs the teacher")
    min_student_top1: float | None = Field(None, ge=0.0, le=1.0, description="top-1 agreement with the fp32 student")
    min_student_topk: float | None = Field(None, ge=0.0, le=1.0, description="student's top-1 within the artifact's top-k")
    max_student_mean_kl: float | None = Field(None, ge=0.0, description="mean KL(student || artifact)")
    max_student_max_kl: float | None = Field(None, ge=0.0, description="worst-sample KL(student || artifact)")
    max_student_abs_dp: float | None = Field(0.05, ge=0.0, le=1.0, description="max |Δp| against the fp32 student")
    max_student_p99_dp: float | None = Field(None, ge=0.0, le=1.0, description="99th percentile |Δp| vs the student")
    min_accuracy: float | None = Field(None, ge=0.0, le=1.0, description="top-1 accuracy on the labels")
    max_accuracy_drop: float | None = Field(None, ge=0.0, le=1.0, description="fp32 student accuracy minus artifact's")
    max_ece: float | None = Field(None, ge=0.0, le=1.0, description="expected calibration error on the labels")


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
