"""Augmenters that change pixel values in place: ``random_erasing`` and ``brightness_contrast``.

Images are usually normalized to zero mean and unit variance before they are
augmented, so values are in the units of the normalized pixels and the
output is not clipped.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from fcnnzoo.augment import Augmenter
from fcnnzoo.augment import Parameters
from fcnnzoo.augment import broadcast_apply_mask
from fcnnzoo.augment import sample_normal
from fcnnzoo.augment import sample_uniform

__all__ = ["BrightnessContrast", "RandomErasing"]


def _check_range(owner: str, name: str, value: Any, low: float, high: float) -> tuple[float, float]:
    """Check a ``(min, max)`` pair with ``low <= min <= max <= high``."""
    if not (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in value)
    ):
        raise TypeError(f"{owner} {name} must be a (min, max) pair of numbers, got {value!r} of type {type(value).__name__}.")
    if not low <= value[0] <= value[1] <= high:
        raise ValueError(f"{owner} {name} must satisfy {low:g} <= min <= max <= {high:g}, got {tuple(value)!r}.")
    return (float(value[0]), float(value[1]))


def _check_non_negative(owner: str, name: str, value: Any, high: float = math.inf) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{owner} {name} must be a number, got {value!r} of type {type(value).__name__}.")
    if not (math.isfinite(value) and 0 <= value <= high):
        bound = f"in [0, {high:g}]" if math.isfinite(high) else "a finite number >= 0"
        raise ValueError(f"{owner} {name} must be {bound}, got {value!r}.")
    return float(value)


class RandomErasing(Augmenter):
    """Erase one random rectangle of each selected image (cutout).

    Each rectangle covers a share of the image area drawn uniformly from
    ``scale``, with a height-to-width ratio drawn log-uniformly from
    ``ratio``. Its sides are rounded to whole pixels and clamped to the image
    size, so a rectangle always lies inside the image. The top-left corner is
    drawn uniformly among the positions where the rectangle fits.

    Args:
        scale: ``(min, max)`` share of the image area to erase, within ``[0, 1]``.
        ratio: ``(min, max)`` height-to-width ratio, both positive.
        value: the number written into the rectangle, or ``"random"`` for
            standard normal noise drawn per pixel.
        p: probability that a sample gets a rectangle.
        seed: seed of the augmenter's own generator, or ``None``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range.
    """

    name = "random_erasing"

    def __init__(
        self,
        scale: tuple[float, float] = (0.02, 0.33),
        ratio: tuple[float, float] = (0.3, 3.3),
        value: float | str = 0.0,
        p: float = 0.5,
        seed: int | None = None,
    ) -> None:
        super().__init__(p=p, seed=seed)
        self.scale = _check_range(self.name, "scale", scale, 0.0, 1.0)
        self.ratio = _check_range(self.name, "ratio", ratio, 0.0, math.inf)
        if self.ratio[0] <= 0:
            raise ValueError(f"random_erasing ratio must be positive, got {tuple(ratio)!r}.")
        if isinstance(value, str):
            if value != "random":
                raise ValueError(f"random_erasing value must be a number or 'random', got {value!r}.")
        elif not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise TypeError(f"random_erasing value must be a finite number or 'random', got {value!r} of type {type(value).__name__}.")
        self.value = value if isinstance(value, str) else float(value)

    def sample(self, images: torch.Tensor, generator: torch.Generator) -> Parameters:
        """Draw the apply mask, each rectangle's ``"top"``, ``"left"``, ``"height"``, ``"width"``, and ``"noise"`` for ``value="random"``."""
        count, _, height, width = images.shape
        apply = self.sample_apply_mask(count, generator)
        area = sample_uniform(count, self.scale[0], self.scale[1], generator) * (height * width)
        log_ratio = sample_uniform(count, math.log(self.ratio[0]), math.log(self.ratio[1]), generator)
        ratio = torch.exp(log_ratio)
        box_height = torch.round(torch.sqrt(area * ratio)).long().clamp(1, height)
        box_width = torch.round(torch.sqrt(area / ratio)).long().clamp(1, width)
        top = (sample_uniform(count, 0.0, 1.0, generator) * (height - box_height + 1)).floor().long()
        left = (sample_uniform(count, 0.0, 1.0, generator) * (width - box_width + 1)).floor().long()
        parameters = {
            "apply": apply,
            "top": torch.minimum(top, height - box_height),
            "left": torch.minimum(left, width - box_width),
            "height": box_height,
            "width": box_width,
        }
        if self.value == "random":
            parameters["noise"] = sample_normal(tuple(images.shape), generator)
        return parameters

    def apply(self, images: torch.Tensor, parameters: Parameters) -> torch.Tensor:
        """Fill each rectangle of the samples where ``"apply"`` is true and copy the rest."""
        device = images.device
        height, width = images.shape[-2], images.shape[-1]
        top = parameters["top"].to(device).view(-1, 1, 1, 1)
        left = parameters["left"].to(device).view(-1, 1, 1, 1)
        rows = torch.arange(height, device=device).view(1, 1, height, 1)
        cols = torch.arange(width, device=device).view(1, 1, 1, width)
        inside = (
            (rows >= top)
            & (rows < top + parameters["height"].to(device).view(-1, 1, 1, 1))
            & (cols >= left)
            & (cols < left + parameters["width"].to(device).view(-1, 1, 1, 1))
        )
        if self.value == "random":
            fill = parameters["noise"].to(device=device, dtype=images.dtype)
        else:
            fill = torch.full((), self.value, dtype=images.dtype, device=device)
        return torch.where(inside & broadcast_apply_mask(parameters, images), fill, images)

    def arguments(self) -> dict[str, Any]:
        return {"scale": self.scale, "ratio": self.ratio, "value": self.value, **super().arguments()}


class BrightnessContrast(Augmenter):
    """Shift the brightness and scale the contrast of each selected image.

    Each sample gets a brightness shift ``b`` drawn uniformly from
    ``[-brightness, brightness]`` and a contrast factor ``c`` from
    ``[1 - contrast, 1 + contrast]``, and becomes ``(x - m) * c + m + b``,
    where ``m`` is the mean of the sample over all its channels and pixels.

    Args:
        brightness: largest shift, in the units of the pixel values, ``>= 0``.
        contrast: largest relative change of the contrast, in ``[0, 1]``.
        p: probability that a sample is changed.
        seed: seed of the augmenter's own generator, or ``None``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range.
    """

    name = "brightness_contrast"

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, p: float = 1.0, seed: int | None = None) -> None:
        super().__init__(p=p, seed=seed)
        self.brightness = _check_non_negative(self.name, "brightness", brightness)
        self.contrast = _check_non_negative(self.name, "contrast", contrast, high=1.0)

    def sample(self, images: torch.Tensor, generator: torch.Generator) -> Parameters:
        """Draw the apply mask, each sample's ``"brightness"`` shift and ``"contrast"`` factor."""
        count = images.shape[0]
        return {
            "apply": self.sample_apply_mask(count, generator),
            "brightness": sample_uniform(count, -self.brightness, self.brightness, generator),
            "contrast": sample_uniform(count, 1.0 - self.contrast, 1.0 + self.contrast, generator),
        }

    def apply(self, images: torch.Tensor, parameters: Parameters) -> torch.Tensor:
        """Change the samples where ``"apply"`` is true and copy the others."""
        shift = parameters["brightness"].to(device=images.device, dtype=images.dtype).view(-1, 1, 1, 1)
        factor = parameters["contrast"].to(device=images.device, dtype=images.dtype).view(-1, 1, 1, 1)
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        changed = (images - mean) * factor + mean + shift
        return torch.where(broadcast_apply_mask(parameters, images), changed, images)

    def arguments(self) -> dict[str, Any]:
        return {"brightness": self.brightness, "contrast": self.contrast, **super().arguments()}
