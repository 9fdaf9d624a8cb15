"""Spatial size arithmetic for convolution and pooling layers."""

from __future__ import annotations

__all__ = ["conv_output_size", "pool_output_size"]


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Return the output length of a convolution along one axis, as ``nn.Conv2d`` computes it."""
    return (size + 2 * padding - kernel_size) // stride + 1


def pool_output_size(size: int, kernel_size: int, stride: int | None = None) -> int:
    """Return the output length of a max-pool along one axis, rounding down as ``ceil_mode=False`` does."""
    stride = kernel_size if stride is None else stride
    return (size - kernel_size) // stride + 1
