"""ConvReLUPool: fused and composite paths, state_dict compatibility with nn.Conv2d, gradients."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.nn import set_fused

RTOL = 1e-5
ATOL = 1e-4

LAYERS = [
    pytest.param({"in_channels": 1, "out_channels": 32, "kernel_size": 3}, (28, 28), id="layer1"),
    pytest.param({"in_channels": 32, "out_channels": 64, "kernel_size": 3}, (13, 13), id="layer2"),
    pytest.param(
        {"in_channels": 3, "out_channels": 10, "kernel_size": (3, 2), "stride": (2, 1), "padding": 1, "bias": False},
        (15, 12),
        id="rect-no-bias",
    ),
    pytest.param(
        {"in_channels": 2, "out_channels": 5, "kernel_size": 3, "pool_kernel": 3, "pool_stride": 2, "ceil_mode": True},
        (12, 12),
        id="ceil-overlap",
    ),
]


def composite_of(module: ConvReLUPool, x: torch.Tensor) -> torch.Tensor:
    """Compute the module's expected output with torch.nn.functional."""
    y = F.relu(F.conv2d(x, module.weight, module.bias, module.stride, module.padding))
    return F.max_pool2d(y, module.pool_kernel, module.pool_stride, ceil_mode=module.ceil_mode)


@pytest.mark.parametrize(("arguments", "size"), LAYERS)
def test_fused_equals_unfused(arguments: dict[str, Any], size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    fused = ConvReLUPool(**arguments).eval()
    unfused = ConvReLUPool(**arguments, fused=False).eval()
    unfused.load_state_dict(fused.state_dict())
    x = torch.randn(4, arguments["in_channels"], *size)

    with torch.no_grad():
        fused_output = fused(x)
        unfused_output = unfused(x)
        expected = composite_of(fused, x)

    assert fused_output.shape == expected.shape
    torch.testing.assert_close(fused_output, expected, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(unfused_output, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("bias", [True, False])
def test_state_dict_matches_conv2d(bias: bool) -> None:
    ours = ConvReLUPool(3, 8, (3, 5), bias=bias)
    conv = nn.Conv2d(3, 8, (3, 5), bias=bias)

    assert list(ours.state_dict()) == list(conv.state_dict())
    for key, value in conv.state_dict().items():
        assert ours.state_dict()[key].shape == value.shape, key


def test_state_dict_loads_both_ways() -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 8, 3, padding=1)
    ours = ConvReLUPool(3, 8, 3, padding=1)
    x = torch.randn(2, 3, 10, 10)

    ours.load_state_dict(conv.state_dict())
    with torch.no_grad():
        expected = F.max_pool2d(F.relu(conv(x)), 2)
        torch.testing.assert_close(ours(x), expected, rtol=RTOL, atol=ATOL)

    other = nn.Conv2d(3, 8, 3, padding=1)
    other.load_state_dict(ours.state_dict())
    assert torch.equal(other.weight, ours.weight)
    assert torch.equal(other.bias, ours.bias)


def test_initialization_matches_conv2d() -> None:
    torch.manual_seed(2)
    conv = nn.Conv2d(4, 6, 3)
    torch.manual_seed(2)
    ours = ConvReLUPool(4, 6, 3)
    assert torch.equal(ours.weight, conv.weight)
    assert torch.equal(ours.bias, conv.bias)


def test_set_fused_switches_every_block() -> None:
    model = nn.Sequential(ConvReLUPool(1, 4, 3), nn.ReLU(), ConvReLUPool(4, 8, 3, fused=False))

    assert set_fused(model, False) is model
    assert [block.fused for block in (model[0], model[2])] == [False, False]
    set_fused(model, True)
    assert [block.fused for block in (model[0], model[2])] == [True, True]
    assert "fused=True" in repr(model[0])


def test_fused_switch_keeps_output() -> None:
    torch.manual_seed(3)
    block = ConvReLUPool(2, 12, 3, padding=1)
    x = torch.randn(3, 2, 9, 9)
    with torch.no_grad():
        fused_output = block(x)
        block.fused = False
        unfused_output = block(x)
    torch.testing.assert_close(fused_output, unfused_output, rtol=RTOL, atol=ATOL)


def test_training_gradients_flow() -> None:
    torch.manual_seed(4)
    fused = ConvReLUPool(3, 8, 3, padding=1).train()
    unfused = ConvReLUPool(3, 8, 3, padding=1, fused=False).train()
    unfused.load_state_dict(fused.state_dict())
    x = torch.randn(4, 3, 12, 12, requires_grad=True)
    x_reference = x.detach().clone().requires_grad_()

    output = fused(x)
    expected = unfused(x_reference)
    assert output.requires_grad
    torch.testing.assert_close(output, expected, rtol=RTOL, atol=ATOL)

    output.sum().backward()
    expected.sum().backward()
    assert fused.weight.grad is not None
    assert fused.bias.grad is not None
    assert x.grad is not None
    assert fused.weight.grad.abs().sum() > 0
    torch.testing.assert_close(fused.weight.grad, unfused.weight.grad, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(fused.bias.grad, unfused.bias.grad, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(x.grad, x_reference.grad, rtol=RTOL, atol=ATOL)


def test_optimizer_step_changes_output() -> None:
    torch.manual_seed(5)
    block = ConvReLUPool(1, 4, 3)
    optimizer = torch.optim.SGD(block.parameters(), lr=0.1)
    x = torch.randn(8, 1, 10, 10)
    with torch.no_grad():
        before = block(x)

    loss = block(x).sum()
    loss.backward()
    optimizer.step()

    with torch.no_grad():
        after = block(x)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, composite_of(block, x).detach(), rtol=RTOL, atol=ATOL)


def test_float64_module_runs_composite() -> None:
    block = ConvReLUPool(2, 3, 3).double()
    x = torch.randn(2, 2, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        output = block(x)
        expected = composite_of(block, x)
    assert output.dtype == torch.float64
    torch.testing.assert_close(output, expected)


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"in_channels": 0}, r"in_channels and out_channels must be positive"),
        ({"out_channels": -1}, r"in_channels and out_channels must be positive"),
        ({"kernel_size": 0}, r"kernel_size must be positive"),
        ({"stride": (1, 0)}, r"stride must be positive"),
        ({"padding": -1}, r"padding must be non-negative"),
        ({"pool_kernel": 0}, r"pool_kernel must be positive"),
        ({"pool_stride": (0, 2)}, r"pool_stride must be positive"),
    ],
)
def test_invalid_construction_raises(arguments: dict[str, Any], match: str) -> None:
    call = {"in_channels": 1, "out_channels": 4, "kernel_size": 3, **arguments}
    with pytest.raises(ValueError, match=match):
        ConvReLUPool(**call)


def test_non_bool_ceil_mode_raises_type_error() -> None:
    with pytest.raises(TypeError, match=r"ceil_mode must be True or False, got 'yes'"):
        ConvReLUPool(1, 4, 3, ceil_mode="yes")


def test_non_integer_size_raises_type_error() -> None:
    with pytest.raises(TypeError, match=r"kernel_size must be an int or a pair of ints"):
        ConvReLUPool(1, 4, 2.5)
