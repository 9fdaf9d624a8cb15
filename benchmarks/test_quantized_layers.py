"""Speed of the int8 conv-ReLU-pool kernel against the float fused kernel and PyTorch eager float.

Each group is one layer of the reference network (fcnn) at batch 256, in
the form the quantized model runs it:

- ``int8_kernel``: ``quantized_conv_relu_pool`` with its packed weights
  cached, on a float32 input for layer1 (the model input) and on uint8
  activations for the later layers, writing uint8 (float32 logits for linear2).
- ``float_fused``: ``fcnnzoo.nn.ConvReLUPool`` in eval mode, which keeps a
  planned forward with packed weights (a 1x1 kernel and a 1x1 pool for the
  linear layers).
- ``torch_eager``: ``conv2d -> relu -> max_pool2d``, or ``linear -> relu``.

A last group chains the four int8 calls into fcnn's forward pass and
times it against the float fused fcnn model at the same batch size.

Every layer benchmark first checks its result: the int8 kernel exactly against
the float64 reference of the same integer arithmetic, the float paths
against the PyTorch composite. ``flop_count`` counts two operations per
multiply-add of the convolution outputs that a pool window covers, integer
ones for the int8 kernel.

Run ``pytest benchmarks/test_quantized_layers.py --benchmark-json=FILE`` for
the measurement or ``pytest benchmarks --benchmark-disable`` to only check results.
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

import fcnnzoo
from fcnnzoo import _C
from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.quantized_ops import quantized_conv_relu_pool
from fcnnzoo.quantized_ops import quantized_conv_relu_pool_reference

BATCH = 256
IMPLEMENTATIONS = ["int8_kernel", "float_fused", "torch_eager"]


@dataclass(frozen=True)
class QuantizedLayer:
    """One layer of fcnn as the quantized model runs it."""

    in_channels: int
    out_channels: int
    size: int
    kernel: int
    pool: int
    relu: bool
    float_input: bool
    output_dtype: torch.dtype
    linear: bool

    def multiply_adds(self) -> int:
        """Return the multiply-adds of the convolution outputs that a pool window covers."""
        conv = self.size - self.kernel + 1
        used = conv // self.pool * self.pool
        return BATCH * self.out_channels * used * used * self.in_channels * self.kernel * self.kernel


LAYERS = {
    "layer1": QuantizedLayer(1, 32, 28, 3, 2, True, True, torch.uint8, False),
    "layer2": QuantizedLayer(32, 64, 13, 3, 2, True, False, torch.uint8, False),
    "linear1": QuantizedLayer(1600, 64, 1, 1, 1, True, False, torch.uint8, True),
    "linear2": QuantizedLayer(64, 10, 1, 1, 1, False, False, torch.float32, True),
}


def make_operands(layer: QuantizedLayer) -> dict[str, torch.Tensor]:
    """Return seeded float weights and inputs and their int8 and uint8 quantized forms."""
    generator = torch.Generator().manual_seed(0)
    shape = (BATCH, layer.in_channels, layer.size, layer.size)
    x_float = torch.rand(shape, generator=generator)
    weight = torch.randn(layer.out_channels, layer.in_channels, layer.kernel, layer.kernel, generator=generator)
    weight = weight / (layer.in_channels * layer.kernel * layer.kernel) ** 0.5
    bias = torch.randn(layer.out_channels, generator=generator) * 0.1
    weight_scale = weight.abs().amax(dim=(1, 2, 3)) / 127
    weight_q = torch.round(weight / weight_scale.view(-1, 1, 1, 1)).to(torch.int8)
    input_scale = 1 / 255
    bias_q = torch.round(bias / (input_scale * weight_scale)).to(torch.int32)
    output_scale = 4 / 255
    return {
        "x_float": x_float,
        "x_uint8": torch.round(x_float * 255).to(torch.uint8),
        "weight": weight,
        "bias": bias,
        "weight_q": weight_q,
        "bias_q": bias_q,
        "multiplier": (input_scale * weight_scale / output_scale).to(torch.float32),
        "input_scale": torch.tensor(input_scale),
        "output_scale": torch.tensor(output_scale),
    }


def make_int8_run(layer: QuantizedLayer, operands: dict[str, torch.Tensor]) -> tuple[Callable[[], torch.Tensor], Callable[[], torch.Tensor]]:
    """Return (kernel call, reference call) of the int8 block on the layer's input."""
    x = operands["x_float"] if layer.float_input else operands["x_uint8"]
    arguments = (x, operands["weight_q"], operands["bias_q"], operands["multiplier"])
    keywords = dict(
        input_scale=float(operands["input_scale"]),
        input_zero_point=0,
        output_scale=float(operands["output_scale"]),
        output_zero_point=0,
        pool_kernel=layer.pool,
        relu=layer.relu,
        output_dtype=layer.output_dtype,
    )
    return (
        lambda: quantized_conv_relu_pool(*arguments, **keywords),
        lambda: quantized_conv_relu_pool_reference(*arguments, **keywords),
    )


def make_float_run(implementation: str, layer: QuantizedLayer, operands: dict[str, torch.Tensor]) -> Callable[[], torch.Tensor]:
    """Return a call of the float layer, fused or eager, on the float input."""
    x = operands["x_float"]
    weight = operands["weight"]
    bias = operands["bias"]
    if implementation == "torch_eager":
        if layer.linear:
            flat_x = x.flatten(1)
            flat_weight = weight.flatten(1)
            activation = F.relu if layer.relu else (lambda values: values)
            return lambda: activation(F.linear(flat_x, flat_weight, bias))
        return lambda: F.max_pool2d(F.relu(F.conv2d(x, weight, bias)), layer.pool)

    module = ConvReLUPool(layer.in_channels, layer.out_channels, layer.kernel, pool_kernel=layer.pool).eval()
    with torch.no_grad():
        module.weight.copy_(weight)
        module.bias.copy_(bias)
    return lambda: module(x)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("layer_name", list(LAYERS))
def test_quantized_layer_forward(benchmark: BenchmarkFixture, layer_name: str, implementation: str) -> None:
    layer = LAYERS[layer_name]
    if implementation == "float_fused" and not layer.relu:
        pytest.skip("the float fused layer always applies ReLU")
    operands = make_operands(layer)

    benchmark.group = f"int8 {layer_name} b{BATCH} forward"
    benchmark.extra_info["num_threads"] = torch.get_num_threads()
    benchmark.extra_info["flop_count"] = 2 * layer.multiply_adds()
    with torch.no_grad():
        if implementation == "int8_kernel":
            run, reference = make_int8_run(layer, operands)
            plan = _C.QuantizedForwardPlan(
                operands["weight_q"].numpy(),
                stride=(1, 1),
                padding=(0, 0),
                pool_kernel=(layer.pool, layer.pool),
                pool_stride=(layer.pool, layer.pool),
                ceil_mode=False,
            )
            benchmark.extra_info["kernel"] = plan.kernel
            expected = reference()
            result = run()
            assert result.dtype == layer.output_dtype
            torch.testing.assert_close(result, expected, rtol=0, atol=0)
            benchmark(run)
            return

        run = make_float_run(implementation, layer, operands)
        expected = make_float_run("torch_eager", layer, operands)()
        result = run().reshape(expected.shape)
        torch.testing.assert_close(result, expected, rtol=OUTPUT_RTOL, atol=OUTPUT_ATOL)
        benchmark(run)


def make_int8_chain(operands: dict[str, dict[str, torch.Tensor]]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return fcnn's forward pass as four int8 kernel calls on the operands of each layer."""

    def call(name: str, x: torch.Tensor) -> torch.Tensor:
        layer = LAYERS[name]
        layer_operands = operands[name]
        return quantized_conv_relu_pool(
            x,
            layer_operands["weight_q"],
            layer_operands["bias_q"],
            layer_operands["multiplier"],
            input_scale=float(layer_operands["input_scale"]),
            input_zero_point=0,
            output_scale=float(layer_operands["output_scale"]),
            output_zero_point=0,
            pool_kernel=layer.pool,
            relu=layer.relu,
            output_dtype=layer.output_dtype,
        )

    def forward(x: torch.Tensor) -> torch.Tensor:
        hidden = call("layer2", call("layer1", x))
        hidden = call("linear1", hidden.reshape(x.shape[0], -1, 1, 1))
        return call("linear2", hidden).flatten(1)

    return forward


@pytest.mark.parametrize("implementation", ["int8_chain", "float_fused_model"])
def test_quantized_chain_forward(benchmark: BenchmarkFixture, implementation: str) -> None:
    """Time fcnn at batch 256: the four int8 kernel calls chained, against the float fused model.

    The int8 weights are random, not calibrated from the float model, so
    this group times the kernels only. A quantized model adds its own
    Python overhead.
    """
    x = torch.rand(BATCH, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    benchmark.group = f"int8 fcnn b{BATCH} forward"
    benchmark.extra_info["num_threads"] = torch.get_num_threads()
    with torch.no_grad():
        if implementation == "int8_chain":
            run = make_int8_chain({name: make_operands(layer) for name, layer in LAYERS.items()})
        else:
            run = fcnnzoo.create_model("fcnn").eval()
        result = run(x)
        assert result.shape == (BATCH, 10)
        assert result.dtype == torch.float32
        assert bool(torch.isfinite(result).all())
        benchmark(run, x)
