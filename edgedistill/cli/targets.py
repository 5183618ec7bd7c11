"""``edgedistill targets``: the formats and device profiles, and what this machine can build and run."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("targets", help="list formats and device profiles, and what this machine can build and run")
    p.add_argument("-v", "--verbose", action="store_true", help="show third-party logs and warnings")
    p.set_defaults(run=run)


def _status(fmt_name: str, options: dict) -> tuple[str, str]:
    """(build, run) status of one artifact on this machine."""
    from edgedistill import formats

    module = formats.get(fmt_name)
    missing = module.missing()
    if missing:
        return "no", missing
    run_problem = module.host_run_problem(options)
    return "yes", run_problem or "yes"


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows)


def run(args: argparse.Namespace) -> int:
    from edgedistill import formats
    from edgedistill.quiet import quiet
    from edgedistill.target_profiles import builtin_names, load_profile

    lines = []
    with quiet():  # backend imports are noisy; our own lines are printed after
        rows = [("format", "file", "quantization schemes", "build here", "run here")]
        for name in formats.names():
            module = formats.get(name)
            build, run_here = _status(name, {})
            rows.append((name, module.SUFFIX, ",".join(module.SCHEMES), build, run_here))
        lines.append(_table(rows))
        for target in builtin_names():
            profile = load_profile(target, check_formats=False)
            lines.append(f"\n--target {target}: {profile.description}")
            rows = [("  artifact", "build here", "run here")]
            for spec in profile.artifacts:
                build, run_here = _status(spec.format, spec.options) if spec.format in formats.names() else (
                    "no", f"format {spec.format} is not available in this edgedistill")
                rows.append((f"  {spec.bundle_name}", build, run_here))
            lines.append(_table(rows))
    print("\n".join(lines))
    return 0
