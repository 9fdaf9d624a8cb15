"""Normalization and output-size rules of the conv2d and max_pool2d arguments of the fused op.

The rules follow ``torch.nn.functional.conv2d`` and ``max_pool2d`` in
PyTorch 2.13. Sizes are an int or a sequence of one or two ints, and the
convolution padding may also be ``"same"`` or ``"valid"``. Invalid values
raise :class:`ConvPoolArgumentError`, which is both a ``ValueError`` and the
``RuntimeError`` that PyTorch raises for the same values. This module imports
no torch.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ConvPoolArgumentError",
    "ConvPoolArguments",
    "Pair",
    "conv_output_size",
    "normalize_arguments",
    "pool_output_size",
    "pooled_size",
    "to_pair",
]

Pair = tuple[int, int]

PaddingArgument = int | Sequence[int] | str


class ConvPoolArgumentError(ValueError, RuntimeError):
    """An invalid size, stride, padding, dilation or groups argument.

    A ``ValueError`` as the project's other argument checks raise, and a
    ``RuntimeError`` as ``F.conv2d`` and ``F.max_pool2d`` raise for the same
    values, so code written against either catches it.
    """


def _is_int(value: object) -> bool:
    # numbers.Integral covers NumPy integer scalars, which conv2d and max_pool2d accept too.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def to_pair(value: object, name: str) -> Pair:
    """Return ``value`` as an ``(height, width)`` pair of ints.

    Args:
        value: an int, or a sequence of one int (used for both axes) or two ints.
        name: the argument name for the error message.

    Returns:
        The pair.

    Raises:
        TypeError: if ``value`` is neither an int nor a sequence of one or two ints.
    """
    if _is_int(value):
        return (int(value), int(value))  # type: ignore[call-overload]
    if isinstance(value, (tuple, list)) and len(value) in (1, 2) and all(_is_int(item) for item in value):
        return (int(value[0]), int(value[-1]))
    raise TypeError(f"{name} must be an int or a pair of ints (height, width), got {value!r}.")


@dataclass(frozen=True)
class ConvPoolArguments:
    """The normalized conv2d and max_pool2d arguments of one call.

    ``padding`` is the zero padding above and left of the input.
    ``padding_extra`` is the one more row or column that ``padding="same"``
    adds below or right of the input when the dilated kernel has an even
    size, and (0, 0) otherwise. ``padding_text`` keeps ``"same"`` or
    ``"valid"`` so the composite receives what the caller wrote.
    """

    stride: Pair
    padding: Pair
    padding_extra: Pair
    padding_text: str | None
    dilation: Pair
    groups: int
    pool_kernel: Pair
    pool_stride: Pair
    pool_padding: Pair
    pool_dilation: Pair
    ceil_mode: bool

    @property
    def conv_padding(self) -> Pair | str:
        """The padding argument to pass to ``F.conv2d``."""
        return self.padding if self.padding_text is None else self.padding_text

    def op_lists(self) -> dict[str, list[int] | int | bool]:
        """Return the arguments in the form the ``fcnnzoo::conv_relu_pool`` schema takes."""
        return dict(
            stride=list(self.stride),
            padding=list(self.padding),
            dilation=list(self.dilation),
            groups=self.groups,
            pool_kernel=list(self.pool_kernel),
            pool_stride=list(self.pool_stride),
            pool_padding=list(self.pool_padding),
            pool_dilation=list(self.pool_dilation),
            ceil_mode=self.ceil_mode,
        )


def _require_positive(pair: Pair, name: str, rule: str = "positive") -> None:
    if pair[0] <= 0 or pair[1] <= 0:
        raise ConvPoolArgumentError(f"{name} must be {rule}, got {pair}.")


def _normalize_padding(
    padding: PaddingArgument, kernel_hw: Pair, stride_hw: Pair, dilation_hw: Pair
) -> tuple[Pair, Pair, str | None]:
    """Return the leading padding, the extra trailing padding and the padding string, if any."""
    if not isinstance(padding, str):
        padding_hw = to_pair(padding, "padding")
        if padding_hw[0] < 0 or padding_hw[1] < 0:
            raise ConvPoolArgumentError(f"padding must be non-negative, got {padding_hw}.")
        return padding_hw, (0, 0), None
    if padding == "valid":
        return (0, 0), (0, 0), padding
    if padding != "same":
        raise ConvPoolArgumentError(f"padding must be an int, a pair of ints, 'same' or 'valid', got {padding!r}.")
    if stride_hw != (1, 1):
        raise ConvPoolArgumentError(
            f"padding='same' needs stride 1, got stride={stride_hw}; pass explicit padding for a strided convolution."
        )
    # The total padding is the dilated kernel size minus one, split with the odd row or column below or right.
    totals = (dilation_hw[0] * (kernel_hw[0] - 1), dilation_hw[1] * (kernel_hw[1] - 1))
    leading = (totals[0] // 2, totals[1] // 2)
    return leading, (totals[0] - 2 * leading[0], totals[1] - 2 * leading[1]), padding


def normalize_arguments(
    kernel_hw: Pair,
    *,
    stride: int | Sequence[int] = 1,
    padding: PaddingArgument = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    pool_kernel: int | Sequence[int] = 2,
    pool_stride: int | Sequence[int] | None = None,
    pool_padding: int | Sequence[int] = 0,
    pool_dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
) -> ConvPoolArguments:
    """Check and normalize the arguments of a conv-ReLU-pool call.

    Args:
        kernel_hw: the convolution kernel ``(height, width)``, needed by ``padding="same"``.
        stride: convolution stride.
        padding: zero padding on both sides, or ``"same"`` or ``"valid"``.
        dilation: spacing between kernel taps.
        groups: number of blocked connections from input to output channels.
        pool_kernel: max-pool window.
        pool_stride: max-pool stride; None or an empty sequence means ``pool_kernel``.
        pool_padding: implicit negative-infinity padding of the max pool, at
            most half of ``pool_kernel``.
        pool_dilation: spacing between max-pool window positions.
        ceil_mode: round the pooled size up instead of down.

    Returns:
        The normalized arguments.

    Raises:
        TypeError: if a size is not an int or a sequence of one or two ints,
            ``groups`` is not an int or ``ceil_mode`` is not a bool.
        ConvPoolArgumentError: if a value is out of range, as ``F.conv2d``
            and ``F.max_pool2d`` reject it.
    """
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"ceil_mode must be True or False, got {ceil_mode!r} ({type(ceil_mode).__name__}).")
    if not _is_int(groups):
        raise TypeError(f"groups must be an int, got {groups!r} ({type(groups).__name__}).")
    groups = int(groups)
    if groups <= 0:
        raise ConvPoolArgumentError(f"groups must be positive, got {groups}.")

    stride_hw = to_pair(stride, "stride")
    _require_positive(stride_hw, "stride")
    dilation_hw = to_pair(dilation, "dilation")
    _require_positive(dilation_hw, "dilation")
    padding_hw, padding_extra, padding_text = _normalize_padding(padding, kernel_hw, stride_hw, dilation_hw)

    pool_kernel_hw = to_pair(pool_kernel, "pool_kernel")
    _require_positive(pool_kernel_hw, "pool_kernel")
    no_pool_stride = pool_stride is None or (isinstance(pool_stride, (tuple, list)) and len(pool_stride) == 0)
    pool_stride_hw = pool_kernel_hw if no_pool_stride else to_pair(pool_stride, "pool_stride")
    _require_positive(pool_stride_hw, "pool_stride")
    pool_dilation_hw = to_pair(pool_dilation, "pool_dilation")
    _require_positive(pool_dilation_hw, "pool_dilation")
    pool_padding_hw = to_pair(pool_padding, "pool_padding")
    if pool_padding_hw[0] < 0 or pool_padding_hw[1] < 0:
        raise ConvPoolArgumentError(f"pool_padding must be non-negative, got {pool_padding_hw}.")
    # PyTorch 2.13 checks the padding against half of the undilated pool window,
    # which also keeps it within half of the dilated one.
    if any(2 * pool_padding_hw[axis] > pool_kernel_hw[axis] for axis in range(2)):
        raise ConvPoolArgumentError(
            f"pool_padding must be at most half of pool_kernel, got pool_padding={pool_padding_hw} "
            f"for pool_kernel={pool_kernel_hw}; lower pool_padding or enlarge pool_kernel."
        )

    return ConvPoolArguments(
        stride=stride_hw,
        padding=padding_hw,
        padding_extra=padding_extra,
        padding_text=padding_text,
        dilation=dilation_hw,
        groups=groups,
        pool_kernel=pool_kernel_hw,
        pool_stride=pool_stride_hw,
        pool_padding=pool_padding_hw,
        pool_dilation=pool_dilation_hw,
        ceil_mode=ceil_mode,
    )


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1, extra: int = 0) -> int:
    """Return the conv2d output size along one axis; zero or less when the dilated kernel does not fit."""
    return (size + 2 * padding + extra - dilation * (kernel - 1) - 1) // stride + 1


def pool_output_size(
    size: int, kernel: int, stride: int, ceil_mode: bool, padding: int = 0, dilation: int = 1
) -> int:
    """Return the max_pool2d output size along one axis.

    ceil_mode rounds up, but a last window that would start in the right or
    bottom padding is dropped, as PyTorch does.
    """
    rounding = stride - 1 if ceil_mode else 0
    output = (size + 2 * padding - dilation * (kernel - 1) - 1 + rounding) // stride + 1
    if ceil_mode and output > 0 and (output - 1) * stride >= size + padding:
        output -= 1
    return output


def pooled_size(input_hw: Pair, kernel_hw: Pair, arguments: ConvPoolArguments) -> tuple[Pair, Pair]:
    """Return the convolution and pooled output sizes of a call.

    Raises:
        ConvPoolArgumentError: if the dilated kernel is larger than the padded
            input or the pooled output would be empty.
    """
    padded = tuple(
        input_hw[axis] + 2 * arguments.padding[axis] + arguments.padding_extra[axis] for axis in range(2)
    )
    dilated = tuple(arguments.dilation[axis] * (kernel_hw[axis] - 1) + 1 for axis in range(2))
    if dilated[0] > padded[0] or dilated[1] > padded[1]:
        kernel_text = f"kernel size {tuple(kernel_hw)}"
        if arguments.dilation != (1, 1):
            kernel_text += f" (dilated to {dilated})"
        raise ConvPoolArgumentError(
            f"{kernel_text} is larger than the padded input {padded} "
            f"(input {tuple(input_hw)} plus padding {arguments.padding} on both sides); "
            "use a smaller kernel or dilation, or more padding."
        )
    conv_hw = tuple(
        conv_output_size(
            input_hw[axis],
            kernel_hw[axis],
            arguments.stride[axis],
            arguments.padding[axis],
            arguments.dilation[axis],
            arguments.padding_extra[axis],
        )
        for axis in range(2)
    )
    pooled_hw = tuple(
        pool_output_size(
            conv_hw[axis],
            arguments.pool_kernel[axis],
            arguments.pool_stride[axis],
            arguments.ceil_mode,
            arguments.pool_padding[axis],
            arguments.pool_dilation[axis],
        )
        for axis in range(2)
    )
    if pooled_hw[0] <= 0 or pooled_hw[1] <= 0:
        window = f"pool_kernel {arguments.pool_kernel}"
        if arguments.pool_dilation != (1, 1) or arguments.pool_padding != (0, 0):
            window += f" with pool_dilation {arguments.pool_dilation} and pool_padding {arguments.pool_padding}"
        raise ConvPoolArgumentError(
            f"{window} is larger than the convolution output {conv_hw}, "
            "so the output would be empty; use a smaller pool_kernel or pool_dilation, or a larger input."
        )
    return (conv_hw[0], conv_hw[1]), (pooled_hw[0], pooled_hw[1])
