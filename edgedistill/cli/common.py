"""Options every verb shares (--config, --set, --out, --dry-run, -v) and how flags become config overrides."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from edgedistill.config import PipelineConfig, dump_toml, load_config, parse_override


def add_common(parser: argparse.ArgumentParser) -> None:
    """--config, --set, --out, --dry-run and -v."""
    parser.add_argument("--config", metavar="TOML", help="pipeline config file (defaults: the digits demo)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set distill.epochs=10 (repeatable)")
    parser.add_argument("--out", metavar="DIR", help="output folder (config: out; default ./edgedistill-out)")
    parser.add_argument("--trust-factory", action="append", default=[], metavar="MODULE",
                        help="let checkpoints call factories from MODULE (or exactly MODULE:FUNCTION); edgedistill's "
                        "own are always trusted (config: trust_factories; repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config as TOML and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="show third-party logs and warnings")


def resolve(args: argparse.Namespace, flags: dict[str, str], *, from_record: bool = False,
            record_target: bool = False) -> PipelineConfig:
    """Config file, then ``--set`` items, then named flags (``flags`` maps arg dest -> config key).

    ``from_record``: what none of them sets (student, teacher, data, temperature; the target with
    ``record_target``) comes from the run record distill/export left in the output folder.
    """
    overrides: dict[str, Any] = dict(parse_override(item) for item in args.set)
    overrides["out"] = args.out
    for dest, key in flags.items():
        if getattr(args, dest, None) is not None:  # an absent flag must not hide --set for the same key
            overrides[key] = getattr(args, dest)
    config = load_config(args.config, overrides)
    args.recorded = None
    if from_record:
        from edgedistill.run_record import defaults, summary

        recorded = defaults(config, with_target=record_target)
        if recorded:  # a second pass, so recorded values are validated and merged exactly like the user's
            config = load_config(args.config, {**recorded, **overrides})
            args.recorded = summary(recorded, config.out)  # said once the verb succeeded (errors stay one line)
    if args.trust_factory:  # added to the config's list, not replacing it
        config.trust_factories = [*config.trust_factories, *args.trust_factory]
    return config


def dry_run(args: argparse.Namespace, config: PipelineConfig) -> bool:
    """Print the config that reproduces this call when --dry-run was given."""
    if args.dry_run:
        sys.stdout.write(dump_toml(config))
    return args.dry_run


def setup_logging(verbose: bool) -> None:
    """Our messages on stderr as plain lines; third-party loggers quiet unless -v."""
    from edgedistill.quiet import set_verbose

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("edgedistill")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    set_verbose(verbose)


def comma_list(value: str) -> list[str]:
    """argparse type for ``a,b,c``."""
    return [v.strip() for v in value.split(",") if v.strip()]
