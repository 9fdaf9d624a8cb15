"""LeNet-5, adapted to ReLU and max-pooling."""

from __future__ import annotations

import torch
from torch import nn

from fcnnzoo.models.arguments import check_image_batch
from fcnnzoo.models.arguments import check_input_size
from fcnnzoo.models.arguments import check_positive_int
from fcnnzoo.models.initialization import init_weights_for_relu
from fcnnzoo.models.shapes import conv_output_size
from fcnnzoo.models.shapes import pool_output_size
from fcnnzoo.nn import ConvReLUPool

__all__ = ["LeNet5"]

KERNEL_SIZE = 5
POOL_KERNEL = 2
# The first convolution pads by 2 so that a 28x28 image keeps the 32x32
# geometry of the original network: 28 -> 28 -> 14 -> 10 -> 5.
FIRST_PADDING = 2
CHANNELS = (6, 16)
HIDDEN_FEATURES = (120, 84)


class LeNet5(nn.Module):
    """LeNet-5 with ReLU activations and max-pooling.

    Two blocks of conv 5x5 -> ReLU -> max-pool 2 (6 and 16 channels, the first
    with padding 2), each a :class:`~fcnnzoo.nn.ConvReLUPool`, then dense
    layers of 120 and 84 units with ReLU and a dense layer to the classes.
    The original network used tanh-like activations and average pooling.

    Args:
        in_channels: channels of the input images.
        num_classes: number of output classes.
        input_size: ``(height, width)`` of the images, which fixes the first
            dense layer's input features; an int means a square image.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range, or if ``input_size`` is
            smaller than 12x12, the least that leaves one pixel after the
            second block.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int | tuple[int, int] = (28, 28)) -> None:
        super().__init__()
        in_channels = check_positive_int("lenet5", "in_channels", in_channels)
        num_classes = check_positive_int("lenet5", "num_classes", num_classes)
        self.input_size = check_input_size("lenet5", input_size)
        self.feature_size = _feature_size(self.input_size)
        if min(self.feature_size) < 1:
            raise ValueError(
                f"lenet5 shrinks an input_size of {self.input_size} below 1 pixel. It needs images of at least 12x12 pixels. "
                "Use a larger input_size or resize the images."
            )

        first, second = CHANNELS
        self.features = nn.Sequential(
            ConvReLUPool(in_channels, first, KERNEL_SIZE, padding=FIRST_PADDING, pool_kernel=POOL_KERNEL),
            ConvReLUPool(first, second, KERNEL_SIZE, pool_kernel=POOL_KERNEL),
        )

        hidden1, hidden2 = HIDDEN_FEATURES
        feature_height, feature_width = self.feature_size
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(second * feature_height * feature_width, hidden1),
            nn.ReLU(inplace=True),
            nn.Linear(hidden1, hidden2),
            nn.ReLU(inplace=True),
            nn.Linear(hidden2, num_classes),
        )

        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw new weights with :func:`~fcnnzoo.models.initialization.init_weights_for_relu`."""
        init_weights_for_relu(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch("lenet5", x)
        image_size = (x.shape[-2], x.shape[-1])
        if image_size != self.input_size and _feature_size(image_size) != self.feature_size:
            raise ValueError(
                f"lenet5 was built for input_size={self.input_size}, which fixes its classifier's input features, "
                f"but got images of {image_size[0]}x{image_size[1]} pixels. "
                f"Build it with input_size={image_size} or resize the images."
            )
        return self.classifier(self.features(x))


def _feature_size(input_size: tuple[int, int]) -> tuple[int, int]:
    """Return the ``(height, width)`` after both blocks, where a side below 1 means the image vanished."""
    sizes = []
    for size in input_size:
        size = pool_output_size(conv_output_size(size, KERNEL_SIZE, padding=FIRST_PADDING), POOL_KERNEL)
        size = pool_output_size(conv_output_size(size, KERNEL_SIZE), POOL_KERNEL)
        sizes.append(size)
    return (sizes[0], sizes[1])
