"""JUnit XML: one testcase per artifact × check, so CI systems show validation results natively.

Suites are artifacts (classname = the bundle folder's name); a failed check is a ``<failure>``, a check
that could not be measured (no labels, runtime not available here) is ``<skipped>``, never a pass.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from edgedistill.validation.results import Report


def junit_xml(report: Report) -> str:
    """The report as a JUnit XML document (testsuites > testsuite per artifact > testcase per check)."""
    suites = ET.Element("testsuites", name="edgedistill validate")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for row in report.rows:
        if not row.checks:
            continue
        classname = f"edgedistill.{Path(row.path).name if row.path else row.name}"
        counts = {"tests": len(row.checks), "failures": sum(c.failed for c in row.checks),
                  "skipped": sum(c.status == "skipped" for c in row.checks)}
        suite = ET.SubElement(suites, "testsuite", name=row.name, errors="0", time="0",
                              **{k: str(v) for k, v in counts.items()})
        runtime = row.evaluator or row.runtime
        ET.SubElement(ET.SubElement(suite, "properties"), "property", name="runtime", value=runtime)
        where = f" [{row.evaluator}]" if row.evaluator else ""
        for check in row.checks:
            case = ET.SubElement(suite, "testcase", classname=classname, name=check.name, time="0")
            if check.failed:
                ET.SubElement(case, "failure", message=check.describe() + where, type="ToleranceExceeded").text = (
                    f"{row.name}: {check.describe()} (tolerance {row.quantization}.{check.bound_key}){where}")
            elif check.status == "skipped":
                ET.SubElement(case, "skipped", message=check.reason or "skipped")
            else:
                ET.SubElement(case, "system-out").text = check.describe() + where
        for key in totals:
            totals[key] += counts[key]
    suites.attrib.update({k: str(v) for k, v in totals.items()}, errors="0")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
