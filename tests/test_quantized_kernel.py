"""The native int8 conv -> ReLU -> max-pool kernel against the float64 reference of the same arithmetic.

Every case must match the reference exactly: the kernel accumulates in
int32 and converts to float32 with the same rounding as the reference's
float64 -> float32 conversion. The table runs at the widest instruction-set
level here and, in subprocesses, at every lower level this CPU has.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fcnnzoo import _C
from fcnnzoo import quantized_ops
from fcnnzoo import quantized_plans
from fcnnzoo.quantized_ops import quantized_conv_relu_pool
from fcnnzoo.quantized_ops import quantized_conv_relu_pool_reference


@dataclass(frozen=True)
class Case:
    name: str
    batch: int
    in_channels: int
    out_channels: int
    size: tuple[int, int]
    kernel: tuple[int, int]
    arguments: dict[str, object] = field(default_factory=dict)
    input_zero_point: int = 7
    output_zero_point: int = 3
    relu: bool = True
    # Whether the AVX-512 VNNI level runs the pixel-lane kernel, which takes
    # layers with at most four taps per kernel row and enough pooled columns.
    pixel_lanes: bool = False


CASES = [
    Case("fcnn_layer1", 3, 1, 32, (28, 28), (3, 3), pixel_lanes=True),
    Case("fcnn_layer2", 2, 32, 64, (13, 13), (3, 3)),
    Case("fcnn_linear1", 5, 1600, 64, (1, 1), (1, 1), {"pool_kernel": 1}),
    Case("fcnn_linear2_no_relu", 5, 64, 10, (1, 1), (1, 1), {"pool_kernel": 1}, relu=False),
    Case("odd_channels", 2, 5, 7, (9, 10), (3, 3)),
    Case("three_to_seventeen", 2, 3, 17, (12, 11), (3, 3), {"padding": 1}),
    Case("three_vector_blocks", 1, 13, 33, (8, 8), (3, 3)),
    Case("five_vector_blocks", 1, 70, 65, (6, 7), (3, 3), {"padding": 1}),
    Case("stride_two_padding_one", 2, 6, 9, (11, 11), (3, 3), {"stride": 2, "padding": 1}),
    Case("pool_three_stride_two_ceil", 2, 4, 12, (12, 13), (3, 3), {"pool_kernel": 3, "pool_stride": 2, "ceil_mode": True}),
    Case("pool_one", 2, 3, 5, (7, 6), (3, 3), {"pool_kernel": 1}),
    Case("rectangular", 2, 3, 6, (9, 8), (2, 3), {"padding": (1, 0), "pool_kernel": (1, 2), "stride": (1, 2)}),
    Case("padding_wider_than_kernel", 1, 2, 4, (3, 3), (3, 3), {"padding": 3, "pool_kernel": 2, "ceil_mode": True}),
    Case("batch_one", 1, 8, 16, (10, 10), (3, 3)),
    Case("batch_zero", 0, 8, 16, (10, 10), (3, 3)),
    Case("zero_points_zero", 2, 4, 8, (8, 8), (3, 3), {"padding": 1}, input_zero_point=0, output_zero_point=0),
    Case("zero_points_128", 2, 4, 8, (8, 8), (3, 3), {"padding": 1}, input_zero_point=128, output_zero_point=128),
    Case("zero_points_255", 2, 4, 8, (8, 8), (3, 3), {"padding": 1}, input_zero_point=255, output_zero_point=255),
    Case("relu_off_padding", 2, 4, 8, (8, 8), (3, 3), {"padding": 1}, relu=False),
    Case("fcnn_layer1_batch_one", 1, 1, 32, (28, 28), (3, 3), pixel_lanes=True),
    Case("one_channel_odd_width", 2, 1, 20, (15, 27), (3, 3), pixel_lanes=True),
    Case("one_channel_stride_two_padding", 2, 1, 16, (29, 33), (3, 3), {"stride": 2, "padding": 1}, pixel_lanes=True),
    Case("one_channel_pool_three_ceil", 2, 1, 24, (20, 30), (3, 3),
         {"pool_kernel": 3, "pool_stride": 2, "ceil_mode": True}, pixel_lanes=True),
    Case("one_channel_pool_overlapping_columns", 2, 1, 17, (16, 30), (3, 3),
         {"pool_kernel": 2, "pool_stride": (2, 1), "padding": (0, 1)}, pixel_lanes=True),
    Case("one_channel_three_segments", 2, 1, 8, (6, 70), (3, 3), pixel_lanes=True),
    Case("two_channels_kernel_two", 2, 2, 16, (12, 40), (2, 2), {"ceil_mode": True}, pixel_lanes=True),
    Case("one_channel_kernel_five_rows", 2, 1, 16, (17, 30), (5, 3), {"padding": (2, 0)}, pixel_lanes=True),
    Case("one_channel_kernel_seven_rows", 2, 1, 16, (20, 36), (7, 1), pixel_lanes=True),
    Case("one_channel_zero_points_255_relu_off", 2, 1, 32, (28, 28), (3, 3), input_zero_point=255,
         output_zero_point=255, relu=False, pixel_lanes=True),
    Case("one_channel_zero_points_zero", 2, 1, 32, (28, 28), (3, 3), {"padding": 1}, input_zero_point=0,
         output_zero_point=0, pixel_lanes=True),
    Case("one_channel_narrow_image", 2, 1, 16, (8, 6), (3, 3)),
]

def make_operands(case: Case, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Random uint8 and float inputs, int8 weights, an int32 bias and multipliers that spread the output over [0, 255]."""
    height, width = case.size
    weight = torch.randint(-127, 128, (case.out_channels, case.in_channels, *case.kernel), generator=generator)
    x_uint8 = torch.randint(0, 256, (case.batch, case.in_channels, height, width), generator=generator)
    bias = torch.randint(-3000, 3000, (case.out_channels,), generator=generator)
    # The typical size of an accumulator sets the multipliers, so outputs are neither all 0 nor all 255.
    taps = case.in_channels * case.kernel[0] * case.kernel[1]
    spread = 127 * 128 * taps**0.5 / 2
    multiplier = (torch.rand(case.out_channels, generator=generator) + 0.5) * (120 / spread)
    x_float = (torch.randn(case.batch, case.in_channels, height, width, generator=generator) * 2).to(torch.float32)
    return {
        "x_uint8": x_uint8.to(torch.uint8),
        "x_float": x_float,
        "weight": weight.to(torch.int8),
        "bias": bias.to(torch.int32),
        "multiplier": multiplier.to(torch.float32),
    }


def call_both(case: Case, x: torch.Tensor, operands: dict[str, torch.Tensor], output_dtype: torch.dtype):
    keywords = dict(
        input_scale=0.05,
        input_zero_point=case.input_zero_point,
        output_scale=0.125,
        output_zero_point=case.output_zero_point,
        relu=case.relu,
        output_dtype=output_dtype,
        **case.arguments,
    )
    arguments = (x, operands["weight"], operands["bias"], operands["multiplier"])
    return quantized_conv_relu_pool(*arguments, **keywords), quantized_conv_relu_pool_reference(*arguments, **keywords)


@pytest.fixture
def native_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make a fallback to the reference inside quantized_conv_relu_pool fail the test."""

    def reject(*args: object, **kwargs: object) -> None:
        raise AssertionError("the call took the reference path instead of the native kernel")

    monkeypatch.setattr(quantized_ops, "quantized_conv_relu_pool_reference", reject)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
@pytest.mark.parametrize("output_dtype", [torch.uint8, torch.float32], ids=["uint8_out", "float_out"])
@pytest.mark.parametrize("input_kind", ["x_uint8", "x_float"])
def test_native_matches_reference(case: Case, output_dtype: torch.dtype, input_kind: str) -> None:
    operands = make_operands(case, torch.Generator().manual_seed(len(case.name)))
    native, reference = call_both(case, operands[input_kind], operands, output_dtype)
    assert native.dtype == output_dtype
    assert native.shape == reference.shape
    torch.testing.assert_close(native, reference, rtol=0, atol=0)
    if case.batch > 0 and output_dtype == torch.uint8 and case.output_zero_point <= 128:
        # The multipliers spread the outputs; an output zero point of 255 leaves ReLU only 255.
        assert len(torch.unique(reference)) > 3


def test_table_runs_native_kernel(native_only: None) -> None:
    for case in CASES:
        operands = make_operands(case, torch.Generator().manual_seed(1))
        arguments = dict(input_scale=0.05, input_zero_point=case.input_zero_point, output_scale=0.125,
                         output_zero_point=case.output_zero_point, relu=case.relu, **case.arguments)
        output = quantized_conv_relu_pool(
            operands["x_uint8"], operands["weight"], operands["bias"], operands["multiplier"], **arguments
        )
        assert output.dtype == torch.uint8, case.name


def test_extreme_weights_and_inputs() -> None:
    # Weights of -128, -127 and 127 against inputs of 0 and 255 give the
    # largest accumulators: 255 * 127 * 1600 is above 2**24, where the int32
    # -> float32 conversion rounds exactly as the reference's does.
    generator = torch.Generator().manual_seed(3)
    choices = torch.tensor([-128, -127, 127], dtype=torch.int8)
    weight = choices[torch.randint(0, 3, (16, 1600, 1, 1), generator=generator)]
    weight[0] = 127
    weight[1] = -127
    x = (torch.randint(0, 2, (4, 1600, 1, 1), generator=generator) * 255).to(torch.uint8)
    x[0] = 255
    multiplier = torch.full((16,), 2.0**-18)
    for relu in (True, False):
        for zero_point in (0, 128, 255):
            arguments = dict(input_scale=0.1, input_zero_point=zero_point, output_scale=1.0, output_zero_point=128,
                             pool_kernel=1, relu=relu)
            native = quantized_conv_relu_pool(x, weight, None, multiplier, **arguments)
            reference = quantized_conv_relu_pool_reference(x, weight, None, multiplier, **arguments)
            torch.testing.assert_close(native, reference, rtol=0, atol=0)
    accumulators = F.conv2d(x.to(torch.float64), weight.to(torch.float64))
    assert accumulators.abs().max().item() > 2**24


def test_nan_inf_and_huge_float_inputs(native_only: None) -> None:
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), 3.0e38, -3.0e38, 1e-45, 0.5, -0.5, 2.5, 12.7,
                      -12.8, 6.35, 1e6, -1e6, 0.0, -0.0] * 4, dtype=torch.float32).view(1, 4, 4, 4)
    weight = torch.arange(-8, 8, dtype=torch.int8).view(4, 4, 1, 1)
    multiplier = torch.full((4,), 0.01)
    for zero_point in (0, 128, 255):
        arguments = dict(input_scale=0.1, input_zero_point=zero_point, output_scale=1.0, output_zero_point=0,
                         pool_kernel=1, relu=False)
        native = quantized_conv_relu_pool(x, weight, None, multiplier, **arguments)
        expected = quantized_ops.quantize_uint8(x, 0.1, zero_point)
        reference = quantized_conv_relu_pool_reference(expected, weight, None, multiplier, **arguments)
        torch.testing.assert_close(native, reference, rtol=0, atol=0)


def test_quantization_of_special_values() -> None:
    # A 1x1 identity weight with multiplier 1 passes the quantized input
    # through, so the output shows step 1 of the arithmetic directly.
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 0.25, 0.75, -0.25], dtype=torch.float32)
    x = x.view(1, 1, 1, 8)
    weight = torch.ones((1, 1, 1, 1), dtype=torch.int8)
    arguments = dict(input_scale=0.5, input_zero_point=100, output_scale=1.0, output_zero_point=100, pool_kernel=1,
                     relu=False)
    output = quantized_conv_relu_pool(x, weight, None, torch.ones(1), **arguments)
    # NaN maps to the zero point, infinities saturate, and 0.5 and 1.5 round half to even.
    assert output.flatten().tolist() == [100, 255, 0, 255, 0, 100, 102, 100]


def test_thread_count_does_not_change_result() -> None:
    case = CASES[1]
    operands = make_operands(case, torch.Generator().manual_seed(5))
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single, _ = call_both(case, operands["x_uint8"], operands, torch.uint8)
        torch.set_num_threads(2)
        double, reference = call_both(case, operands["x_uint8"], operands, torch.uint8)
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(single, reference, rtol=0, atol=0)
    torch.testing.assert_close(double, reference, rtol=0, atol=0)


def test_non_contiguous_input_matches_reference() -> None:
    case = CASES[4]
    operands = make_operands(case, torch.Generator().manual_seed(6))
    x = operands["x_float"].contiguous(memory_format=torch.channels_last)
    assert not x.is_contiguous()
    native, reference = call_both(case, x, operands, torch.uint8)
    torch.testing.assert_close(native, reference, rtol=0, atol=0)
    transposed = operands["x_uint8"].transpose(2, 3).contiguous().transpose(2, 3)
    native, reference = call_both(case, transposed, operands, torch.float32)
    torch.testing.assert_close(native, reference, rtol=0, atol=0)


def test_non_contiguous_weight_matches_reference() -> None:
    case = CASES[4]
    operands = make_operands(case, torch.Generator().manual_seed(7))
    operands["weight"] = operands["weight"].transpose(2, 3).contiguous().transpose(2, 3)
    assert not operands["weight"].is_contiguous()
    native, reference = call_both(case, operands["x_uint8"], operands, torch.uint8)
    torch.testing.assert_close(native, reference, rtol=0, atol=0)


def test_other_dtypes_and_gradients_take_reference() -> None:
    case = CASES[4]
    operands = make_operands(case, torch.Generator().manual_seed(8))
    for x in (operands["x_float"].to(torch.float64), operands["x_float"].to(torch.bfloat16),
              operands["x_float"].clone().requires_grad_()):
        native, reference = call_both(case, x, operands, torch.uint8)
        torch.testing.assert_close(native, reference, rtol=0, atol=0)


def test_accumulator_overflow_takes_reference() -> None:
    weight = torch.full((2, 1, 1, 1), 127, dtype=torch.int8)
    bias = torch.tensor([2**31 - 1000, -(2**31) + 1000], dtype=torch.int32)
    x = torch.full((1, 1, 2, 2), 255, dtype=torch.uint8)
    arguments = dict(input_scale=1.0, input_zero_point=0, output_scale=1.0, output_zero_point=0, pool_kernel=1,
                     relu=False)
    multiplier = torch.full((2,), 1e-7)
    plan = _C.QuantizedForwardPlan(weight.numpy(), stride=(1, 1), padding=(0, 0), pool_kernel=(1, 1),
                                   pool_stride=(1, 1), ceil_mode=False)
    output = torch.empty((1, 2, 2, 2), dtype=torch.uint8)
    ran = plan.forward(x.numpy(), bias.numpy(), multiplier.numpy(), output.numpy(), input_scale=1.0,
                       input_zero_point=0, output_scale=1.0, output_zero_point=0, relu=False, num_threads=1)
    assert ran is False
    native = quantized_conv_relu_pool(x, weight, bias, multiplier, **arguments)
    reference = quantized_conv_relu_pool_reference(x, weight, bias, multiplier, **arguments)
    torch.testing.assert_close(native, reference, rtol=0, atol=0)
    assert native.flatten().tolist() == [215, 215, 215, 215, 0, 0, 0, 0]


def test_updated_weight_is_packed_again() -> None:
    case = CASES[4]
    operands = make_operands(case, torch.Generator().manual_seed(9))
    before, _ = call_both(case, operands["x_uint8"], operands, torch.uint8)
    with torch.no_grad():
        operands["weight"].mul_(-1)
    after, reference = call_both(case, operands["x_uint8"], operands, torch.uint8)
    torch.testing.assert_close(after, reference, rtol=0, atol=0)
    assert not torch.equal(before, after)


def test_forget_quantized_plans_empties_cache() -> None:
    case = CASES[4]
    operands = make_operands(case, torch.Generator().manual_seed(10))
    call_both(case, operands["x_uint8"], operands, torch.uint8)
    assert quantized_plans._PLANS
    quantized_plans.forget_quantized_plans()
    assert not quantized_plans._PLANS


def test_concurrent_calls_match_reference() -> None:
    # More weights than the cache keeps, so threads also evict each other's entries.
    generator = torch.Generator().manual_seed(11)
    weights = [torch.randint(-127, 128, (8, 3, 3, 3), generator=generator).to(torch.int8) for _ in range(80)]
    x = torch.randint(0, 256, (2, 3, 9, 9), generator=generator).to(torch.uint8)
    multiplier = torch.full((8,), 1e-3)
    arguments = dict(input_scale=0.1, input_zero_point=3, output_scale=0.1, output_zero_point=0)
    expected = [quantized_conv_relu_pool_reference(x, weight, None, multiplier, **arguments) for weight in weights]
    mismatches: list[int] = []

    def run() -> None:
        for index, weight in enumerate(weights):
            if not torch.equal(quantized_conv_relu_pool(x, weight, None, multiplier, **arguments), expected[index]):
                mismatches.append(index)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mismatches == []
    assert len(quantized_plans._PLANS) <= quantized_plans._MAX_PLANS


def good_arguments() -> tuple[tuple[torch.Tensor, ...], dict[str, object]]:
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    weight = torch.randint(-127, 128, (4, 3, 3, 3), dtype=torch.int8)
    bias = torch.zeros(4, dtype=torch.int32)
    multiplier = torch.full((4,), 1e-3)
    keywords: dict[str, object] = dict(input_scale=0.1, input_zero_point=0, output_scale=0.1, output_zero_point=0)
    return (x, weight, bias, multiplier), keywords


BAD_TENSORS = [
    ("x_int32", 0, lambda t: t.to(torch.int32), TypeError, "x must be a float tensor"),
    ("x_list", 0, lambda t: t.tolist(), TypeError, "x must be a torch.Tensor"),
    ("x_three_dims", 0, lambda t: t[0], ValueError, "x must be a 4-D tensor"),
    ("weight_float", 1, lambda t: t.to(torch.float32), TypeError, "weight_q must have dtype torch.int8"),
    ("weight_channels", 1, lambda t: t[:, :2], ValueError, "x has 3 channels but weight_q expects 2"),
    ("weight_no_outputs", 1, lambda t: t[:0], ValueError, "weight_q must have at least one output channel"),
    ("bias_int64", 2, lambda t: t.to(torch.int64), TypeError, "bias_q must have dtype torch.int32"),
    ("bias_shape", 2, lambda t: t[:3], ValueError, "bias_q must have shape (4,)"),
    ("multiplier_int", 3, lambda t: t.to(torch.int32), TypeError, "multiplier must be a float tensor"),
    ("multiplier_shape", 3, lambda t: t.view(2, 2), ValueError, "multiplier must have shape (4,)"),
    ("multiplier_negative", 3, lambda t: t * -1, ValueError, "multiplier must be finite and not negative"),
    ("multiplier_nan", 3, lambda t: t * float("nan"), ValueError, "multiplier must be finite and not negative"),
]


@pytest.mark.parametrize("input_kind", ["x_uint8", "x_float64"])
@pytest.mark.parametrize(
    ("position", "change", "error", "message"),
    [entry[1:] for entry in BAD_TENSORS],
    ids=[entry[0] for entry in BAD_TENSORS],
)
def test_bad_tensor_rejected(input_kind, position, change, error, message) -> None:
    tensors, keywords = good_arguments()
    tensors = list(tensors)
    if input_kind == "x_float64":
        # Float64 inputs take the reference path, which must reject the same input.
        tensors[0] = tensors[0].to(torch.float64)
    tensors[position] = change(tensors[position])
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        quantized_conv_relu_pool(*tensors, **keywords)


BAD_KEYWORDS = [
    ("input_scale", 0.0, ValueError, "input_scale must be finite and positive"),
    ("input_scale", float("nan"), ValueError, "input_scale must be finite and positive"),
    ("output_scale", -1.0, ValueError, "output_scale must be finite and positive"),
    ("output_scale", "0.1", TypeError, "output_scale must be a float"),
    ("input_zero_point", 256, ValueError, r"input_zero_point must be in \[0, 255\], got 256"),
    ("output_zero_point", -1, ValueError, r"output_zero_point must be in \[0, 255\], got -1"),
    ("input_zero_point", 1.0, TypeError, "input_zero_point must be an int"),
    ("stride", 0, ValueError, "stride must be positive"),
    ("padding", -1, ValueError, "padding must be non-negative"),
    ("pool_kernel", (2, 2, 2), TypeError, "pool_kernel must be an int or a pair"),
    ("ceil_mode", 1, TypeError, "ceil_mode must be True or False"),
    ("relu", None, TypeError, "relu must be True or False"),
    ("output_dtype", torch.int32, ValueError, "output_dtype must be torch.uint8 or torch.float32"),
]


@pytest.mark.parametrize(("name", "value", "error", "message"), BAD_KEYWORDS,
                         ids=[f"{entry[0]}_{entry[1]!r}" for entry in BAD_KEYWORDS])
def test_bad_keyword_rejected(name, value, error, message) -> None:
    tensors, keywords = good_arguments()
    keywords[name] = value
    with pytest.raises(error, match=message):
        quantized_conv_relu_pool(*tensors, **keywords)


def test_numpy_scalars_accepted() -> None:
    tensors, keywords = good_arguments()
    expected = quantized_conv_relu_pool_reference(*tensors, **keywords)
    keywords = {name: np.float32(value) if "scale" in name else np.int64(value) for name, value in keywords.items()}
    torch.testing.assert_close(quantized_conv_relu_pool(*tensors, **keywords), expected, rtol=0, atol=0)


def test_kernel_larger_than_input_rejected() -> None:
    tensors, keywords = good_arguments()
    x = tensors[0][:, :, :2, :2]
    with pytest.raises(ValueError, match="larger than the padded input"):
        quantized_conv_relu_pool(x, *tensors[1:], **keywords)


def make_plan(weight: np.ndarray) -> _C.QuantizedForwardPlan:
    return _C.QuantizedForwardPlan(weight, stride=(1, 1), padding=(0, 0), pool_kernel=(2, 2), pool_stride=(2, 2),
                                   ceil_mode=False)


def forward_arrays() -> dict[str, object]:
    return {
        "input": np.zeros((1, 3, 8, 8), np.uint8),
        "bias": np.zeros(4, np.int32),
        "multiplier": np.full(4, 1e-3, np.float32),
        "output": np.zeros((1, 4, 3, 3), np.uint8),
    }


SCALARS = dict(input_scale=0.1, input_zero_point=0, output_scale=0.1, output_zero_point=0, relu=True, num_threads=1)


@pytest.mark.parametrize(
    ("name", "value", "error", "message"),
    [
        ("input", np.zeros((1, 3, 8, 8), np.int16), TypeError, "input must have dtype float32 or uint8"),
        ("input", [[0]], TypeError, "input must be a numpy.ndarray"),
        ("input", np.zeros((1, 2, 8, 8), np.uint8), ValueError, "weight expects 3 input channels"),
        ("input", np.zeros((1, 3, 8, 16), np.uint8)[:, :, :, ::2], ValueError, "input must be C-contiguous"),
        ("bias", np.zeros(4, np.int64), TypeError, "bias must have dtype int32"),
        ("bias", np.zeros(5, np.int32), ValueError, "bias must have out_channels=4"),
        ("multiplier", np.zeros(4, np.float64), TypeError, "multiplier must have dtype float32"),
        ("output", np.zeros((1, 4, 3, 3), np.int32), TypeError, "output must have dtype uint8 or float32"),
        ("output", np.zeros((1, 4, 4, 3), np.uint8), ValueError, r"output must have shape \(1, 4, 3, 3\)"),
    ],
)
def test_plan_forward_rejects_bad_array(name, value, error, message) -> None:
    plan = make_plan(np.zeros((4, 3, 3, 3), np.int8))
    arrays = forward_arrays()
    arrays[name] = value
    with pytest.raises(error, match=message):
        plan.forward(arrays["input"], arrays["bias"], arrays["multiplier"], arrays["output"], **SCALARS)


def test_plan_forward_rejects_overlap_and_threads() -> None:
    plan = make_plan(np.zeros((4, 3, 3, 3), np.int8))
    arrays = forward_arrays()
    shared = np.zeros(4 * 3 * 3 + 3 * 8 * 8, np.uint8)
    overlapping_input = shared[:192].reshape(1, 3, 8, 8)
    overlapping_output = shared[150:186].reshape(1, 4, 3, 3)
    with pytest.raises(ValueError, match="output must not share memory"):
        plan.forward(overlapping_input, arrays["bias"], arrays["multiplier"], overlapping_output, **SCALARS)
    with pytest.raises(ValueError, match="num_threads must be at least 1"):
        plan.forward(arrays["input"], arrays["bias"], arrays["multiplier"], arrays["output"],
                     **{**SCALARS, "num_threads": 0})
    read_only = np.zeros((1, 4, 3, 3), np.uint8)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="output must be a writeable array"):
        plan.forward(arrays["input"], arrays["bias"], arrays["multiplier"], read_only, **SCALARS)


def test_plan_rejects_bad_weight() -> None:
    with pytest.raises(TypeError, match="weight must have dtype int8"):
        make_plan(np.zeros((4, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="weight must be a 4-D array"):
        make_plan(np.zeros((4, 3), np.int8))
    with pytest.raises(ValueError, match="stride_height must be positive"):
        _C.QuantizedForwardPlan(np.zeros((4, 3, 3, 3), np.int8), stride=(0, 1), padding=(0, 0), pool_kernel=(2, 2),
                                pool_stride=(2, 2), ceil_mode=False)


EXPECTED_KERNELS = {
    "avx512": "quantized_direct_oc16_vnni_avx512",
    "avx2": "quantized_direct_oc8_avx2",
    "default": "quantized_direct_oc8_generic",
}


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_kernel_follows_capability() -> None:
    flags = cpu_flags()
    widest = "default"
    if "avx2" in flags:
        widest = "avx2"
    if {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"} <= flags:
        widest = "avx512"
    capability = os.environ.get("FCNNZOO_CPU_CAPABILITY") or widest
    if capability == "avx512" and widest != "avx512":
        # An AVX-512 CPU without VNNI runs the AVX2 kernel.
        capability = "avx2"
    kernel = make_plan(np.zeros((4, 3, 3, 3), np.int8)).kernel
    assert kernel == EXPECTED_KERNELS[capability]


def test_call_kernel_picks_pixel_lanes() -> None:
    widest_is_vnni = make_plan(np.zeros((4, 3, 3, 3), np.int8)).kernel == EXPECTED_KERNELS["avx512"]
    for case in CASES:
        arguments = dict(case.arguments)
        pool_kernel = arguments.get("pool_kernel", 2)
        pool_stride = arguments.get("pool_stride", pool_kernel)
        plan = _C.QuantizedForwardPlan(
            np.zeros((case.out_channels, case.in_channels, *case.kernel), np.int8),
            stride=pair(arguments.get("stride", 1)),
            padding=pair(arguments.get("padding", 0)),
            pool_kernel=pair(pool_kernel),
            pool_stride=pair(pool_stride),
            ceil_mode=bool(arguments.get("ceil_mode", False)),
        )
        kernel = plan.call_kernel(*case.size)
        if widest_is_vnni and case.pixel_lanes:
            assert kernel == "quantized_pixels16_vnni_avx512", case.name
        else:
            assert kernel == plan.kernel, case.name


def pair(value: object) -> tuple[int, int]:
    return tuple(value) if isinstance(value, tuple) else (value, value)


# Runs the table and the edge cases of this file in a fresh interpreter,
# which reads FCNNZOO_CPU_CAPABILITY when it first packs a weight.
CHILD_SCRIPT = """
import sys
import torch
sys.path.insert(0, sys.argv[1])
import test_quantized_kernel as tests
for case in tests.CASES:
    for output_dtype in (torch.uint8, torch.float32):
        for input_kind in ("x_uint8", "x_float"):
            tests.test_native_matches_reference(case, output_dtype, input_kind)
tests.test_extreme_weights_and_inputs()
tests.test_quantization_of_special_values()
tests.test_kernel_follows_capability()
tests.test_call_kernel_picks_pixel_lanes()
print("checked", len(tests.CASES), "cases")
"""

LOWER_LEVELS = [("avx2", "avx2"), ("default", None)]


@pytest.mark.skipif("FCNNZOO_CPU_CAPABILITY" in os.environ, reason="already running at a fixed level")
@pytest.mark.parametrize(("capability", "flag"), LOWER_LEVELS, ids=[level for level, _ in LOWER_LEVELS])
def test_table_at_lower_capability(capability: str, flag: str | None) -> None:
    if flag is not None and flag not in cpu_flags():
        pytest.skip(f"this CPU lacks {flag}")
    environment = dict(os.environ, FCNNZOO_CPU_CAPABILITY=capability)
    command = [sys.executable, "-c", CHILD_SCRIPT, str(Path(__file__).parent)]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert f"checked {len(CASES)} cases" in result.stdout
