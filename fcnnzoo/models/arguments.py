"""Validation of the constructor arguments that the built-in models share."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["check_image_batch", "check_input_size", "check_positive_int", "check_probability"]


def check_positive_int(model: str, name: str, value: Any) -> int:
    """Return ``value`` if it is an integer of at least 1.

    Raises:
        TypeError: if ``value`` is not an int (``bool`` is rejected too).
        ValueError: if ``value`` is below 1.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{model} {name} must be an int, got {value!r} of type {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{model} {name} must be a positive integer, got {value}.")
    return value


def check_input_size(model: str, value: Any) -> tuple[int, int]:
    """Return ``value`` as a ``(height, width)`` tuple of positive ints.

    Accepts an int for a square image, or a tuple or list of two ints, as a
    checkpoint's JSON config stores it.

    Raises:
        TypeError: if ``value`` is neither an int nor a pair of ints.
        ValueError: if a side is below 1.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    is_pair = isinstance(value, (tuple, list)) and len(value) == 2
    if not is_pair or not all(isinstance(side, int) and not isinstance(side, bool) for side in value):
        raise TypeError(f"{model} input_size must be an int or a (height, width) pair of ints, got {value!r}.")
    height, width = int(value[0]), int(value[1])
    if height < 1 or width < 1:
        raise ValueError(f"{model} input_size must be positive, got {tuple(value)!r}.")
    return (height, width)


def check_probability(model: str, name: str, value: Any, *, allow_one: bool = True) -> float:
    """Return ``value`` as a float in ``[0, 1]``, or ``[0, 1)`` when ``allow_one`` is false.

    Raises:
        TypeError: if ``value`` is not a real number.
        ValueError: if ``value`` is outside the range.
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{model} {name} must be a number, got {value!r} of type {type(value).__name__}.")
    upper_ok = value <= 1.0 if allow_one else value < 1.0
    if not (value >= 0.0 and upper_ok):
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"{model} {name} must be in {interval}, got {value}.")
    return float(value)


def check_image_batch(model: str, x: torch.Tensor) -> None:
    """Check that ``x`` is a 4-D ``(N, C, H, W)`` tensor batch.

    Raises:
        TypeError: if ``x`` is not a tensor.
        ValueError: if ``x`` does not have 4 dimensions.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{model} expects a torch.Tensor, got {type(x).__name__}.")
    if x.dim() != 4:
        raise ValueError(
            f"{model} expects a 4-D (N, C, H, W) batch, got shape {tuple(x.shape)}. "
            "Add a batch dimension with x.unsqueeze(0) for a single image."
        )
