"""Integer arithmetic of the static int8 conv -> ReLU -> max-pool block, as a float64 reference.

The quantized block works on 8-bit activations and int8 weights:

1. A float input is quantized per tensor and affinely:
   ``xq = clamp(round_half_even(x * float32(1 / input_scale)) + input_zero_point, 0, 255)``,
   computed in float32. NaN maps to the zero point, which is the real value 0,
   and infinities saturate to 0 or 255. A uint8 input is taken as ``xq``.
2. The convolution accumulates exactly in 32 bits:
   ``acc[n, o, y, x] = bias_q[o] + sum over (c, i, j) of (xq - input_zero_point) * wq[o, c, i, j]``.
   Zero padding contains the input zero point, so padded taps add nothing.
   Stride, dilation and groups follow ``torch.nn.functional.conv2d``.
3. Max-pooling takes the maximum of ``acc`` over each window, with the
   window rules of ``torch.nn.functional.max_pool2d``; pool padding never
   wins a window.
   Requantization is non-decreasing in ``acc`` because every scale is
   positive, so pooling before it gives what pooling after it would.
4. ReLU, when enabled, replaces negative accumulators with 0.
5. Requantization: ``q = clamp(round_half_even(float32(acc) * multiplier[o]) + output_zero_point, 0, 255)``,
   with the product in float32, where ``multiplier[o] = input_scale * weight_scale[o] / output_scale``.
6. A float output is the dequantized value ``(q - output_zero_point) * output_scale`` in float32.

A linear layer is the same block on an ``(N, in_features, 1, 1)`` input with
a ``1x1`` kernel and a ``1x1`` pool.

:func:`quantized_conv_relu_pool_reference` follows these steps in float64
and int64 with PyTorch tensor operations, so it runs on any device and
serves as the reference that native kernels are checked against. The
native kernel gives exactly its result, also where converting ``acc`` to
float32 rounds (``|acc| >= 2**24``), because both round to nearest even.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fcnnzoo import ops
from fcnnzoo import quantized_plans

logger = logging.getLogger(__name__)

__all__ = [
    "QUINT8_MAX",
    "QUINT8_MIN",
    "dequantize_uint8",
    "quantize_uint8",
    "quantized_conv_relu_pool",
    "quantized_conv_relu_pool_reference",
]

QUINT8_MIN = 0
QUINT8_MAX = 255


def quantize_uint8(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """Quantize a float tensor per tensor and affinely to uint8, as step 1 of the module docstring.

    Args:
        x: a floating-point tensor of any shape.
        scale: a finite, positive float.
        zero_point: an int in ``[0, 255]``.

    Returns:
        A uint8 tensor of ``x``'s shape on ``x``'s device.
    """
    inverse_scale = torch.tensor(1.0 / scale, dtype=torch.float32)
    scaled = torch.round(x.to(torch.float32) * inverse_scale.to(x.device))
    scaled = torch.nan_to_num(scaled, nan=0.0, posinf=float(QUINT8_MAX), neginf=-float(QUINT8_MAX + 1))
    # The clamp happens in float so that huge values saturate instead of wrapping in the integer cast.
    shifted = (scaled + zero_point).clamp(QUINT8_MIN, QUINT8_MAX)
    return shifted.to(torch.uint8)


def dequantize_uint8(q: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """Return ``(q - zero_point) * scale`` in float32, as step 6 of the module docstring."""
    return (q.to(torch.float32) - zero_point) * torch.tensor(scale, dtype=torch.float32, device=q.device)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    first, second = value
    return (int(first), int(second))


def quantized_conv_relu_pool_reference(
    x: torch.Tensor,
    weight_q: torch.Tensor,
    bias_q: torch.Tensor | None,
    multiplier: torch.Tensor,
    *,
    input_scale: float,
    input_zero_point: int,
    output_scale: float,
    output_zero_point: int,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | str = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    pool_kernel: int | Sequence[int] = 2,
    pool_stride: int | Sequence[int] | None = None,
    pool_padding: int | Sequence[int] = 0,
    pool_dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    relu: bool = True,
    output_dtype: torch.dtype = torch.uint8,
) -> torch.Tensor:
    """Run the quantized conv -> ReLU -> max-pool block in exact integer arithmetic.

    Args:
        x: a float input of shape ``(N, C, H, W)``, quantized with
            ``input_scale`` and ``input_zero_point``, or its uint8 quantized form.
        weight_q: int8 weight of shape ``(O, C / groups, KH, KW)``.
        bias_q: int32 bias of shape ``(O,)`` in units of
            ``input_scale * weight_scale[o]``, or None for no bias.
        multiplier: float32 requantization multipliers of shape ``(O,)``,
            ``input_scale * weight_scale[o] / output_scale``.
        input_scale: scale of the input quantization.
        input_zero_point: zero point of the input quantization, in ``[0, 255]``.
        output_scale: scale of the output quantization.
        output_zero_point: zero point of the output quantization, in ``[0, 255]``.
        stride: convolution stride.
        padding: convolution zero padding, or ``"same"`` or ``"valid"`` as in ``conv2d``.
        dilation: spacing between kernel taps.
        groups: number of channel groups, as in ``conv2d``.
        pool_kernel: max-pool window size.
        pool_stride: max-pool stride; None means ``pool_kernel``.
        pool_padding: max-pool padding, which never wins a window, as in ``max_pool2d``.
        pool_dilation: spacing between max-pool window positions.
        ceil_mode: max-pool output size rounding, as in ``max_pool2d``.
        relu: whether to apply ReLU before requantization.
        output_dtype: ``torch.uint8`` for the quantized output or
            ``torch.float32`` for its dequantized value.

    Returns:
        The output of shape ``(N, O, PH, PW)`` in ``output_dtype``.

    Raises:
        ValueError: if ``output_dtype`` is neither uint8 nor float32.
    """
    if output_dtype not in (torch.uint8, torch.float32):
        raise ValueError(f"output_dtype must be torch.uint8 or torch.float32, got {output_dtype}.")
    xq = x if x.dtype == torch.uint8 else quantize_uint8(x, input_scale, input_zero_point)

    # Integer values up to 2**53 are exact in float64, far above any int32 accumulator.
    centered = xq.to(torch.float64) - input_zero_point
    conv_padding = padding if isinstance(padding, str) else _pair(padding)
    acc = F.conv2d(centered, weight_q.to(torch.float64), None, _pair(stride), conv_padding, _pair(dilation), groups)
    if bias_q is not None:
        acc = acc + bias_q.to(torch.float64).view(1, -1, 1, 1)

    kernel = _pair(pool_kernel)
    pool_step = kernel if pool_stride is None else _pair(pool_stride)
    pooled = F.max_pool2d(acc, kernel, pool_step, _pair(pool_padding), _pair(pool_dilation), ceil_mode)
    if relu:
        pooled = pooled.clamp(min=0.0)

    product = pooled.to(torch.float32) * multiplier.to(torch.float32).view(1, -1, 1, 1)
    q = (torch.round(product) + output_zero_point).clamp(QUINT8_MIN, QUINT8_MAX).to(torch.uint8)
    if output_dtype == torch.uint8:
        return q
    return dequantize_uint8(q, output_scale, output_zero_point)


def _check_tensor(value: object, name: str, dtypes: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of {dtypes}, got {type(value).__name__}.")
    return value


def _check_scale(value: object, name: str) -> float:
    # numbers.Real also admits NumPy floats, which quantizers often produce.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float, got {value!r} ({type(value).__name__}).")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and positive, got {value!r}.")
    return float(value)


def _check_zero_point(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int in [0, 255], got {value!r} ({type(value).__name__}).")
    if not QUINT8_MIN <= value <= QUINT8_MAX:
        raise ValueError(f"{name} must be in [0, 255], got {value}.")
    return int(value)


def _check_tensors(
    x: object, weight_q: object, bias_q: object, multiplier: object
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Validate the tensors of a call, raising TypeError or ValueError that names the argument."""
    x = _check_tensor(x, "x", "float or uint8")
    if not (x.dtype == torch.uint8 or x.is_floating_point()):
        raise TypeError(f"x must be a float tensor or its uint8 quantized form, got dtype {x.dtype}.")
    weight_q = _check_tensor(weight_q, "weight_q", "int8")
    if weight_q.dtype != torch.int8:
        raise TypeError(f"weight_q must have dtype torch.int8, got {weight_q.dtype}; quantize the weight first.")

    if x.dim() != 4:
        raise ValueError(f"x must be a 4-D tensor (N, C, H, W), got shape {tuple(x.shape)}.")
    if weight_q.dim() != 4:
        raise ValueError(
            "weight_q must be a 4-D tensor (out_channels, in_channels, kernel_height, kernel_width), "
            f"got shape {tuple(weight_q.shape)}."
        )
    if weight_q.shape[0] == 0:
        raise ValueError(f"weight_q must have at least one output channel, got shape {tuple(weight_q.shape)}.")

    out_channels = weight_q.shape[0]
    if bias_q is not None:
        bias_q = _check_tensor(bias_q, "bias_q", "int32")
        if bias_q.dtype != torch.int32:
            raise TypeError(f"bias_q must have dtype torch.int32, got {bias_q.dtype}.")
        if tuple(bias_q.shape) != (out_channels,):
            raise ValueError(f"bias_q must have shape ({out_channels},), got {tuple(bias_q.shape)}.")

    multiplier = _check_tensor(multiplier, "multiplier", "float32")
    if not multiplier.is_floating_point():
        raise TypeError(f"multiplier must be a float tensor, got dtype {multiplier.dtype}.")
    if tuple(multiplier.shape) != (out_channels,):
        raise ValueError(f"multiplier must have shape ({out_channels},), got {tuple(multiplier.shape)}.")

    for name, tensor in (("weight_q", weight_q), ("bias_q", bias_q), ("multiplier", multiplier)):
        if tensor is not None and tensor.device != x.device:
            raise ValueError(f"{name} is on {tensor.device} but x is on {x.device}; move both to the same device.")
    return x, weight_q, bias_q, multiplier


def _check_groups(groups: object, channels: int, weight_q: torch.Tensor) -> None:
    """Check ``groups`` against the input channels and the weight, as ``conv2d`` does."""
    if not isinstance(groups, int) or isinstance(groups, bool):
        raise TypeError(f"groups must be an int, got {groups!r} ({type(groups).__name__}).")
    if groups <= 0:
        raise ValueError(f"groups must be positive, got {groups}.")
    out_channels = weight_q.shape[0]
    if channels % groups != 0 or out_channels % groups != 0:
        raise ValueError(
            f"groups={groups} must divide both the {channels} input channels and the {out_channels} output channels."
        )
    if channels != weight_q.shape[1] * groups:
        raise ValueError(
            f"x has {channels} channels but weight_q expects {weight_q.shape[1] * groups} "
            f"({weight_q.shape[1]} per group, groups={groups}, weight_q shape {tuple(weight_q.shape)})."
        )


def _check_multiplier_values(multiplier: torch.Tensor) -> None:
    """Reject multipliers that are negative or not finite, as the native kernel does."""
    values = multiplier.detach().to(torch.float32)
    invalid = ~(torch.isfinite(values) & (values >= 0))
    if bool(invalid.any()):
        channel = int(invalid.nonzero()[0, 0])
        raise ValueError(
            f"multiplier must be finite and not negative, got {float(values[channel])} for output channel {channel}."
        )


def quantized_conv_relu_pool(
    x: torch.Tensor,
    weight_q: torch.Tensor,
    bias_q: torch.Tensor | None,
    multiplier: torch.Tensor,
    *,
    input_scale: float,
    input_zero_point: int,
    output_scale: float,
    output_zero_point: int,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | str = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    pool_kernel: int | Sequence[int] = 2,
    pool_stride: int | Sequence[int] | None = None,
    pool_padding: int | Sequence[int] = 0,
    pool_dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    relu: bool = True,
    output_dtype: torch.dtype = torch.uint8,
) -> torch.Tensor:
    """Run the quantized block, with the arguments and result of :func:`quantized_conv_relu_pool_reference`.

    Float32 and uint8 inputs on the CPU run the native int8 kernel (AVX-512
    VNNI, AVX2 or portable C++, as ``FCNNZOO_CPU_CAPABILITY`` allows). It
    gives the reference's result exactly, also for ``|acc| >= 2**24``,
    because its int32 -> float32 conversion rounds as the reference's
    float64 -> float32 conversion does. Other devices and dtypes, inputs
    that require gradients, compiled code and calls whose accumulators
    could leave the int32 range run the reference. Packed weights are
    cached; see :mod:`fcnnzoo.quantized_plans`.

    Raises:
        TypeError: if a tensor, scale, zero point or size argument has the wrong type or dtype.
        ValueError: if a shape, scale, zero point, multiplier or size argument is invalid.
    """
    x, weight_q, bias_q, multiplier = _check_tensors(x, weight_q, bias_q, multiplier)
    input_scale = _check_scale(input_scale, "input_scale")
    output_scale = _check_scale(output_scale, "output_scale")
    input_zero_point = _check_zero_point(input_zero_point, "input_zero_point")
    output_zero_point = _check_zero_point(output_zero_point, "output_zero_point")
    if output_dtype not in (torch.uint8, torch.float32):
        raise ValueError(f"output_dtype must be torch.uint8 or torch.float32, got {output_dtype}.")
    for name, flag in (("ceil_mode", ceil_mode), ("relu", relu)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r} ({type(flag).__name__}).")
    # Raises TypeError or ValueError for invalid sizes, naming the argument.
    ops.conv_relu_pool_output_size(
        (x.shape[2], x.shape[3]),
        (weight_q.shape[2], weight_q.shape[3]),
        stride=stride,
        padding=padding,
        dilation=dilation,
        pool_kernel=pool_kernel,
        pool_stride=pool_stride,
        pool_padding=pool_padding,
        pool_dilation=pool_dilation,
        ceil_mode=ceil_mode,
    )
    _check_groups(groups, x.shape[1], weight_q)

    # The native kernel covers plain convolutions and pools; the other arguments take the reference.
    plain = (
        not isinstance(padding, str)
        and _pair(dilation) == (1, 1)
        and groups == 1
        and _pair(pool_padding) == (0, 0)
        and _pair(pool_dilation) == (1, 1)
    )
    if not plain:
        logger.debug(
            "quantized_conv_relu_pool runs the reference for padding=%r, dilation=%r, groups=%r, pool_padding=%r, pool_dilation=%r",
            padding,
            dilation,
            groups,
            pool_padding,
            pool_dilation,
        )
    if plain and quantized_plans.runs_native(x, weight_q, bias_q, multiplier):
        kernel = _pair(pool_kernel)
        arguments = (
            _pair(stride),
            _pair(padding),
            kernel,
            kernel if pool_stride is None else _pair(pool_stride),
            ceil_mode,
        )
        output = quantized_plans.native_quantized_forward(
            x,
            weight_q,
            bias_q,
            multiplier,
            input_scale=input_scale,
            input_zero_point=input_zero_point,
            output_scale=output_scale,
            output_zero_point=output_zero_point,
            arguments=arguments,
            relu=relu,
            output_dtype=output_dtype,
        )
        if output is not None:
            return output
    else:
        _check_multiplier_values(multiplier)

    return quantized_conv_relu_pool_reference(
        x,
        weight_q,
        bias_q,
        multiplier,
        input_scale=input_scale,
        input_zero_point=input_zero_point,
        output_scale=output_scale,
        output_zero_point=output_zero_point,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        pool_kernel=pool_kernel,
        pool_stride=pool_stride,
        pool_padding=pool_padding,
        pool_dilation=pool_dilation,
        ceil_mode=ceil_mode,
        relu=relu,
        output_dtype=output_dtype,
    )
