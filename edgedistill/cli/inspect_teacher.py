"""``edgedistill inspect-teacher``: the teacher's top probabilities and entropy at several temperatures."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgedistill.cli import common
from edgedistill.errors import UserError

FLAGS = {"teacher": "teacher.model", "data": "data.source"}


def _temperatures(value: str) -> list[float]:
    try:
        values = [float(v) for v in common.comma_list(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,2,4,10, got {value!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"temperatures must be > 0, got {value!r}")
    return values


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect-teacher", help="show how temperature softens the teacher (to choose T)",
                       description="For sample inputs from the held-out split, print the teacher's top "
                       "probabilities and entropy at each temperature; --plot also writes a PNG.")
    common.add_common(p)
    p.add_argument("--teacher", metavar="REF", help="teacher: checkpoint, Hugging Face directory or factory")
    p.add_argument("--data", metavar="SRC", help="data the samples come from (config: data.source)")
    p.add_argument("--temperature", "-T", type=_temperatures, default=[1.0, 2.0, 4.0, 10.0], metavar="T1,T2,...",
                   help="temperatures to compare (default 1,2,4,10)")
    p.add_argument("--samples", type=int, default=4, help="how many samples to show (default 4)")
    p.add_argument("--top", type=int, default=3, help="top classes shown per sample (default 3)")
    p.add_argument("--plot", type=Path, metavar="PNG", help="also write a plot to this PNG file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = common.resolve(args, FLAGS)
    if common.dry_run(args, config):
        return 0
    if args.samples < 1 or args.top < 1:
        raise UserError("--samples and --top must be at least 1")
    from edgedistill.data import take
    from edgedistill.distillation import temperature
    from edgedistill.inference import predict_logits
    from edgedistill.modelref import has_weights, load_model
    from edgedistill.stages import load_splits

    if not has_weights(config.teacher):
        raise UserError(f"teacher {config.teacher.model} has no trained weights: give a checkpoint "
                        f"(e.g. edgedistill-out/teacher.pt) or a Hugging Face directory")
    test = load_splits(config).test
    teacher = load_model(config.teacher)
    shown = min(args.samples, len(test))
    logits = predict_logits(teacher, take(test.inputs, slice(0, max(shown, 256)))).numpy()
    labels = test.labels if test.labels and len(test.labels) == logits.shape[1] else None
    print(temperature.describe(logits, args.temperature, labels, test.y, top=min(args.top, logits.shape[1]),
                               samples=shown))
    if args.plot:
        print(f"plot: {temperature.plot(logits, args.temperature, args.plot, labels, samples=shown)}")
    return 0
