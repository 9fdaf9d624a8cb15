"""The fused conv2d -> ReLU -> max_pool2d op and its PyTorch reference composite."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fcnnzoo import _C
from fcnnzoo import pooling
from fcnnzoo.conv_pool_arguments import ConvPoolArgumentError
from fcnnzoo.conv_pool_arguments import ConvPoolArguments
from fcnnzoo.conv_pool_arguments import Pair
from fcnnzoo.conv_pool_arguments import normalize_arguments
from fcnnzoo.conv_pool_arguments import pooled_size
from fcnnzoo.conv_pool_arguments import to_pair

__all__ = [
    "ConvPoolArgumentError",
    "conv_relu_pool",
    "conv_relu_pool_output_size",
    "conv_relu_pool_reference",
    "select_implementation",
    "validate_call",
]

logger = logging.getLogger(__name__)

def conv_relu_pool_output_size(
    input_size: Sequence[int],
    kernel_size: int | Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | str = 0,
    dilation: int | Sequence[int] = 1,
    pool_kernel: int | Sequence[int] = 2,
    pool_stride: int | Sequence[int] | None = None,
    pool_padding: int | Sequence[int] = 0,
    pool_dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
) -> Pair:
    """Compute the ``(height, width)`` that :func:`conv_relu_pool` produces.

    Args:
        input_size: ``(height, width)`` of the input images.
        kernel_size: convolution kernel, an int or ``(height, width)``.
        stride: convolution stride.
        padding: zero padding added to both sides of the input, or ``"same"`` or ``"valid"``.
        dilation: spacing between kernel taps.
        pool_kernel: max-pool window.
        pool_stride: max-pool stride; defaults to ``pool_kernel``.
        pool_padding: negative-infinity padding of the max pool.
        pool_dilation: spacing between max-pool window positions.
        ceil_mode: round the pooled size up instead of down.

    Returns:
        The pooled output size.

    Raises:
        TypeError: if an argument is not an int or a pair of ints.
        ValueError: if a size is not positive, the padding is negative, the
            kernel is larger than the padded input or the output would be
            empty (a :class:`ConvPoolArgumentError`, also a ``RuntimeError``).
    """
    input_hw = to_pair(tuple(input_size), "input_size")
    kernel_hw = to_pair(kernel_size, "kernel_size")
    for name, pair in (("input_size", input_hw), ("kernel_size", kernel_hw)):
        if pair[0] <= 0 or pair[1] <= 0:
            raise ConvPoolArgumentError(f"{name} must be positive, got {pair}.")
    arguments = normalize_arguments(
        kernel_hw,
        stride=stride,
        padding=padding,
        dilation=dilation,
        pool_kernel=pool_kernel,
        pool_stride=pool_stride,
        pool_padding=pool_padding,
        pool_dilation=pool_dilation,
        ceil_mode=ceil_mode,
    )
    return pooled_size(input_hw, kernel_hw, arguments)[1]


def _check_tensor(value: object, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}.")
    if not value.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype such as torch.float32, got {value.dtype}.")
    return value


def _check_arguments(x: object, weight: object, bias: object, groups: int) -> None:
    """Validate the tensors of a call, raising TypeError or ValueError that names the argument.

    ``x`` may be 3-D (unbatched) or 4-D, and ``groups`` must already be a positive int.
    """
    x = _check_tensor(x, "x")
    weight = _check_tensor(weight, "weight")
    if weight.dtype != x.dtype:
        raise TypeError(f"weight has dtype {weight.dtype} but x has {x.dtype}; convert both to the same dtype.")
    device = x.device
    if weight.device != device:
        raise ValueError(f"weight is on {weight.device} but x is on {device}; move both to the same device.")

    x_shape = tuple(x.shape)
    weight_shape = tuple(weight.shape)
    if len(x_shape) not in (3, 4):
        raise ConvPoolArgumentError(
            f"x must be a 3-D (C, H, W) or 4-D (N, C, H, W) tensor, got shape {x_shape}."
        )
    channels, height, width = x_shape[-3:]
    if len(weight_shape) != 4:
        raise ConvPoolArgumentError(
            "weight must be a 4-D tensor (out_channels, in_channels / groups, kernel_height, kernel_width), "
            f"got shape {weight_shape}."
        )
    if weight_shape[0] == 0:
        raise ConvPoolArgumentError(f"weight must have at least one output channel, got shape {weight_shape}.")
    if weight_shape[0] % groups != 0:
        raise ConvPoolArgumentError(
            f"groups={groups} must divide the weight's out_channels, got weight shape {weight_shape}; "
            "choose groups that divide both the input and the output channels."
        )
    if channels != weight_shape[1] * groups:
        if groups == 1:
            raise ConvPoolArgumentError(
                f"x has {channels} channels but weight expects {weight_shape[1]} "
                f"(x shape {x_shape}, weight shape {weight_shape})."
            )
        raise ConvPoolArgumentError(
            f"x has {channels} channels but weight expects in_channels / groups = {weight_shape[1]} "
            f"with groups={groups}, so {weight_shape[1] * groups} in all "
            f"(x shape {x_shape}, weight shape {weight_shape})."
        )
    if channels == 0:
        raise ConvPoolArgumentError(f"x must have at least one channel, got shape {x_shape}.")
    if height == 0 or width == 0:
        raise ConvPoolArgumentError(f"x must have a positive height and width, got shape {x_shape}.")
    if weight_shape[2] == 0 or weight_shape[3] == 0:
        raise ConvPoolArgumentError(
            f"weight must have a positive kernel height and width, got shape {weight_shape}."
        )

    if bias is None:
        return
    bias = _check_tensor(bias, "bias")
    if bias.dtype != x.dtype:
        raise TypeError(f"bias has dtype {bias.dtype} but x has {x.dtype}; convert both to the same dtype.")
    if bias.device != device:
        raise ValueError(f"bias is on {bias.device} but x is on {device}; move both to the same device.")
    bias_shape = tuple(bias.shape)
    if bias_shape != (weight_shape[0],):
        raise ConvPoolArgumentError(
            f"bias must be a 1-D tensor of out_channels={weight_shape[0]} values, got shape {bias_shape}."
        )


def validate_call(
    x: object,
    weight: object,
    bias: object,
    *,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | str = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    pool_kernel: int | Sequence[int] = 2,
    pool_stride: int | Sequence[int] | None = None,
    pool_padding: int | Sequence[int] = 0,
    pool_dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
) -> tuple[ConvPoolArguments, Pair]:
    """Check the arguments of a :func:`conv_relu_pool` call.

    Returns:
        The normalized arguments and the pooled ``(height, width)``.

    Raises:
        The errors that :func:`conv_relu_pool` documents.
    """
    weight_hw = tuple(weight.shape[2:4]) if isinstance(weight, torch.Tensor) and weight.dim() == 4 else (1, 1)
    arguments = normalize_arguments(
        (int(weight_hw[0]), int(weight_hw[1])),
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
    _check_arguments(x, weight, bias, arguments.groups)
    assert isinstance(x, torch.Tensor) and isinstance(weight, torch.Tensor)
    _, pooled_hw = pooled_size((x.shape[-2], x.shape[-1]), (weight.shape[2], weight.shape[3]), arguments)
    return arguments, pooled_hw


# The op saves the position of each maximum inside its window as uint8, so
# larger windows run the composite.
_MAX_FUSED_WINDOW = 256

# Output channels per group that the native grouped convolution needs: a
# multiple of every SIMD width the kernels use (16, 8 and 4 channels), so
# that each channel block lies inside one group.
_GROUP_CHANNEL_MULTIPLE = 16


def select_implementation(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, arguments: ConvPoolArguments
) -> str | None:
    """Decide whether the fused C++ kernel or the PyTorch composite computes a validated call.

    This is the one place that makes the choice. Both compute the same
    values, so the choice only affects speed.

    Returns:
        None when the fused kernel runs, else the reason the composite runs.
    """
    if x.dtype is not torch.float32:
        return f"dtype {x.dtype} (the kernel computes float32)"
    if not x.is_cpu:
        return f"device {x.device} (the kernel runs on the CPU)"
    if x.layout is not torch.strided or weight.layout is not torch.strided:
        return "a sparse or other non-strided layout"
    if bias is not None and bias.layout is not torch.strided:
        return "a bias with a non-strided layout"
    if arguments.pool_kernel[0] * arguments.pool_kernel[1] > _MAX_FUSED_WINDOW:
        return f"pool_kernel {arguments.pool_kernel} has more than {_MAX_FUSED_WINDOW} positions"
    if arguments.padding_extra != (0, 0):
        return "padding='same' with an even dilated kernel pads one more row or column below or right"
    out_per_group = weight.shape[0] // arguments.groups
    depthwise = arguments.groups == x.shape[1] == weight.shape[0]
    if arguments.groups != 1 and not depthwise and out_per_group % _GROUP_CHANNEL_MULTIPLE != 0:
        return (
            f"groups={arguments.groups} with {out_per_group} output channels per group "
            f"(the kernel takes depthwise calls and multiples of {_GROUP_CHANNEL_MULTIPLE})"
        )
    if arguments.pool_dilation != (1, 1):
        return f"pool_dilation {arguments.pool_dilation}"
    return None


def runs_fused(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, arguments: ConvPoolArguments) -> bool:
    """Return whether the fused kernel computes a validated call; see :func:`select_implementation`."""
    return select_implementation(x, weight, bias, arguments) is None


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
    padding: int | Sequence[int] | str = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    pool_kernel: int | Sequence[int] = 2,
    pool_stride: int | Sequence[int] | None = None,
    pool_padding: int | Sequence[int] = 0,
    pool_dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
) -> torch.Tensor:
    """Compute ``max_pool2d(relu(conv2d(x)))`` with PyTorch's own ops.

    Takes the same arguments as :func:`conv_relu_pool`, validates nothing
    itself and works on every device, dtype and under autograd.
    """
    y = F.relu(F.conv2d(x, weight, bias, stride, padding, dilation, groups))
    return pooling.max_pool2d(y, pool_kernel, pool_stride, pool_padding, pool_dilation, ceil_mode)


def conv_relu_pool(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | str = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    pool_kernel: int | Sequence[int] = 2,
    pool_stride: int | Sequence[int] | None = None,
    pool_padding: int | Sequence[int] = 0,
    pool_dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
) -> torch.Tensor:
    """Compute ``max_pool2d(relu(conv2d(x, weight, bias)))`` in one pass.

    The result equals ``F.max_pool2d(F.relu(F.conv2d(x, weight, bias,
    stride, padding, dilation, groups)), pool_kernel, pool_stride,
    pool_padding, pool_dilation, ceil_mode)``, shape and values, NaN and
    infinity included, and every argument takes the forms those functions
    take. :func:`select_implementation` decides per call whether the fused
    C++ kernel or that composite computes it and logs the choice at debug
    level. Float32 CPU tensors with the arguments the kernel covers run the
    custom op ``torch.ops.fcnnzoo.conv_relu_pool``: the fused C++ kernel
    with up to ``torch.get_num_threads()`` threads (fewer when the work is
    too small to split), with a registered backward, a fake implementation
    for ``torch.compile`` and ``torch.export``, and gradients equal to the
    composite's. For the backward it saves the pooled output and the
    position of each maximum inside its window as uint8, not the
    convolution output. Inputs of any memory format are accepted; the
    kernel reads a contiguous NCHW copy when they are not contiguous already.

    Args:
        x: input of shape ``(N, C, H, W)``, or ``(C, H, W)`` for one image.
        weight: convolution weight ``(out_channels, C / groups, kernel_height, kernel_width)``.
        bias: optional bias ``(out_channels,)``.
        stride: convolution stride, an int or ``(height, width)``.
        padding: zero padding added to both sides, an int or
            ``(height, width)``, or ``"valid"`` (none) or ``"same"`` (output
            size equal to the input size; needs stride 1).
        dilation: spacing between kernel taps.
        groups: blocked connections from input to output channels; it must
            divide both channel counts. ``groups == C`` is a depthwise convolution.
        pool_kernel: max-pool window, an int or ``(height, width)``.
        pool_stride: max-pool stride; defaults to ``pool_kernel``.
        pool_padding: negative-infinity padding on both sides of the
            convolution output, at most half of ``pool_kernel``.
        pool_dilation: spacing between max-pool window positions.
        ceil_mode: round the pooled size up instead of down, as in
            ``F.max_pool2d``; a last window that starts in the padding is dropped.

    Returns:
        A tensor of shape ``(N, out_channels, pooled_height, pooled_width)``,
        without the batch dimension for a 3-D ``x``.

    Raises:
        TypeError: if ``x``, ``weight`` or ``bias`` is not a tensor, is not
            floating point or their dtypes differ, a size argument is not
            an int or a pair of ints, ``groups`` is not an int or
            ``ceil_mode`` not a bool.
        ValueError: if the tensors are on different devices. The other
            invalid values raise :class:`ConvPoolArgumentError`, a
            ValueError that is also the ``RuntimeError`` PyTorch raises:
            a tensor of the wrong rank or shape, channel counts that do not
            match ``groups``, a size, stride or dilation that is not
            positive, a negative or unknown padding, a pool padding above
            half of ``pool_kernel``, a kernel larger than the padded input,
            or an empty output.
    """
    arguments, pooled_hw = validate_call(
        x,
        weight,
        bias,
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
    if x.dim() == 3:
        return _conv_relu_pool_batched(x.unsqueeze(0), weight, bias, arguments, pooled_hw).squeeze(0)
    return _conv_relu_pool_batched(x, weight, bias, arguments, pooled_hw)


def _conv_relu_pool_batched(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, arguments: ConvPoolArguments, pooled_hw: Pair
) -> torch.Tensor:
    """Compute a validated call on a 4-D ``x`` with the implementation that select_implementation picks."""
    reason = select_implementation(x, weight, bias, arguments)
    # Dynamo cannot trace logger calls, so a compiled graph logs nothing here.
    if not torch.compiler.is_compiling() and logger.isEnabledFor(logging.DEBUG):
        if reason is None:
            logger.debug("conv_relu_pool: fused kernel for %s %s", x.dtype, tuple(x.shape))
        else:
            logger.debug("conv_relu_pool: PyTorch composite for %s %s: %s", x.dtype, tuple(x.shape), reason)
    if reason is not None:
        return conv_relu_pool_reference(
            x,
            weight,
            bias,
            stride=arguments.stride,
            padding=arguments.conv_padding,
            dilation=arguments.dilation,
            groups=arguments.groups,
            pool_kernel=arguments.pool_kernel,
            pool_stride=arguments.pool_stride,
            pool_padding=arguments.pool_padding,
            pool_dilation=arguments.pool_dilation,
            ceil_mode=arguments.ceil_mode,
        )

    if _can_skip_dispatcher(x, weight, bias):
        output, _ = _run_fused_forward(x, weight, bias, arguments, pooled_hw, False)
        return output

    output, _ = torch.ops.fcnnzoo.conv_relu_pool(x, weight, bias, **arguments.op_lists())
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


def native_settings(arguments: ConvPoolArguments) -> dict[str, Any]:
    """Return the keyword arguments that the ``_C`` forward and backward functions take for a fused call."""
    return dict(
        stride=arguments.stride,
        padding=arguments.padding,
        dilation=arguments.dilation,
        groups=arguments.groups,
        pool_kernel=arguments.pool_kernel,
        pool_stride=arguments.pool_stride,
        pool_padding=arguments.pool_padding,
        ceil_mode=arguments.ceil_mode,
    )


def _run_fused_forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    arguments: ConvPoolArguments,
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
    settings = native_settings(arguments)
    if logger.isEnabledFor(logging.DEBUG):
        kernel = _C.select_kernel(tuple(x.shape), tuple(weight.shape), **settings)
        logger.debug("conv_relu_pool: fused kernel %s for %s", kernel, tuple(x.shape))
    _C.conv_relu_pool_forward(
        _as_array(x),
        _as_array(weight),
        None if bias is None else _as_array(bias),
        output.numpy(),
        **settings,
        num_threads=torch.get_num_threads(),
        indices=None if indices is None else indices.numpy(),
    )
    return output, indices


def _arguments_from_lists(
    weight: torch.Tensor,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    pool_kernel: list[int],
    pool_stride: list[int],
    pool_padding: list[int],
    pool_dilation: list[int],
    ceil_mode: bool,
) -> ConvPoolArguments:
    return normalize_arguments(
        (weight.shape[2], weight.shape[3]),
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


# The custom ops below take validated, normalized arguments: public callers go
# through conv_relu_pool, which checks them and sends the calls that
# select_implementation does not give the kernel to the composite.


@torch.library.custom_op("fcnnzoo::conv_relu_pool", mutates_args=())
def _conv_relu_pool_op(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    pool_kernel: list[int],
    pool_stride: list[int],
    pool_padding: list[int],
    pool_dilation: list[int],
    ceil_mode: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the fused C++ forward kernel on float32 CPU tensors.

    Returns the pooled output and, as uint8 of the same shape, the position
    ``row * pool_kernel[1] + column`` of each maximum inside its window,
    picked as ``max_pool2d`` picks it: the last NaN in row-major order if
    the window has one, else the first maximum. The backward needs nothing
    else. Where the output is zero no gradient flows, and the position is
    only known to lie inside the window.

    Raises:
        ValueError: if the arguments are ones that select_implementation
            sends to the composite, which the kernel does not compute.
    """
    arguments = _arguments_from_lists(
        weight, stride, padding, dilation, groups, pool_kernel, pool_stride, pool_padding, pool_dilation, ceil_mode
    )
    reason = select_implementation(x, weight, bias, arguments)
    if reason is not None:
        raise ValueError(f"fcnnzoo::conv_relu_pool does not compute this call ({reason}); call conv_relu_pool instead.")
    _, pooled_hw = pooled_size((x.shape[2], x.shape[3]), (weight.shape[2], weight.shape[3]), arguments)
    output, indices = _run_fused_forward(x, weight, bias, arguments, pooled_hw, True)
    assert indices is not None
    return output, indices


@_conv_relu_pool_op.register_fake
def _conv_relu_pool_fake(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    pool_kernel: list[int],
    pool_stride: list[int],
    pool_padding: list[int],
    pool_dilation: list[int],
    ceil_mode: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    arguments = _arguments_from_lists(
        weight, stride, padding, dilation, groups, pool_kernel, pool_stride, pool_padding, pool_dilation, ceil_mode
    )
    _, pooled_hw = pooled_size((x.shape[2], x.shape[3]), (weight.shape[2], weight.shape[3]), arguments)
    shape = (x.shape[0], weight.shape[0], *pooled_hw)
    return x.new_empty(shape), x.new_empty(shape, dtype=torch.uint8)


def _uses_sparse_backward(arguments: ConvPoolArguments) -> bool:
    """Return whether the C++ backward that works from the pooling winners covers these arguments.

    It covers plain convolutions without pool padding. For the others the
    backward spreads the winners' gradient into the convolution output and
    runs PyTorch's convolution backward instead.
    """
    return arguments.dilation == (1, 1) and arguments.groups == 1 and arguments.pool_padding == (0, 0)


@torch.library.custom_op("fcnnzoo::conv_relu_pool_backward", mutates_args=())
def _conv_relu_pool_backward_op(
    grad_output: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    output: torch.Tensor,
    indices: torch.Tensor,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    pool_kernel: list[int],
    pool_stride: list[int],
    pool_padding: list[int],
    pool_dilation: list[int],
    ceil_mode: bool,
    output_mask: list[bool],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the gradients of x, weight and bias (of shape (out_channels,) even without a bias).

    ``output`` and ``indices`` are what the forward op returned. A gradient
    whose ``output_mask`` entry is False is skipped and returned as an empty
    tensor of shape ``(0,)``.

    Only a convolution output that won its pooling window with a positive
    or NaN value gets a gradient: the max pool sends it there and the ReLU
    lets it pass, ties, zeros and NaN handled as in PyTorch. For plain
    convolutions the C++ backward works from those winners alone. When x
    or the weight holds NaN or infinity, whose products with the zero
    gradients elsewhere are NaN, and for dilation, groups or pool padding,
    the winners' gradient is instead spread into the full convolution
    output and PyTorch's convolution backward computes the three
    gradients, so the result matches the composite's in those cases too.
    """
    arguments = _arguments_from_lists(
        weight, stride, padding, dilation, groups, pool_kernel, pool_stride, pool_padding, pool_dilation, ceil_mode
    )
    settings = native_settings(arguments)
    shapes = (tuple(x.shape), tuple(weight.shape), (weight.shape[0],))
    if x.shape[0] > 0 and _uses_sparse_backward(arguments):
        grads = tuple(torch.empty(shape) if needed else None for shape, needed in zip(shapes, output_mask, strict=True))
        finite = _C.conv_relu_pool_backward(
            _as_array(grad_output),
            _as_array(output),
            indices.contiguous().numpy(),
            _as_array(x),
            _as_array(weight),
            *(None if grad is None else grad.numpy() for grad in grads),
            stride=arguments.stride,
            padding=arguments.padding,
            pool_kernel=arguments.pool_kernel,
            pool_stride=arguments.pool_stride,
            ceil_mode=arguments.ceil_mode,
            num_threads=torch.get_num_threads(),
        )
        if finite:
            return tuple(grad_output.new_empty((0,)) if grad is None else grad for grad in grads)

    conv_hw, _ = pooled_size((x.shape[2], x.shape[3]), (weight.shape[2], weight.shape[3]), arguments)
    grad_conv = torch.empty((x.shape[0], weight.shape[0], *conv_hw), dtype=torch.float32)
    if x.shape[0] > 0:
        _C.conv_relu_pool_conv_gradient(
            _as_array(grad_output),
            _as_array(output),
            indices.contiguous().numpy(),
            grad_conv.numpy(),
            input_shape=tuple(x.shape),
            weight_shape=tuple(weight.shape),
            **settings,
            num_threads=torch.get_num_threads(),
        )
    grad_x, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
        grad_conv,
        x,
        weight,
        [weight.shape[0]],
        list(arguments.stride),
        list(arguments.padding),
        list(arguments.dilation),
        False,
        [0, 0],
        arguments.groups,
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
    dilation: list[int],
    groups: int,
    pool_kernel: list[int],
    pool_stride: list[int],
    pool_padding: list[int],
    pool_dilation: list[int],
    ceil_mode: bool,
    output_mask: list[bool],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    shapes = (tuple(x.shape), tuple(weight.shape), (weight.shape[0],))
    return tuple(x.new_empty(shape if needed else (0,)) for shape, needed in zip(shapes, output_mask, strict=True))


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, weight, bias, *arguments = inputs
    pooled, indices = output
    ctx.mark_non_differentiable(indices)
    ctx.save_for_backward(x, weight, pooled, indices)
    ctx.has_bias = bias is not None
    ctx.arguments = tuple(arguments)


def _backward(ctx: Any, grad_output: torch.Tensor, _grad_indices: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    x, weight, pooled, indices = ctx.saved_tensors
    output_mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
    grads = torch.ops.fcnnzoo.conv_relu_pool_backward(grad_output, x, weight, pooled, indices, *ctx.arguments, output_mask)
    return (
        *(grad if needed else None for grad, needed in zip(grads, output_mask, strict=True)),
        *(None for _ in ctx.arguments),
    )


_conv_relu_pool_op.register_autograd(_backward, setup_context=_setup_context)
