"""fcnnzoo plugin that registers residual networks sized for small images.

``resnet8`` and ``resnet14`` take 1x28x28 images (digits, MNIST) and
``resnet20`` takes 3x32x32 images (CIFAR-10). Each starts with a fused
conv-ReLU-pool stem, a :class:`fcnnzoo.nn.ConvReLUPool`. This module only
describes the networks: the factories are "module:attribute" references,
so fcnnzoo lists them without importing torch or :mod:`fcnnzoo_resnet.models`.
"""

from __future__ import annotations

import fcnnzoo

__version__ = "0.1.0"

# The fcnnzoo hook API versions this plugin is written for.
FCNNZOO_API_VERSION = ">=1.0,<2"

_DESCRIPTION = "ResNet-{depth}: fused conv-ReLU-pool stem, 3 stages of {blocks} basic residual block{plural} (16, 32, 64 channels), global average pool"


def _spec(depth: int, in_channels: int, input_size: tuple[int, int], tags: tuple[str, ...]) -> fcnnzoo.ArchitectureSpec:
    blocks = (depth - 2) // 6
    return fcnnzoo.ArchitectureSpec(
        name=f"resnet{depth}",
        factory=f"fcnnzoo_resnet.models:resnet{depth}",
        description=_DESCRIPTION.format(depth=depth, blocks=blocks, plural="" if blocks == 1 else "s"),
        in_channels=in_channels,
        num_classes=10,
        input_size=input_size,
        # The stem's 2x2 max-pool needs 2 pixels per side; the stride-2
        # convolutions after it pad, so they never shrink a side below 1.
        min_input_size=(2, 2),
        tags=("residual", "fully-convolutional", *tags),
    )


@fcnnzoo.hookimpl
def fcnnzoo_register_architectures() -> list[fcnnzoo.ArchitectureSpec]:
    """Return resnet8 and resnet14 for 28x28 grey images and resnet20 for 32x32 colour images."""
    return [
        _spec(8, 1, (28, 28), ("mnist",)),
        _spec(14, 1, (28, 28), ("mnist",)),
        _spec(20, 3, (32, 32), ("cifar",)),
    ]
