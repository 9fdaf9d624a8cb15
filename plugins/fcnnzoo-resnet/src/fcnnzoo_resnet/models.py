"""Residual networks for small images, after He et al., "Deep Residual Learning for Image Recognition" (2016).

The layout is the paper's CIFAR-10 family: three stages of basic blocks with
16, 32 and 64 channels (times ``width / 16``), the second and third stage
halving the image with a stride-2 convolution, then global average pooling
and one linear layer. A network of depth ``6n + 2`` has ``n`` blocks per
stage. The stem differs from the paper: conv 3x3 -> ReLU -> max-pool 2 as
one fused :class:`~fcnnzoo.nn.ConvReLUPool`, which halves a 28x28 or 32x32
image before the residual stages and so quarters their cost.
"""

from __future__ import annotations

import torch
from torch import nn

from fcnnzoo.nn import ConvReLUPool

__all__ = ["BasicBlock", "ResNet", "resnet8", "resnet14", "resnet20"]

# Channels of the first stage in the paper's CIFAR-10 networks.
DEFAULT_WIDTH = 16
STAGES = 3


def _check_positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"resnet {name} must be an int, got {value!r}.")
    if value < 1:
        raise ValueError(f"resnet {name} must be a positive integer, got {value!r}.")
    return value


class BasicBlock(nn.Module):
    """Two 3x3 conv-batch-norm layers with an identity or 1x1 projection shortcut.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        stride: stride of the first convolution; 2 halves the image.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A residual network of depth ``6n + 2`` for small images.

    Args:
        in_channels: channels of the input images.
        num_classes: number of output classes.
        depth: weighted layers: the stem, ``6n`` block convolutions and the
            classifier; one of 8, 14, 20, 26, ...
        width: channels of the stem and the first stage; the later stages
            have 2 and 4 times as many.

    Raises:
        TypeError: if an argument is not an int.
        ValueError: if an argument is not positive or ``depth`` is not ``6n + 2``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, depth: int = 8, width: int = DEFAULT_WIDTH) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("depth", depth), ("width", width)):
            _check_positive_int(name, value)
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f"resnet depth must be 6n + 2 with n >= 1 (8, 14, 20, ...), got {depth}.")
        blocks_per_stage = (depth - 2) // 6

        self.stem = ConvReLUPool(in_channels, width, 3, padding=1, pool_kernel=2)
        stages = []
        channels = width
        for stage in range(STAGES):
            out_channels = width * 2**stage
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                stages.append(BasicBlock(channels, out_channels, stride))
                channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, ConvReLUPool)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # Each block starts as the identity, which makes the first epochs stable.
        for module in self.modules():
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"resnet expects a (N, C, H, W) batch, got a tensor of shape {tuple(x.shape)}.")
        features = self.stages(self.stem(x))
        return self.classifier(self.pool(features).flatten(1))


def resnet8(in_channels: int = 1, num_classes: int = 10, width: int = DEFAULT_WIDTH) -> ResNet:
    """Build ResNet-8, one basic block per stage."""
    return ResNet(in_channels, num_classes, depth=8, width=width)


def resnet14(in_channels: int = 1, num_classes: int = 10, width: int = DEFAULT_WIDTH) -> ResNet:
    """Build ResNet-14, two basic blocks per stage."""
    return ResNet(in_channels, num_classes, depth=14, width=width)


def resnet20(in_channels: int = 3, num_classes: int = 10, width: int = DEFAULT_WIDTH) -> ResNet:
    """Build ResNet-20, three basic blocks per stage, as in the paper's CIFAR-10 table."""
    return ResNet(in_channels, num_classes, depth=20, width=width)
