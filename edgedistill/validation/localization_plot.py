"""PNG of a localization: per module, what quantizing only that module costs (issue 13).

One horizontal bar per module, most sensitive on top, the top culprits highlighted:

- agreement lost (1 − top-1 agreement with the fp32 student) with only that module in int8;
- mean KL against the fp32 student with only that module in int8;
- where the artifact's runtime exposes its tensors, the module's intermediate error (``localize.py``).

matplotlib (Agg backend) is imported only when a plot is written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgedistill.errors import require
from edgedistill.fileio import atomic_path
from edgedistill.validation.results import Report

HIGHLIGHTED = 3  # the culprits named in the localization summary
_CULPRIT, _OTHER = "#d62728", "#9aa5b1"


def plottable(localization: dict[str, Any] | None) -> bool:
    """A localization with a per-module sensitivity table (not the op-level or 'not localized' kinds)."""
    modules = (localization or {}).get("modules") or []
    return bool(localization and localization.get("available")) and all("alone_kl" in m for m in modules) \
        and bool(modules)


def plot_name(row_name: str) -> str:
    """``localization_onnx-int8.png`` for the row ``onnx int8``: a file name safe on every filesystem."""
    return "localization_" + (re.sub(r"[^A-Za-z0-9._-]+", "-", row_name).strip("-.") or "artifact") + ".png"


def write_localization_plot(localization: dict[str, Any], path: Path, title: str) -> Path:
    """Write the per-module bars of ``localization`` (see ``plottable``) as a PNG at ``path``."""
    require("matplotlib", "plot", "matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_name = {m["module"]: m for m in localization["modules"]}
    ranking = [m for m in localization.get("ranking") or [] if m in by_name]
    order = ranking + [m for m in by_name if m not in ranking]  # most sensitive first
    colors = [_CULPRIT if i < HIGHLIGHTED else _OTHER for i in range(len(order))]
    panels = [("agreement lost\n(1 − top-1 vs fp32 student)", [1.0 - by_name[m]["alone_top1"] for m in order]),
              ("mean KL vs fp32 student", [by_name[m]["alone_kl"] for m in order])]
    errors = [by_name[m].get("intermediate_error") for m in order]
    if any(e is not None for e in errors):
        panels.append(("intermediate error in the runtime\n(RMS error / RMS fp32)",
                       [float("nan") if e is None else e for e in errors]))
    y = list(range(len(order)))
    fig, axes = plt.subplots(1, len(panels), sharey=True,
                             figsize=(3.6 * len(panels) + 2.0, max(2.4, 0.28 * len(order) + 1.2)))
    for ax, (label, values) in zip(axes, panels):
        ax.barh(y, values, color=colors)
        ax.set_xlabel(label, fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, order, fontsize=7)
    axes[0].invert_yaxis()  # most sensitive on top
    fig.suptitle(f"{title}: each module quantized alone (culprits in red)", fontsize=9)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def write_localization_plots(report: Report, out: Path) -> dict[str, Path]:
    """One PNG per localized row into ``out``; names it in the row's localization (``plot``) and returns
    ``localization <row>`` -> path for the report's list of plots."""
    written = {}
    for row in report.rows:
        if plottable(row.localization):
            path = write_localization_plot(row.localization, Path(out) / plot_name(row.name), row.name)
            row.localization["plot"] = path.name  # relative: the report and its plots travel together
            written[f"localization {row.name}"] = path
    return written
