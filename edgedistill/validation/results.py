"""What a validation run found: one ``Row`` per model, gathered in a ``Report`` (``report.json``).

``Report.to_dict()`` is the versioned ``report.json`` schema (``report.schema.json`` in this package);
bump ``SCHEMA_VERSION`` whenever a field changes meaning or disappears.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from typing import Any

import numpy as np

from edgedistill.validation.checks import Check

SCHEMA_VERSION = 2
_MEASURED = ("vs_teacher", "vs_student", "accuracy", "accuracy_drop", "ece", "flips_vs_teacher",
             "flips_vs_student", "per_class_agreement")


@dataclass
class Row:
    """One model in the comparison: the teacher, the fp32 student, an exported artifact or device outputs."""

    name: str
    role: str  # "teacher", "student", "artifact" or "device"
    runtime: str
    format: str
    quantization: str
    parameters: int
    size_bytes: int | None = None
    path: str | None = None
    sha256: str | None = None
    delegation: dict[str, Any] = field(default_factory=dict)
    float_modules: list[str] = field(default_factory=list)
    accuracy: float | None = None
    accuracy_drop: float | None = None
    ece: float | None = None
    vs_teacher: dict[str, float] | None = None
    vs_student: dict[str, float] | None = None
    flips_vs_teacher: list[dict[str, int]] = field(default_factory=list)
    flips_vs_student: list[dict[str, int]] = field(default_factory=list)
    per_class_agreement: list[float | None] = field(default_factory=list)
    latency_ms: float | None = None
    samples_per_s: float | None = None
    peak_memory_mb: float | None = None
    checks: list[Check] = field(default_factory=list)
    not_run: str | None = None  # why the artifact could not run here (its checks are skipped)
    localization: dict[str, Any] | None = None
    evaluator: str | None = None  # what ran the artifact when it is not the format's own runtime
    numerics: dict[str, Any] | None = None  # inf/NaN found while evaluating (reference evaluator)
    threads: int | None = None  # the artifact runtime's threads, read back from it (None: not settable, or no runtime)

    def set_measured(self, measured: dict[str, Any]) -> None:
        """Take the metrics of ``harness.measure``."""
        for key in _MEASURED:
            setattr(self, key, measured[key])

    def measured(self) -> dict[str, Any]:
        """The metrics in the shape ``checks.checks_for`` reads."""
        return {key: getattr(self, key) for key in _MEASURED}

    @property
    def passed(self) -> bool:
        """No check failed (a row whose checks were all skipped has not failed, nor passed)."""
        return not any(c.failed for c in self.checks)

    @property
    def status(self) -> str:
        if self.not_run:
            return "not run"
        if not self.passed:
            return "fail"
        return "reference" if self.role in ("teacher", "student") else "pass"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status, "passed": self.passed}


@dataclass
class Report:
    """All rows of one validation run; ``passed`` is the CI gate (no check failed)."""

    rows: list[Row]
    samples: int
    data: str
    top_k: int = 5
    ece_bins: int = 10
    num_classes: int | None = None
    labels: list[str] | None = None
    repairs: list[dict[str, Any]] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)
    # logits per row name (and the labels) for plots; not part of report.json
    outputs: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    y: np.ndarray | None = field(default=None, repr=False)

    def keep_outputs(self, row: Row, logits: np.ndarray, y: np.ndarray | None = None) -> None:
        """Remember a row's logits (and the labels) for the plots."""
        self.outputs[row.name] = logits
        if y is not None:
            self.y = y

    def row(self, role: str) -> Row:
        """The first row of a role ("teacher", "student")."""
        return next(r for r in self.rows if r.role == role)

    @property
    def not_run(self) -> list[Row]:
        """Artifacts that could not run on this machine (their checks were skipped)."""
        return [r for r in self.rows if r.role in ("artifact", "device") and r.not_run]

    @property
    def passed(self) -> bool:
        """The gate: no check failed and at least one artifact ran (a run that checked nothing never passes),
        the same for Python callers and the CLI."""
        return self.status == "pass"

    @property
    def status(self) -> str:
        """'fail' when a check failed, 'not run' when no artifact could run here, else 'pass'."""
        if not all(r.passed for r in self.rows):
            return "fail"
        checked = [r for r in self.rows if r.role in ("artifact", "device")]
        return "not run" if not checked or len(self.not_run) == len(checked) else "pass"

    def class_name(self, index: int) -> str:
        """A class's label when the data names them, else its index."""
        return self.labels[index] if self.labels and index < len(self.labels) else str(index)

    def to_dict(self) -> dict[str, Any]:
        """The ``report.json`` document."""
        return {"schema_version": SCHEMA_VERSION, "edgedistill_version": version("edgedistill"),
                "status": self.status, "passed": self.passed, "samples": self.samples, "data": self.data,
                "top_k": self.top_k, "ece_bins": self.ece_bins, "num_classes": self.num_classes, "labels": self.labels,
                "rows": [r.to_dict() for r in self.rows], "repairs": self.repairs, "plots": self.plots}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``report.json`` (shipped in the package as ``report.schema.json``)."""
    import json
    from importlib.resources import files

    return json.loads(files("edgedistill.validation").joinpath("report.schema.json").read_text(encoding="utf-8"))
