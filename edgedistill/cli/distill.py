"""``edgedistill distill``: train the student on the teacher's soft labels; writes student.pt."""

from __future__ import annotations

import argparse
import os

from edgedistill.cli import common

FLAGS = {"teacher": "teacher.model", "student": "student.model", "data": "data.source",
         "temperature": "distill.temperature", "alpha": "distill.alpha", "epochs": "distill.epochs",
         "batch_size": "distill.batch_size", "lr": "distill.lr", "seed": "distill.seed",
         "patience": "distill.patience", "checkpoint_every": "distill.checkpoint_every", "resume": "distill.resume",
         "device": "distill.device", "keep_every": "student.keep_every", "teacher_cache": "distill.teacher_cache",
         "soft_target": "distill.losses.soft_target", "hidden_size": "student.hidden_size", "heads": "student.heads",
         "ffn": "student.ffn", "prune_vocab": "student.prune_vocab",
         "qat": "distill.qat"}


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """--teacher, --student, --data: shared by distill, export and validate."""
    p.add_argument("--teacher", metavar="REF",
                   help="teacher: checkpoint path, Hugging Face directory (hf:PATH) or package.module:function")
    p.add_argument("--student", metavar="REF", help="student: checkpoint path or package.module:function")
    p.add_argument("--data", metavar="SRC", help="'digits', an .npz, an image folder, a .jsonl text file "
                   "or package.module:function returning a dataset")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="distill a student from a teacher",
                       description="loss = alpha * KL(softmax(t/T) || softmax(s/T)) * T^2 + (1 - alpha) * CE(y, s). "
                       "Runs data-parallel under torchrun --nproc_per_node=N -m edgedistill distill ...")
    common.add_common(p)
    add_model_flags(p)
    p.add_argument("--temperature", "-T", type=float, help="softmax temperature T (default 4)")
    p.add_argument("--alpha", type=float, help="weight of the KD term; 1 - alpha weights CE (default 0.5)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--patience", type=int, metavar="N", help="stop after N epochs without improvement (0 = never)")
    p.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="also checkpoint every N steps to OUT/checkpoints/last.pt (always at each epoch's end)")
    p.add_argument("--resume", nargs="?", const="last", metavar="PATH",
                   help="continue an interrupted run exactly: from PATH, or OUT/checkpoints/last.pt")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train (default auto: GPU if present)")
    p.add_argument("--keep-every", type=int, metavar="K",
                   help="derive the student from the teacher, keeping every K-th layer (config: student.keep_every)")
    p.add_argument("--hidden-size", type=int, metavar="H", help="derive a narrower student with hidden size H "
                   "(the teacher's most important dimensions; config: student.hidden_size)")
    p.add_argument("--heads", type=int, metavar="N", help="derive: N attention heads per layer (config: student.heads)")
    p.add_argument("--ffn", type=int, metavar="F", help="derive: FFN width F per layer (config: student.ffn)")
    p.add_argument("--prune-vocab", action="store_const", const=True, help="derive: keep embedding rows only for "
                   "tokens seen in the training data (config: student.prune_vocab)")
    p.add_argument("--teacher-cache", choices=("auto", "on", "off"),
                   help="store teacher logits on disk and reuse them across runs (default off; auto: unless augmented)")
    p.add_argument("--qat", choices=("int8",), help="then fine-tune under simulated int8 against the teacher "
                   "(quantization-aware distillation, distill.qat_epochs epochs), so int8 exports keep agreement")
    p.add_argument("--soft-target", choices=("kl", "reverse-kl", "mse"), help="the alpha-weighted KD term (default kl)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = common.resolve(args, FLAGS)
    if common.dry_run(args, config):
        return 0
    from edgedistill.stages import distill

    produced = distill(config)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return 0
    last = produced.result.history[produced.result.best_epoch - 1]
    shown = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k != "epoch")
    print(f"student: {produced.student_checkpoint} (best epoch {produced.result.best_epoch}: {shown})")
    print(f"teacher: {produced.teacher_checkpoint}")
    return 0
