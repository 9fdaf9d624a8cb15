"""The fused conv2d -> ReLU -> max_pool2d op and its PyTorch reference composite."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fcnnzoo import _C

__all__ = ["conv_relu_pool", "conv_relu_pool_output_size", "conv_relu_pool_reference"]

logger = logging.getLogger(__name__)

Pair = tuple[int, int]


def _pair(value: int | Sequence[int], name: str) -> Pair:
    """Return ``value`` as an ``(height, width)`` pair of ints.

    Raises:
        TypeError: if ``value`` is neither an int nor a sequence of two ints.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(item, int) and not isinstance(item, bool) for item in value)
    ):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{name} must be an int or a pair of ints (height, width), got {value!r}.")


def _pool_output_size(size: int, kernel: int, stride: int, ceil_mode: bool) -> int:
    """Return the max_pool2d output size along one axis (no padding, dilation 1).

    ceil_mode rounds up, but a last window that would start at or past the end
    of the input is dropped, as PyTorch does.
    """
    rounding = stride - 1 if ceil_mode else 0
    output = (size - kernel + rounding) // stride + 1
    if ceil_mode and output > 0 and (output - 1) * stride >= size:
        output -= 1
    return output


def _conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Return the conv2d output size along one axis (dilation 1)."""
    return (size + 2 * padding - kernel) // stride + 1


def _pooled_size(
    input_hw: Pair,
    kernel_hw: Pair,
    stride_hw: Pair,
    padding_hw: Pair,
    pool_kernel_hw: Pair,
    pool_stride_hw: Pair,
    ceil_mode: bool,
) -> Pair:
    """Return the pooled output size for normalized pairs, raising ValueError for invalid ones."""
    for name, pair in (
        ("stride", stride_hw),
        ("pool_kernel", pool_kernel_hw),
        ("pool_stride", pool_stride_hw),
    ):
        if pair[0] <= 0 or pair[1] <= 0:
            raise ValueError(f"{name} must be positive, got {pair}.")
    if padding_hw[0] < 0 or padding_hw[1] < 0:
        raise ValueError(f"padding must be non-negative, got {padding_hw}.")

    padded = (input_hw[0] + 2 * padding_hw[0], input_hw[1] + 2 * padding_hw[1])
    if kernel_hw[0] > padded[0] or kernel_hw[1] > padded[1]:
        raise ValueError(
            f"kernel size {kernel_hw} is larger than the padded input {padded} "
            f"(input {input_hw} plus padding {padding_hw} on both sides); use a smaller kernel or more padding."
        )
    conv_hw = (
        _conv_output_size(input_hw[0], kernel_hw[0], stride_hw[0], padding_hw[0]),
        _conv_output_size(input_hw[1], kernel_hw[1], stride_hw[1], padding_hw[1]),
    )
    pooled_hw = (
        _pool_output_size(conv_hw[0], pool_kernel_hw[0], pool_stride_hw[0], ceil_mode),
        _pool_output_size(conv_hw[1], pool_kernel_hw[1], pool_stride_hw[1], ceil_mode),
    )
    if pooled_hw[0] <= 0 or pooled_hw[1] <= 0:
        raise ValueError(
            f"pool_kernel {pool_kernel_hw} is larger than the convolution output {conv_hw}, "
            "so the output would be empty; use a smaller pool_kernel or a larger input."
        )
    return pooled_hw


def conv_relu_pool_output_size(
    input_size: Sequence[int],
    kernel_size: int | Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    pool_kernel: int | Sequence[int] = 2,
    pool_stride: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> Pair:
    """Compute the ``(height, width)`` that :func:`conv_relu_pool` produces.

    Args:
        input_size: ``(height, width)`` of the input images.
        kernel_size: convolution kernel, an int or ``(height, width)``.
        stride: convolution stride.
        padding: zero padding added to both sides of the input.
        pool_kernel: max-pool window.
        pool_stride: max-pool stride; defaults to ``pool_kernel``.
        ceil_mode: round the pooled size up instead of down.

    Returns:
        The pooled output size.

    Raises:
        TypeError: if an argument is not an int or a pair of ints.
        ValueError: if a size is not positive, the padding is negative, the
            kernel is larger than the padded input or the output would be empty.
    """
    input_hw = _pair(tuple(input_size), "input_size")
    kernel_hw = _pair(kernel_size, "kernel_size")
    for name, pair in (("input_size", input_hw), ("kernel_size", kernel_hw)):
        if pair[0] <= 0 or pair[1] <= 0:
            raise ValueError(f"{name} must be positive, got {pair}.")
    pool_kernel_hw = _pair(pool_kernel, "pool_kernel")
    return _pooled_size(
        input_hw,
        kernel_hw,
        _pair(stride, "stride"),
        _pair(padding, "padding"),
        pool_kernel_hw,
        pool_kernel_hw if pool_stride is None else _pair(pool_stride, "pool_stride"),
        bool(ceil_mode),
    )


def _check_tensor(value: object, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}.")
    if not value.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype such as torch.float32, got {value.dtype}.")
    return value


def _check_ceil_mode(ceil_mode: object) -> None:
    """Reject a ceil_mode that is not a bool, as max_pool2d does."""
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"ceil_mode must be True or False, got {ceil_mode!r} ({type(ceil_mode).__name__}).")


def _check_arguments(x: object, weight: object, bias: object) -> None:
    """Validate the tensors of a call, raising TypeError or ValueError that names the argument."""
    x = _check_tensor(x, "x")
    weight = _check_tensor(weight, "weight")
    if weight.dtype != x.dtype:
        raise TypeError(f"weight has dtype {weight.dtype} but x has {x.dtype}; convert both to the same dtype.")
    device = x.device
    if weight.device != device:
        raise ValueError(f"weight is on {weight.device} but x is on {device}; move both to the same device.")

    x_shape = tuple(x.shape)
    weight_shape = tuple(weight.shape)
    if len(x_shape) != 4:
        hint = " Add a batch dimension with x.unsqueeze(0)." if len(x_shape) == 3 else ""
        raise ValueError(f"x must be a 4-D tensor (N, C, H, W), got shape {x_shape}.{hint}")
    if len(weight_shape) != 4:
        raise ValueError(
            "weight must be a 4-D tensor (out_channels, in_channels, kernel_height, kernel_width), "
            f"got shape {weight_shape}."
        )
    if weight_shape[0] == 0:
        raise ValueError(f"weight must have at least one output channel, got shape {weight_shape}.")
    if x_shape[1] != weight_shape[1]:
        raise ValueError(
            f"x has {x_shape[1]} channels but weight expects {weight_shape[1]} "
            f"(x shape {x_shape}, weight shape {weight_shape})."
        )
    if x_shape[1] == 0:
        raise ValueError(f"x must have at least one channel, got shape {x_shape}.")
    if x_shape[2] == 0 or x_shape[3] == 0:
        raise ValueError(f"x must have a positive height and width, got shape {x_shape}.")
    if weight_shape[2] == 0 or weight_shape[3] == 0:
        raise ValueError(f"weight must have a positive kernel height and width, got shape {weight_shape}.")

    if bias is None:
        return
    bias = _check_tensor(bias, "bias")
    if bias.dtype != x.dtype:
        raise TypeError(f"bias has dtype {bias.dtype} but x has {x.dtype}; convert both to the same dtype.")
    if bias.device != device:
        raise ValueError(f"bias is on {bias.device} but x is on {device}; move both to the same device.")
    bias_shape = tuple(bias.shape)
    if bias_shape != (weight_shape[0],):
        raise ValueError(
            f"bias must be a 1-D tensor of out_channels={weight_shape[0]} values, got shape {bias_shape}."
        )


# The op saves the position of each maximum inside its window as uint8, so
# larger windows run the composite.
_MAX_FUSED_WINDOW = 256


def validate_call(
    x: object,
    weight: object,
    bias: object,
    *,
    stride: int | Sequence[int],
    padding: int | Sequence[int],
    pool_kernel: int | Sequence[int],
    pool_stride: int | Sequence[int] | None,
    ceil_mode: bool,
) -> Pair:
    """Check the arguments of a :func:`conv_relu_pool` call and return the pooled ``(height, width)``.

    Raises the errors that :func:`conv_relu_pool` documents.
    """
    _check_arguments(x, weight, bias)
    _check_ceil_mode(ceil_mode)
    assert isinstance(x, torch.Tensor) and isinstance(weight, torch.Tensor)
    pool_kernel_hw = _pair(pool_kernel, "pool_kernel")
    return _pooled_size(
        (x.shape[2], x.shape[3]),
        (weight.shape[2], weight.shape[3]),
        _pair(stride, "stride"),
        _pair(padding, "padding"),
        pool_kernel_hw,
        pool_kernel_hw if pool_stride is None else _pair(pool_stride, "pool_stride"),
        bool(ceil_mode),
    )


def runs_fused(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, pool_kernel: Pair) -> bool:
    """Return whether the fused op can compute this call.

    Called after _check_arguments, so the dtypes and devices of the three
    tensors already agree.
    """
    if x.dtype is not torch.float32 or not x.is_cpu or x.layout is not torch.strided:
        return False
    if pool_kernel[0] * pool_kernel[1] > _MAX_FUSED_WINDOW:
        return False
    return weight.layout is torch.strided and (bias is None or bias.layout is torch.strided)


def _as_array(tensor: torch.Tensor) -> np.ndarray:
    """Return a NumPy view of a CPU tensor, copied first if it is not contiguous in NCHW order."""
    if not tensor.is_contiguous():
        tensor = tensor.contiguous()
    if tensor.requires_grad:
        tensor = tensor.detach()
    return tensor.numpy()


def conv_relu_pool_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    pool_kernel: int | Sequence[int] = 2,
    pool_stride: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> torch.Tensor:
    """Compute ``max_pool2d(relu(conv2d(x)))`` with PyTorch's own ops.

    Takes the same arguments as :func:`conv_relu_pool`, validates nothing
    itself and works on every device, dtype and under autograd.
    """
    y = F.relu(F.conv2d(x, weight, bias, stride, padding))
    return F.max_pool2d(y, pool_kernel, pool_stride, ceil_mode=ceil_mode)


def conv_relu_pool(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    pool_kernel: int | Sequence[int] = 2,
    pool_stride: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> torch.Tensor:
    """Compute ``max_pool2d(relu(conv2d(x, weight, bias)))`` in one pass.

    The result equals ``F.max_pool2d(F.relu(F.conv2d(x, weight, bias,
    stride, padding)), pool_kernel, pool_stride, ceil_mode=ceil_mode)``,
    NaN included. Float32 CPU tensors run the custom op
    ``torch.ops.fcnnzoo.conv_relu_pool``: the fused C++ kernel with up to
    ``torch.get_num_threads()`` threads (fewer when the work is too small to
    split), with a registered backward, a fake implementation for
    ``torch.compile`` and ``torch.export``, and gradients equal to the
    composite's. For the backward it saves the pooled output and the
    position of each maximum inside its window as uint8, not the
    convolution output. Other dtypes and devices, and pooling windows of
    more than 256 positions, run the PyTorch composite. Inputs of any
    memory format are accepted; the kernel reads a contiguous NCHW copy when
    they are not contiguous already.

    Args:
        x: input of shape ``(N, C, H, W)``.
        weight: convolution weight ``(out_channels, C, kernel_height, kernel_width)``.
        bias: optional bias ``(out_channels,)``.
        stride: convolution stride, an int or ``(height, width)``.
        padding: zero padding added to both sides, an int or ``(height, width)``.
        pool_kernel: max-pool window, an int or ``(height, width)``.
        pool_stride: max-pool stride; defaults to ``pool_kernel``.
        ceil_mode: round the pooled size up instead of down, as in ``F.max_pool2d``.

    Returns:
        A tensor of shape ``(N, out_channels, pooled_height, pooled_width)``.

    Raises:
        TypeError: if ``x``, ``weight`` or ``bias`` is not a tensor, is not
            floating point or their dtypes differ, or a size argument is not
            an int or a pair of ints.
        ValueError: if a tensor has the wrong rank or shape, the channel
            counts differ, the tensors are on different devices, a size or
            stride is not positive, the padding is negative, the kernel is
            larger than the padded input, or the output would be empty.
    """
    _check_arguments(x, weight, bias)
    _check_ceil_mode(ceil_mode)
    stride_hw = _pair(stride, "stride")
    padding_hw = _pair(padding, "padding")
    pool_kernel_hw = _pair(pool_kernel, "pool_kernel")
    pool_stride_hw = pool_kernel_hw if pool_stride is None else _pair(pool_stride, "pool_stride")
    pooled_hw = _pooled_size(
        (x.shape[2], x.shape[3]),
        (weight.shape[2], weight.shape[3]),
        stride_hw,
        padding_hw,
        pool_kernel_hw,
        pool_stride_hw,
        bool(ceil_mode),
    )

    if not runs_fused(x, weight, bias, pool_kernel_hw):
        # Dynamo cannot trace logger calls, so a compiled graph logs nothing here.
        if not torch.compiler.is_compiling() and logger.isEnabledFor(logging.DEBUG):
            logger.debug("conv_relu_pool: PyTorch composite for %s %s on %s", x.dtype, tuple(x.shape), x.device)
        return conv_relu_pool_reference(
            x,
            weight,
            bias,
            stride=stride_hw,
            padding=padding_hw,
            pool_kernel=pool_kernel_hw,
            pool_stride=pool_stride_hw,
            ceil_mode=bool(ceil_mode),
        )

    if _can_skip_dispatcher(x, weight, bias):
        output, _ = _run_fused_forward(
            x, weight, bias, stride_hw, padding_hw, pool_kernel_hw, pool_stride_hw, bool(ceil_mode), pooled_hw, False
        )
        return output

    output, _ = torch.ops.fcnnzoo.conv_relu_pool(
        x,
        weight,
        bias,
        list(stride_hw),
        list(padding_hw),
        list(pool_kernel_hw),
        list(pool_stride_hw),
        bool(ceil_mode),
    )
    return output


def _can_skip_dispatcher(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Tell whether a fused call may run the kernel without the custom op.

    The custom op's dispatch costs tens of microseconds, which dominates small
    inference calls. Only eager calls on plain tensors that autograd does not
    record may skip it: compiled and exported graphs, and training, need the op.
    """
    tensors = (x, weight) if bias is None else (x, weight, bias)
    if torch.compiler.is_compiling() or any(type(tensor) is not torch.Tensor for tensor in tensors):
        return False
    return not (torch.is_grad_enabled() and any(tensor.requires_grad for tensor in tensors))


def _run_fused_forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Pair,
    padding: Pair,
    pool_kernel: Pair,
    pool_stride: Pair,
    ceil_mode: bool,
    pooled_hw: Pair,
    with_indices: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run the C++ forward kernel on validated float32 CPU tensors.

    Returns the pooled output and, if ``with_indices``, the uint8 position
    of each maximum inside its window (else None).
    """
    shape = (x.shape[0], weight.shape[0], *pooled_hw)
    output = torch.empty(shape, dtype=torch.float32)
    indices = torch.empty(shape, dtype=torch.uint8) if with_indices else None
    if x.shape[0] == 0:
        return output, indices
    if logger.isEnabledFor(logging.DEBUG):
        kernel = _C.select_kernel(
            tuple(x.shape),
            tuple(weight.shape),
            stride=stride,
            padding=padding,
            pool_kernel=pool_kernel,
            pool_stride=pool_stride,
            ceil_mode=ceil_mode,
        )
        logger.debug("conv_relu_pool: fused kernel %s for %s", kernel, tuple(x.shape))
    _C.conv_relu_pool_forward(
        _as_array(x),
        _as_array(weight),
        None if bias is None else _as_array(bias),
        output.numpy(),
        stride=stride,
        padding=padding,
        pool_kernel=pool_kernel,
        pool_stride=pool_stride,
        ceil_mode=ceil_mode,
        num_threads=torch.get_num_threads(),
        indices=None if indices is None else indices.numpy(),
    )
    return output, indices


# The custom ops below take validated, normalized arguments: public callers go
# through conv_relu_pool, which checks them and sends other dtypes and devices
# to the composite.


@torch.library.custom_op("fcnnzoo::conv_relu_pool", mutates_args=())
def _conv_relu_pool_op(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: list[int],
    padding: list[int],
    pool_kernel: list[int],
    pool_stride: list[int],
    ceil_mode: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the fused C++ forward kernel on float32 CPU tensors.

    Returns the pooled output and, as uint8 of the same shape, the position
    ``row * pool_kernel[1] + column`` of each maximum inside its window,
    picked as ``max_pool2d`` picks it: the last NaN in row-major order if
    the window has one, else the first maximum. The backward needs nothing
    else. Where the output is zero no gradient flows, and the position is
    only known to lie inside the window.
    """
    stride_hw = _pair(stride, "stride")
    padding_hw = _pair(padding, "padding")
    pool_kernel_hw = _pair(pool_kernel, "pool_kernel")
    pool_stride_hw = _pair(pool_stride, "pool_stride")
    pooled_hw = _pooled_size(
        (x.shape[2], x.shape[3]),
        (weight.shape[2], weight.shape[3]),
        stride_hw,
        padding_hw,
        pool_kernel_hw,
        pool_stride_hw,
        ceil_mode,
    )
    output, indices = _run_fused_forward(
        x, weight, bias, stride_hw, padding_hw, pool_kernel_hw, pool_stride_hw, ceil_mode, pooled_hw, True
    )
    assert indices is not None
    return output, indices


@_conv_relu_pool_op.register_fake
def _conv_relu_pool_fake(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: list[int],
    padding: list[int],
    pool_kernel: list[int],
    pool_stride: list[int],
    ceil_mode: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    pooled_hw = _pooled_size(
        (x.shape[2], x.shape[3]),
        (weight.shape[2], weight.shape[3]),
        _pair(stride, "stride"),
        _pair(padding, "padding"),
        _pair(pool_kernel, "pool_kernel"),
        _pair(pool_stride, "pool_stride"),
        ceil_mode,
    )
    shape = (x.shape[0], weight.shape[0], *pooled_hw)
    return x.new_empty(shape), x.new_empty(shape, dtype=torch.uint8)


@torch.library.custom_op("fcnnzoo::conv_relu_pool_backward", mutates_args=())
def _conv_relu_pool_backward_op(
    grad_output: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    output: torch.Tensor,
    indices: torch.Tensor,
    stride: list[int],
    padding: list[int],
    pool_kernel: list[int],
    pool_stride: list[int],
    ceil_mode: bool,
    output_mask: list[bool],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the gradients of x, weight and bias (of shape (out_channels,) even without a bias).

    ``output`` and ``indices`` are what the forward op returned. A gradient
    whose ``output_mask`` entry is False is skipped and returned as an empty
    tensor of shape ``(0,)``.

    Only a convolution output that won its pooling window with a positive
    or NaN value gets a gradient: the max pool sends it there and the ReLU
    lets it pass, ties, zeros and NaN handled as in PyTorch. The C++ backward works from
    those winners alone. When x or the weight holds NaN or infinity, whose
    products with the zero gradients elsewhere are NaN, the winners'
    gradient is instead spread into the full convolution output and
    PyTorch's convolution backward computes the three gradients, so the
    result matches the composite's in that case too.
    """
    stride_hw = _pair(stride, "stride")
    padding_hw = _pair(padding, "padding")
    pool_kernel_hw = _pair(pool_kernel, "pool_kernel")
    pool_stride_hw = _pair(pool_stride, "pool_stride")
    shapes = (tuple(x.shape), tuple(weight.shape), (weight.shape[0],))
    if x.shape[0] > 0:
        grads = tuple(torch.empty(shape) if needed else None for shape, needed in zip(shapes, output_mask, strict=True))
        finite = _C.conv_relu_pool_backward(
            _as_array(grad_output),
            _as_array(output),
            indices.contiguous().numpy(),
            _as_array(x),
            _as_array(weight),
            *(None if grad is None else grad.numpy() for grad in grads),
            stride=stride_hw,
            padding=padding_hw,
            pool_kernel=pool_kernel_hw,
            pool_stride=pool_stride_hw,
            ceil_mode=ceil_mode,
            num_threads=torch.get_num_threads(),
        )
        if finite:
            return tuple(grad_output.new_empty((0,)) if grad is None else grad for grad in grads)

    conv_hw = (
        _conv_output_size(x.shape[2], weight.shape[2], stride_hw[0], padding_hw[0]),
        _conv_output_size(x.shape[3], weight.shape[3], stride_hw[1], padding_hw[1]),
    )
    grad_conv = torch.empty((x.shape[0], weight.shape[0], *conv_hw), dtype=torch.float32)
    if x.shape[0] > 0:
        _C.conv_relu_pool_conv_gradient(
            _as_array(grad_output),
            _as_array(output),
            indices.contiguous().numpy(),
            grad_conv.numpy(),
            input_shape=tuple(x.shape),
            weight_shape=tuple(weight.shape),
            stride=stride_hw,
            padding=padding_hw,
            pool_kernel=pool_kernel_hw,
            pool_stride=pool_stride_hw,
            ceil_mode=ceil_mode,
            num_threads=torch.get_num_threads(),
        )
    grad_x, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
        grad_conv,
        x,
        weight,
        [weight.shape[0]],
        stride,
        padding,
        [1, 1],
        False,
        [0, 0],
        1,
        output_mask,
    )
    return tuple(grad if grad is not None else grad_output.new_empty((0,)) for grad in (grad_x, grad_weight, grad_bias))


@_conv_relu_pool_backward_op.register_fake
def _conv_relu_pool_backward_fake(
    grad_output: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    output: torch.Tensor,
    indices: torch.Tensor,
    stride: list[int],
    padding: list[int],
    pool_kernel: list[int],
    pool_stride: list[int],
    ceil_mode: bool,
    output_mask: list[bool],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    shapes = (tuple(x.shape), tuple(weight.shape), (weight.shape[0],))
    return tuple(x.new_empty(shape if needed else (0,)) for shape, needed in zip(shapes, output_mask, strict=True))


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, weight, bias, stride, padding, pool_kernel, pool_stride, ceil_mode = inputs
    pooled, indices = output
    ctx.mark_non_differentiable(indices)
    ctx.save_for_backward(x, weight, pooled, indices)
    ctx.has_bias = bias is not None
    ctx.arguments = (stride, padding, pool_kernel, pool_stride, ceil_mode)


def _backward(ctx: Any, grad_output: torch.Tensor, _grad_indices: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    x, weight, pooled, indices = ctx.saved_tensors
    output_mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
    grads = torch.ops.fcnnzoo.conv_relu_pool_backward(grad_output, x, weight, pooled, indices, *ctx.arguments, output_mask)
    return (
        *(grad if needed else None for grad, needed in zip(grads, output_mask, strict=True)),
        None,
        None,
        None,
        None,
        None,
    )


_conv_relu_pool_op.register_autograd(_backward, setup_context=_setup_context)
