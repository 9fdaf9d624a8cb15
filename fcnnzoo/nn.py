"""Neural network modules built on the fused conv-ReLU-pool op."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from fcnnzoo import ops
from fcnnzoo import planned
from fcnnzoo.conv_pool_arguments import normalize_arguments
from fcnnzoo.conv_pool_arguments import to_pair

__all__ = ["ConvReLUPool", "ConvReLUPoolMixin", "set_fused"]


class ConvReLUPoolMixin:
    """Running and describing a conv-ReLU-pool layer from its settings.

    Shared by :class:`ConvReLUPool` and the quantized layers built from it, so
    both honour ``fused`` and the op's arguments in the same way.
    """

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] | str
    pool_kernel: tuple[int, int]
    pool_stride: tuple[int, int]
    ceil_mode: bool
    fused: bool
    # Defaults for layers built before these settings existed.
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    pool_padding: tuple[int, int] = (0, 0)
    pool_dilation: tuple[int, int] = (1, 1)

    # Every setting that a layer derived from a ConvReLUPool copies, so a new setting is added in one place.
    SETTING_NAMES = (
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "groups",
        "pool_kernel",
        "pool_stride",
        "pool_padding",
        "pool_dilation",
        "ceil_mode",
    )

    def copy_settings(self, source: ConvReLUPoolMixin) -> None:
        """Copy every setting in :attr:`SETTING_NAMES` from ``source``, the layer this one replaces."""
        for name in self.SETTING_NAMES:
            setattr(self, name, getattr(source, name))

    def op_settings(self) -> dict[str, Any]:
        """Return the op's keyword arguments for this layer."""
        return dict(
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            pool_kernel=self.pool_kernel,
            pool_stride=self.pool_stride,
            pool_padding=self.pool_padding,
            pool_dilation=self.pool_dilation,
            ceil_mode=self.ceil_mode,
        )

    def run_conv_relu_pool(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """Apply the layer's op to ``x``: the fused kernel if ``fused``, else the PyTorch composite."""
        if self.fused:
            return ops.conv_relu_pool(x, weight, bias, **self.op_settings())
        return ops.conv_relu_pool_reference(x, weight, bias, **self.op_settings())

    def describe_settings(self, has_bias: bool) -> str:
        """Format the settings as ``extra_repr`` shows them, with the optional ones only when not default."""
        optional = ""
        for name, default in (("dilation", (1, 1)), ("groups", 1), ("pool_padding", (0, 0)), ("pool_dilation", (1, 1))):
            value = getattr(self, name)
            if value != default:
                optional += f", {name}={value}"
        padding = repr(self.padding) if isinstance(self.padding, str) else str(self.padding)
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={padding}, bias={has_bias}, pool_kernel={self.pool_kernel}, "
            f"pool_stride={self.pool_stride}, ceil_mode={self.ceil_mode}{optional}, fused={self.fused}"
        )


class ConvReLUPool(ConvReLUPoolMixin, nn.Module):
    """``Conv2d`` followed by ``ReLU`` and ``MaxPool2d``, as one layer.

    The parameters are named and shaped exactly as in ``nn.Conv2d``
    (``weight``, ``bias``), so a ``state_dict`` moves between the two. The
    arguments mirror ``nn.Conv2d`` and ``nn.MaxPool2d``, with the pool's
    prefixed by ``pool_``.

    Args:
        in_channels: channels of the input.
        out_channels: channels produced by the convolution.
        kernel_size: convolution kernel, an int or ``(height, width)``.
        stride: convolution stride.
        padding: zero padding added to both sides of the input, or
            ``"same"`` or ``"valid"``.
        dilation: spacing between kernel taps.
        groups: blocked connections from input to output channels; it must
            divide both channel counts. ``groups == in_channels`` is a
            depthwise convolution.
        bias: whether the convolution adds a learnable bias.
        padding_mode: only ``"zeros"``, the padding the op applies.
        pool_kernel: max-pool window.
        pool_stride: max-pool stride; defaults to ``pool_kernel``.
        pool_padding: negative-infinity padding of the max pool, at most
            half of ``pool_kernel``.
        pool_dilation: spacing between max-pool window positions.
        ceil_mode: round the pooled size up instead of down.
        fused: run on the fused C++ kernel where it applies (see
            :func:`fcnnzoo.ops.select_implementation`), in inference and in
            training (the op has a registered backward). Other calls, and
            every call with ``False``, run the PyTorch composite.

    Raises:
        TypeError: if a size is not an int or a pair of ints, or
            ``ceil_mode`` is not a bool.
        ValueError: if a channel count, kernel size, stride, dilation or
            pool size is not positive, a padding is negative or invalid,
            ``groups`` does not divide both channel counts, or
            ``padding_mode`` is not ``"zeros"``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        bias: bool = True,
        pool_kernel: int | tuple[int, int] = 2,
        pool_stride: int | tuple[int, int] | None = None,
        ceil_mode: bool = False,
        fused: bool = True,
        *,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        pool_padding: int | tuple[int, int] = 0,
        pool_dilation: int | tuple[int, int] = 1,
    ) -> None:
        super().__init__()
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(f"in_channels and out_channels must be positive, got {in_channels} and {out_channels}.")
        if padding_mode != "zeros":
            raise ValueError(
                f"padding_mode must be 'zeros', got {padding_mode!r}; pad the input with F.pad for other modes."
            )
        self.kernel_size = to_pair(kernel_size, "kernel_size")
        if self.kernel_size[0] <= 0 or self.kernel_size[1] <= 0:
            raise ValueError(f"kernel_size must be positive, got {self.kernel_size}.")
        arguments = normalize_arguments(
            self.kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            pool_kernel=pool_kernel,
            pool_stride=pool_stride,
            pool_padding=pool_padding,
            pool_dilation=pool_dilation,
            ceil_mode=ceil_mode,
        )
        for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            if channels % arguments.groups != 0:
                raise ValueError(f"{name}={channels} must be divisible by groups={arguments.groups}.")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = arguments.stride
        self.padding = arguments.conv_padding
        self.dilation = arguments.dilation
        self.groups = arguments.groups
        self.padding_mode = padding_mode
        self.pool_kernel = arguments.pool_kernel
        self.pool_stride = arguments.pool_stride
        self.pool_padding = arguments.pool_padding
        self.pool_dilation = arguments.pool_dilation
        self.ceil_mode = arguments.ceil_mode
        self.fused = bool(fused)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // self.groups, *self.kernel_size))
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
