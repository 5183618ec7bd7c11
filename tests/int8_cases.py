"""Students for the int8 localization and repair tests and benchmark (importable by CLI subprocesses).

- ``outlier_cnn``: the residual CNN on digits with a planted outlier in block ``layer2.1``: conv1 emits
  one channel 1000x larger than the rest, conv2 divides it back, so the float function is unchanged
  but a per-tensor int8 scale sized for that channel rounds every other channel of the block to zero.
- ``outlier_encoder``: the same plant in TinyEncoder block ``blocks.1``'s feed-forward (ff.0, undone in ff.2).
- ``outlier_minilm``: the pretrained all-MiniLM-L6-v2 cut to a few of its layers, with the plant in
  the last one's feed-forward (``intermediate.dense``, undone in ``output.dense``).
- ``wide_range_mlp``: a deep MLP where every hidden layer has a few channels 30-60x larger than the
  rest: no single module breaks int8, each costs a little, so mixed precision must keep most of
  them in float; cross-layer equalization (a positive per-channel rescaling, exact across ReLU)
  undoes the planting and PTQ then passes with everything int8.
- ``residual_stream_mlp``: a residual MLP (``x + ff(x)`` blocks) whose residual stream carries two
  channels 15-30x the rest, written by the embedding and every block, read back scaled down by every
  block and the head (outlier features of the kind transformers grow). Exact (nothing nonlinear
  touches the stream before the head's ReLU), but no positive per-channel rescaling of a
  Linear -> ReLU -> Linear pair reaches the stream: cross-layer equalization cannot move it, and
  the adds' per-tensor int8 outputs stay wide whatever modules are kept in float.

The teacher of each case computes the same function as the student (the student before planting,
or the planted student itself): agreement with it measures only what export and quantization lose.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedistill.data import Dataset, load_dataset, split
from edgedistill.distillation.trainer import train
from edgedistill.modelref import save_checkpoint
from edgedistill.zoo import text, vision


def deep_mlp(width: int = 48, depth: int = 6) -> nn.Module:
    """``depth`` Linear-ReLU layers on the 64 digits features, then a 10-way head."""
    layers: list[nn.Module] = [nn.Linear(64, width), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.ff = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ff(x)


class ResidualMLP(nn.Module):
    """digits features -> ``embed`` -> ``depth`` residual blocks -> ReLU -> ``head``."""

    def __init__(self, width: int = 32, depth: int = 6, hidden: int = 64):
        super().__init__()
        self.embed = nn.Linear(64, width)
        self.blocks = nn.Sequential(*[_ResidualBlock(width, hidden) for _ in range(depth)])
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.blocks(self.embed(x))))


def residual_mlp(width: int = 32, depth: int = 6, hidden: int = 64) -> nn.Module:
    return ResidualMLP(width, depth, hidden)


def _plant(producer: nn.Linear | nn.Conv2d, consumer: nn.Linear | nn.Conv2d, out_channel: int, in_channel: int,
           factor: float) -> None:
    """Scale ``producer``'s ``out_channel`` by ``factor`` and ``consumer``'s ``in_channel`` by 1/factor.

    Exact when what lies between commutes with a positive scale (ReLU, attention's ``att @ v``)."""
    with torch.no_grad():
        producer.weight[out_channel] *= factor
        producer.bias[out_channel] *= factor
        consumer.weight[:, in_channel] /= factor


def _save_case(out: Path, model: nn.Module, factory: str, kwargs: dict, planted: nn.Module | None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    teacher = save_checkpoint(model, out / "teacher.pt", factory, kwargs)
    student = save_checkpoint(planted if planted is not None else model, out / "student.pt", factory, kwargs)
    return {"teacher": teacher, "student": student}


def outlier_cnn(out: Path, epochs: int = 10) -> dict:
    """Train the residual CNN on digits, save it as teacher and with the planted outlier as student."""
    splits = split(load_dataset("digits"), 0.25, 0.1, seed=0)
    torch.manual_seed(0)
    model = vision.resnet()
    train(model, splits.train, epochs=epochs, lr=1e-2, desc="resnet")
    planted = vision.resnet()
    planted.load_state_dict(model.state_dict())
    _plant(planted.layer2[1].conv1, planted.layer2[1].conv2, 0, 0, 1000.0)
    return {**_save_case(out, model.eval(), "edgedistill.zoo.vision:resnet", {}, planted.eval()),
            "data": "digits", "block": "layer2.1"}


def text_npz(path: Path) -> Path:
    """The synthetic token task as an .npz the CLI reads (``x.input_ids``, ``x.attention_mask``, ``y``)."""
    data: Dataset = text.synthetic_dataset(n=600)
    np.savez(path, **{f"x.{k}": v for k, v in data.inputs.items()}, y=data.y)
    return path


def outlier_encoder(out: Path, epochs: int = 6) -> dict:
    """Train a two-block TinyEncoder, save it as teacher and with the outlier in ``blocks.1`` as student."""
    data = text_npz(Path(out).parent / f"{Path(out).name}-text.npz")
    splits = split(load_dataset(data), 0.25, 0.1, seed=0)
    torch.manual_seed(0)
    model = text.encoder(layers=2)
    train(model, splits.train, epochs=epochs, lr=3e-3, desc="encoder")
    planted = text.encoder(layers=2)
    planted.load_state_dict(model.state_dict())
    ff = planted.blocks[1].ff
    _plant(ff[0], ff[2], 0, 0, 1000.0)
    with torch.no_grad():  # shift that channel far into GELU's linear part, so it is always 1000x the rest
        ff[0].bias[0] += 5000.0
        ff[2].bias -= ff[2].weight[:, 0] * 5000.0
    # GELU is not linear, so the plant changes the function a little: the planted model is its own teacher
    return {**_save_case(out, planted.eval(), "edgedistill.zoo.text:encoder", {"layers": 2}, planted.eval()),
            "data": str(data), "block": "blocks.1"}


def outlier_minilm(out: Path, layers: tuple[int, ...] = (0, 3), per_class: int = 25) -> dict:
    """The pretrained MiniLM topic classifier with only ``layers`` and a 1000x feed-forward channel in the
    last of them (teacher and student); the topic sentences (unlabelled JSON Lines) as data."""
    from edgedistill.distillation.students import derive_student
    from edgedistill.zoo.minilm import minilm_directory, topic_classifier, write_topics_jsonl

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = write_topics_jsonl(out / "text.jsonl", per_class=per_class, labelled=False)
    planted, recipe = derive_student(topic_classifier(), keep=list(layers))
    block = len(layers) - 1  # the plant goes into the last kept layer
    layer = planted.model.encoder.layer[block]
    _plant(layer.intermediate.dense, layer.output.dense, 5, 5, 1000.0)
    with torch.no_grad():  # as in outlier_encoder: far into GELU's linear part, always 1000x the rest
        layer.intermediate.dense.bias[5] += 5000.0
        layer.output.dense.bias -= layer.output.dense.weight[:, 5] * 5000.0
    kwargs = {"teacher": "edgedistill.zoo.minilm:topic_classifier", "teacher_kwargs": {}, **recipe}
    # GELU is not linear, so the plant changes the function a little: the planted model is its own teacher
    return {**_save_case(out, planted.eval(), "edgedistill.distillation.students:derived", kwargs, planted.eval()),
            "data": str(data), "tokenizer": str(minilm_directory()), "block": f"model.encoder.layer.{block}"}


def wide_range_mlp(out: Path, epochs: int = 15) -> dict:
    """A deep MLP with moderate outliers (x30-60) in every hidden layer; teacher = the same before planting."""
    splits = split(load_dataset("digits"), 0.25, 0.1, seed=0)
    torch.manual_seed(0)
    model = deep_mlp()
    train(model, splits.train, epochs=epochs, lr=3e-3, desc="deep-mlp")
    planted = deep_mlp()
    planted.load_state_dict(model.state_dict())
    linears = [m for m in planted if isinstance(m, nn.Linear)]
    rng = np.random.default_rng(0)
    for producer, consumer in zip(linears[:-1], linears[1:]):
        for channel in rng.choice(producer.out_features, 2, replace=False):
            _plant(producer, consumer, int(channel), int(channel), float(rng.uniform(30, 60)))
    return {**_save_case(out, model.eval(), "tests.int8_cases:deep_mlp", {}, planted.eval()), "data": "digits"}


def residual_stream_mlp(out: Path, epochs: int = 4, factors: tuple[float, float] = (15.0, 30.0)) -> dict:
    """The residual MLP with two residual-stream channels scaled by ``factors``; teacher = before planting.

    Trained briefly (4 epochs, ~89 % accuracy): a student whose probabilities are not all saturated."""
    splits = split(load_dataset("digits"), 0.25, 0.1, seed=0)
    torch.manual_seed(0)
    model = ResidualMLP()
    train(model, splits.train, epochs=epochs, lr=3e-3, desc="residual-mlp")
    planted = ResidualMLP()
    planted.load_state_dict(model.state_dict())
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for channel in rng.choice(planted.embed.out_features, 2, replace=False):
            c, f = int(channel), float(rng.uniform(*factors))
            planted.embed.weight[c] *= f  # every writer of the stream scales channel c ...
            planted.embed.bias[c] *= f
            for block in planted.blocks:
                block.ff[2].weight[c] *= f
                block.ff[2].bias[c] *= f
                block.ff[0].weight[:, c] /= f  # ... and every reader undoes it
            planted.head.weight[:, c] /= f  # after a ReLU: commutes with the positive scale
    return {**_save_case(out, model.eval(), "tests.int8_cases:residual_mlp", {}, planted.eval()), "data": "digits"}
