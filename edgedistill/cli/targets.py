"""``edgedistill targets``: which formats this machine can export and run, and what to install for the rest."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("targets", help="list formats this machine can export and run")
    p.add_argument("-v", "--verbose", action="store_true", help="show third-party logs and warnings")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from edgedistill import formats
    from edgedistill.quiet import quiet

    rows = [("format", "file", "quantization", "status")]
    for name in formats.names():
        module = formats.get(name)
        with quiet():
            problem = module.missing()
        rows.append((name, module.SUFFIX, ",".join(module.SCHEMES), "export + run here" if problem is None else problem))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
    return 0
