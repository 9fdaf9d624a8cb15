"""Whether the fused kernel's threads and PyTorch's OpenMP threads slow each other down.

PyTorch's OpenMP workers spin for a while after each parallel region, so
threads of another pool started right then compete with them for the
cores. The kernels therefore run on PyTorch's OpenMP runtime when it is
loaded (FCNNZOO_PARALLEL=pool selects fcnnzoo's own pool instead, for
comparison). Each group times one call right after a call of the other
side, against the same call after a call of its own side:

- a PyTorch convolution after the fused layer, and after PyTorch's own
  conv-ReLU-pool;
- the fused layer after a PyTorch convolution, and after another fused call.

The untimed call runs in pytest-benchmark's setup, right before every timed
round. Every benchmark checks its result against the reference.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from pytest_benchmark.fixture import BenchmarkFixture
from reference_checks import OUTPUT_ATOL
from reference_checks import OUTPUT_RTOL

from fcnnzoo.ops import conv_relu_pool
from fcnnzoo.ops import conv_relu_pool_reference

ROUNDS = 200


def tensors() -> dict[str, torch.Tensor]:
    """Return the reference network's second layer at batch 64: input, weight and bias, plus a 64->64 weight."""
    generator = torch.Generator().manual_seed(0)
    return {
        "x": torch.randn(64, 32, 13, 13, generator=generator),
        "weight": torch.randn(64, 32, 3, 3, generator=generator) * 0.1,
        "bias": torch.randn(64, generator=generator) * 0.1,
        "next_weight": torch.randn(64, 64, 3, 3, generator=generator) * 0.1,
    }


def timed_after(benchmark: BenchmarkFixture, target: Callable[[], torch.Tensor], before: Callable[[], object]) -> torch.Tensor:
    """Time target with before run untimed right ahead of every round, and return target's last result."""
    def setup() -> None:
        # pytest-benchmark would take a returned value as the target's arguments.
        before()

    if benchmark.disabled:
        setup()
        return benchmark(target)
    return benchmark.pedantic(target, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=10)


@pytest.mark.parametrize("before", ["after fcnnzoo", "after torch"])
def test_torch_conv_after_kernel(benchmark: BenchmarkFixture, before: str) -> None:
    data = tensors()
    pooled = conv_relu_pool_reference(data["x"], data["weight"], data["bias"])

    def torch_conv() -> torch.Tensor:
        return F.conv2d(pooled, data["next_weight"], padding=1)

    run_before = {
        "after fcnnzoo": lambda: conv_relu_pool(data["x"], data["weight"], data["bias"]),
        "after torch": lambda: conv_relu_pool_reference(data["x"], data["weight"], data["bias"]),
    }[before]
    benchmark.group = "torch conv2d 64->64 at 6x6, batch 64, after a conv-ReLU-pool call"
    benchmark.extra_info["num_threads"] = torch.get_num_threads()
    with torch.no_grad():
        result = timed_after(benchmark, torch_conv, run_before)
        expected = F.conv2d(pooled, data["next_weight"], padding=1)

    torch.testing.assert_close(result, expected, rtol=0, atol=0)


@pytest.mark.parametrize("before", ["after torch", "after fcnnzoo"])
def test_kernel_after_torch_op(benchmark: BenchmarkFixture, before: str) -> None:
    data = tensors()
    pooled = conv_relu_pool_reference(data["x"], data["weight"], data["bias"])

    def fused_layer() -> torch.Tensor:
        return conv_relu_pool(data["x"], data["weight"], data["bias"])

    run_before = {
        "after torch": lambda: F.conv2d(pooled, data["next_weight"], padding=1),
        "after fcnnzoo": fused_layer,
    }[before]
    benchmark.group = "fcnnzoo conv-ReLU-pool 32->64 at 13x13, batch 64, after another call"
    benchmark.extra_info["num_threads"] = torch.get_num_threads()
    with torch.no_grad():
        result = timed_after(benchmark, fused_layer, run_before)

    torch.testing.assert_close(result, pooled, rtol=OUTPUT_RTOL, atol=OUTPUT_ATOL)
