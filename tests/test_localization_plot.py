"""The per-module localization plot (issue 13): one PNG per localized artifact, named by report.json and
linked from report.md; built here from a synthetic localization, so it needs no export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgedistill.validation.localization_plot import plot_name, plottable, write_localization_plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    """A real PNG a viewer can open: the signature, a nonzero size, and matplotlib can read its pixels back."""
    import matplotlib.image

    assert path.is_file() and path.stat().st_size > 0, path
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert matplotlib.image.imread(path).ndim == 3


def synthetic_localization(intermediates: bool) -> dict:
    modules = [f"blocks.{b}.{part}" for b in range(3) for part in ("attn.qkv", "ff.0", "ff.2")]
    kl = {m: 0.01 * (i + 1) for i, m in enumerate(modules)}
    kl["blocks.1.ff.2"] = 3.0  # the planted culprit
    table = [{"module": m, "alone_top1": max(0.0, 1.0 - kl[m] / 4), "alone_kl": kl[m],
              "intermediate_error": (kl[m] if intermediates and i % 2 == 0 else None)}
             for i, m in enumerate(modules)]
    ranking = sorted(modules, key=lambda m: -kl[m])
    return {"available": True, "culprit": ranking[0], "ranking": ranking, "modules": table, "method": "pt2e",
            "intermediates": "runtime" if intermediates else "none", "summary": "synthetic"}


@pytest.mark.parametrize("intermediates", [True, False])
def test_plot_of_a_synthetic_localization_is_a_png(tmp_path, intermediates):
    path = write_localization_plot(synthetic_localization(intermediates), tmp_path / "loc.png", "onnx int8")
    assert_png(path)
    assert [p.name for p in tmp_path.iterdir()] == ["loc.png"]  # no temporary left behind


def test_only_module_sensitivity_tables_are_plotted():
    assert plottable(synthetic_localization(False))
    assert not plottable(None)
    not_localized = {"available": False, "culprit": None, "modules": [], "ranking": [], "summary": "not localized"}
    assert not plottable(not_localized)
    assert not plottable({"available": True, "modules": [{"op": "conv_3", "error": 1.0}], "summary": "first op"})


def test_plot_name_is_a_safe_file_name():
    assert plot_name("onnx int8") == "localization_onnx-int8.png"
    assert plot_name("litert int8 (student-litert-int8)") == "localization_litert-int8-student-litert-int8.png"
    assert "/" not in plot_name("../../etc/passwd") and not plot_name("../x").startswith("localization_.")


def synthetic_report():
    """A measured report: teacher, student and one ONNX int8 artifact carrying a synthetic localization."""
    from edgedistill.validation.harness import measure
    from edgedistill.validation.results import Report, Row

    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(32, 4)), rng.normal(size=(32, 4))
    rows = [Row(role, role, "torch", "pt", "fp32", 10) for role in ("teacher", "student")]
    rows.append(Row("onnx int8", "artifact", "onnxruntime", "onnx", "int8", 10,
                    localization=synthetic_localization(True)))
    report = Report(rows=rows, samples=32, data="synthetic", top_k=2, num_classes=4)
    for row, logits in zip(rows, (teacher, student, student + 0.1)):
        row.set_measured(measure(teacher, student, logits, None, top_k=2, ece_bins=10))
        report.keep_outputs(row, logits)
    return report


def test_report_names_and_links_the_plot_and_respects_no_plots(tmp_path):
    import json

    import jsonschema

    from edgedistill.validation.report import write_reports
    from edgedistill.validation.results import json_schema

    report = synthetic_report()

    write_reports(report, tmp_path / "off", plots=False)
    assert not list((tmp_path / "off").glob("*.png"))
    assert "plot" not in report.row("artifact").localization

    write_reports(report, tmp_path / "on")
    doc = json.loads((tmp_path / "on" / "report.json").read_text())
    jsonschema.validate(doc, json_schema())
    name = doc["rows"][2]["localization"]["plot"]
    assert name == "localization_onnx-int8.png" and Path(doc["plots"]["localization onnx int8"]).name == name
    assert_png(tmp_path / "on" / name)
    assert f"([per-module plot]({name}))" in (tmp_path / "on" / "report.md").read_text()


def test_report_md_shows_the_per_module_table_most_sensitive_first(tmp_path):
    from edgedistill.validation.report import markdown

    report = synthetic_report()
    table = [line for line in markdown(report).splitlines() if line.startswith("| blocks.")]
    assert len(table) == 9, table  # every module, the planted culprit first, with what it costs alone
    assert table[0] == "| blocks.1.ff.2 | 25.00% | 3 | — |", table[0]
    assert table[1].startswith("| blocks.2.ff.2 |") and table[1].endswith("| 0.09 |"), table[1]
