"""Speed of bfloat16 against float32 compute for the layers of fcnn, and of the bf16-quantized fcnn.

The layer groups measure the choice of precision that the bf16 quantizer
makes per layer type. Each group contains one layer of the reference network
at one batch size:

- ``float32``: the bf16 quantizer's layer with its default float32 compute,
  which for a conv-ReLU-pool block is the fused float32 kernel;
- ``bfloat16``: the same layer computed by PyTorch in bfloat16 (oneDNN,
  float32 accumulation), including the casts of the float32 input to
  bfloat16 and of the output back to float32.

The model groups time fcnn at batch 256 and batch 1: the float model, the
bf16-quantized model, and the bf16-quantized model with
``compute="bfloat16"``. Every benchmark checks its output against a float
reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from pytest_benchmark.fixture import BenchmarkFixture
from torch import nn

import fcnnzoo
from fcnnzoo.bfloat16 import BFloat16ConvReLUPool
from fcnnzoo.bfloat16 import BFloat16Linear
from fcnnzoo.nn import ConvReLUPool

BATCHES = [256, 1]
PRECISIONS = ["float32", "bfloat16"]
MODEL_VARIANTS = ["float", "bf16", "bf16_compute_bfloat16"]
# bfloat16 keeps 8 significant bits, so a product of rounded inputs and weights
# errs by a few parts in a thousand of the output's scale, and 3 % flags a wrong result.
BFLOAT16_RELATIVE_TOLERANCE = 3e-2


@dataclass(frozen=True)
class Layer:
    """A layer of fcnn: a 3x3 conv-ReLU-pool block with 2x2 pooling, or a linear layer."""

    kind: str
    in_size: int
    out_size: int
    image_size: int = 0

    def build(self) -> nn.Module:
        """Return the float layer, seeded."""
        torch.manual_seed(0)
        if self.kind == "conv_relu_pool":
            return ConvReLUPool(self.in_size, self.out_size, 3, pool_kernel=2)
        return nn.Linear(self.in_size, self.out_size)

    def make_input(self, batch: int) -> torch.Tensor:
        """Return a seeded float32 input batch."""
        generator = torch.Generator().manual_seed(1)
        if self.kind == "conv_relu_pool":
            return torch.randn(batch, self.in_size, self.image_size, self.image_size, generator=generator)
        return torch.randn(batch, self.in_size, generator=generator)


LAYERS = {
    "conv_relu_pool 1->32, 28x28": Layer("conv_relu_pool", 1, 32, 28),
    "conv_relu_pool 32->64, 13x13": Layer("conv_relu_pool", 32, 64, 13),
    "linear 1600->64": Layer("linear", 1600, 64),
    "linear 64->10": Layer("linear", 64, 10),
}


def make_run(layer: Layer, source: nn.Module, precision: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return the bf16 quantizer's layer for ``float32``, or PyTorch's bfloat16 computation for ``bfloat16``."""
    if layer.kind == "linear":
        return BFloat16Linear.from_float(source, compute=precision).eval()
    if precision == "float32":
        return BFloat16ConvReLUPool.from_float(source).eval()

    weight = source.weight.detach().to(torch.bfloat16)
    bias = source.bias.detach().to(torch.bfloat16)

    def conv_relu_pool_bfloat16(x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(F.conv2d(x.to(torch.bfloat16), weight, bias)), 2).to(torch.float32)

    return conv_relu_pool_bfloat16


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("name", list(LAYERS))
def test_bf16_layer(benchmark: BenchmarkFixture, name: str, batch: int, precision: str) -> None:
    layer = LAYERS[name]
    source = layer.build().eval()
    x = layer.make_input(batch)
    run = make_run(layer, source, precision)

    benchmark.group = f"bf16 {name}, batch {batch}"
    benchmark.extra_info["num_threads"] = torch.get_num_threads()
    with torch.no_grad():
        result = benchmark(run, x)
        expected = source(x)

    assert result.dtype == torch.float32
    scale = expected.abs().max().item()
    torch.testing.assert_close(result, expected, rtol=0, atol=BFLOAT16_RELATIVE_TOLERANCE * scale)


def build_model(variant: str) -> nn.Module:
    torch.manual_seed(0)
    model = fcnnzoo.create_model("fcnn").eval()
    if variant == "float":
        return model
    compute = "bfloat16" if variant == "bf16_compute_bfloat16" else "float32"
    return fcnnzoo.create_quantizer("bf16", compute=compute).quantize(model)


@pytest.mark.parametrize("variant", MODEL_VARIANTS)
@pytest.mark.parametrize("batch", BATCHES)
def test_bf16_model(benchmark: BenchmarkFixture, batch: int, variant: str) -> None:
    model = build_model(variant)
    reference = build_model("float")
    images = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(2))

    benchmark.group = f"fcnn bf16 inference, batch {batch}"
    benchmark.extra_info["num_threads"] = torch.get_num_threads()
    with torch.no_grad():
        result = benchmark(model, images)
        expected = reference(images)

    logit_range = (expected.max() - expected.min()).item()
    torch.testing.assert_close(result, expected, rtol=0, atol=0.02 * logit_range)
