"""The fused conv-ReLU-pool op and its PyTorch reference."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["conv_relu_pool", "conv_relu_pool_reference"]


def conv_relu_pool_reference(x, weight, bias=None, *, stride=1, padding=0, pool_kernel=2, pool_stride=None, ceil_mode=False):
    """Compute ``max_pool2d(relu(conv2d(x)))`` with PyTorch's own ops."""
    y = F.relu(F.conv2d(x, weight, bias, stride, padding))
    return F.max_pool2d(y, pool_kernel, pool_stride, ceil_mode=ceil_mode)


def conv_relu_pool(x, weight, bias=None, *, stride=1, padding=0, pool_kernel=2, pool_stride=None, ceil_mode=False):
    """Compute ``max_pool2d(relu(conv2d(x)))`` on the fused kernel where it applies."""
    # TODO: call the C++ kernel; this placeholder keeps the contract.
    return conv_relu_pool_reference(x, weight, bias, stride=stride, padding=padding, pool_kernel=pool_kernel, pool_stride=pool_stride, ceil_mode=ceil_mode)
