"""Speed of the fused conv-ReLU-pool op against PyTorch eager, layer by layer.

Each group holds one layer shape and one pass: ``fcnnzoo.ops.conv_relu_pool``
and PyTorch's ``conv2d -> relu -> max_pool2d`` on the same inputs, with the
same ``torch.get_num_threads()`` threads. The forward groups run under
``torch.no_grad()``. The forward+backward groups make the input, weight and
bias require grad and time the forward pass plus ``torch.autograd.grad``, so
they measure whatever path ``conv_relu_pool`` takes under autograd. Every
benchmark checks its output (and gradients) against the composite.

Run ``pytest benchmarks --benchmark-json=FILE`` for the full measurement or
``pytest benchmarks --benchmark-disable`` to only check the results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from pytest_benchmark.fixture import BenchmarkFixture
from reference_checks import OUTPUT_ATOL
from reference_checks import OUTPUT_RTOL
from reference_checks import assert_input_gradient_close
from reference_checks import assert_parameter_gradient_close

from fcnnzoo import _C
from fcnnzoo.ops import conv_relu_pool

POOL_KERNEL = 2
IMPLEMENTATIONS = ["fcnnzoo_fused", "torch_eager"]


@dataclass(frozen=True)
class LayerShape:
    """One conv-ReLU-pool layer: 3x3 convolution with stride 1, then 2x2 max pooling."""

    batch: int
    in_channels: int
    out_channels: int
    size: tuple[int, int]
    padding: int = 0
    kernel_size: int = 3
    dilation: int = 1
    groups: int = 1

    def conv_size(self) -> tuple[int, int]:
        """Return the (height, width) of the convolution output before pooling."""
        dilated = self.dilation * (self.kernel_size - 1) + 1
        return (
            self.size[0] + 2 * self.padding - dilated + 1,
            self.size[1] + 2 * self.padding - dilated + 1,
        )

    def describe(self) -> str:
        """Return the shape as N, C_in -> C_out, HxW, kernel, padding, dilation, groups, for extra_info."""
        return (
            f"N={self.batch}, {self.in_channels}->{self.out_channels}, {self.size[0]}x{self.size[1]}, "
            f"{self.kernel_size}x{self.kernel_size}, padding {self.padding}, dilation {self.dilation}, "
            f"groups {self.groups}, pool {POOL_KERNEL}"
        )


# layer1 and layer2 are the conv-ReLU-pool layers of the reference network
# (fcnn). cifar is a first layer on 32x32 RGB images, wide a deeper layer with
# many channels, and the *_batch1 shapes are single-image inference.
# depthwise is a MobileNet-style layer (groups = channels) and dilated a
# layer of a segmentation-style network with dilation 2.
LAYERS = {
    "layer1": LayerShape(batch=64, in_channels=1, out_channels=32, size=(28, 28)),
    "layer2": LayerShape(batch=64, in_channels=32, out_channels=64, size=(13, 13)),
    "cifar": LayerShape(batch=64, in_channels=3, out_channels=32, size=(32, 32), padding=1),
    "wide": LayerShape(batch=64, in_channels=64, out_channels=128, size=(16, 16), padding=1),
    "layer1_batch1": LayerShape(batch=1, in_channels=1, out_channels=32, size=(28, 28)),
    "layer2_batch1": LayerShape(batch=1, in_channels=32, out_channels=64, size=(13, 13)),
    "depthwise": LayerShape(batch=64, in_channels=32, out_channels=32, size=(28, 28), padding=1, groups=32),
    "dilated": LayerShape(batch=64, in_channels=16, out_channels=32, size=(28, 28), padding=2, dilation=2),
}


def flop_count(shape: LayerShape, conv_size: tuple[int, int], out_channels: int | None = None) -> int:
    """Return the FLOPs (two per multiply-add) of a direct convolution producing conv_size outputs."""
    channels = shape.out_channels if out_channels is None else out_channels
    kernel_area = shape.kernel_size * shape.kernel_size
    group_channels = shape.in_channels // shape.groups
    return 2 * shape.batch * channels * conv_size[0] * conv_size[1] * group_channels * kernel_area


def pooled_conv_size(shape: LayerShape) -> tuple[int, int]:
    """Return the part of the convolution output that a pooling window covers.

    The fused kernels skip the convolution outputs that no window covers.
    """
    conv_size = shape.conv_size()
    return (conv_size[0] // POOL_KERNEL * POOL_KERNEL, conv_size[1] // POOL_KERNEL * POOL_KERNEL)


def select_kernel(shape: LayerShape, x: torch.Tensor, weight: torch.Tensor) -> str:
    """Return the name of the fused forward kernel that the C++ dispatcher picks for this shape."""
    return _C.select_kernel(
        tuple(x.shape),
        tuple(weight.shape),
        stride=(1, 1),
        padding=(shape.padding, shape.padding),
        pool_kernel=(POOL_KERNEL, POOL_KERNEL),
        pool_stride=(POOL_KERNEL, POOL_KERNEL),
        ceil_mode=False,
        dilation=(shape.dilation, shape.dilation),
        groups=shape.groups,
    )


def executed_flop_count(kernel: str, shape: LayerShape) -> int:
    """Return the multiply-add FLOPs that a fused kernel variant executes, lanes past out_channels included.

    A direct kernel computes the convolution outputs that a pooling window
    covers. A Winograd F(2x2, 3x3) kernel spends 16 multiply-adds per 2x2
    output tile and input channel; its transforms (additions only) are not
    counted.
    """
    lanes = int(kernel.split("_oc")[1].split("_")[0])
    padded_out_channels = -(-shape.out_channels // lanes) * lanes
    conv_size = pooled_conv_size(shape)
    if kernel.startswith("winograd"):
        tiles = (conv_size[0] // 2) * (conv_size[1] // 2)
        return 2 * shape.batch * padded_out_channels * tiles * 16 * shape.in_channels
    return flop_count(shape, conv_size, padded_out_channels)


def make_inputs(shape: LayerShape) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return seeded random (x, weight, bias) for a layer shape."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape.batch, shape.in_channels, *shape.size, generator=generator)
    weight = torch.randn(
        shape.out_channels, shape.in_channels // shape.groups, shape.kernel_size, shape.kernel_size, generator=generator
    )
    bias = torch.randn(shape.out_channels, generator=generator)
    return x, weight, bias


def make_layer(implementation: str, shape: LayerShape) -> Callable[..., torch.Tensor]:
    """Return a function (x, weight, bias) -> output for the fused op or the PyTorch composite."""

    def torch_eager(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        conv = F.conv2d(x, weight, bias, padding=shape.padding, dilation=shape.dilation, groups=shape.groups)
        return F.max_pool2d(F.relu(conv), POOL_KERNEL)

    def fcnnzoo_fused(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return conv_relu_pool(
            x, weight, bias, padding=shape.padding, dilation=shape.dilation, groups=shape.groups, pool_kernel=POOL_KERNEL
        )

    return fcnnzoo_fused if implementation == "fcnnzoo_fused" else torch_eager


def record_shape(benchmark: BenchmarkFixture, shape: LayerShape) -> None:
    benchmark.extra_info["shape"] = shape.describe()
    benchmark.extra_info["num_threads"] = torch.get_num_threads()


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("layer", list(LAYERS))
def test_layer_forward(benchmark: BenchmarkFixture, layer: str, implementation: str) -> None:
    shape = LAYERS[layer]
    x, weight, bias = make_inputs(shape)
    run = make_layer(implementation, shape)

    benchmark.group = f"{layer} forward"
    record_shape(benchmark, shape)
    if implementation == "fcnnzoo_fused":
        kernel = select_kernel(shape, x, weight)
        benchmark.extra_info["kernel"] = kernel
        benchmark.extra_info["flop_count"] = flop_count(shape, pooled_conv_size(shape))
        benchmark.extra_info["executed_flop_count"] = executed_flop_count(kernel, shape)
    else:
        benchmark.extra_info["flop_count"] = flop_count(shape, shape.conv_size())

    with torch.no_grad():
        result = benchmark(run, x, weight, bias)
        expected = make_layer("torch_eager", shape)(x, weight, bias)

    torch.testing.assert_close(result, expected, rtol=OUTPUT_RTOL, atol=OUTPUT_ATOL)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("layer", list(LAYERS))
def test_layer_forward_backward(benchmark: BenchmarkFixture, layer: str, implementation: str) -> None:
    shape = LAYERS[layer]
    inputs = [tensor.requires_grad_() for tensor in make_inputs(shape)]
    run = make_layer(implementation, shape)
    output_shape = run(*inputs).shape
    grad_output = torch.randn(output_shape, generator=torch.Generator().manual_seed(1))

    def forward_backward() -> tuple[torch.Tensor, ...]:
        output = run(*inputs)
        gradients = torch.autograd.grad(output, inputs, grad_output)
        return (output.detach(), *gradients)

    benchmark.group = f"{layer} forward+backward"
    record_shape(benchmark, shape)
    # Forward, input gradient and weight gradient: three convolutions' worth.
    benchmark.extra_info["flop_count"] = 3 * flop_count(shape, shape.conv_size())
    # The autograd node shows which path ran: the fused op's own node, or
    # MaxPool2DWithIndicesBackward0 when the call fell back to the composite.
    benchmark.extra_info["grad_fn"] = type(run(*inputs).grad_fn).__name__

    output, *gradients = benchmark(forward_backward)

    reference = make_layer("torch_eager", shape)(*inputs)
    expected_gradients = torch.autograd.grad(reference, inputs, grad_output)
    torch.testing.assert_close(output, reference.detach(), rtol=OUTPUT_RTOL, atol=OUTPUT_ATOL)
    assert_input_gradient_close(gradients[0], expected_gradients[0], "grad of x")
    assert_parameter_gradient_close(gradients[1], expected_gradients[1], "grad of weight")
    assert_parameter_gradient_close(gradients[2], expected_gradients[2], "grad of bias")
