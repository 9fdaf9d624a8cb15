"""Neural network modules built on the fused conv-ReLU-pool op."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from fcnnzoo import ops
from fcnnzoo import planned

__all__ = ["ConvReLUPool", "ConvReLUPoolMixin", "set_fused"]


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}.")


class ConvReLUPoolMixin:
    """Running and describing a conv-ReLU-pool layer from its settings.

    Shared by :class:`ConvReLUPool` and the quantized layers built from it, so
    both honour ``fused`` and the op's arguments in the same way.
    """

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    pool_kernel: tuple[int, int]
    pool_stride: tuple[int, int]
    ceil_mode: bool
    fused: bool

    def op_settings(self) -> dict[str, Any]:
        """Return the op's keyword arguments for this layer."""
        return dict(
            stride=self.stride,
            padding=self.padding,
            pool_kernel=self.pool_kernel,
            pool_stride=self.pool_stride,
            ceil_mode=self.ceil_mode,
        )

    def run_conv_relu_pool(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """Apply the layer's op to ``x``: the fused kernel if ``fused``, else the PyTorch composite."""
        if self.fused:
            return ops.conv_relu_pool(x, weight, bias, **self.op_settings())
        return ops.conv_relu_pool_reference(x, weight, bias, **self.op_settings())

    def describe_settings(self, has_bias: bool) -> str:
        """Format the settings as ``extra_repr`` shows them."""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, bias={has_bias}, pool_kernel={self.pool_kernel}, "
            f"pool_stride={self.pool_stride}, ceil_mode={self.ceil_mode}, fused={self.fused}"
        )


class ConvReLUPool(ConvReLUPoolMixin, nn.Module):
    """``Conv2d`` followed by ``ReLU`` and ``MaxPool2d``, as one layer.

    The parameters are named and shaped exactly as in ``nn.Conv2d``
    (``weight``, ``bias``), so a ``state_dict`` moves between the two.

    Args:
        in_channels: channels of the input.
        out_channels: channels produced by the convolution.
        kernel_size: convolution kernel, an int or ``(height, width)``.
        stride: convolution stride.
        padding: zero padding added to both sides of the input.
        bias: whether the convolution adds a learnable bias.
        pool_kernel: max-pool window.
        pool_stride: max-pool stride; defaults to ``pool_kernel``.
        ceil_mode: round the pooled size up instead of down.
        fused: run on the fused C++ kernel where it applies, which is for
            float32 CPU tensors, in inference and in training (the op has a
            registered backward). Other calls, and every call with ``False``,
            run the PyTorch composite.

    Raises:
        ValueError: if a channel count, kernel size, stride or pool size is
            not positive, or the padding is negative.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        pool_kernel: int | tuple[int, int] = 2,
        pool_stride: int | tuple[int, int] | None = None,
        ceil_mode: bool = False,
        fused: bool = True,
    ) -> None:
        super().__init__()
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(f"in_channels and out_channels must be positive, got {in_channels} and {out_channels}.")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.pool_kernel = _pair(pool_kernel, "pool_kernel")
        self.pool_stride = self.pool_kernel if pool_stride is None else _pair(pool_stride, "pool_stride")
        if not isinstance(ceil_mode, bool):
            raise TypeError(f"ceil_mode must be True or False, got {ceil_mode!r} ({type(ceil_mode).__name__}).")
        self.ceil_mode = ceil_mode
        self.fused = bool(fused)
        for name, pair in (
            ("kernel_size", self.kernel_size),
            ("stride", self.stride),
            ("pool_kernel", self.pool_kernel),
            ("pool_stride", self.pool_stride),
        ):
            if pair[0] <= 0 or pair[1] <= 0:
                raise ValueError(f"{name} must be positive, got {pair}.")
        if self.padding[0] < 0 or self.padding[1] < 0:
            raise ValueError(f"padding must be non-negative, got {self.padding}.")
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialize the weights as ``nn.Conv2d`` does."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.weight.shape[2] * self.weight.shape[3]
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Repeated inference calls reuse a plan with packed weights.
        if self.fused:
            output = planned.planned_forward(self, x, self.weight, self.bias)
            if output is not None:
                return output
        return self.run_conv_relu_pool(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return self.describe_settings(has_bias=self.bias is not None)


def set_fused(model: nn.Module, fused: bool) -> nn.Module:
    """Switch every conv-ReLU-pool layer in ``model``, quantized ones included, to the fused kernel or to the composite, in place."""
    for module in model.modules():
        if isinstance(module, ConvReLUPoolMixin):
            module.fused = bool(fused)
    return model
