"""Max-pooling whose windows may lie entirely in the padding.

With pool dilation, a window can cover only padding positions. PyTorch's
``max_pool2d`` returns -inf for such a window, but in PyTorch 2.13.0 its
backward then crashes the process with a segmentation fault or heap
corruption. :func:`max_pool2d` here pads
explicitly with -inf in that case, so every window index points into a real
tensor, and gives the same forward values with a zero gradient for those
windows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fcnnzoo.conv_pool_arguments import pool_output_size
from fcnnzoo.conv_pool_arguments import to_pair

__all__ = ["has_empty_window", "max_pool2d"]


def has_empty_window(size: int, kernel: int, stride: int, padding: int, dilation: int, output: int) -> bool:
    """Return whether one of ``output`` pool windows along an axis of ``size`` covers no input position."""
    for index in range(output):
        start = index * stride - padding
        if not any(0 <= start + tap * dilation < size for tap in range(kernel)):
            return True
    return False


def max_pool2d(
    y: torch.Tensor,
    kernel: int | Sequence[int],
    stride: int | Sequence[int] | None,
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
    ceil_mode: bool,
) -> torch.Tensor:
    """Compute ``F.max_pool2d(y, kernel, stride, padding, dilation, ceil_mode)`` with a backward that survives empty windows."""
    kernel_hw = to_pair(kernel, "pool_kernel")
    stride_hw = kernel_hw if stride is None else to_pair(stride, "pool_stride")
    padding_hw = to_pair(padding, "pool_padding")
    dilation_hw = to_pair(dilation, "pool_dilation")
    sizes = (y.shape[-2], y.shape[-1])
    outputs = [
        pool_output_size(sizes[axis], kernel_hw[axis], stride_hw[axis], ceil_mode, padding_hw[axis], dilation_hw[axis])
        for axis in range(2)
    ]
    # Invalid paddings go to F.max_pool2d, which rejects them with its own error.
    valid_padding = all(2 * padding_hw[axis] <= kernel_hw[axis] for axis in range(2))
    empty = valid_padding and any(
        has_empty_window(sizes[axis], kernel_hw[axis], stride_hw[axis], padding_hw[axis], dilation_hw[axis], outputs[axis])
        for axis in range(2)
    )
    if not empty:
        return F.max_pool2d(y, kernel_hw, stride_hw, padding_hw, dilation_hw, ceil_mode=ceil_mode)

    # Pad each side with -inf, the right side far enough for the last window, then pool without padding.
    pads = []
    for axis in (1, 0):
        needed = (outputs[axis] - 1) * stride_hw[axis] + dilation_hw[axis] * (kernel_hw[axis] - 1) + 1
        after = max(padding_hw[axis], needed - sizes[axis] - padding_hw[axis])
        pads += [padding_hw[axis], after]
    padded = F.pad(y, pads, value=float("-inf"))
    pooled = F.max_pool2d(padded, kernel_hw, stride_hw, 0, dilation_hw)
    return pooled[..., : outputs[0], : outputs[1]]
