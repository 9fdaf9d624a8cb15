"""The built-in augmenters ``random_crop``, ``hflip`` and ``gaussian_noise``.

The plugin :mod:`fcnnzoo.builtin.augmenter_specs` registers them, and those
of :mod:`fcnnzoo.augmenters`, by reference, so that listing them imports no
torch. Each augmenter works on a whole float ``(N, C, H, W)`` batch at once
and draws separate random values for every sample; see
:class:`fcnnzoo.augment.Augmenter`.
"""

from __future__ import annotations

import math
from typing import Any
from typing import Final

import torch
import torch.nn.functional as F

from fcnnzoo.augment import Augmenter
from fcnnzoo.augment import Parameters
from fcnnzoo.augment import broadcast_apply_mask
from fcnnzoo.augment import sample_integers
from fcnnzoo.augment import sample_normal

__all__ = ["GaussianNoise", "HorizontalFlip", "RandomCrop"]

# Names accepted for padding_mode, mapped to torch.nn.functional.pad modes.
PADDING_MODES: Final = {"zero": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class RandomCrop(Augmenter):
    """Pad each image, then cut out a window at a random offset.

    The default pads a 28x28 digit by 2 pixels on each side and cuts a
    28x28 window back out, which shifts the digit by up to 2 pixels in each
    direction. A sample that is not selected (probability ``1 - p``) gets
    the window at the center of the padded image, which is the unshifted
    image when the padding is symmetric and ``size`` is the input size.

    Args:
        size: output ``(height, width)``; an int means a square, and ``None``
            keeps the input size.
        padding: pixels added before cropping, an int for every side or a
            ``(left, right, top, bottom)`` tuple in the order that
            ``torch.nn.functional.pad`` uses for the last two dimensions.
        padding_mode: ``"zero"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        p: probability that a sample is cropped at a random offset.
        seed: seed of the augmenter's own generator, or ``None``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range.
    """

    name = "random_crop"

    def __init__(
        self,
        size: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int, int, int] = 2,
        padding_mode: str = "zero",
        p: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(p=p, seed=seed)
        self.size = self._check_size(size)
        self.padding = self._check_padding(padding)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"random_crop padding_mode must be one of {', '.join(map(repr, PADDING_MODES))}, got {padding_mode!r}.")
        self.padding_mode = padding_mode

    @staticmethod
    def _check_size(size: Any) -> tuple[int, int] | None:
        if size is None:
            return None
        if _is_int(size):
            size = (size, size)
        if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(_is_int(side) for side in size)):
            raise TypeError(f"random_crop size must be None, an int or a (height, width) pair of ints, got {size!r}.")
        if size[0] < 1 or size[1] < 1:
            raise ValueError(f"random_crop size must be positive, got {tuple(size)!r}.")
        return (int(size[0]), int(size[1]))

    @staticmethod
    def _check_padding(padding: Any) -> tuple[int, int, int, int]:
        if _is_int(padding):
            padding = (padding,) * 4
        if not (isinstance(padding, (tuple, list)) and len(padding) == 4 and all(_is_int(side) for side in padding)):
            raise TypeError(f"random_crop padding must be an int or a (left, right, top, bottom) tuple of ints, got {padding!r}.")
        if min(padding) < 0:
            raise ValueError(f"random_crop padding must not be negative, got {padding!r}.")
        return (int(padding[0]), int(padding[1]), int(padding[2]), int(padding[3]))

    def _geometry(self, images: torch.Tensor) -> tuple[int, int, int, int]:
        """Return the padded height and width and the output height and width for ``images``.

        Raises:
            ValueError: if the output is larger than the padded image, or a
                reflect padding is not smaller than the image side it pads.
        """
        height, width = images.shape[-2], images.shape[-1]
        left, right, top, bottom = self.padding
        if self.padding_mode == "reflect" and (max(left, right) >= width or max(top, bottom) >= height):
            raise ValueError(
                f"random_crop padding {self.padding} with padding_mode='reflect' must be smaller than the image "
                f"side it pads, but the images are {height}x{width}. Use a smaller padding or padding_mode='zero'."
            )
        if self.padding_mode == "circular" and (max(left, right) > width or max(top, bottom) > height):
            raise ValueError(
                f"random_crop padding {self.padding} with padding_mode='circular' must not exceed the image "
                f"side it pads, but the images are {height}x{width}. Use a smaller padding or padding_mode='zero'."
            )
        padded_height, padded_width = height + top + bottom, width + left + right
        out_height, out_width = self.size if self.size is not None else (height, width)
        if out_height > padded_height or out_width > padded_width:
            raise ValueError(
                f"random_crop size {(out_height, out_width)} is larger than the padded images, "
                f"{padded_height}x{padded_width} ({height}x{width} plus padding {self.padding}). "
                "Use a smaller size or more padding."
            )
        return padded_height, padded_width, out_height, out_width

    def sample(self, images: torch.Tensor, generator: torch.Generator) -> Parameters:
        """Draw the apply mask and each sample's window offset ``"top"``, ``"left"`` in padded coordinates."""
        padded_height, padded_width, out_height, out_width = self._geometry(images)
        count = images.shape[0]
        return {
            "apply": self.sample_apply_mask(count, generator),
            "top": sample_integers(count, 0, padded_height - out_height, generator),
            "left": sample_integers(count, 0, padded_width - out_width, generator),
        }

    def apply(self, images: torch.Tensor, parameters: Parameters) -> torch.Tensor:
        """Crop each sample at its ``"top"``, ``"left"`` offset, or at the center where ``"apply"`` is false."""
        padded_height, padded_width, out_height, out_width = self._geometry(images)
        device = images.device
        selected = parameters["apply"].to(device)
        top = torch.where(selected, parameters["top"].to(device), (padded_height - out_height) // 2)
        left = torch.where(selected, parameters["left"].to(device), (padded_width - out_width) // 2)

        padded = F.pad(images, self.padding, mode=PADDING_MODES[self.padding_mode])

        # Gather rows, then columns: every sample reads its own window.
        count, channels = images.shape[0], images.shape[1]
        rows = top.view(count, 1) + torch.arange(out_height, device=device)
        cols = left.view(count, 1) + torch.arange(out_width, device=device)
        row_index = rows.view(count, 1, out_height, 1).expand(count, channels, out_height, padded_width)
        cropped = padded.gather(2, row_index)
        col_index = cols.view(count, 1, 1, out_width).expand(count, channels, out_height, out_width)
        return cropped.gather(3, col_index)

    def arguments(self) -> dict[str, Any]:
        return {"size": self.size, "padding": self.padding, "padding_mode": self.padding_mode, **super().arguments()}


class HorizontalFlip(Augmenter):
    """Mirror each selected image left to right, reversing only the width axis.

    Args:
        p: probability that a sample is flipped.
        seed: seed of the augmenter's own generator, or ``None``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if ``p`` is outside ``[0, 1]`` or ``seed`` does not fit in 64 bits.
    """

    name = "hflip"

    def __init__(self, p: float = 0.5, seed: int | None = None) -> None:
        super().__init__(p=p, seed=seed)

    def apply(self, images: torch.Tensor, parameters: Parameters) -> torch.Tensor:
        """Flip the samples where ``"apply"`` is true and copy the others."""
        return torch.where(broadcast_apply_mask(parameters, images), images.flip(-1), images)


class GaussianNoise(Augmenter):
    """Add zero-mean Gaussian noise, drawn separately for every pixel of each selected image.

    The output is not clipped, because the images may already be normalized
    to any range.

    Args:
        std: standard deviation of the noise, in the units of the pixel values.
        p: probability that a sample gets noise.
        seed: seed of the augmenter's own generator, or ``None``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if ``std`` is negative or not finite, ``p`` is outside
            ``[0, 1]`` or ``seed`` does not fit in 64 bits.
    """

    name = "gaussian_noise"

    def __init__(self, std: float = 0.1, p: float = 1.0, seed: int | None = None) -> None:
        super().__init__(p=p, seed=seed)
        if not isinstance(std, (int, float)) or isinstance(std, bool):
            raise TypeError(f"gaussian_noise std must be a number, got {std!r} of type {type(std).__name__}.")
        if not (math.isfinite(std) and std >= 0):
            raise ValueError(f"gaussian_noise std must be a finite number >= 0, got {std!r}.")
        self.std = float(std)

    def sample(self, images: torch.Tensor, generator: torch.Generator) -> Parameters:
        """Draw the apply mask and ``"noise"``, standard normal values of the batch's shape."""
        return {
            "apply": self.sample_apply_mask(images.shape[0], generator),
            "noise": sample_normal(tuple(images.shape), generator),
        }

    def apply(self, images: torch.Tensor, parameters: Parameters) -> torch.Tensor:
        """Add ``std * noise`` to the samples where ``"apply"`` is true and copy the others."""
        noise = parameters["noise"].to(device=images.device, dtype=images.dtype)
        mask = broadcast_apply_mask(parameters, images)
        return torch.where(mask, images + self.std * noise, images)

    def arguments(self) -> dict[str, Any]:
        return {"std": self.std, **super().arguments()}
