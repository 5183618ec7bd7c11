"""The ``edgedistill`` command. Each verb lives in its own module; heavy imports happen inside verbs,
so ``edgedistill --help`` starts instantly and never imports torch.

Exit codes: 0 pass, 1 validation outside tolerance, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from edgedistill.cli import bench, calibrate, common, demo, distill, export, inspect_teacher, targets, validate
from edgedistill.errors import UserError, ValidationFailed

VERBS = (demo, distill, calibrate, export, validate, bench, targets, inspect_teacher)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (exit 2) instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgedistill", description="Distill a PyTorch teacher into a small student, export it "
                     "for phones and edge boards, and validate it against the teacher in the real runtime.")
    from importlib.metadata import version

    parser.add_argument("--version", action="version", version=f"edgedistill {version('edgedistill')}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 2
    common.setup_logging(args.verbose)
    try:
        return int(args.run(args) or 0)
    except UserError as exc:
        print(f"edgedistill {args.verb}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ValidationFailed as exc:
        print(f"edgedistill {args.verb}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgedistill: interrupted", file=sys.stderr)
        return 130
    finally:
        # flush our own handler only: logging.shutdown() would close every library's handlers in this process
        # (absl's, installed by LiteRT, closes the stream it captured at import: pytest's, an app's log file)
        for handler in logging.getLogger("edgedistill").handlers:
            handler.flush()
