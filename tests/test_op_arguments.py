"""Every conv2d and max_pool2d argument of the fused op, against the PyTorch composite."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from torch import nn

from fcnnzoo.conv_pool_arguments import normalize_arguments
from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.ops import conv_relu_pool
from fcnnzoo.ops import conv_relu_pool_output_size
from fcnnzoo.ops import select_implementation

# PyTorch warns that it copies the input for padding="same" with an even dilated kernel.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")

RTOL = 1e-5
ATOL = 1e-4


def composite(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, **arguments: Any) -> torch.Tensor:
    """Compute the expected result with torch.nn.functional, spelled out independently of fcnnzoo."""
    y = F.conv2d(
        x,
        weight,
        bias,
        arguments.get("stride", 1),
        arguments.get("padding", 0),
        arguments.get("dilation", 1),
        arguments.get("groups", 1),
    )
    return F.max_pool2d(
        F.relu(y),
        arguments.get("pool_kernel", 2),
        arguments.get("pool_stride"),
        arguments.get("pool_padding", 0),
        arguments.get("pool_dilation", 1),
        ceil_mode=arguments.get("ceil_mode", False),
    )


def composite_or_error(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, **arguments: Any) -> Any:
    """Return the composite's result, or the exception it raises."""
    try:
        return composite(x, weight, bias, **arguments)
    except RuntimeError as error:
        return error


def per_axis(values: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    """Draw a size argument as an int, a one-int list or a (height, width) tuple."""
    return st.one_of(values, st.tuples(values, values), st.lists(values, min_size=1, max_size=1))


@st.composite
def calls(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, dict[str, Any]]:
    groups = draw(st.sampled_from([1, 1, 2, 3, 4]))
    in_per_group = draw(st.integers(1, 3))
    # 16 output channels per group is the smallest grouped case that the C++ kernel computes.
    out_per_group = draw(st.sampled_from([1, 2, 3, 16]))
    depthwise = draw(st.booleans())
    if depthwise:
        in_per_group, out_per_group = 1, 1
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    height = draw(st.integers(1, 14))
    width = draw(st.integers(1, 14))
    batch = draw(st.sampled_from([None, 1, 2]))

    arguments: dict[str, Any] = {"groups": groups}
    padding_kind = draw(st.sampled_from(["int", "same", "valid"]))
    if padding_kind == "int":
        arguments["padding"] = draw(per_axis(st.integers(0, 3)))
        arguments["stride"] = draw(per_axis(st.integers(1, 3)))
    else:
        arguments["padding"] = padding_kind
    arguments["dilation"] = draw(per_axis(st.integers(1, 3)))
    arguments["pool_kernel"] = draw(per_axis(st.integers(1, 3)))
    if draw(st.booleans()):
        arguments["pool_stride"] = draw(per_axis(st.integers(1, 3)))
    arguments["pool_padding"] = draw(per_axis(st.integers(0, 1)))
    arguments["pool_dilation"] = draw(per_axis(st.integers(1, 2)))
    arguments["ceil_mode"] = draw(st.booleans())

    seed = draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    channels = in_per_group * groups
    shape = (channels, height, width) if batch is None else (batch, channels, height, width)
    x = torch.randn(shape, generator=generator)
    weight = torch.randn(out_per_group * groups, in_per_group, *kernel, generator=generator)
    bias = torch.randn(out_per_group * groups, generator=generator) if draw(st.booleans()) else None
    return x, weight, bias, arguments


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls())
def test_property_matches_composite(call: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, dict[str, Any]]) -> None:
    x, weight, bias, arguments = call
    expected = composite_or_error(x, weight, bias, **arguments)

    if isinstance(expected, RuntimeError):
        with pytest.raises(RuntimeError) as caught:
            conv_relu_pool(x, weight, bias, **arguments)
        assert isinstance(caught.value, ValueError)
        return

    result = conv_relu_pool(x, weight, bias, **arguments)
    assert result.shape == expected.shape
    torch.testing.assert_close(result, expected, rtol=RTOL, atol=ATOL)


@settings(max_examples=300, deadline=None)
@given(
    size=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    stride=st.integers(1, 3),
    padding=st.integers(0, 3),
    dilation=st.integers(1, 3),
    pool_kernel=st.integers(1, 4),
    pool_stride=st.integers(1, 4),
    pool_padding=st.integers(0, 2),
    pool_dilation=st.integers(1, 3),
    ceil_mode=st.booleans(),
)
def test_output_size_matches_composite_shape(
    size: tuple[int, int],
    kernel: tuple[int, int],
    stride: int,
    padding: int,
    dilation: int,
    pool_kernel: int,
    pool_stride: int,
    pool_padding: int,
    pool_dilation: int,
    ceil_mode: bool,
) -> None:
    arguments = dict(
        stride=stride,
        padding=padding,
        dilation=dilation,
        pool_kernel=pool_kernel,
        pool_stride=pool_stride,
        pool_padding=pool_padding,
        pool_dilation=pool_dilation,
        ceil_mode=ceil_mode,
    )
    expected = composite_or_error(torch.zeros(1, 1, *size), torch.zeros(1, 1, *kernel), None, **arguments)
    if isinstance(expected, RuntimeError):
        with pytest.raises(RuntimeError):
            conv_relu_pool_output_size(size, kernel, **arguments)
        return
    assert conv_relu_pool_output_size(size, kernel, **arguments) == tuple(expected.shape[2:])


def random_call(
    batch: int, in_channels: int, out_channels: int, groups: int, size: tuple[int, int], kernel: tuple[int, int], seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, in_channels, *size, generator=generator)
    weight = torch.randn(out_channels, in_channels // groups, *kernel, generator=generator) * 0.5
    bias = torch.randn(out_channels, generator=generator)
    return x, weight, bias


# (batch, in_channels, out_channels, groups, (H, W), (kh, kw), arguments)
CASES = [
    pytest.param(2, 32, 32, 32, (14, 14), (3, 3), {"padding": 1}, id="depthwise-32"),
    pytest.param(2, 20, 20, 20, (13, 11), (3, 3), {"padding": 1, "stride": 2}, id="depthwise-20-strided"),
    pytest.param(2, 8, 8, 8, (12, 12), (5, 3), {"dilation": (2, 1), "padding": "same"}, id="depthwise-dilated-same"),
    pytest.param(2, 4, 32, 2, (10, 10), (3, 3), {"padding": 1}, id="groups-2-of-16"),
    pytest.param(1, 6, 48, 3, (9, 9), (3, 3), {}, id="groups-3-of-16"),
    pytest.param(2, 6, 9, 3, (9, 9), (3, 3), {}, id="groups-3-of-3"),
    pytest.param(2, 3, 16, 1, (16, 16), (3, 3), {"dilation": 2}, id="dilated-2"),
    pytest.param(2, 3, 5, 1, (17, 15), (3, 2), {"dilation": (3, 2), "padding": (2, 1), "stride": (1, 2)}, id="dilated-rect"),
    pytest.param(2, 3, 8, 1, (12, 12), (3, 3), {"padding": "same", "dilation": 2}, id="same-dilated"),
    pytest.param(2, 3, 8, 1, (12, 12), (4, 4), {"padding": "same"}, id="same-even-kernel"),
    pytest.param(2, 3, 8, 1, (12, 12), (3, 3), {"padding": "valid"}, id="valid"),
    pytest.param(2, 3, 8, 1, (11, 11), (3, 3), {"pool_kernel": 3, "pool_stride": 2, "pool_padding": 1}, id="pool-pad"),
    pytest.param(
        2, 3, 8, 1, (10, 10), (3, 3), {"pool_kernel": 3, "pool_padding": 1, "ceil_mode": True}, id="pool-pad-ceil"
    ),
    pytest.param(2, 3, 8, 1, (12, 12), (3, 3), {"pool_kernel": 2, "pool_dilation": 2}, id="pool-dilation"),
    pytest.param(2, 3, 8, 1, (12, 12), (3, 3), {"pool_kernel": (2, 3), "pool_stride": (1, 2)}, id="pool-rect"),
]


@pytest.mark.parametrize(("batch", "in_channels", "out_channels", "groups", "size", "kernel", "arguments"), CASES)
def test_case_matches_composite(
    batch: int,
    in_channels: int,
    out_channels: int,
    groups: int,
    size: tuple[int, int],
    kernel: tuple[int, int],
    arguments: dict[str, Any],
) -> None:
    x, weight, bias = random_call(batch, in_channels, out_channels, groups, size, kernel)
    result = conv_relu_pool(x, weight, bias, groups=groups, **arguments)
    expected = composite(x, weight, bias, groups=groups, **arguments)
    assert result.shape == expected.shape
    torch.testing.assert_close(result, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("batch", "in_channels", "out_channels", "groups", "size", "kernel", "arguments"), CASES)
def test_case_gradients_match_composite(
    batch: int,
    in_channels: int,
    out_channels: int,
    groups: int,
    size: tuple[int, int],
    kernel: tuple[int, int],
    arguments: dict[str, Any],
) -> None:
    x, weight, bias = random_call(batch, in_channels, out_channels, groups, size, kernel, seed=1)
    leaves = [tensor.clone().requires_grad_() for tensor in (x, weight, bias)]
    references = [tensor.clone().requires_grad_() for tensor in (x, weight, bias)]

    output = conv_relu_pool(*leaves, groups=groups, **arguments)
    expected = composite(*references, groups=groups, **arguments)
    grad_output = torch.randn(expected.shape, generator=torch.Generator().manual_seed(2))
    output.backward(grad_output)
    expected.backward(grad_output)

    for name, leaf, reference in zip(("x", "weight", "bias"), leaves, references, strict=True):
        torch.testing.assert_close(leaf.grad, reference.grad, rtol=RTOL, atol=ATOL, msg=name)


def test_unbatched_input_matches_batched() -> None:
    x, weight, bias = random_call(1, 4, 8, 2, (10, 10), (3, 3))
    result = conv_relu_pool(x[0], weight, bias, groups=2, padding=1)
    expected = composite(x, weight, bias, groups=2, padding=1)[0]
    assert result.shape == (8, 5, 5)
    torch.testing.assert_close(result, expected, rtol=RTOL, atol=ATOL)


def test_non_finite_values_match_composite() -> None:
    x, weight, bias = random_call(2, 8, 8, 8, (10, 10), (3, 3))
    x[0, 1, 2, 3] = float("nan")
    x[1, 4, 5, 5] = float("inf")
    x[1, 6, 0, 0] = float("-inf")
    arguments = {"groups": 8, "padding": 1, "dilation": 2, "pool_kernel": 3, "pool_padding": 1}
    result = conv_relu_pool(x, weight, bias, **arguments)
    expected = composite(x, weight, bias, **arguments)
    assert torch.isnan(expected).any()
    torch.testing.assert_close(result, expected, rtol=RTOL, atol=ATOL, equal_nan=True)


def test_composite_choice_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    x, weight, bias = random_call(1, 3, 8, 1, (12, 12), (4, 4))
    with caplog.at_level(logging.DEBUG, logger="fcnnzoo.ops"):
        conv_relu_pool(x, weight, bias, padding="same")
    messages = [record.getMessage() for record in caplog.records]
    assert any("PyTorch composite" in message and "padding='same'" in message for message in messages), messages


def test_select_implementation_reasons() -> None:
    x, weight, bias = random_call(1, 4, 8, 1, (12, 12), (3, 3))
    plain = normalize_arguments((3, 3))
    assert select_implementation(x, weight, bias, plain) is None
    assert "dtype torch.float64" in select_implementation(x.double(), weight.double(), None, plain)
    assert "pool_kernel (17, 17)" in select_implementation(x, weight, bias, normalize_arguments((3, 3), pool_kernel=17))
    even_same = normalize_arguments((4, 4), padding="same")
    assert "padding='same'" in select_implementation(x, weight, bias, even_same)


def test_module_state_dict_round_trips_with_conv2d() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, (3, 5), stride=(1, 2), padding=(1, 2), dilation=(2, 1), groups=4)
    layer = ConvReLUPool(8, 16, (3, 5), stride=(1, 2), padding=(1, 2), dilation=(2, 1), groups=4, pool_kernel=3,
                         pool_stride=2, pool_padding=1, pool_dilation=1, ceil_mode=True)
    assert layer.weight.shape == conv.weight.shape
    layer.load_state_dict(conv.state_dict())
    x = torch.randn(2, 8, 15, 15)
    expected = F.max_pool2d(F.relu(conv(x)), 3, 2, 1, ceil_mode=True)
    torch.testing.assert_close(layer(x), expected, rtol=RTOL, atol=ATOL)

    back = nn.Conv2d(8, 16, (3, 5), stride=(1, 2), padding=(1, 2), dilation=(2, 1), groups=4)
    back.load_state_dict(layer.state_dict())
    assert torch.equal(back.weight, conv.weight)
    assert torch.equal(back.bias, conv.bias)


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_module_string_padding(padding: str) -> None:
    torch.manual_seed(1)
    layer = ConvReLUPool(3, 8, 3, padding=padding, dilation=2)
    conv = nn.Conv2d(3, 8, 3, padding=padding, dilation=2)
    conv.load_state_dict(layer.state_dict())
    x = torch.randn(2, 3, 12, 12)
    torch.testing.assert_close(layer(x), F.max_pool2d(F.relu(conv(x)), 2), rtol=RTOL, atol=ATOL)
    assert f"padding={padding!r}" in repr(layer)
    assert "dilation=(2, 2)" in repr(layer)


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        ({"groups": 3}, ValueError, r"in_channels=4 must be divisible by groups=3"),
        ({"groups": 2, "out_channels": 3}, ValueError, r"out_channels=3 must be divisible by groups=2"),
        ({"dilation": 0}, ValueError, r"dilation must be positive"),
        ({"padding": "same", "stride": 2}, ValueError, r"padding='same' needs stride 1"),
        ({"padding_mode": "reflect"}, ValueError, r"padding_mode must be 'zeros', got 'reflect'"),
        ({"pool_padding": 2}, ValueError, r"pool_padding must be at most half"),
        ({"pool_dilation": (1, 0)}, ValueError, r"pool_dilation must be positive"),
        ({"groups": "2"}, TypeError, r"groups must be an int"),
    ],
)
def test_module_rejects_invalid(arguments: dict[str, Any], error: type[Exception], match: str) -> None:
    call = {"in_channels": 4, "out_channels": 8, "kernel_size": 3, **arguments}
    with pytest.raises(error, match=match):
        ConvReLUPool(**call)


def test_module_fused_and_composite_agree_in_training() -> None:
    torch.manual_seed(2)
    layer = ConvReLUPool(8, 8, 3, padding=1, groups=8, dilation=1, pool_kernel=3, pool_stride=2, pool_padding=1)
    reference = copy.deepcopy(layer)
    reference.fused = False
    x = torch.randn(2, 8, 12, 12)
    layer(x).square().sum().backward()
    reference(x).square().sum().backward()
    torch.testing.assert_close(layer.weight.grad, reference.weight.grad, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(layer.bias.grad, reference.bias.grad, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    ("arguments", "fused"),
    [
        ({"groups": 8, "padding": 1}, True),
        ({"dilation": 2, "padding": 2}, True),
        ({"pool_kernel": 3, "pool_stride": 2, "pool_padding": 1}, True),
        ({"padding": "same", "pool_dilation": 2}, False),
    ],
    ids=["depthwise", "dilated", "pool-padding", "same-pool-dilation"],
)
def test_compile_and_export_match_eager(arguments: dict[str, Any], fused: bool) -> None:
    torch.manual_seed(3)
    layer = ConvReLUPool(8, 8, 3, **arguments).eval()
    x = torch.randn(2, 8, 12, 12)
    with torch.no_grad():
        expected = composite(x, layer.weight, layer.bias, **layer.op_settings())
        compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
        torch.testing.assert_close(compiled(x), expected, rtol=RTOL, atol=ATOL)

    exported = torch.export.export(layer, (x,))
    targets = [node.target for node in exported.graph.nodes]
    assert (torch.ops.fcnnzoo.conv_relu_pool.default in targets) == fused
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), expected, rtol=RTOL, atol=ATOL)


def test_compiled_depthwise_training_matches_composite() -> None:
    torch.manual_seed(5)
    layer = ConvReLUPool(16, 16, 3, padding=1, dilation=(1, 2), groups=16, pool_kernel=3, pool_stride=2, pool_padding=1)
    reference = copy.deepcopy(layer)
    reference.fused = False
    x = torch.randn(2, 16, 11, 11)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")

    output = compiled(x)
    expected = reference(x)
    torch.testing.assert_close(output, expected, rtol=RTOL, atol=ATOL)
    output.square().sum().backward()
    expected.square().sum().backward()
    torch.testing.assert_close(layer.weight.grad, reference.weight.grad, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(layer.bias.grad, reference.bias.grad, rtol=RTOL, atol=ATOL)



def test_select_implementation_native_cases() -> None:
    x, weight, bias = random_call(1, 8, 8, 8, (12, 12), (3, 3))
    assert select_implementation(x, weight, bias, normalize_arguments((3, 3), groups=8)) is None
    assert select_implementation(x, weight[:, :4], bias, normalize_arguments((3, 3), groups=2)) is not None
    x, weight, bias = random_call(1, 4, 32, 2, (12, 12), (3, 3))
    assert select_implementation(x, weight, bias, normalize_arguments((3, 3), groups=2)) is None
    assert select_implementation(x, weight, bias, normalize_arguments((3, 3), groups=2, dilation=(2, 3))) is None
    pool_padding = normalize_arguments((3, 3), groups=2, pool_kernel=3, pool_padding=1)
    assert select_implementation(x, weight, bias, pool_padding) is None
    pool_dilation = normalize_arguments((3, 3), pool_dilation=2)
    assert "pool_dilation (2, 2)" in select_implementation(x, weight[:, :2].repeat(1, 2, 1, 1), bias, pool_dilation)
    x, weight, bias = random_call(1, 6, 9, 3, (12, 12), (3, 3))
    reason = select_implementation(x, weight, bias, normalize_arguments((3, 3), groups=3))
    assert "groups=3 with 3 output channels per group" in reason


def composite_window_positions(conv: torch.Tensor, flat: torch.Tensor, arguments: dict[str, Any]) -> torch.Tensor:
    """Turn max_pool2d's flat indices into positions inside the padded window, row * window width + column."""
    kernel_h, kernel_w = arguments["pool_kernel"]
    stride_h, stride_w = arguments["pool_stride"]
    pad_h, pad_w = arguments["pool_padding"]
    rows = flat // conv.shape[3] - (torch.arange(flat.shape[2]).view(-1, 1) * stride_h - pad_h)
    columns = flat % conv.shape[3] - (torch.arange(flat.shape[3]) * stride_w - pad_w)
    return rows * kernel_w + columns


# (in_channels, out_channels, groups, (H, W), (kh, kw), native arguments)
NATIVE_CASES = [
    pytest.param(20, 20, 20, (11, 13), (3, 3), {"padding": (1, 1), "dilation": (1, 1)}, id="depthwise"),
    pytest.param(9, 9, 9, (12, 12), (3, 2), {"padding": (2, 0), "dilation": (2, 3)}, id="depthwise-dilated"),
    pytest.param(4, 64, 2, (10, 9), (3, 3), {"padding": (1, 0), "dilation": (1, 1)}, id="groups-2-of-32"),
    pytest.param(6, 32, 2, (10, 10), (2, 3), {"padding": (0, 0), "dilation": (1, 1)}, id="groups-2-of-16"),
    pytest.param(3, 7, 1, (14, 15), (3, 3), {"padding": (0, 1), "dilation": (3, 2)}, id="dilated"),
    pytest.param(
        3, 17, 1, (11, 11), (3, 3), {"padding": (1, 1), "dilation": (1, 1), "pool_kernel": (3, 3),
                                     "pool_stride": (2, 2), "pool_padding": (1, 1)}, id="pool-padding"
    ),
    pytest.param(
        16, 16, 16, (10, 9), (3, 3), {"padding": (1, 1), "dilation": (2, 2), "pool_kernel": (3, 2),
                                      "pool_stride": (1, 2), "pool_padding": (1, 1), "ceil_mode": True},
        id="depthwise-pool-padding-ceil",
    ),
    pytest.param(
        2, 5, 1, (9, 9), (1, 1), {"padding": (0, 0), "dilation": (1, 1), "pool_kernel": (2, 2),
                                  "pool_stride": (1, 1), "pool_padding": (1, 1)}, id="pool-padding-stride-1"
    ),
]


@pytest.mark.parametrize(("in_channels", "out_channels", "groups", "size", "kernel", "native"), NATIVE_CASES)
def test_every_native_kernel_matches_composite(
    in_channels: int, out_channels: int, groups: int, size: tuple[int, int], kernel: tuple[int, int], native: dict
) -> None:
    from fcnnzoo import _C

    x, weight, bias = random_call(2, in_channels, out_channels, groups, size, kernel, seed=4)
    arguments = {"stride": (1, 1), "pool_kernel": (2, 2), "pool_stride": (2, 2), "pool_padding": (0, 0),
                 "ceil_mode": False, **native}
    conv = F.relu(F.conv2d(x, weight, bias, arguments["stride"], arguments["padding"], arguments["dilation"], groups))
    expected, flat = F.max_pool2d(conv, arguments["pool_kernel"], arguments["pool_stride"], arguments["pool_padding"],
                                  ceil_mode=arguments["ceil_mode"], return_indices=True)
    positions = composite_window_positions(conv, flat, arguments)
    names = [name for name in _C.supported_kernels() if not name.startswith("winograd")]
    assert "reference" in names

    for name in names:
        output = torch.empty_like(expected)
        indices = torch.empty(expected.shape, dtype=torch.uint8)
        _C.conv_relu_pool_forward(x.numpy(), weight.numpy(), bias.numpy(), output.numpy(), **arguments, groups=groups,
                                  num_threads=2, kernel=name, indices=indices.numpy())
        torch.testing.assert_close(output, expected, rtol=RTOL, atol=ATOL, msg=name)
        positive = expected > 0
        assert torch.equal(indices.long()[positive], positions[positive]), name


@pytest.mark.parametrize("groups", [1, 8], ids=["plain", "depthwise"])
def test_module_inference_plan_matches_composite(groups: int) -> None:
    torch.manual_seed(4)
    layer = ConvReLUPool(8, 8, 3, padding="same", dilation=2, groups=groups, pool_kernel=3, pool_stride=2,
                         pool_padding=1, ceil_mode=True).eval()
    x = torch.randn(3, 8, 13, 13)
    with torch.no_grad():
        first = layer(x)
        second = layer(x)
        expected = composite(x, layer.weight, layer.bias, **layer.op_settings())
    torch.testing.assert_close(first, expected, rtol=RTOL, atol=ATOL)
    assert torch.equal(first, second)


def test_numpy_integer_arguments_accepted():
    import numpy as np

    generator = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 9, 9, generator=generator)
    weight = torch.randn(4, 2, 3, 3, generator=generator)
    actual = conv_relu_pool(x, weight, None, stride=np.int64(1), groups=np.int64(2), pool_kernel=(np.int64(2), np.int32(2)))
    expected = F.max_pool2d(F.relu(F.conv2d(x, weight, None, 1, 0, 1, 2)), 2)
    assert torch.equal(actual, expected)
