"""Small trained students shared by the format tests: the digits MLP and the TinyEncoder (two integer inputs)."""

from __future__ import annotations

import numpy as np
import torch

from pathlib import Path

from edgedistill.bundle import read_bundle
from edgedistill.config import ArtifactSpec
from edgedistill.data import Splits, load_dataset, split
from edgedistill.exporter import export_student
from edgedistill.distillation.trainer import train
from edgedistill.inference import predict_logits
from edgedistill.zoo import digits, text


def trained_digits() -> tuple[torch.nn.Module, Splits]:
    """The digits student trained briefly on labels (accurate enough that its top-1 is meaningful)."""
    splits = split(load_dataset("digits"), 0.25, 0.1, seed=0)
    torch.manual_seed(0)
    model = digits.student()
    train(model, splits.train, val=splits.val, epochs=15, desc="digits")
    return model.eval(), splits


def trained_encoder() -> tuple[torch.nn.Module, Splits]:
    """A one-block TinyEncoder trained a few epochs on the synthetic token task."""
    splits = split(text.synthetic_dataset(n=600), 0.25, 0.1, seed=0)
    torch.manual_seed(0)
    model = text.encoder(layers=1)
    train(model, splits.train, val=splits.val, epochs=6, lr=3e-3, desc="encoder")
    return model.eval(), splits


def top1_agreement(model: torch.nn.Module, inputs: dict[str, np.ndarray], logits: np.ndarray) -> float:
    """Share of samples where ``logits`` pick the same class as ``model`` in PyTorch fp32."""
    reference = predict_logits(model, inputs).numpy()
    return float((reference.argmax(1) == logits.argmax(1)).mean())


def export_schemes(which: str, fmt: str, schemes: tuple[str, ...], out: Path) -> tuple:
    """Train ``which`` ('digits' or 'encoder') and export it as every scheme of ``fmt``.

    Returns (model, splits, {scheme: bundle folder}).
    """
    model, splits = trained_digits() if which == "digits" else trained_encoder()
    artifacts = [ArtifactSpec(format=fmt, quantization=s) for s in schemes]
    bundles = export_student(model, artifacts, out_dir=out, train=splits.train, test=splits.test,
                             calibration_samples=128)
    return model, splits, {read_bundle(b)[0].quantization: b for b in bundles}
