"""``edgedistill calibrate``: build a calibration set (stratified by the teacher's predicted class)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgedistill.cli import common

FLAGS = {"teacher": "teacher.model", "data": "data.source"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="build a calibration set for int8 from the training split",
                       description="Draws N inputs from the training split of --data, round-robin over the "
                       "teacher's predicted classes, and writes NAME.npz plus its recipe NAME.toml.")
    common.add_common(p)
    p.add_argument("--teacher", metavar="REF", help="teacher checkpoint; without it, stratify by label")
    p.add_argument("--data", metavar="SRC", help="'digits' or an .npz")
    p.add_argument("--n", type=int, default=256, help="number of inputs (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="calibration", help="file name without suffix (default calibration)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = common.resolve(args, FLAGS)
    if common.dry_run(args, config):
        return 0
    from edgedistill.calibrate import build, write
    from edgedistill.inference import predict_logits
    from edgedistill.errors import UserError
    from edgedistill.fileio import sha256_file
    from edgedistill.modelref import has_weights, load_model
    from edgedistill.stages import load_splits

    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    train = load_splits(config).train
    logits = None
    if has_weights(config.teacher):
        logits = predict_logits(load_model(config.teacher), train.inputs).numpy()
    inputs, recipe = build(train, args.n, logits, args.seed)
    if logits is not None and Path(config.teacher.model).is_file():
        recipe["teacher_sha256"] = sha256_file(Path(config.teacher.model))
    path = write(Path(config.out) / args.name, inputs, recipe)
    print(f"{path} ({recipe['n']} inputs, stratified by {recipe['stratified_by']}: {recipe['class_counts']})")
    return 0
