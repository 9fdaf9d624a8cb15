"""Geometric augmenters: ``rotate`` and ``translate``.

Both move every pixel of a selected sample by its own random amount and
read the result with :func:`fcnnzoo.augmenters.sampling.resample`, so they
share the interpolation and padding choices.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from fcnnzoo.augment import Augmenter
from fcnnzoo.augment import Parameters
from fcnnzoo.augment import broadcast_apply_mask
from fcnnzoo.augment import sample_uniform
from fcnnzoo.augmenters.sampling import INTERPOLATIONS
from fcnnzoo.augmenters.sampling import PADDING_MODES
from fcnnzoo.augmenters.sampling import check_choice
from fcnnzoo.augmenters.sampling import resample

__all__ = ["Rotate", "Translate", "check_number_range"]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_number_range(owner: str, name: str, value: Any, *, symmetric_minimum: float = 0.0) -> tuple[float, float]:
    """Convert a number ``x >= 0`` into ``(-x, x)`` and check a ``(low, high)`` pair.

    Raises:
        TypeError: if ``value`` is neither a finite number nor a pair of them.
        ValueError: if the single number is below ``symmetric_minimum`` or ``low > high``.
    """
    if _is_number(value):
        if value < symmetric_minimum:
            raise ValueError(f"{owner} {name} must be a number >= {symmetric_minimum:g} or a (low, high) pair, got {value!r}.")
        return (-float(value), float(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_number(item) for item in value):
        if value[0] > value[1]:
            raise ValueError(f"{owner} {name} must be a (low, high) pair with low <= high, got {tuple(value)!r}.")
        return (float(value[0]), float(value[1]))
    raise TypeError(f"{owner} {name} must be a finite number or a (low, high) pair of them, got {value!r} of type {type(value).__name__}.")


def _pixel_grid(images: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the row and column of every pixel, each of shape ``(1, H, W)``."""
    height, width = images.shape[-2], images.shape[-1]
    rows = torch.arange(height, dtype=dtype, device=images.device).view(1, height, 1).expand(1, height, width)
    cols = torch.arange(width, dtype=dtype, device=images.device).view(1, 1, width).expand(1, height, width)
    return rows, cols


def _coordinate_dtype(images: torch.Tensor) -> torch.dtype:
    return torch.float64 if images.dtype == torch.float64 else torch.float32


class Rotate(Augmenter):
    """Rotate each selected image about its center by its own random angle.

    Positive angles turn the image counterclockwise as displayed (row 0 at
    the top), like ``torch.rot90`` with ``dims=(-2, -1)``. A multiple of 90
    degrees on a square image moves every pixel center onto another one, so
    it reproduces ``torch.rot90`` exactly. The output keeps the input size,
    so corners that come from outside the image follow ``padding_mode``.

    Args:
        degrees: a number ``d`` draws angles uniformly from ``[-d, d]``, and a
            ``(low, high)`` pair from ``[low, high]``, in degrees.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        padding_mode: ``"zero"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
            Images are usually normalized, so ``"zero"`` fills with the mean
            and ``"replicate"`` with the nearest edge pixel.
        p: probability that a sample is rotated.
        seed: seed of the augmenter's own generator, or ``None``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range.
    """

    name = "rotate"

    def __init__(
        self,
        degrees: float | tuple[float, float] = 15.0,
        interpolation: str = "bilinear",
        padding_mode: str = "zero",
        p: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(p=p, seed=seed)
        self.degrees = check_number_range(self.name, "degrees", degrees)
        self.interpolation = check_choice(self.name, "interpolation", interpolation, INTERPOLATIONS)
        self.padding_mode = check_choice(self.name, "padding_mode", padding_mode, PADDING_MODES)

    def sample(self, images: torch.Tensor, generator: torch.Generator) -> Parameters:
        """Draw the apply mask and each sample's ``"angle"`` in degrees."""
        count = images.shape[0]
        return {
            "apply": self.sample_apply_mask(count, generator),
            "angle": sample_uniform(count, self.degrees[0], self.degrees[1], generator),
        }

    def apply(self, images: torch.Tensor, parameters: Parameters) -> torch.Tensor:
        """Rotate the samples where ``"apply"`` is true by their ``"angle"`` and copy the others."""
        dtype = _coordinate_dtype(images)
        radians = torch.deg2rad(parameters["angle"].to(device=images.device, dtype=torch.float64))
        cos = _snap(torch.cos(radians)).to(dtype).view(-1, 1, 1)
        sin = _snap(torch.sin(radians)).to(dtype).view(-1, 1, 1)

        rows, cols = _pixel_grid(images, dtype)
        center_row = (images.shape[-2] - 1) / 2
        center_col = (images.shape[-1] - 1) / 2
        y = rows - center_row
        x = cols - center_col
        # Each output pixel reads the source point that the rotation carries onto it.
        source_cols = center_col + cos * x - sin * y
        source_rows = center_row + sin * x + cos * y
        rotated = resample(images, source_rows, source_cols, self.interpolation, self.padding_mode)
        return torch.where(broadcast_apply_mask(parameters, images), rotated, images)

    def arguments(self) -> dict[str, Any]:
        return {"degrees": self.degrees, "interpolation": self.interpolation, "padding_mode": self.padding_mode, **super().arguments()}


def _snap(values: torch.Tensor) -> torch.Tensor:
    """Round sines and cosines within 1e-12 of 0 to exactly 0, so right angles map pixels onto pixels."""
    return torch.where(values.abs() < 1e-12, torch.zeros_like(values), values)


class Translate(Augmenter):
    """Shift each selected image by its own random offset, in pixels.

    A positive ``dx`` moves the content right and a positive ``dy`` down:
    output pixel ``(i, j)`` reads input pixel ``(i - dy, j - dx)``. Integer
    offsets give exactly the slice of the image padded with
    ``torch.nn.functional.pad`` in ``padding_mode``, and fractional ones
    interpolate.

    Args:
        max_shift: a number ``m`` draws ``dy`` and ``dx`` uniformly from
            ``[-m, m]``, and a ``(max_dy, max_dx)`` pair sets each axis.
        interpolation: ``"bilinear"``, or ``"nearest"`` for whole-pixel shifts.
        padding_mode: ``"zero"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        p: probability that a sample is shifted.
        seed: seed of the augmenter's own generator, or ``None``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range.
    """

    name = "translate"

    def __init__(
        self,
        max_shift: float | tuple[float, float] = 2.0,
        interpolation: str = "bilinear",
        padding_mode: str = "zero",
        p: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(p=p, seed=seed)
        if _is_number(max_shift):
            max_shift = (max_shift, max_shift)
        if not (isinstance(max_shift, (tuple, list)) and len(max_shift) == 2 and all(_is_number(side) for side in max_shift)):
            raise TypeError(
                f"translate max_shift must be a finite number or a (max_dy, max_dx) pair of them, got {max_shift!r} "
                f"of type {type(max_shift).__name__}."
            )
        if min(max_shift) < 0:
            raise ValueError(f"translate max_shift must not be negative, got {tuple(max_shift)!r}.")
        self.max_shift = (float(max_shift[0]), float(max_shift[1]))
        self.interpolation = check_choice(self.name, "interpolation", interpolation, INTERPOLATIONS)
        self.padding_mode = check_choice(self.name, "padding_mode", padding_mode, PADDING_MODES)

    def sample(self, images: torch.Tensor, generator: torch.Generator) -> Parameters:
        """Draw the apply mask and each sample's shift ``"dy"``, ``"dx"`` in pixels."""
        count = images.shape[0]
        max_dy, max_dx = self.max_shift
        return {
            "apply": self.sample_apply_mask(count, generator),
            "dy": sample_uniform(count, -max_dy, max_dy, generator),
            "dx": sample_uniform(count, -max_dx, max_dx, generator),
        }

    def apply(self, images: torch.Tensor, parameters: Parameters) -> torch.Tensor:
        """Shift the samples where ``"apply"`` is true by ``"dy"``, ``"dx"`` and copy the others."""
        dtype = _coordinate_dtype(images)
        rows, cols = _pixel_grid(images, dtype)
        dy = parameters["dy"].to(device=images.device, dtype=dtype).view(-1, 1, 1)
        dx = parameters["dx"].to(device=images.device, dtype=dtype).view(-1, 1, 1)
        shifted = resample(images, rows - dy, cols - dx, self.interpolation, self.padding_mode)
        return torch.where(broadcast_apply_mask(parameters, images), shifted, images)

    def arguments(self) -> dict[str, Any]:
        return {"max_shift": self.max_shift, "interpolation": self.interpolation, "padding_mode": self.padding_mode, **super().arguments()}
