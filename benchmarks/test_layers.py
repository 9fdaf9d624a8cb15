"""Forward speed of the fused conv-ReLU-pool kernel against PyTorch eager on the reference layers.

Each group times fcnnzoo's fused kernel and PyTorch's ``conv2d -> relu ->
max_pool2d`` on the same inputs, with the same ``torch.get_num_threads()``
threads, under ``torch.no_grad()``, and checks that both give the same output.
Run ``pytest benchmarks --benchmark-json=FILE`` for the full measurement or
``pytest benchmarks --benchmark-disable`` to only check the results.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from pytest_benchmark.fixture import BenchmarkFixture

from fcnnzoo import _C
from fcnnzoo.ops import conv_relu_pool

# The two conv-ReLU-pool layers of the reference network: 3x3 kernels, no
# padding, 2x2 max pooling.
LAYERS = {
    "layer1": {"in_channels": 1, "out_channels": 32, "size": (28, 28)},
    "layer2": {"in_channels": 32, "out_channels": 64, "size": (13, 13)},
}
KERNEL_SIZE = 3
POOL_KERNEL = 2


def flop_count(batch: int, in_channels: int, out_channels: int, conv_size: tuple[int, int]) -> int:
    """Return the FLOPs (two per multiply-add) of a direct 3x3 convolution producing conv_size outputs."""
    return 2 * batch * out_channels * conv_size[0] * conv_size[1] * in_channels * KERNEL_SIZE * KERNEL_SIZE


def executed_flop_count(kernel: str, batch: int, in_channels: int, out_channels: int, conv_size: tuple[int, int]) -> int:
    """Return the multiply-add FLOPs that a fused kernel variant executes, lanes past out_channels included.

    A direct kernel computes the convolution outputs that a pooling window
    covers. A Winograd F(2x2, 3x3) kernel spends 16 multiply-adds per 2x2
    output tile and input channel; its transforms (additions only) are not
    counted.
    """
    lanes = int(kernel.split("_oc")[1].split("_")[0])
    padded_out_channels = -(-out_channels // lanes) * lanes
    if kernel.startswith("winograd"):
        tiles = (conv_size[0] // 2) * (conv_size[1] // 2)
        return 2 * batch * padded_out_channels * tiles * 16 * in_channels
    return flop_count(batch, in_channels, padded_out_channels, conv_size)


@pytest.mark.parametrize("implementation", ["fcnnzoo_fused", "torch_eager"])
@pytest.mark.parametrize("batch", [64, 1], ids=["batch64", "batch1"])
@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layer_forward(benchmark: BenchmarkFixture, layer: str, batch: int, implementation: str) -> None:
    shape = LAYERS[layer]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, shape["in_channels"], *shape["size"], generator=generator)
    weight = torch.randn(shape["out_channels"], shape["in_channels"], KERNEL_SIZE, KERNEL_SIZE, generator=generator)
    bias = torch.randn(shape["out_channels"], generator=generator)

    def torch_eager() -> torch.Tensor:
        return F.max_pool2d(F.relu(F.conv2d(x, weight, bias)), POOL_KERNEL)

    def fcnnzoo_fused() -> torch.Tensor:
        return conv_relu_pool(x, weight, bias, pool_kernel=POOL_KERNEL)

    run: Callable[[], torch.Tensor] = fcnnzoo_fused if implementation == "fcnnzoo_fused" else torch_eager
    conv_size = (shape["size"][0] - KERNEL_SIZE + 1, shape["size"][1] - KERNEL_SIZE + 1)
    if implementation == "fcnnzoo_fused":
        # The fused kernels skip the convolution outputs that no pooling window covers.
        conv_size = (conv_size[0] // POOL_KERNEL * POOL_KERNEL, conv_size[1] // POOL_KERNEL * POOL_KERNEL)
    benchmark.group = f"{layer} forward, batch {batch}"
    benchmark.extra_info["flop_count"] = flop_count(batch, shape["in_channels"], shape["out_channels"], conv_size)
    benchmark.extra_info["num_threads"] = torch.get_num_threads()
    if implementation == "fcnnzoo_fused":
        kernel = _C.select_kernel(
            tuple(x.shape),
            tuple(weight.shape),
            stride=(1, 1),
            padding=(0, 0),
            pool_kernel=(POOL_KERNEL, POOL_KERNEL),
            pool_stride=(POOL_KERNEL, POOL_KERNEL),
            ceil_mode=False,
        )
        benchmark.extra_info["kernel"] = kernel
        benchmark.extra_info["executed_flop_count"] = executed_flop_count(
            kernel, batch, shape["in_channels"], shape["out_channels"], conv_size
        )

    with torch.no_grad():
        result = benchmark(run)
        expected = torch_eager()

    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-4)
