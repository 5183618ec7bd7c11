"""Pass/fail checks: every bound of a ``Tolerance`` that is set becomes one check of one artifact.

A check passes, fails, or is skipped (the metric cannot be measured: no labels, or the artifact's
runtime does not run on this machine). A skipped check is never counted as a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgedistill.config import Tolerance

_PER_REFERENCE = {"top1": "top1_agreement", "topk": "topk_agreement", "mean_kl": "mean_kl", "max_kl": "max_kl",
                  "abs_dp": "max_abs_dp", "p99_dp": "p99_abs_dp"}
# tolerance key -> (what the artifact is compared with, metric, "min" or "max")
BOUNDS: dict[str, tuple[str, str, str]] = {
    **{f"{'min' if short.startswith('top') else 'max'}_{ref}_{short}":
       (ref, metric, "min" if short.startswith("top") else "max")
       for ref in ("teacher", "student") for short, metric in _PER_REFERENCE.items()},
    "min_accuracy": ("labels", "accuracy", "min"),
    "max_accuracy_drop": ("student", "accuracy_drop", "max"),
    "max_ece": ("labels", "ece", "max"),
}
assert set(BOUNDS) == set(Tolerance.model_fields), "every Tolerance field needs a check (and vice versa)"


@dataclass
class Check:
    """One bound on one metric of one artifact."""

    name: str  # e.g. top1_agreement_vs_teacher
    bound_key: str  # the Tolerance key that sets it, e.g. min_teacher_top1
    value: float | None
    bound: float
    kind: str  # "min" or "max"
    status: str  # "pass", "fail" or "skipped"
    reason: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def describe(self) -> str:
        """``name = value, needs ≥ bound`` (or the reason it was skipped)."""
        op = "≥" if self.kind == "min" else "≤"
        if self.value is None:
            return f"{self.name}: not checked ({self.reason}), needs {op} {self.bound:g}"
        return f"{self.name} = {self.value:.4f}, needs {op} {self.bound:g}"


def check_name(key: str) -> str:
    """The check a tolerance key sets, e.g. min_teacher_top1 -> top1_agreement_vs_teacher."""
    reference, metric, _ = BOUNDS[key]
    return metric if reference == "labels" else f"{metric}_vs_{reference}"


def measured_value(measured: dict[str, Any], key: str) -> float | None:
    """The value a tolerance key bounds, from ``{"vs_teacher": {...}, "vs_student": {...}, "accuracy": …}``."""
    reference, metric, _ = BOUNDS[key]
    if metric in ("accuracy", "ece", "accuracy_drop"):
        return measured.get(metric)
    table = measured.get(f"vs_{reference}")
    return None if table is None else table.get(metric)


def checks_for(measured: dict[str, Any], tol: Tolerance, not_run: str | None = None,
               cannot_check: str | None = None) -> list[Check]:
    """One check per bound set in ``tol``; ``not_run`` (a reason) skips them all, ``cannot_check`` (the
    artifact ran in an evaluator that cannot execute it, e.g. an op it lacks) fails them all."""
    checks = []
    for key in BOUNDS:
        bound = getattr(tol, key)
        if bound is None:
            continue
        kind = BOUNDS[key][2]
        if cannot_check:
            checks.append(Check(check_name(key), key, None, bound, kind, "fail", cannot_check))
            continue
        value = None if not_run else measured_value(measured, key)
        if value is None:
            reason = f"not run: {not_run}" if not_run else "no labels in the data"
            checks.append(Check(check_name(key), key, None, bound, kind, "skipped", reason))
            continue
        ok = value >= bound if kind == "min" else value <= bound
        checks.append(Check(check_name(key), key, value, bound, kind, "pass" if ok else "fail"))
    return checks
