"""The reference network: stacked conv-ReLU-pool blocks and a two-layer classifier."""

from __future__ import annotations

import torch
from torch import nn

from fcnnzoo.models.arguments import check_image_batch
from fcnnzoo.models.arguments import check_input_size
from fcnnzoo.models.arguments import check_positive_int
from fcnnzoo.models.arguments import check_probability
from fcnnzoo.models.shapes import conv_output_size
from fcnnzoo.models.shapes import pool_output_size
from fcnnzoo.nn import ConvReLUPool

__all__ = ["FCNN"]

KERNEL_SIZE = 3
POOL_KERNEL = 2
HIDDEN_FEATURES = 64


class FCNN(nn.Module):
    """The reference classifier of fcnnzoo.

    ``depth`` blocks of conv 3x3 -> ReLU -> max-pool 2, each one a
    :class:`~fcnnzoo.nn.ConvReLUPool`, feed a classifier of flatten -> dense
    64 -> ReLU -> dropout -> dense to ``num_classes``. The first block has
    ``width`` channels and each later block twice as many as the one before.
    With the defaults a 28x28 input shrinks to 26, 13, 11 and 5 pixels, so
    the classifier receives ``64 * 5 * 5`` features.

    Args:
        in_channels: channels of the input images.
        num_classes: number of output classes.
        depth: number of conv-ReLU-pool blocks.
        width: channels of the first block.
        input_size: ``(height, width)`` of the images, which fixes the
            classifier's input features; an int means a square image.
        dropout: dropout probability before the last dense layer, in ``[0, 1)``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range, or if ``depth`` blocks
            would shrink ``input_size`` below 1 pixel.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        depth: int = 2,
        width: int = 32,
        input_size: int | tuple[int, int] = (28, 28),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        in_channels = check_positive_int("fcnn", "in_channels", in_channels)
        num_classes = check_positive_int("fcnn", "num_classes", num_classes)
        depth = check_positive_int("fcnn", "depth", depth)
        width = check_positive_int("fcnn", "width", width)
        self.input_size = check_input_size("fcnn", input_size)
        dropout = check_probability("fcnn", "dropout", dropout, allow_one=False)
        self.feature_size = _feature_size(self.input_size, depth, width)

        blocks = []
        channels = in_channels
        for index in range(depth):
            out_channels = width * 2**index
            blocks.append(ConvReLUPool(channels, out_channels, KERNEL_SIZE, pool_kernel=POOL_KERNEL))
            channels = out_channels
        self.features = nn.Sequential(*blocks)

        feature_height, feature_width = self.feature_size
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * feature_height * feature_width, HIDDEN_FEATURES),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(HIDDEN_FEATURES, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch("fcnn", x)
        image_size = (x.shape[-2], x.shape[-1])
        if image_size != self.input_size and _block_output_sizes(image_size, len(self.features))[-1] != self.feature_size:
            raise ValueError(
                f"fcnn was built for input_size={self.input_size}, which fixes its classifier's input features, "
                f"but got images of {image_size[0]}x{image_size[1]} pixels. "
                f"Build it with input_size={image_size} or resize the images."
            )
        return self.classifier(self.features(x))


def _block_output_sizes(input_size: tuple[int, int], depth: int) -> list[tuple[int, int]]:
    """Return the ``(height, width)`` after each block, where a side below 1 means the image vanished."""
    height, width = input_size
    sizes = []
    for _ in range(depth):
        height = pool_output_size(conv_output_size(height, KERNEL_SIZE), POOL_KERNEL)
        width = pool_output_size(conv_output_size(width, KERNEL_SIZE), POOL_KERNEL)
        sizes.append((height, width))
    return sizes


def _feature_size(input_size: tuple[int, int], depth: int, width: int) -> tuple[int, int]:
    """Return the ``(height, width)`` of the last block's output.

    Raises:
        ValueError: if a block would shrink the image below 1 pixel.
    """
    for block, (height, width_px) in enumerate(_block_output_sizes(input_size, depth), start=1):
        if height < 1 or width_px < 1:
            fix = "a larger input_size" if block == 1 else f"a depth of at most {block - 1} or a larger input_size"
            raise ValueError(
                f"fcnn with depth={depth} and width={width} shrinks an input_size of {input_size} below 1 pixel "
                f"at conv block {block}. Use {fix}."
            )
    return (height, width_px)
