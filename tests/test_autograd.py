"""The fcnnzoo::conv_relu_pool custom op: its gradients, opcheck, torch.compile and torch.export."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fcnnzoo
from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.ops import conv_relu_pool

# float32 tolerances: the fused forward sums the products in another order than oneDNN.
RTOL = 1e-5
ATOL = 1e-4


def composite(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, **arguments: Any) -> torch.Tensor:
    """Compute the expected result with torch.nn.functional, spelled out independently of fcnnzoo."""
    y = F.conv2d(x, weight, bias, arguments.get("stride", 1), arguments.get("padding", 0))
    return F.max_pool2d(
        F.relu(y), arguments.get("pool_kernel", 2), arguments.get("pool_stride"), ceil_mode=arguments.get("ceil_mode", False)
    )


def gradients(
    function: Any, inputs: list[torch.Tensor | None], grad_output: torch.Tensor | None, **arguments: Any
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Return the output of ``function`` and the gradients of the inputs that are not None."""
    leaves = [None if tensor is None else tensor.detach().clone().requires_grad_() for tensor in inputs]
    output = function(*leaves, **arguments)
    if grad_output is None:
        grad_output = torch.randn(output.shape, generator=torch.Generator().manual_seed(7))
    output.backward(grad_output)
    return output, [leaf.grad for leaf in leaves if leaf is not None]


# (batch, in_channels, out_channels, (H, W), (kH, kW), arguments), with the bias or without it.
# The C++ backward has two layouts: few input channels (in_channels *
# kernel width below the vector width) take the dense one, more take the
# sparse one; the cases cover both, with strides, padding and overlapping
# or clipped pooling windows.
GRADIENT_CASES = [
    (2, 3, 5, (10, 10), (3, 3), {"padding": 1}, True),
    (3, 1, 4, (28, 28), (3, 3), {}, True),
    (2, 4, 6, (13, 11), (3, 2), {"stride": 2, "padding": (1, 0)}, False),
    (1, 2, 3, (12, 12), (5, 5), {"pool_kernel": 3, "pool_stride": 2, "ceil_mode": True}, True),
    (2, 3, 7, (9, 14), (1, 3), {"pool_kernel": (2, 3), "pool_stride": (1, 2)}, True),
    (2, 32, 16, (13, 13), (3, 3), {}, True),
    (2, 8, 6, (11, 11), (3, 3), {"padding": 1, "pool_kernel": 3, "pool_stride": 2, "ceil_mode": True}, True),
    (2, 6, 5, (12, 10), (3, 3), {"stride": 2, "padding": 1}, False),
    (3, 17, 9, (7, 9), (2, 4), {"padding": (0, 2), "pool_kernel": (3, 2), "pool_stride": (1, 2)}, True),
    (2, 2, 4, (12, 12), (2, 2), {"ceil_mode": True}, True),
]


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=lambda case: f"{case[3]}-{case[4]}-{case[5]}-bias{case[6]}")
def test_gradients_match_composite(case: tuple[Any, ...]) -> None:
    batch, in_channels, out_channels, size, kernel, arguments, has_bias = case
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(batch, in_channels, *size, generator=generator)
    weight = torch.randn(out_channels, in_channels, *kernel, generator=generator)
    bias = torch.randn(out_channels, generator=generator) if has_bias else None

    output, fused_grads = gradients(conv_relu_pool, [x, weight, bias], None, **arguments)
    expected, composite_grads = gradients(composite, [x, weight, bias], None, **arguments)

    assert output.grad_fn is not None and "fcnnzoo" in type(output.grad_fn).__name__
    torch.testing.assert_close(output, expected, rtol=RTOL, atol=ATOL)
    assert len(fused_grads) == len(composite_grads) == (3 if has_bias else 2)
    for fused_grad, composite_grad in zip(fused_grads, composite_grads, strict=True):
        assert fused_grad.abs().sum() > 0
        torch.testing.assert_close(fused_grad, composite_grad, rtol=RTOL, atol=ATOL)


def test_ties_and_relu_zeros_match_composite() -> None:
    # A constant input makes every pool window a tie, and the negative biases
    # make half of the channels zero after ReLU, where no gradient may flow.
    x = torch.ones(2, 2, 8, 8)
    weight = torch.ones(4, 2, 3, 3)
    bias = torch.tensor([1.0, -100.0, 0.5, -100.0])

    output, fused_grads = gradients(conv_relu_pool, [x, weight, bias], None, padding=1)
    expected, composite_grads = gradients(composite, [x, weight, bias], None, padding=1)

    assert torch.equal(output[:, 1], torch.zeros_like(output[:, 1]))
    torch.testing.assert_close(output, expected, rtol=RTOL, atol=ATOL)
    for fused_grad, composite_grad in zip(fused_grads, composite_grads, strict=True):
        torch.testing.assert_close(fused_grad, composite_grad, rtol=RTOL, atol=ATOL)
    assert fused_grads[2][1] == 0
    assert fused_grads[2][3] == 0
    assert fused_grads[2][0] != 0


@pytest.mark.parametrize("in_channels", [2, 16], ids=["dense", "sparse"])
@pytest.mark.parametrize("value", [float("inf"), float("nan")], ids=["inf", "nan"])
def test_non_finite_input_gradients_match_composite(in_channels: int, value: float) -> None:
    # A non-finite input value times the zero gradient of a losing position
    # is NaN in the composite's convolution backward, and must be here too.
    generator = torch.Generator().manual_seed(6)
    x = torch.randn(2, in_channels, 9, 9, generator=generator)
    x[1, 0, 4, 4] = value
    weight = torch.randn(5, in_channels, 3, 3, generator=generator)
    bias = torch.randn(5, generator=generator)

    output, fused_grads = gradients(conv_relu_pool, [x, weight, bias], None, padding=1)
    expected, composite_grads = gradients(composite, [x, weight, bias], None, padding=1)

    torch.testing.assert_close(output, expected, rtol=RTOL, atol=ATOL, equal_nan=True)
    for fused_grad, composite_grad in zip(fused_grads, composite_grads, strict=True):
        assert torch.equal(fused_grad.isnan(), composite_grad.isnan())
        torch.testing.assert_close(fused_grad, composite_grad, rtol=RTOL, atol=ATOL, equal_nan=True)


def test_non_finite_weight_gradients_match_composite() -> None:
    generator = torch.Generator().manual_seed(8)
    x = torch.randn(2, 16, 9, 9, generator=generator)
    weight = torch.randn(5, 16, 3, 3, generator=generator)
    weight[2, 3, 1, 1] = float("inf")
    bias = torch.randn(5, generator=generator)

    _, fused_grads = gradients(conv_relu_pool, [x, weight, bias], None, padding=1)
    _, composite_grads = gradients(composite, [x, weight, bias], None, padding=1)

    for fused_grad, composite_grad in zip(fused_grads, composite_grads, strict=True):
        assert torch.equal(fused_grad.isnan(), composite_grad.isnan())
        torch.testing.assert_close(fused_grad, composite_grad, rtol=RTOL, atol=ATOL, equal_nan=True)


@pytest.mark.parametrize("in_channels", [1, 32], ids=["dense", "sparse"])
def test_backward_is_repeatable_with_threads(in_channels: int) -> None:
    # The weight gradient sums per-thread partial sums; their order must not
    # depend on which thread took which images.
    generator = torch.Generator().manual_seed(9)
    x = torch.randn(32, in_channels, 20, 20, generator=generator)
    weight = torch.randn(48, in_channels, 3, 3, generator=generator)
    bias = torch.randn(48, generator=generator)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = [gradients(conv_relu_pool, [x, weight, bias], None, padding=1)[1] for _ in range(5)]
    finally:
        torch.set_num_threads(previous)
    for run in runs[1:]:
        for grad, first in zip(run, runs[0], strict=True):
            assert torch.equal(grad, first)


def test_only_requested_gradients_are_computed() -> None:
    x, weight, bias = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3), torch.randn(4)
    weight.requires_grad_()
    conv_relu_pool(x, weight, bias).sum().backward()
    assert x.grad is None
    assert bias.grad is None
    expected = weight.detach().clone().requires_grad_()
    composite(x, expected, bias).sum().backward()
    torch.testing.assert_close(weight.grad, expected.grad, rtol=RTOL, atol=ATOL)


def test_batch_zero_backward_gives_zero_gradients() -> None:
    x = torch.randn(0, 3, 8, 8, requires_grad=True)
    weight = torch.randn(4, 3, 3, 3, requires_grad=True)
    bias = torch.randn(4, requires_grad=True)
    output = conv_relu_pool(x, weight, bias)
    assert output.shape == (0, 4, 3, 3)
    output.sum().backward()
    assert x.grad.shape == (0, 3, 8, 8)
    assert torch.equal(weight.grad, torch.zeros_like(weight))
    assert torch.equal(bias.grad, torch.zeros_like(bias))


def test_gradcheck_float64_reference_path() -> None:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 7, 7, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(3, 2, 3, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda *inputs: conv_relu_pool(*inputs, padding=1, pool_kernel=2, ceil_mode=True), (x, weight, bias)
    )


def window_positions(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, **arguments: Any) -> torch.Tensor:
    """Return max_pool2d's winning position inside each window, row * window width + column."""
    pool_kernel = arguments.get("pool_kernel", 2)
    pool_stride = arguments.get("pool_stride") or pool_kernel
    conv = F.relu(F.conv2d(x, weight, bias, arguments.get("stride", 1), arguments.get("padding", 0)))
    _, flat = F.max_pool2d(conv, pool_kernel, pool_stride, ceil_mode=arguments.get("ceil_mode", False), return_indices=True)
    rows = flat // conv.shape[3] - torch.arange(flat.shape[2]).view(-1, 1) * pool_stride
    columns = flat % conv.shape[3] - torch.arange(flat.shape[3]) * pool_stride
    return rows * pool_kernel + columns


@pytest.mark.parametrize("pool", [(2, 2, False), (3, 2, True), (3, 1, False)], ids=str)
def test_forward_op_returns_max_pool2d_window_positions(pool: tuple[int, int, bool]) -> None:
    pool_kernel, pool_stride, ceil_mode = pool
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 11, 11, dtype=torch.float64, generator=generator)
    weight = torch.randn(5, 3, 3, 3, dtype=torch.float64, generator=generator)
    bias = torch.randn(5, dtype=torch.float64, generator=generator)
    arguments = {"padding": 1, "pool_kernel": pool_kernel, "pool_stride": pool_stride, "ceil_mode": ceil_mode}

    output, indices = torch.ops.fcnnzoo.conv_relu_pool(
        x.float(), weight.float(), bias.float(), [1, 1], [1, 1], [1, 1], 1,
        [pool_kernel] * 2, [pool_stride] * 2, [0, 0], [1, 1], ceil_mode,
    )

    assert indices.dtype == torch.uint8
    assert indices.shape == output.shape
    positive = output > 0
    assert int(positive.sum()) > 0
    expected = window_positions(x, weight, bias, **arguments)
    assert torch.equal(indices.long()[positive], expected[positive])


def test_backward_op_matches_composite() -> None:
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(2, 2, 6, 6, generator=generator)
    weight = torch.randn(3, 2, 3, 3, generator=generator)
    bias = torch.randn(3, generator=generator)
    grad_output = torch.randn(2, 3, 3, 3, generator=generator)
    output, indices = torch.ops.fcnnzoo.conv_relu_pool(x, weight, bias, *PLAIN_ARGUMENTS)
    grads = torch.ops.fcnnzoo.conv_relu_pool_backward(
        grad_output, x, weight, output, indices, *PLAIN_ARGUMENTS, [True, True, True]
    )
    _, expected = gradients(composite, [x, weight, bias], grad_output, padding=1)
    for grad, reference in zip(grads, expected, strict=True):
        torch.testing.assert_close(grad, reference, rtol=RTOL, atol=ATOL)


# The op's arguments after x, weight and bias: stride, padding, dilation,
# groups, pool_kernel, pool_stride, pool_padding, pool_dilation, ceil_mode.
PLAIN_ARGUMENTS = ([1, 1], [1, 1], [1, 1], 1, [2, 2], [2, 2], [0, 0], [1, 1], False)

OPCHECK_CASES = [
    ((2, 3, 10, 10), (5, 3, 3, 3), True, *PLAIN_ARGUMENTS),
    ((1, 1, 28, 28), (8, 1, 3, 3), True, [1, 1], [0, 0], [1, 1], 1, [2, 2], [2, 2], [0, 0], [1, 1], False),
    ((2, 2, 11, 9), (4, 2, 3, 2), False, [2, 1], [0, 1], [1, 1], 1, [3, 3], [2, 2], [0, 0], [1, 1], True),
    ((3, 4, 8, 8), (6, 4, 1, 1), True, [1, 1], [0, 0], [1, 1], 1, [2, 3], [1, 2], [0, 0], [1, 1], False),
    ((2, 8, 9, 9), (8, 1, 3, 3), True, [1, 1], [1, 1], [1, 1], 8, [3, 3], [2, 2], [1, 1], [1, 1], False),
    ((2, 3, 12, 11), (5, 3, 3, 2), True, [1, 2], [2, 1], [2, 3], 1, [2, 2], [2, 2], [0, 0], [1, 1], True),
    ((1, 4, 8, 8), (32, 2, 3, 3), False, [1, 1], [1, 1], [1, 1], 2, [3, 2], [2, 1], [1, 1], [1, 1], True),
]


@pytest.mark.parametrize("case", OPCHECK_CASES, ids=lambda case: f"{case[0]}-{case[1]}")
def test_opcheck(case: tuple[Any, ...]) -> None:
    x_shape, weight_shape, has_bias, *arguments = case
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(x_shape, generator=generator, requires_grad=True)
    weight = torch.randn(weight_shape, generator=generator, requires_grad=True)
    bias = torch.randn(weight_shape[0], generator=generator, requires_grad=True) if has_bias else None
    torch.library.opcheck(torch.ops.fcnnzoo.conv_relu_pool.default, (x, weight, bias, *arguments))


def test_gradcheck_float64_every_argument() -> None:
    generator = torch.Generator().manual_seed(6)
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(4, 2, 3, 2, dtype=torch.float64, generator=generator, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, generator=generator, requires_grad=True)
    arguments = {"padding": "same", "dilation": (2, 1), "groups": 2, "pool_kernel": 3, "pool_stride": 2,
                 "pool_padding": 1, "pool_dilation": (1, 2), "ceil_mode": True}
    assert torch.autograd.gradcheck(lambda *inputs: conv_relu_pool(*inputs, **arguments), (x, weight, bias))


@pytest.mark.parametrize("output_mask", [[True, True, True], [False, True, True], [True, False, False]])
def test_backward_opcheck(output_mask: list[bool]) -> None:
    x, weight, bias = torch.randn(2, 3, 9, 9), torch.randn(4, 3, 3, 3), torch.randn(4)
    grad_output = torch.randn(2, 4, 4, 4)
    output, indices = torch.ops.fcnnzoo.conv_relu_pool(x, weight, bias, *PLAIN_ARGUMENTS)
    torch.library.opcheck(
        torch.ops.fcnnzoo.conv_relu_pool_backward.default,
        (grad_output, x, weight, output, indices, *PLAIN_ARGUMENTS, output_mask),
        test_utils=("test_schema", "test_faketensor"),
    )


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(ConvReLUPool(1, 8, 3, padding=1), ConvReLUPool(8, 16, 3), nn.Flatten(), nn.Linear(16 * 2 * 2, 10))


@pytest.mark.parametrize("name", ["ConvReLUPool", "fcnn"])
def test_compile_fullgraph_matches_eager(name: str) -> None:
    # Eval mode turns dropout off, so both models compute the same function
    # while autograd still records the calls.
    model = (small_model() if name == "ConvReLUPool" else fcnnzoo.create_model("fcnn")).eval()
    x = torch.randn(4, 1, 12, 12) if name == "ConvReLUPool" else torch.randn(4, 1, 28, 28)
    reference = fcnnzoo.nn.set_fused(copy.deepcopy(model), False)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")

    output = compiled(x)
    expected = reference(x)
    torch.testing.assert_close(output, expected, rtol=RTOL, atol=ATOL)

    output.sum().backward()
    expected.sum().backward()
    for (parameter_name, parameter), reference_parameter in zip(
        model.named_parameters(), reference.parameters(), strict=True
    ):
        torch.testing.assert_close(parameter.grad, reference_parameter.grad, rtol=RTOL, atol=ATOL, msg=parameter_name)


def test_compile_inductor_matches_eager() -> None:
    # The default backend generates C++ for the ops around the custom op,
    # which stays an opaque call with its registered backward.
    model = fcnnzoo.create_model("fcnn").eval()
    x = torch.randn(4, 1, 28, 28)
    reference = fcnnzoo.nn.set_fused(copy.deepcopy(model), False)
    compiled = torch.compile(model, fullgraph=True)

    output = compiled(x)
    expected = reference(x)
    torch.testing.assert_close(output, expected, rtol=RTOL, atol=ATOL)

    output.sum().backward()
    expected.sum().backward()
    for (parameter_name, parameter), reference_parameter in zip(
        model.named_parameters(), reference.parameters(), strict=True
    ):
        torch.testing.assert_close(parameter.grad, reference_parameter.grad, rtol=RTOL, atol=ATOL, msg=parameter_name)


@pytest.mark.parametrize("name", ["ConvReLUPool", "fcnn"])
def test_export_matches_eager(name: str) -> None:
    model = (small_model() if name == "ConvReLUPool" else fcnnzoo.create_model("fcnn")).eval()
    x = torch.randn(3, 1, 12, 12) if name == "ConvReLUPool" else torch.randn(3, 1, 28, 28)
    exported = torch.export.export(model, (x,))

    targets = [node.target for node in exported.graph.nodes]
    assert torch.ops.fcnnzoo.conv_relu_pool.default in targets
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x), rtol=0, atol=0)
        unfused = fcnnzoo.nn.set_fused(model, False)
        torch.testing.assert_close(exported.module()(x), unfused(x), rtol=RTOL, atol=ATOL)
