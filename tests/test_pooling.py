"""Tests of max-pooling over windows that lie entirely in the padding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fcnnzoo.ops import conv_relu_pool
from fcnnzoo.pooling import has_empty_window
from fcnnzoo.pooling import max_pool2d


def test_has_empty_window_known_answers():
    # Height 1, kernel 2, padding 1, dilation 2: taps at -1 and 1 both miss the one row.
    assert has_empty_window(1, 2, 2, 1, 2, 1)
    # Width 10 with the same window: taps at -1 and 1, and 1 is a real column.
    assert not has_empty_window(10, 2, 2, 1, 2, 5)
    assert not has_empty_window(4, 2, 2, 0, 1, 2)


@pytest.mark.parametrize(
    ("shape", "kernel", "stride", "padding", "dilation", "ceil_mode"),
    [
        ((2, 3, 1, 10), 2, None, 1, 2, False),
        ((1, 2, 10, 1), 2, None, 1, 2, True),
        ((1, 2, 5, 6), 3, 2, 1, 1, True),
        ((2, 1, 6, 6), 2, 1, 1, 2, False),
    ],
)
def test_max_pool2d_forward_equals_pytorch(shape, kernel, stride, padding, dilation, ceil_mode):
    y = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    expected = F.max_pool2d(y, kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    actual = max_pool2d(y, kernel, stride, padding, dilation, ceil_mode)
    assert actual.shape == expected.shape
    assert torch.equal(actual, expected)


def test_empty_windows_backward_gives_zero_gradient():
    y = torch.randn(2, 3, 1, 10, requires_grad=True)
    pooled = max_pool2d(y, 2, None, 1, 2, False)
    assert torch.isneginf(pooled).all()
    pooled.sum().backward()
    assert torch.equal(y.grad, torch.zeros_like(y))


def test_fused_op_backward_with_empty_windows():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, 3, 12, generator=generator, requires_grad=True)
    weight = torch.randn(6, 6, 3, 3, generator=generator, requires_grad=True)
    y = conv_relu_pool(x, weight, None, pool_kernel=2, pool_padding=1, pool_dilation=2)
    expected = F.max_pool2d(F.relu(F.conv2d(x.detach(), weight.detach())), 2, None, 1, 2)
    assert torch.equal(y, expected)
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert torch.equal(weight.grad, torch.zeros_like(weight))
