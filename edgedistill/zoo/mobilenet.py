"""A small MobileNetV2-like image student (inverted residual blocks), without torchvision.

Same building blocks as MobileNetV2 (Sandler et al. 2018): a stride-2 stem, inverted residuals
(1x1 expand, 3x3 depthwise, 1x1 linear projection, a skip when shapes match), ReLU6 and BatchNorm,
then global average pooling and a linear classifier. ``width`` scales every channel count, so the
same code gives a tiny test model and a realistic 224² student.
"""

from __future__ import annotations

import torch
from torch import nn

# (expansion, output channels, repeats, first stride): MobileNetV2's table, shortened
BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 2, 2), (6, 96, 1, 1), (6, 160, 2, 2))


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU6()) if relu else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise -> 1x1 linear projection, with a skip when input and output match."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        layers = [_conv_bn(cin, hidden, 1)] if expansion != 1 else []
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), _conv_bn(hidden, cout, 1, relu=False)]
        self.block = nn.Sequential(*layers)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.skip else self.block(x)


class MobileNetV2Like(nn.Module):
    """The student: stem, inverted residual stages, 1x1 head, global average pool, classifier."""

    def __init__(self, num_classes: int = 10, width: float = 1.0, head: int = 320):
        super().__init__()
        scale = lambda c: max(8, int(round(c * width / 8)) * 8)  # noqa: E731 (channels stay multiples of 8)
        layers: list[nn.Module] = [_conv_bn(3, scale(32), 3, 2)]
        cin = scale(32)
        for expansion, cout, repeats, stride in BLOCKS:
            for i in range(repeats):
                layers.append(InvertedResidual(cin, scale(cout), stride if i == 0 else 1, expansion))
                cin = scale(cout)
        layers.append(_conv_bn(cin, scale(head), 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(scale(head), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # keepdim=True, then flatten: XNNPACK takes a 4-D mean over H,W; a mean that drops the
        # dimensions itself is left to ExecuTorch's slow portable kernels
        return self.classifier(self.features(x).mean((2, 3), keepdim=True).flatten(1))


def student(num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """A MobileNetV2-like student (width 1.0: ~0.7M parameters at 10 classes)."""
    return MobileNetV2Like(num_classes, width)
