"""Layers of static int8 models: a conv-ReLU-pool block and a linear layer in integer arithmetic.

Both call :func:`fcnnzoo.quantized_ops.quantized_conv_relu_pool`, whose
module docstring defines the arithmetic. A layer keeps these buffers, which
are its whole ``state_dict``:

- ``weight_int8``: per-output-channel symmetric int8 weight.
- ``weight_scale``: float32 scale of each output channel.
- ``bias_int32``: int32 bias in units of ``input_scale * weight_scale[o]``
  (absent when the float layer has no bias).
- ``input_scale``, ``input_zero_point``, ``output_scale``,
  ``output_zero_point``: per-tensor affine uint8 parameters of the input
  and the output (0-dimensional float32 and int32 tensors).

A layer takes a float input, which it quantizes, or the uint8 output of the
previous int8 layer. ``output_uint8`` chooses between a uint8 output for the
next int8 layer and the dequantized float32 value. Layers built with
:meth:`StaticInt8ConvReLUPool.placeholder` have the right shapes and neutral
values, for ``load_state_dict`` to fill.
"""

from __future__ import annotations

import logging
from typing import Any
from typing import Final

import torch
from torch import nn

from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.quantization import ZERO_CHANNEL_SCALE
from fcnnzoo.quantization import quantize_per_channel
from fcnnzoo.quantized_ops import quantized_conv_relu_pool

__all__ = [
    "BIAS_LIMIT",
    "MIN_WEIGHT_SCALE",
    "ActivationParameters",
    "StaticInt8ConvReLUPool",
    "StaticInt8Linear",
    "quantize_weight_and_bias",
]

logger = logging.getLogger(__name__)

# The largest magnitude of a quantized bias. Below 2**24 a bias converts to
# float32 exactly, and a channel whose bias would exceed it gets a larger
# weight scale instead (its weights are negligible next to the bias then).
BIAS_LIMIT: Final = 2**24 - 1
# The smallest weight scale. Channels whose weights are all below it (such as
# subnormal weights) quantize to zero, and the requantization multiplier
# input_scale * weight_scale / output_scale stays a normal float32.
MIN_WEIGHT_SCALE: Final = 2.0**-64

ActivationParameters = tuple[float, int]


def quantize_weight_and_bias(
    weight: torch.Tensor, bias: torch.Tensor | None, input_scale: float, layer: str = "layer"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Quantize a weight per output channel to int8 and the bias to int32 in units of ``input_scale * weight_scale``.

    The weight scale is :func:`~fcnnzoo.quantization.quantize_per_channel`'s,
    raised to at least :data:`MIN_WEIGHT_SCALE` and to what keeps the
    quantized bias within :data:`BIAS_LIMIT`. A channel of zero weights gets
    the scale that gives its bias the finest resolution within that limit,
    or :data:`~fcnnzoo.quantization.ZERO_CHANNEL_SCALE` when its bias is 0 too.

    Args:
        weight: float weight of shape ``(out_channels, ...)``.
        bias: float bias of shape ``(out_channels,)``, or None.
        input_scale: the scale of the layer's quantized input.
        layer: the layer's name, for log messages.

    Returns:
        ``(weight_int8, weight_scale, bias_int32)``; ``bias_int32`` is None
        when ``bias`` is.

    Raises:
        ValueError: if the weight or bias contains NaN or infinity.
    """
    values = weight.detach().to(torch.float64)
    if not torch.isfinite(values).all():
        raise ValueError(f"Cannot quantize {layer}: its weight contains NaN or infinity. Retrain or repair the float model.")
    _, scale = quantize_per_channel(weight)
    rows = values.reshape(values.shape[0], -1)
    zero_channels = (rows == 0).all(dim=1) if rows.shape[1] else torch.ones(rows.shape[0], dtype=torch.bool)

    scale = scale.to(torch.float64).clamp(min=MIN_WEIGHT_SCALE)
    if bias is not None:
        bias_values = bias.detach().to(torch.float64)
        if not torch.isfinite(bias_values).all():
            raise ValueError(f"Cannot quantize {layer}: its bias contains NaN or infinity. Retrain or repair the float model.")
        bias_floor = (bias_values.abs() / (input_scale * BIAS_LIMIT)).clamp(min=MIN_WEIGHT_SCALE)
        zero_bias_scale = torch.where(bias_values == 0, torch.full_like(scale, ZERO_CHANNEL_SCALE), bias_floor)
        scale = torch.where(zero_channels, zero_bias_scale, torch.maximum(scale, bias_floor))
    scale = scale.to(torch.float32)

    broadcast = scale.to(torch.float64).view(-1, *([1] * (values.dim() - 1)))
    weight_int8 = torch.round(values / broadcast).clamp(-127, 127).to(torch.int8)
    vanished = ((weight_int8.reshape(rows.shape[0], -1) == 0).all(dim=1) & ~zero_channels).nonzero().flatten().tolist()
    if vanished:
        logger.warning(
            "int8: the weights of %s in output channels %s are too small for int8 and quantize to zero; "
            "those channels keep only their bias",
            layer,
            vanished,
        )

    bias_int32 = None
    if bias is not None:
        bias_units = bias.detach().to(torch.float64) / (input_scale * scale.to(torch.float64))
        bias_int32 = torch.round(bias_units).clamp(-BIAS_LIMIT, BIAS_LIMIT).to(torch.int32)
    return weight_int8, scale, bias_int32


class _StaticInt8Layer(nn.Module):
    """The buffers and the call of the quantized op that both int8 layers share."""

    weight_int8: torch.Tensor
    weight_scale: torch.Tensor
    bias_int32: torch.Tensor | None
    input_scale: torch.Tensor
    input_zero_point: torch.Tensor
    output_scale: torch.Tensor
    output_zero_point: torch.Tensor

    def __init__(self, weight_shape: tuple[int, ...], has_bias: bool, *, relu: bool, output_uint8: bool) -> None:
        super().__init__()
        out_channels = weight_shape[0]
        self.register_buffer("weight_int8", torch.zeros(weight_shape, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_channels, dtype=torch.float32))
        self.register_buffer("bias_int32", torch.zeros(out_channels, dtype=torch.int32) if has_bias else None)
        self.register_buffer("input_scale", torch.tensor(1.0, dtype=torch.float32))
        self.register_buffer("input_zero_point", torch.tensor(0, dtype=torch.int32))
        self.register_buffer("output_scale", torch.tensor(1.0, dtype=torch.float32))
        self.register_buffer("output_zero_point", torch.tensor(0, dtype=torch.int32))
        self.relu = bool(relu)
        self.output_uint8 = bool(output_uint8)

    def set_parameters(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        input_parameters: ActivationParameters,
        output_parameters: ActivationParameters,
        layer: str,
    ) -> None:
        """Quantize a float weight and bias for the given input and output parameters, in place.

        Raises:
            ValueError: if the weight or bias is not finite, or a
                requantization multiplier is not a finite normal float32.
        """
        input_scale, input_zero_point = input_parameters
        output_scale, output_zero_point = output_parameters
        weight_int8, weight_scale, bias_int32 = quantize_weight_and_bias(weight, bias, input_scale, layer)
        with torch.no_grad():
            self.weight_int8.copy_(weight_int8.view_as(self.weight_int8))
            self.weight_scale.copy_(weight_scale)
            if self.bias_int32 is not None and bias_int32 is not None:
                self.bias_int32.copy_(bias_int32)
            self.input_scale.fill_(input_scale)
            self.input_zero_point.fill_(input_zero_point)
            self.output_scale.fill_(output_scale)
            self.output_zero_point.fill_(output_zero_point)

        multiplier = self.multiplier()
        smallest_normal = torch.finfo(torch.float32).tiny
        bad = (~torch.isfinite(multiplier) | (multiplier < smallest_normal)).nonzero().flatten().tolist()
        if bad:
            raise ValueError(
                f"Cannot quantize {layer}: the requantization multipliers of output channels {bad} are "
                f"{multiplier[bad].tolist()}, outside the normal float32 range (input scale {input_scale}, "
                f"output scale {output_scale}). Check the weights and the calibration data for extreme values."
            )

    def multiplier(self) -> torch.Tensor:
        """Return the float32 requantization multipliers ``input_scale * weight_scale / output_scale``."""
        product = self.input_scale.to(torch.float64) * self.weight_scale.to(torch.float64) / self.output_scale.to(torch.float64)
        return product.to(torch.float32)

    def activation_settings(self) -> dict[str, Any]:
        """Return the quantized op's keyword arguments for the input and output quantization."""
        # NOTE: reading the scale and zero-point buffers as Python numbers makes
        # torch.export fail on int8 models (a data-dependent guard); torch.compile works.
        return dict(
            input_scale=float(self.input_scale),
            input_zero_point=int(self.input_zero_point),
            output_scale=float(self.output_scale),
            output_zero_point=int(self.output_zero_point),
            relu=self.relu,
            output_dtype=torch.uint8 if self.output_uint8 else torch.float32,
        )

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{type(self).__name__} takes a tensor, got {type(x).__name__}.")
        if x.dtype != torch.uint8 and not x.is_floating_point():
            raise TypeError(
                f"{type(self).__name__} takes a floating-point input or the uint8 output of another int8 layer, got {x.dtype}."
            )

    def describe_quantization(self) -> str:
        """Format the activation settings as ``extra_repr`` shows them."""
        output = "uint8" if self.output_uint8 else "float32"
        return (
            f"relu={self.relu}, input_scale={float(self.input_scale):.6g}, input_zero_point={int(self.input_zero_point)}, "
            f"output_scale={float(self.output_scale):.6g}, output_zero_point={int(self.output_zero_point)}, output={output}"
        )


class StaticInt8ConvReLUPool(_StaticInt8Layer):
    """The int8 form of :class:`~fcnnzoo.nn.ConvReLUPool`: conv, ReLU and max-pool in integer arithmetic."""

    def __init__(self, source: ConvReLUPool, *, output_uint8: bool) -> None:
        super().__init__(tuple(source.weight.shape), source.bias is not None, relu=True, output_uint8=output_uint8)
        self.in_channels = source.in_channels
        self.out_channels = source.out_channels
        self.kernel_size = source.kernel_size
        self.stride = source.stride
        self.padding = source.padding
        self.dilation = source.dilation
        self.groups = source.groups
        self.pool_kernel = source.pool_kernel
        self.pool_stride = source.pool_stride
        self.pool_padding = source.pool_padding
        self.pool_dilation = source.pool_dilation
        self.ceil_mode = source.ceil_mode

    @classmethod
    def placeholder(cls, source: ConvReLUPool, *, output_uint8: bool) -> StaticInt8ConvReLUPool:
        """Build the layer with ``source``'s settings and neutral buffers, for ``load_state_dict`` to fill."""
        return cls(source, output_uint8=output_uint8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        # An unbatched (C, H, W) image runs as a batch of one, as in the float layer.
        unbatched = x.dim() == 3
        output = quantized_conv_relu_pool(
            x.unsqueeze(0) if unbatched else x,
            self.weight_int8,
            self.bias_int32,
            self.multiplier(),
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            pool_kernel=self.pool_kernel,
            pool_stride=self.pool_stride,
            pool_padding=self.pool_padding,
            pool_dilation=self.pool_dilation,
            ceil_mode=self.ceil_mode,
            **self.activation_settings(),
        )
        return output.squeeze(0) if unbatched else output

    def extra_repr(self) -> str:
        padding = repr(self.padding) if isinstance(self.padding, str) else str(self.padding)
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={padding}, dilation={self.dilation}, groups={self.groups}, pool_kernel={self.pool_kernel}, "
            f"pool_stride={self.pool_stride}, pool_padding={self.pool_padding}, pool_dilation={self.pool_dilation}, "
            f"ceil_mode={self.ceil_mode}, {self.describe_quantization()}"
        )


class StaticInt8Linear(_StaticInt8Layer):
    """The int8 form of ``nn.Linear``, optionally with a ReLU folded in, run as a 1x1 block."""

    def __init__(self, source: nn.Linear, *, relu: bool, output_uint8: bool) -> None:
        super().__init__(tuple(source.weight.shape), source.bias is not None, relu=relu, output_uint8=output_uint8)
        self.in_features = source.in_features
        self.out_features = source.out_features

    @classmethod
    def placeholder(cls, source: nn.Linear, *, relu: bool, output_uint8: bool) -> StaticInt8Linear:
        """Build the layer with ``source``'s shape and neutral buffers, for ``load_state_dict`` to fill."""
        return cls(source, relu=relu, output_uint8=output_uint8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects inputs whose last dimension is in_features={self.in_features}, "
                f"got shape {tuple(x.shape)}."
            )
        leading = x.shape[:-1]
        # The op works on NCHW: each row is an image of in_features channels and 1x1 pixels.
        images = x.reshape(-1, self.in_features, 1, 1)
        weight = self.weight_int8.view(self.out_features, self.in_features, 1, 1)
        output = quantized_conv_relu_pool(
            images,
            weight,
            self.bias_int32,
            self.multiplier(),
            stride=1,
            padding=0,
            pool_kernel=1,
            pool_stride=1,
            ceil_mode=False,
            **self.activation_settings(),
        )
        return output.reshape(*leading, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.describe_quantization()}"
