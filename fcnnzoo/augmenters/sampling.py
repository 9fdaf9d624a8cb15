"""Resampling of image batches at given source coordinates, for the geometric augmenters.

Coordinates are in pixels with pixel centers on integers: row 0 is the
center of the top row and ``(H - 1) / 2`` the center of the image. Out of
range samples follow the padding modes of ``torch.nn.functional.pad``, so an
integer shift reproduces a padded slice exactly.
"""

from __future__ import annotations

from typing import Any
from typing import Final

import torch

__all__ = ["INTERPOLATIONS", "PADDING_MODES", "check_choice", "resample"]

# The same names as random_crop's padding_mode.
PADDING_MODES: Final = ("zero", "reflect", "replicate", "circular")
INTERPOLATIONS: Final = ("bilinear", "nearest")


def check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``.

    Raises:
        ValueError: naming the value and the choices otherwise.
    """
    if value not in choices:
        raise ValueError(f"{owner} {name} must be one of {', '.join(map(repr, choices))}, got {value!r}.")
    return value


def resample(
    images: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    interpolation: str = "bilinear",
    padding_mode: str = "zero",
) -> torch.Tensor:
    """Read every output pixel of every sample from its own source position.

    Args:
        images: a float ``(N, C, H, W)`` batch.
        rows: source row of each output pixel, float ``(N, H, W)``.
        cols: source column of each output pixel, float ``(N, H, W)``.
        interpolation: ``"bilinear"`` weighs the four nearest pixels,
            ``"nearest"`` takes the closest one (halves round up).
        padding_mode: value of source pixels outside the image: ``"zero"``
            reads 0, ``"reflect"`` mirrors without repeating the edge,
            ``"replicate"`` repeats the edge and ``"circular"`` wraps around.

    Returns:
        A new batch of the same shape and dtype. A source position on a
        pixel center copies that pixel exactly.
    """
    count, channels, height, width = images.shape
    if count == 0:
        return images.clone()
    flat = images.reshape(count, channels, height * width)

    def gather(row_index: torch.Tensor, col_index: torch.Tensor) -> torch.Tensor:
        rows_in, row_valid = _map_index(row_index, height, padding_mode)
        cols_in, col_valid = _map_index(col_index, width, padding_mode)
        index = (rows_in * width + cols_in).view(count, 1, -1).expand(count, channels, -1)
        values = flat.gather(2, index).view(count, channels, height, width)
        if padding_mode == "zero":
            values = torch.where((row_valid & col_valid).unsqueeze(1), values, torch.zeros((), dtype=values.dtype, device=values.device))
        return values

    if interpolation == "nearest":
        return gather(torch.floor(rows + 0.5).long(), torch.floor(cols + 0.5).long())

    top = torch.floor(rows)
    left = torch.floor(cols)
    down = (rows - top).to(images.dtype).unsqueeze(1)
    right = (cols - left).to(images.dtype).unsqueeze(1)
    top = top.long()
    left = left.long()
    upper = gather(top, left) * (1 - right) + gather(top, left + 1) * right
    lower = gather(top + 1, left) * (1 - right) + gather(top + 1, left + 1) * right
    return upper * (1 - down) + lower * down


def _map_index(index: torch.Tensor, size: int, padding_mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Map integer source indices into ``[0, size)`` per padding mode, with a mask of the ones already inside."""
    inside = (index >= 0) & (index < size)
    if padding_mode == "circular":
        return torch.remainder(index, size), inside
    if padding_mode == "reflect" and size > 1:
        period = 2 * (size - 1)
        folded = torch.remainder(index, period)
        return torch.where(folded < size, folded, period - folded), inside
    # "zero" reads a clamped index and masks it out; "replicate" keeps the clamped edge.
    return index.clamp(0, size - 1), inside
