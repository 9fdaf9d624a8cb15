"""The fused conv-ReLU-pool op against the PyTorch composite, and its argument checks."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from fcnnzoo import _C
from fcnnzoo.ops import conv_relu_pool
from fcnnzoo.ops import conv_relu_pool_output_size
from fcnnzoo.ops import conv_relu_pool_reference

# float32 tolerances: the kernel sums the products in another order than oneDNN.
RTOL = 1e-5
ATOL = 1e-4


def composite(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, **arguments: Any) -> torch.Tensor:
    """Compute the expected result with torch.nn.functional, spelled out independently of fcnnzoo."""
    pool_kernel = arguments.get("pool_kernel", 2)
    pool_stride = arguments.get("pool_stride")
    y = F.conv2d(x, weight, bias, arguments.get("stride", 1), arguments.get("padding", 0))
    return F.max_pool2d(F.relu(y), pool_kernel, pool_stride, ceil_mode=arguments.get("ceil_mode", False))


def random_problem(
    batch: int, in_channels: int, out_channels: int, size: tuple[int, int], kernel: tuple[int, int], seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, in_channels, *size, generator=generator)
    weight = torch.randn(out_channels, in_channels, *kernel, generator=generator) * 0.5
    bias = torch.randn(out_channels, generator=generator)
    return x, weight, bias


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def num_threads(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(previous)


# (batch, in_channels, out_channels, (H, W), (kh, kw), arguments)
SWEEP = [
    pytest.param(2, 1, 32, (28, 28), (3, 3), {}, id="layer1-shape"),
    pytest.param(2, 32, 64, (13, 13), (3, 3), {}, id="layer2-shape"),
    pytest.param(3, 3, 7, (11, 9), (3, 3), {}, id="odd-size-7-channels"),
    pytest.param(2, 5, 17, (15, 13), (3, 2), {"stride": 2}, id="stride-2-rect-kernel"),
    pytest.param(2, 2, 33, (12, 17), (2, 3), {"stride": (1, 2), "padding": (2, 1)}, id="rect-stride-padding"),
    pytest.param(1, 4, 20, (9, 9), (5, 5), {"padding": 2}, id="padding-2"),
    pytest.param(2, 3, 9, (10, 10), (3, 3), {"padding": 1, "ceil_mode": True}, id="ceil-even"),
    pytest.param(2, 3, 9, (11, 11), (3, 3), {"ceil_mode": True, "pool_kernel": 3, "pool_stride": 2}, id="ceil-3-2"),
    pytest.param(2, 3, 9, (11, 11), (3, 3), {"pool_kernel": 3, "pool_stride": 2}, id="overlapping-pool"),
    pytest.param(2, 3, 9, (12, 12), (3, 3), {"pool_kernel": 2, "pool_stride": 3}, id="pool-gaps"),
    pytest.param(2, 3, 12, (12, 14), (3, 3), {"pool_kernel": (2, 3), "pool_stride": (1, 2)}, id="rect-pool"),
    pytest.param(2, 2, 5, (8, 8), (3, 3), {"pool_kernel": 1}, id="pool-1-is-relu"),
    pytest.param(1, 1, 1, (5, 5), (5, 5), {"pool_kernel": 1}, id="one-output"),
    pytest.param(1, 2, 3, (4, 4), (3, 3), {"pool_kernel": 3, "ceil_mode": True}, id="ceil-window-past-edge"),
    pytest.param(1, 3, 6, (7, 30), (1, 1), {"pool_kernel": (1, 2)}, id="wide-row-1x1"),
    pytest.param(2, 2, 16, (9, 9), (4, 4), {"stride": 3, "padding": 3}, id="padding-beyond-stride"),
    pytest.param(1, 3, 8, (6, 6), (2, 2), {"padding": 4, "pool_kernel": 2}, id="padding-larger-than-kernel"),
]


@pytest.mark.parametrize(("batch", "in_channels", "out_channels", "size", "kernel", "arguments"), SWEEP)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_sweep_matches_composite(
    batch: int,
    in_channels: int,
    out_channels: int,
    size: tuple[int, int],
    kernel: tuple[int, int],
    arguments: dict[str, Any],
    with_bias: bool,
    num_threads: int,
) -> None:
    x, weight, bias = random_problem(batch, in_channels, out_channels, size, kernel)
    bias = bias if with_bias else None

    result = conv_relu_pool(x, weight, bias, **arguments)
    expected = composite(x, weight, bias, **arguments)

    assert result.shape == expected.shape
    assert result.dtype == torch.float32
    torch.testing.assert_close(result, expected, rtol=RTOL, atol=ATOL)


def _as_pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value


def run_kernel(
    kernel: str,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    output_shape: torch.Size,
    num_threads: int = 2,
    **arguments: Any,
) -> torch.Tensor:
    """Run one named kernel variant through the binding and return its output."""
    pool_kernel = arguments.get("pool_kernel", 2)
    pool_stride = arguments.get("pool_stride") or pool_kernel
    output = torch.full(output_shape, float("nan"))
    _C.conv_relu_pool_forward(
        x.numpy(),
        weight.numpy(),
        None if bias is None else bias.numpy(),
        output.numpy(),
        stride=_as_pair(arguments.get("stride", 1)),
        padding=_as_pair(arguments.get("padding", 0)),
        pool_kernel=_as_pair(pool_kernel),
        pool_stride=_as_pair(pool_stride),
        ceil_mode=arguments.get("ceil_mode", False),
        num_threads=num_threads,
        kernel=kernel,
    )
    return output


def winograd_fits(kernel_size: tuple[int, int], conv_size: tuple[int, int], arguments: dict[str, Any]) -> bool:
    """Return whether the Winograd kernels support a call: 3x3 stride 1, 2x2 pool stride 2 inside the output."""
    pool_kernel = _as_pair(arguments.get("pool_kernel", 2))
    pool_stride = _as_pair(arguments.get("pool_stride") or pool_kernel)
    pooled = conv_relu_pool_output_size(conv_size, 1, pool_kernel=pool_kernel, pool_stride=pool_stride,
                                        ceil_mode=arguments.get("ceil_mode", False))
    return (
        tuple(kernel_size) == (3, 3)
        and _as_pair(arguments.get("stride", 1)) == (1, 1)
        and pool_kernel == (2, 2)
        and pool_stride == (2, 2)
        and 2 * pooled[0] <= conv_size[0]
        and 2 * pooled[1] <= conv_size[1]
    )


@pytest.mark.parametrize("kernel", _C.supported_kernels())
@pytest.mark.parametrize(("batch", "in_channels", "out_channels", "size", "kernel_size", "arguments"), SWEEP)
def test_every_kernel_variant_matches(
    kernel: str,
    batch: int,
    in_channels: int,
    out_channels: int,
    size: tuple[int, int],
    kernel_size: tuple[int, int],
    arguments: dict[str, Any],
) -> None:
    x, weight, bias = random_problem(batch, in_channels, out_channels, size, kernel_size, seed=1)
    y = F.conv2d(x, weight, bias, arguments.get("stride", 1), arguments.get("padding", 0))
    expected = composite(x, weight, bias, **arguments)

    if kernel.startswith("winograd") and not winograd_fits(kernel_size, tuple(y.shape[2:]), arguments):
        with pytest.raises(ValueError, match=r"does not support this shape; it needs 3x3 kernels with stride 1"):
            run_kernel(kernel, x, weight, bias, expected.shape, **arguments)
        return

    output = run_kernel(kernel, x, weight, bias, expected.shape, **arguments)
    torch.testing.assert_close(output, expected, rtol=RTOL, atol=ATOL)


WINOGRAD_KERNELS = [name for name in _C.supported_kernels() if name.startswith("winograd")]

# (batch, in_channels, out_channels, (H, W), arguments); all fit the Winograd kernels.
WINOGRAD_SWEEP = [
    pytest.param(2, 32, 64, (13, 13), {}, id="layer2-shape"),
    pytest.param(1, 1, 32, (28, 28), {}, id="layer1-shape"),
    pytest.param(3, 3, 5, (9, 12), {"padding": 1}, id="odd-channels-padding"),
    pytest.param(2, 13, 17, (11, 8), {"padding": (2, 0)}, id="13-to-17-rect-padding"),
    pytest.param(1, 40, 33, (10, 10), {"ceil_mode": True}, id="ceil-even-output"),
    pytest.param(2, 17, 7, (5, 5), {"padding": 3}, id="padding-3-small-image"),
    pytest.param(1, 8, 16, (4, 4), {}, id="one-tile"),
    pytest.param(4, 9, 24, (30, 7), {}, id="tall-image"),
]


@pytest.mark.parametrize("kernel", WINOGRAD_KERNELS)
@pytest.mark.parametrize(("batch", "in_channels", "out_channels", "size", "arguments"), WINOGRAD_SWEEP)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_winograd_matches_composite(
    kernel: str,
    batch: int,
    in_channels: int,
    out_channels: int,
    size: tuple[int, int],
    arguments: dict[str, Any],
    with_bias: bool,
) -> None:
    x, weight, bias = random_problem(batch, in_channels, out_channels, size, (3, 3), seed=2)
    bias = bias if with_bias else None
    expected = composite(x, weight, bias, **arguments)

    for num_threads in (1, 2):
        output = run_kernel(kernel, x, weight, bias, expected.shape, num_threads=num_threads, **arguments)
        torch.testing.assert_close(output, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kernel", WINOGRAD_KERNELS)
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 3e38], ids=["inf", "-inf", "nan", "huge"])
def test_winograd_non_finite_values(kernel: str, value: float) -> None:
    x, weight, bias = random_problem(2, 12, 20, (10, 10), (3, 3), seed=3)
    x[0, 4, 3, 6] = value
    x[1, 0, 9, 9] = value
    expected = composite(x, weight, bias, padding=1)

    output = run_kernel(kernel, x, weight, bias, expected.shape, padding=1)

    assert torch.equal(output.isnan(), expected.isnan())
    assert torch.equal(output.isinf(), expected.isinf())
    torch.testing.assert_close(output, expected, rtol=RTOL, atol=ATOL, equal_nan=True)


def test_default_kernel_choice() -> None:
    arguments = {"stride": (1, 1), "padding": (0, 0), "pool_kernel": (2, 2), "pool_stride": (2, 2), "ceil_mode": False}
    fastest_isa = _C.supported_kernels()[0].rsplit("_", 1)[1]

    assert _C.select_kernel((64, 1, 28, 28), (32, 1, 3, 3), **arguments).startswith("direct_")
    assert _C.select_kernel((64, 32, 13, 13), (64, 32, 3, 3), **arguments) == _C.supported_kernels()[0]
    assert _C.select_kernel((64, 32, 13, 13), (64, 32, 5, 5), **arguments).endswith(fastest_isa)
    assert _C.select_kernel((1, 32, 13, 13), (64, 32, 3, 3), **{**arguments, "stride": (2, 2)}).startswith("direct_")
    with pytest.raises(ValueError, match=r"weight_shape expects 2 input channels but input_shape has 3"):
        _C.select_kernel((1, 3, 8, 8), (4, 2, 3, 3), **arguments)
    with pytest.raises(ValueError, match=r"stride_height must be between 1"):
        _C.select_kernel((1, 3, 8, 8), (4, 3, 3, 3), **{**arguments, "stride": (0, 1)})


def test_thread_count_keeps_result() -> None:
    x, weight, bias = random_problem(5, 6, 40, (17, 17), (3, 3))
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = conv_relu_pool(x, weight, bias, padding=1)
        torch.set_num_threads(2)
        double = conv_relu_pool(x, weight, bias, padding=1)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(single, double)


def test_concurrent_calls_from_threads() -> None:
    x, weight, bias = random_problem(8, 4, 24, (16, 16), (3, 3))
    expected = composite(x, weight, bias, padding=1)

    # The kernel releases the GIL, so these calls overlap, each with its own team of threads.
    with ThreadPoolExecutor(max_workers=4) as executor:
        results = list(executor.map(lambda _: conv_relu_pool(x, weight, bias, padding=1), range(16)))

    for result in results:
        torch.testing.assert_close(result, expected, rtol=RTOL, atol=ATOL)


def _forward_with_two_threads(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    output = np.empty((x.shape[0], weight.shape[0], 7, 7), dtype=np.float32)
    _C.conv_relu_pool_forward(
        x,
        weight,
        bias,
        output,
        stride=(1, 1),
        padding=(0, 0),
        pool_kernel=(2, 2),
        pool_stride=(2, 2),
        ceil_mode=False,
        num_threads=2,
    )
    return output


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_does_not_hang() -> None:
    x, weight, bias = random_problem(8, 4, 24, (16, 16), (3, 3))
    expected = composite(x, weight, bias)
    # Start the threads in this process; the child inherits their state but not the threads.
    parent_result = _forward_with_two_threads(x.numpy(), weight.numpy(), bias.numpy())
    torch.testing.assert_close(torch.from_numpy(parent_result), expected, rtol=RTOL, atol=ATOL)

    with multiprocessing.get_context("fork").Pool(1) as pool:
        pending = pool.apply_async(_forward_with_two_threads, (x.numpy(), weight.numpy(), bias.numpy()))
        child_result = pending.get(timeout=60)

    torch.testing.assert_close(torch.from_numpy(child_result), expected, rtol=RTOL, atol=ATOL)


def test_input_layouts_read_correctly(num_threads: int) -> None:
    x, weight, bias = random_problem(3, 6, 20, (14, 12), (3, 3))
    expected = composite(x, weight, bias, padding=1)

    channels_last = x.to(memory_format=torch.channels_last)
    assert not channels_last.is_contiguous()
    torch.testing.assert_close(conv_relu_pool(channels_last, weight, bias, padding=1), expected, rtol=RTOL, atol=ATOL)

    weight_channels_last = weight.to(memory_format=torch.channels_last)
    torch.testing.assert_close(
        conv_relu_pool(x, weight_channels_last, bias, padding=1), expected, rtol=RTOL, atol=ATOL
    )

    # Every other image, channel and column of a larger tensor.
    big = torch.zeros(6, 12, 14, 24)
    big[::2, ::2, :, ::2] = x
    sliced = big[::2, ::2, :, ::2]
    assert not sliced.is_contiguous()
    torch.testing.assert_close(conv_relu_pool(sliced, weight, bias, padding=1), expected, rtol=RTOL, atol=ATOL)

    transposed = x.transpose(2, 3).contiguous().transpose(2, 3)
    torch.testing.assert_close(conv_relu_pool(transposed, weight, bias, padding=1), expected, rtol=RTOL, atol=ATOL)

    strided_bias = torch.stack([bias, -bias], dim=1)[:, 0]
    assert not strided_bias.is_contiguous()
    torch.testing.assert_close(conv_relu_pool(x, weight, strided_bias, padding=1), expected, rtol=RTOL, atol=ATOL)


def test_contiguous_view_with_offset() -> None:
    x, weight, bias = random_problem(6, 2, 8, (10, 10), (3, 3))
    view = x[2:5]
    assert view.is_contiguous()
    assert view.storage_offset() > 0
    torch.testing.assert_close(conv_relu_pool(view, weight, bias), composite(view, weight, bias), rtol=RTOL, atol=ATOL)


def test_input_is_left_unchanged() -> None:
    x, weight, bias = random_problem(2, 3, 8, (10, 10), (3, 3))
    copies = (x.clone(), weight.clone(), bias.clone())
    conv_relu_pool(x, weight, bias, padding=1)
    assert torch.equal(x, copies[0])
    assert torch.equal(weight, copies[1])
    assert torch.equal(bias, copies[2])


def test_batch_zero_returns_empty() -> None:
    weight = torch.randn(8, 3, 3, 3)
    x = torch.randn(0, 3, 12, 12)
    result = conv_relu_pool(x, weight, padding=1)
    expected = composite(x, weight, None, padding=1)
    assert result.shape == expected.shape == (0, 8, 6, 6)


def test_nan_propagates_like_composite(num_threads: int) -> None:
    x, weight, bias = random_problem(2, 3, 20, (12, 12), (3, 3))
    x[0, 1, 5, 5] = float("nan")
    x[1, 0, 0, 0] = float("nan")

    result = conv_relu_pool(x, weight, bias, padding=1)
    expected = composite(x, weight, bias, padding=1)

    assert torch.equal(result.isnan(), expected.isnan())
    assert result.isnan().any()
    torch.testing.assert_close(result, expected, rtol=RTOL, atol=ATOL, equal_nan=True)


def test_nan_in_weight_and_infinity() -> None:
    x, weight, bias = random_problem(2, 3, 20, (10, 10), (3, 3))
    weight[3, 0, 1, 1] = float("nan")
    x[1, 2, 4, 4] = float("inf")
    bias[7] = float("-inf")

    result = conv_relu_pool(x, weight, bias)
    expected = composite(x, weight, bias)

    assert torch.equal(result.isnan(), expected.isnan())
    assert torch.equal(result.isinf(), expected.isinf())
    torch.testing.assert_close(result, expected, rtol=RTOL, atol=ATOL, equal_nan=True)


def test_all_negative_outputs_become_zero() -> None:
    x = torch.rand(2, 3, 9, 9)
    weight = -torch.rand(5, 3, 3, 3)
    result = conv_relu_pool(x, weight, torch.full((5,), -1.0))
    assert torch.equal(result, torch.zeros(2, 5, 3, 3))


def test_float64_uses_composite() -> None:
    x, weight, bias = (tensor.double() for tensor in random_problem(2, 3, 7, (10, 10), (3, 3)))
    result = conv_relu_pool(x, weight, bias, padding=1)
    assert result.dtype == torch.float64
    torch.testing.assert_close(result, composite(x, weight, bias, padding=1), rtol=1e-12, atol=1e-12)


def test_requires_grad_runs_fused_op() -> None:
    x, weight, bias = random_problem(2, 3, 7, (10, 10), (3, 3))
    reference_inputs = [tensor.clone().requires_grad_() for tensor in (x, weight, bias)]
    inputs = [tensor.clone().requires_grad_() for tensor in (x, weight, bias)]

    result = conv_relu_pool(*inputs, padding=1)
    expected = composite(*reference_inputs, padding=1)
    assert "fcnnzoo_conv_relu_pool" in type(result.grad_fn).__name__
    torch.testing.assert_close(result, expected, rtol=RTOL, atol=ATOL)

    result.square().sum().backward()
    expected.square().sum().backward()
    for name, tensor, reference in zip(("x", "weight", "bias"), inputs, reference_inputs, strict=True):
        assert tensor.grad is not None, name
        torch.testing.assert_close(tensor.grad, reference.grad, rtol=RTOL, atol=ATOL)


def test_no_grad_runs_fused() -> None:
    x, weight, bias = random_problem(2, 3, 7, (10, 10), (3, 3))
    weight.requires_grad_()
    with torch.no_grad():
        result = conv_relu_pool(x, weight, bias)
    assert result.grad_fn is None
    assert not result.requires_grad
    torch.testing.assert_close(result, composite(x, weight.detach(), bias), rtol=RTOL, atol=ATOL)


def test_inference_mode_runs_fused() -> None:
    x, weight, bias = random_problem(2, 3, 7, (10, 10), (3, 3))
    with torch.inference_mode():
        result = conv_relu_pool(x, weight, bias)
    torch.testing.assert_close(result, composite(x, weight, bias), rtol=RTOL, atol=ATOL)


def test_reference_is_the_composite() -> None:
    x, weight, bias = random_problem(2, 3, 7, (11, 11), (3, 3))
    arguments = {"stride": 2, "padding": 1, "pool_kernel": 3, "pool_stride": 2, "ceil_mode": True}
    torch.testing.assert_close(
        conv_relu_pool_reference(x, weight, bias, **arguments), composite(x, weight, bias, **arguments)
    )


@pytest.mark.parametrize(
    ("size", "kernel", "arguments", "expected"),
    [
        ((28, 28), 3, {}, (13, 13)),
        ((13, 13), 3, {}, (5, 5)),
        ((13, 13), 3, {"ceil_mode": True}, (6, 6)),
        ((6, 6), 3, {"pool_kernel": 3, "pool_stride": 3, "ceil_mode": True}, (2, 2)),
        ((10, 7), (3, 2), {"stride": (2, 1), "padding": (1, 0)}, (2, 3)),
    ],
)
def test_output_size(size: tuple[int, int], kernel: Any, arguments: dict[str, Any], expected: tuple[int, int]) -> None:
    assert conv_relu_pool_output_size(size, kernel, **arguments) == expected
    x = torch.zeros(1, 1, *size)
    weight = torch.zeros(1, 1, *_as_pair(kernel))
    assert tuple(composite(x, weight, None, **arguments).shape[2:]) == expected


def _valid_call() -> dict[str, Any]:
    x, weight, bias = random_problem(2, 3, 4, (8, 8), (3, 3))
    return {"x": x, "weight": weight, "bias": bias}


INVALID_CALLS = [
    pytest.param({"x": [[1.0]]}, TypeError, r"x must be a torch\.Tensor", id="x-not-tensor"),
    pytest.param({"weight": np.zeros((4, 3, 3, 3))}, TypeError, r"weight must be a torch\.Tensor", id="weight-numpy"),
    pytest.param({"bias": 1.0}, TypeError, r"bias must be a torch\.Tensor", id="bias-float"),
    pytest.param({"x": torch.zeros(2, 3, 8, 8, dtype=torch.int64)}, TypeError, r"x must have a floating", id="x-int"),
    pytest.param({"weight": torch.zeros(4, 3, 3, 3, dtype=torch.bool)}, TypeError, "weight must", id="weight-bool"),
    pytest.param({"weight": torch.zeros(4, 3, 3, 3).double()}, TypeError, r"weight has dtype", id="dtype-mismatch"),
    pytest.param({"bias": torch.zeros(4).half()}, TypeError, r"bias has dtype", id="bias-dtype-mismatch"),
    pytest.param({"x": torch.zeros(8, 8)}, ValueError, r"x must be a 3-D \(C, H, W\) or 4-D", id="x-2d"),
    pytest.param({"x": torch.zeros(1, 2, 3, 8, 8)}, ValueError, r"x must be a 3-D .* or 4-D", id="x-5d"),
    pytest.param({"weight": torch.zeros(4, 3, 3)}, ValueError, r"weight must be a 4-D", id="weight-3d"),
    pytest.param({"weight": torch.zeros(0, 3, 3, 3)}, ValueError, r"weight must have at least one", id="no-out"),
    pytest.param({"weight": torch.zeros(4, 2, 3, 3)}, ValueError, r"x has 3 channels but weight expects 2", id="mismatch"),
    pytest.param(
        {"x": torch.zeros(2, 0, 8, 8), "weight": torch.zeros(4, 0, 3, 3)}, ValueError, r"at least one channel", id="c0"
    ),
    pytest.param({"x": torch.zeros(2, 3, 0, 8)}, ValueError, r"x must have a positive height", id="height-0"),
    pytest.param({"weight": torch.zeros(4, 3, 0, 3)}, ValueError, r"weight must have a positive kernel", id="kh-0"),
    pytest.param({"bias": torch.zeros(5)}, ValueError, r"bias must be a 1-D tensor of out_channels=4", id="bias-size"),
    pytest.param({"bias": torch.zeros(4, 1)}, ValueError, r"bias must be a 1-D", id="bias-2d"),
    pytest.param({"stride": 0}, ValueError, r"stride must be positive, got \(0, 0\)", id="stride-0"),
    pytest.param({"stride": (1, -2)}, ValueError, r"stride must be positive", id="stride-negative"),
    pytest.param({"stride": 1.5}, TypeError, r"stride must be an int or a pair", id="stride-float"),
    pytest.param({"stride": (1, 2, 3)}, TypeError, r"stride must be an int or a pair", id="stride-triple"),
    pytest.param({"stride": True}, TypeError, r"stride must be an int or a pair", id="stride-bool"),
    pytest.param({"padding": -1}, ValueError, r"padding must be non-negative", id="padding-negative"),
    pytest.param({"padding": "1"}, ValueError, r"padding must be an int, a pair of ints, 'same' or 'valid', got '1'",
                 id="padding-str"),
    pytest.param({"padding": 1.0}, TypeError, r"padding must be an int or a pair", id="padding-float"),
    pytest.param({"padding": "same", "stride": 2}, ValueError, r"padding='same' needs stride 1, got stride=\(2, 2\)",
                 id="same-strided"),
    pytest.param({"dilation": 0}, ValueError, r"dilation must be positive, got \(0, 0\)", id="dilation-0"),
    pytest.param({"dilation": (1, -1)}, ValueError, r"dilation must be positive, got \(1, -1\)", id="dilation-neg"),
    pytest.param({"dilation": 2.0}, TypeError, r"dilation must be an int or a pair", id="dilation-float"),
    pytest.param({"dilation": 4}, ValueError, r"kernel size \(3, 3\) \(dilated to \(9, 9\)\) is larger", id="dilated-big"),
    pytest.param({"groups": 0}, ValueError, r"groups must be positive, got 0", id="groups-0"),
    pytest.param({"groups": 1.0}, TypeError, r"groups must be an int, got 1.0", id="groups-float"),
    pytest.param(
        {"groups": 3, "weight": torch.zeros(4, 1, 3, 3)},
        ValueError,
        r"groups=3 must divide the weight's out_channels, got weight shape \(4, 1, 3, 3\)",
        id="groups-out",
    ),
    pytest.param(
        {"groups": 2, "weight": torch.zeros(4, 3, 3, 3)},
        ValueError,
        r"x has 3 channels but weight expects in_channels / groups = 3 with groups=2, so 6",
        id="groups-in",
    ),
    pytest.param({"pool_padding": -1}, ValueError, r"pool_padding must be non-negative, got \(-1, -1\)", id="pp-neg"),
    pytest.param(
        {"pool_padding": 2}, ValueError, r"pool_padding must be at most half of pool_kernel, got pool_padding=\(2, 2\)", id="pp-big"
    ),
    pytest.param({"pool_padding": (0, 1.5)}, TypeError, r"pool_padding must be an int or a pair", id="pp-float"),
    pytest.param({"pool_dilation": 0}, ValueError, r"pool_dilation must be positive, got \(0, 0\)", id="pd-0"),
    pytest.param({"pool_dilation": 6}, ValueError, r"output would be empty", id="pd-empty"),
    pytest.param({"pool_kernel": 0}, ValueError, r"pool_kernel must be positive", id="pool-kernel-0"),
    pytest.param({"pool_kernel": (2, -1)}, ValueError, r"pool_kernel must be positive", id="pool-kernel-negative"),
    pytest.param({"pool_stride": 0}, ValueError, r"pool_stride must be positive", id="pool-stride-0"),
    pytest.param({"pool_stride": [2, 2, 2]}, TypeError, r"pool_stride must be an int or a pair", id="pool-stride-3"),
    pytest.param({"weight": torch.zeros(4, 3, 9, 3)}, ValueError, r"kernel size \(9, 3\) is larger", id="kernel-big"),
    pytest.param(
        {"weight": torch.zeros(4, 3, 11, 3), "padding": 1}, ValueError, r"padded input \(10, 10\)", id="kernel-big-pad"
    ),
    pytest.param({"pool_kernel": 7}, ValueError, r"pool_kernel \(7, 7\) is larger .* output would be empty", id="empty"),
    pytest.param({"ceil_mode": "yes"}, TypeError, r"ceil_mode must be True or False, got 'yes' \(str\)", id="ceil-str"),
    pytest.param({"ceil_mode": 1}, TypeError, r"ceil_mode must be True or False, got 1 \(int\)", id="ceil-int"),
]


@pytest.mark.parametrize(("change", "error", "match"), INVALID_CALLS)
def test_invalid_argument_raises(change: dict[str, Any], error: type[Exception], match: str) -> None:
    call = {**_valid_call(), **change}
    x = call.pop("x")
    weight = call.pop("weight")
    bias = call.pop("bias")
    with pytest.raises(error, match=match):
        conv_relu_pool(x, weight, bias, **call)


def test_device_mismatch_raises() -> None:
    call = _valid_call()
    with pytest.raises(ValueError, match=r"weight is on meta but x is on cpu"):
        conv_relu_pool(call["x"], call["weight"].to("meta"), call["bias"])


def test_output_size_rejects_invalid() -> None:
    with pytest.raises(ValueError, match=r"input_size must be positive"):
        conv_relu_pool_output_size((0, 5), 3)
    with pytest.raises(ValueError, match=r"kernel_size must be positive"):
        conv_relu_pool_output_size((5, 5), (3, 0))
    with pytest.raises(TypeError, match=r"input_size must be an int or a pair"):
        conv_relu_pool_output_size((5, 5, 5), 3)


def _binding_call(**change: Any) -> dict[str, Any]:
    x, weight, bias = random_problem(2, 3, 4, (8, 8), (3, 3))
    call = {
        "input": x.numpy(),
        "weight": weight.numpy(),
        "bias": bias.numpy(),
        "output": np.zeros((2, 4, 3, 3), dtype=np.float32),
        "stride": (1, 1),
        "padding": (0, 0),
        "pool_kernel": (2, 2),
        "pool_stride": (2, 2),
        "ceil_mode": False,
        "num_threads": 2,
    }
    call.update(change)
    return call


def test_binding_accepts_valid_call() -> None:
    call = _binding_call()
    _C.conv_relu_pool_forward(**call)
    expected = composite(torch.from_numpy(call["input"]), torch.from_numpy(call["weight"]), torch.from_numpy(call["bias"]))
    torch.testing.assert_close(torch.from_numpy(call["output"]), expected, rtol=RTOL, atol=ATOL)


BINDING_ERRORS = [
    pytest.param({"input": np.zeros((2, 3, 8, 8))}, TypeError, r"input must have dtype float32", id="float64"),
    pytest.param({"input": np.zeros((2, 3, 8, 8), dtype=">f4")}, TypeError, r"input must have dtype", id="big-endian"),
    pytest.param({"weight": [[0.0]]}, TypeError, r"weight must be a numpy\.ndarray", id="list"),
    pytest.param({"bias": np.zeros(4, dtype=np.int32)}, TypeError, r"bias must have dtype float32", id="bias-int"),
    pytest.param({"input": np.zeros((3, 8, 8), dtype=np.float32)}, ValueError, r"input must be a 4-D array, got shape \(3, 8, 8\)", id="3d"),
    pytest.param({"bias": np.zeros((4, 1), dtype=np.float32)}, ValueError, r"bias must be a 1-D array, got shape \(4, 1\)", id="bias-2d"),
    pytest.param(
        {"input": np.zeros((2, 3, 8, 16), dtype=np.float32)[..., ::2]}, ValueError, r"C-contiguous", id="strided"
    ),
    pytest.param(
        {"weight": np.asfortranarray(np.zeros((4, 3, 3, 3), dtype=np.float32))}, ValueError, r"C-contiguous", id="F"
    ),
    pytest.param({"weight": np.zeros((4, 2, 3, 3), dtype=np.float32)}, ValueError, r"weight expects 2 input", id="ch"),
    pytest.param({"bias": np.zeros(5, dtype=np.float32)}, ValueError, r"bias must have out_channels=4", id="bias-5"),
    pytest.param({"output": np.zeros((2, 4, 3, 4), dtype=np.float32)}, ValueError, r"output must have shape", id="out"),
    pytest.param({"stride": (0, 1)}, ValueError, r"stride_height must be between 1", id="stride-0"),
    pytest.param({"stride": (1, -1)}, ValueError, r"stride_width must be between 1", id="stride-negative"),
    pytest.param({"padding": (-1, 0)}, ValueError, r"padding_height must be between 0", id="padding-negative"),
    pytest.param({"pool_kernel": (0, 2)}, ValueError, r"pool_kernel_height must be between 1", id="pool-0"),
    pytest.param({"pool_stride": (2, 0)}, ValueError, r"pool_stride_width must be between 1", id="pool-stride-0"),
    pytest.param({"stride": (1, 2**40)}, ValueError, r"stride_width must be between 1 and 2147483647", id="huge"),
    pytest.param({"pool_kernel": (7, 7), "pool_stride": (7, 7)}, ValueError, r"output would be empty", id="empty"),
    pytest.param({"weight": np.zeros((4, 3, 9, 3), dtype=np.float32)}, ValueError, r"larger than the padded", id="k"),
    pytest.param(
        {"input": np.zeros((2, 0, 8, 8), dtype=np.float32), "weight": np.zeros((4, 0, 3, 3), dtype=np.float32)},
        ValueError,
        r"in_channels must be between 1",
        id="channels-0",
    ),
    pytest.param({"num_threads": 0}, ValueError, r"num_threads must be at least 1, got 0", id="threads-0"),
    pytest.param({"kernel": "direct_oc99_w1_magic"}, ValueError, r"unknown kernel 'direct_oc99_w1_magic'", id="kernel"),
    pytest.param({"stride": (1,)}, TypeError, r"incompatible function arguments", id="stride-1-tuple"),
]


@pytest.mark.parametrize(("change", "error", "match"), BINDING_ERRORS)
def test_binding_rejects_invalid(change: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        _C.conv_relu_pool_forward(**_binding_call(**change))


def test_binding_rejects_read_only_output() -> None:
    output = np.zeros((2, 4, 3, 3), dtype=np.float32)
    output.setflags(write=False)
    with pytest.raises(ValueError, match=r"output must be a writeable array"):
        _C.conv_relu_pool_forward(**_binding_call(output=output))


def test_binding_rejects_output_sharing_input() -> None:
    buffer = np.zeros(2 * 3 * 8 * 8, dtype=np.float32)
    call = _binding_call(input=buffer.reshape(2, 3, 8, 8), output=buffer[: 2 * 4 * 3 * 3].reshape(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"output must not share memory"):
        _C.conv_relu_pool_forward(**call)


def test_binding_lists_kernels() -> None:
    kernels = _C.supported_kernels()
    assert "direct_oc4_w12_generic" in kernels
    assert "winograd_f2x3_oc4_w12_generic" in kernels
    assert "reference" in kernels
    assert kernels[-1] == "reference"


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(1, 3),
    in_channels=st.integers(1, 5),
    out_channels=st.integers(1, 21),
    height=st.integers(1, 14),
    width=st.integers(1, 14),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    pool_kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    pool_stride=st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))),
    ceil_mode=st.booleans(),
    with_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_problems_match_composite(
    batch: int,
    in_channels: int,
    out_channels: int,
    height: int,
    width: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    pool_kernel: tuple[int, int],
    pool_stride: tuple[int, int] | None,
    ceil_mode: bool,
    with_bias: bool,
    seed: int,
) -> None:
    arguments = {
        "stride": stride,
        "padding": padding,
        "pool_kernel": pool_kernel,
        "pool_stride": pool_stride,
        "ceil_mode": ceil_mode,
    }
    try:
        conv_relu_pool_output_size((height, width), kernel, **arguments)
    except ValueError:
        assume(False)
    x, weight, bias = random_problem(batch, in_channels, out_channels, (height, width), kernel, seed=seed)
    bias = bias if with_bias else None

    result = conv_relu_pool(x, weight, bias, **arguments)
    expected = composite(x, weight, bias, **arguments)

    assert result.shape == expected.shape
    torch.testing.assert_close(result, expected, rtol=RTOL, atol=ATOL)


@settings(max_examples=40, deadline=None)
@given(
    kernel=st.sampled_from(WINOGRAD_KERNELS),
    batch=st.integers(1, 3),
    in_channels=st.integers(1, 40),
    out_channels=st.integers(1, 40),
    height=st.integers(2, 16),
    width=st.integers(2, 16),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    seed=st.integers(0, 2**16),
)
def test_random_winograd_problems_match(
    kernel: str,
    batch: int,
    in_channels: int,
    out_channels: int,
    height: int,
    width: int,
    padding: tuple[int, int],
    seed: int,
) -> None:
    assume(height + 2 * padding[0] >= 4 and width + 2 * padding[1] >= 4)
    x, weight, bias = random_problem(batch, in_channels, out_channels, (height, width), (3, 3), seed=seed)
    expected = composite(x, weight, bias, padding=padding)

    output = run_kernel(kernel, x, weight, bias, expected.shape, padding=padding)

    torch.testing.assert_close(output, expected, rtol=RTOL, atol=ATOL)


def _recorded_op_names(function) -> set[str]:
    with torch.autograd.profiler.profile() as profile:
        function()
    return {event.name for event in profile.function_events}


def test_inference_call_skips_custom_op():
    x = torch.randn(2, 3, 9, 9)
    weight = torch.randn(4, 3, 3, 3)
    with torch.no_grad():
        names = _recorded_op_names(lambda: conv_relu_pool(x, weight))
        expected = conv_relu_pool_reference(x, weight)
    assert "fcnnzoo::conv_relu_pool" not in names
    torch.testing.assert_close(conv_relu_pool(x, weight), expected, rtol=1e-5, atol=1e-5)


def test_recorded_call_uses_custom_op():
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    weight = torch.randn(4, 3, 3, 3)
    names = _recorded_op_names(lambda: conv_relu_pool(x, weight))
    assert "fcnnzoo::conv_relu_pool" in names


COMPOSITE_REJECTS = [
    pytest.param({"groups": 3, "weight": torch.zeros(4, 1, 3, 3)}, id="groups-out"),
    pytest.param({"groups": 2, "weight": torch.zeros(4, 3, 3, 3)}, id="groups-in"),
    pytest.param({"groups": 0}, id="groups-0"),
    pytest.param({"dilation": 0}, id="dilation-0"),
    pytest.param({"dilation": 4}, id="dilated-big"),
    pytest.param({"padding": "same", "stride": 2}, id="same-strided"),
    pytest.param({"padding": "full"}, id="padding-string"),
    pytest.param({"padding": -1}, id="padding-negative"),
    pytest.param({"stride": 0}, id="stride-0"),
    pytest.param({"pool_padding": 2}, id="pool-padding-big"),
    pytest.param({"pool_padding": -1}, id="pool-padding-negative"),
    pytest.param({"pool_dilation": 0}, id="pool-dilation-0"),
    pytest.param({"pool_dilation": 6}, id="pool-output-empty"),
    pytest.param({"pool_kernel": 7}, id="pool-kernel-big"),
    pytest.param({"x": torch.zeros(8, 8)}, id="x-2d"),
]


@pytest.mark.parametrize("change", COMPOSITE_REJECTS)
def test_rejects_what_composite_rejects(change: dict[str, Any]) -> None:
    call = {**_valid_call(), **change}
    x = call.pop("x")
    weight = call.pop("weight")
    bias = call.pop("bias")
    with pytest.raises(RuntimeError):
        conv_relu_pool_reference(x, weight, bias, **call)
    with pytest.raises(RuntimeError) as caught:
        conv_relu_pool(x, weight, bias, **call)
    assert isinstance(caught.value, ValueError)
