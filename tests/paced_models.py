"""Model factories for tests that must interrupt a training run while it is still going.

``student`` is the digits student with a fixed pause in every forward, so that a short run lasts
long enough to be killed mid-training on any machine; its arithmetic is the real student's.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from edgedistill.zoo import digits


class PacedStudent(nn.Module):
    """``digits.student`` that sleeps ``pause_s`` per forward call."""

    def __init__(self, pause_s: float, hidden: int):
        super().__init__()
        self.pause_s = pause_s
        self.net = digits.student(hidden=hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.pause_s)
        return self.net(x)


def student(pause_s: float = 0.03, hidden: int = 32) -> nn.Module:
    """Factory: ``tests.paced_models:student``."""
    return PacedStudent(pause_s, hidden)
