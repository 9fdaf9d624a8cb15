"""fcnnzoo plugin that registers ``tiny_vgg``, a small VGG-style network.

This package is the worked example for plugin authors: a module with one
``@fcnnzoo.hookimpl`` function, named by an entry point in the ``fcnnzoo``
group of its ``pyproject.toml``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import fcnnzoo

if TYPE_CHECKING:
    from torch import nn

__version__ = "0.1.0"


def build_tiny_vgg(in_channels: int, num_classes: int, width: int = 16) -> nn.Module:
    """Build two VGG stages (conv-ReLU, then conv-ReLU-pool) and a linear classifier.

    Args:
        in_channels: channels of the input images.
        num_classes: number of output classes.
        width: channels of the first stage; the second stage has twice as many.

    Returns:
        A network that maps ``(N, in_channels, H, W)`` to ``(N, num_classes)``
        for any ``H, W >= 4``.

    Raises:
        ValueError: if ``width`` is not a positive integer.
    """
    # torch is imported here so that fcnnzoo can list this plugin cheaply.
    from torch import nn

    from fcnnzoo.nn import ConvReLUPool

    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(f"tiny_vgg width must be a positive integer, got {width!r}.")

    def stage(c_in: int, c_out: int) -> list[nn.Module]:
        # The last conv -> ReLU -> pool of each stage is one fused layer.
        return [
            nn.Conv2d(c_in, c_out, 3, padding=1),
            nn.ReLU(inplace=True),
            ConvReLUPool(c_out, c_out, 3, padding=1, pool_kernel=2),
        ]

    return nn.Sequential(
        *stage(in_channels, width),
        *stage(width, 2 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )


@fcnnzoo.hookimpl
def fcnnzoo_register_architectures() -> list[fcnnzoo.ArchitectureSpec]:
    return [
        fcnnzoo.ArchitectureSpec(
            name="tiny_vgg",
            factory=build_tiny_vgg,
            description="Two VGG stages of 3x3 convolutions with a fused conv-ReLU-pool at the end of each",
            in_channels=1,
            num_classes=10,
            input_size=(28, 28),
            min_input_size=(4, 4),
            tags=("example", "vgg"),
        )
    ]
