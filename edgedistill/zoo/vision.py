"""A small residual CNN (ResNet-like, no batch norm) for 8x8 single-channel images such as digits.

It takes the digits data as it comes (64 features per sample) and reshapes it to an image, so it is a
drop-in student for the demo. No batch norm: nothing to fold before export or quantization-aware training.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """conv-ReLU-conv plus the identity, then ReLU (ResNet's basic block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(x + self.conv2(self.act1(self.conv1(x))))


class ResidualCNN(nn.Module):
    """stem conv, ``layer1`` (full resolution), ``layer2`` (stride 2 in, then blocks), average pool, head."""

    def __init__(self, channels: int = 8, blocks: int = 2, num_classes: int = 10, side: int = 8):
        super().__init__()
        self.side = side
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU())
        self.layer1 = nn.Sequential(*(BasicBlock(channels) for _ in range(blocks)))
        self.down = nn.Sequential(nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), nn.ReLU())
        self.layer2 = nn.Sequential(*(BasicBlock(2 * channels) for _ in range(blocks)))
        # global average pooling as a module: XNNPACK delegates it, while a mean over (H, W) can fall to
        # ExecuTorch's portable kernel, which caps a dynamic batch far below MAX_BATCH
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2 * channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unflatten(1, (1, self.side, self.side))
        h = self.layer2(self.down(self.layer1(self.stem(h))))
        return self.head(self.pool(h).flatten(1))


def resnet(channels: int = 8, blocks: int = 2, num_classes: int = 10, side: int = 8) -> nn.Module:
    """Factory for ``ResidualCNN`` (``edgedistill.zoo.vision:resnet``)."""
    return ResidualCNN(channels, blocks, num_classes, side)
