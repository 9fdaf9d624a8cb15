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
    """Return the multiply-add FLOPs (two per multiply-add) of the convolution outputs in conv_size."""
    return 2 * batch * out_channels * conv_size[0] * conv_size[1] * in_channels * KERNEL_SIZE * KERNEL_SIZE


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
        # The fused kernel skips the convolution outputs that no pooling window covers.
        conv_size = (conv_size[0] // POOL_KERNEL * POOL_KERNEL, conv_size[1] // POOL_KERNEL * POOL_KERNEL)
    benchmark.group = f"{layer} forward, batch {batch}"
    benchmark.extra_info["flop_count"] = flop_count(batch, shape["in_channels"], shape["out_channels"], conv_size)
    benchmark.extra_info["num_threads"] = torch.get_num_threads()

    with torch.no_grad():
        result = benchmark(run)
        expected = torch_eager()

    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-4)
