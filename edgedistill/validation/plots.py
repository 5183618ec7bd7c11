"""PNG plots of a validation run (matplotlib, Agg backend, imported only when plots are written):

- ``abs_dp_hist.png``: per-sample max |Δp| of each model against the teacher and the fp32 student;
- ``reliability.png``: reliability diagram (accuracy per confidence bin) when the data has labels;
- ``per_class_agreement.png``: for each class the teacher predicts, how often each model agrees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedistill.errors import require
from edgedistill.fileio import atomic_path
from edgedistill.validation import metrics
from edgedistill.validation.results import Report


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def write_plots(report: Report, out: Path) -> dict[str, Path]:
    """Write the plots into ``out``; returns name -> path (the reliability diagram needs labels)."""
    require("matplotlib", "plot", "matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    teacher = report.outputs["teacher"]
    student = report.outputs.get("student")
    models = {name: logits for name, logits in report.outputs.items() if name != "teacher"}
    written: dict[str, Path] = {}

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    bins = np.linspace(0.0, 1.0, 51)
    for ax, (ref_name, ref) in zip(axes, (("teacher", teacher), ("fp32 student", student))):
        for name, logits in models.items():
            if ref is None or logits is ref:
                continue
            dp = np.abs(metrics.softmax(logits) - metrics.softmax(ref)).max(-1)
            ax.hist(np.clip(dp, 0, 1), bins=bins, histtype="step", linewidth=1.5, label=name)
        ax.set(title=f"max |Δp| per sample vs {ref_name}", xlabel="max |Δp|", yscale="log")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("samples")
    written["abs_dp_hist"] = _save(fig, Path(out) / "abs_dp_hist.png")
    plt.close(fig)

    if report.y is not None:
        fig, ax = plt.subplots(figsize=(4.5, 4.2))
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
        for name, logits in report.outputs.items():
            table = metrics.reliability(logits, report.y, report.ece_bins)
            ax.plot([b["confidence"] for b in table], [b["accuracy"] for b in table], marker="o", label=name)
        ax.set(title="reliability diagram", xlabel="confidence (max probability)", ylabel="accuracy",
               xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(fontsize=7)
        written["reliability"] = _save(fig, Path(out) / "reliability.png")
        plt.close(fig)

    classes = np.arange(teacher.shape[-1])
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(classes) + 2), 3.6))
    for i, (name, logits) in enumerate(models.items()):
        agree = [np.nan if a is None else a for a in metrics.per_class_agreement(teacher, logits)]
        ax.bar(classes + i * width - 0.4 + width / 2, agree, width=width, label=name)
    ax.set_xticks(classes, [report.class_name(int(c)) for c in classes])
    ax.set(title="agreement with the teacher per teacher-predicted class", xlabel="class", ylabel="agreement",
           ylim=(0, 1.05))
    ax.legend(fontsize=7, loc="lower right")
    written["per_class_agreement"] = _save(fig, Path(out) / "per_class_agreement.png")
    plt.close(fig)
    return written
