"""Tests of quantized layers built from ConvReLUPool blocks with dilation, groups, string padding and pool padding."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fcnnzoo
from fcnnzoo.int8_layers import StaticInt8ConvReLUPool
from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.quantized_ops import quantized_conv_relu_pool

# Each case: ConvReLUPool arguments for a 4-channel, 12x12 input.
CASES = {
    "dilation": dict(out_channels=6, kernel_size=3, dilation=2),
    "groups": dict(out_channels=8, kernel_size=3, groups=2, padding=1),
    "depthwise": dict(out_channels=4, kernel_size=3, groups=4, padding=1),
    "same": dict(out_channels=5, kernel_size=(3, 5), padding="same"),
    "valid": dict(out_channels=5, kernel_size=3, padding="valid"),
    "pool_padding": dict(out_channels=5, kernel_size=3, pool_kernel=3, pool_stride=2, pool_padding=1),
    "pool_dilation": dict(out_channels=5, kernel_size=3, pool_kernel=2, pool_dilation=2, pool_stride=1),
}


def _images(count: int, seed: int) -> torch.Tensor:
    return torch.randn(count, 4, 12, 12, generator=torch.Generator().manual_seed(seed))


def _block(case: str) -> ConvReLUPool:
    torch.manual_seed(0)
    settings = dict(CASES[case])
    return ConvReLUPool(4, settings.pop("out_channels"), settings.pop("kernel_size"), **settings).eval()


def _float64_block(x: torch.Tensor, layer: StaticInt8ConvReLUPool) -> torch.Tensor:
    """The block's integer arithmetic written out with conv2d and max_pool2d in float64."""
    input_scale = float(layer.input_scale)
    input_zero_point = int(layer.input_zero_point)
    inverse = torch.tensor(1.0 / input_scale, dtype=torch.float32)
    xq = (torch.round(x.float() * inverse) + input_zero_point).clamp(0, 255)
    acc = F.conv2d(
        xq.double() - input_zero_point,
        layer.weight_int8.double(),
        layer.bias_int32.double(),
        layer.stride,
        layer.padding,
        layer.dilation,
        layer.groups,
    )
    pool_stride = layer.pool_stride
    pooled = F.max_pool2d(acc, layer.pool_kernel, pool_stride, layer.pool_padding, layer.pool_dilation, layer.ceil_mode)
    pooled = pooled.clamp(min=0)
    product = pooled.float() * layer.multiplier().view(1, -1, 1, 1)
    q = (torch.round(product) + int(layer.output_zero_point)).clamp(0, 255)
    return (q - int(layer.output_zero_point)) * float(layer.output_scale)


@pytest.mark.parametrize("case", sorted(CASES))
def test_int8_block_equals_float64_arithmetic(case):
    block = _block(case)
    quantized = fcnnzoo.create_quantizer("int8").quantize(nn.Sequential(block), calibration=[_images(8, 1), _images(8, 2)])
    layer = quantized[0]
    assert isinstance(layer, StaticInt8ConvReLUPool)
    x = _images(3, 7)

    with torch.no_grad():
        actual = quantized(x)
        expected_float = block(x)
    assert actual.shape == expected_float.shape
    assert torch.equal(actual, _float64_block(x, layer))
    # Quantization error stays within a few output steps of the float block.
    assert (actual - expected_float).abs().max() <= 4 * float(layer.output_scale) + 0.05 * expected_float.abs().max()


@pytest.mark.parametrize("case", sorted(CASES))
def test_int8_block_settings_survive_rebuild(case):
    block = _block(case)
    model = nn.Sequential(block)
    quantizer = fcnnzoo.create_quantizer("int8")
    quantized = quantizer.quantize(model, calibration=[_images(8, 1)])
    rebuilt = quantizer.rebuild(nn.Sequential(_block(case)))
    rebuilt.load_state_dict(quantized.state_dict())
    x = _images(2, 3)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), quantized(x))
    for name in ("dilation", "groups", "padding", "pool_padding", "pool_dilation"):
        assert getattr(rebuilt[0], name) == getattr(block, name)


def test_int8_block_unbatched_input():
    block = _block("groups")
    quantized = fcnnzoo.create_quantizer("int8").quantize(nn.Sequential(block), calibration=[_images(8, 1)])
    x = _images(2, 5)
    with torch.no_grad():
        batched = quantized(x)
        single = quantized(x[1])
    assert single.shape == batched.shape[1:]
    assert torch.equal(single, batched[1])


def test_grouped_call_logs_reference_path(caplog):
    weight = torch.ones(4, 2, 3, 3, dtype=torch.int8)
    multiplier = torch.full((4,), 0.01)
    x = torch.randint(0, 255, (1, 4, 6, 6), dtype=torch.uint8)
    with caplog.at_level(logging.DEBUG, logger="fcnnzoo.quantized_ops"):
        quantized_conv_relu_pool(
            x, weight, None, multiplier, groups=2,
            input_scale=0.1, input_zero_point=0, output_scale=0.1, output_zero_point=0,
        )
    assert "runs the reference" in caplog.text
    assert "groups=2" in caplog.text


@pytest.mark.parametrize(
    ("groups", "message"),
    [(3, "groups=3 must divide"), (0, "groups must be positive"), (1, "x has 4 channels but weight_q expects 2")],
)
def test_invalid_groups_rejected(groups, message):
    weight = torch.ones(6, 2, 3, 3, dtype=torch.int8)
    x = torch.zeros(1, 4, 6, 6, dtype=torch.uint8)
    with pytest.raises(ValueError, match=message):
        quantized_conv_relu_pool(
            x, weight, None, torch.full((6,), 0.01), groups=groups,
            input_scale=0.1, input_zero_point=0, output_scale=0.1, output_zero_point=0,
        )


def test_groups_of_wrong_type_rejected():
    weight = torch.ones(4, 2, 3, 3, dtype=torch.int8)
    x = torch.zeros(1, 4, 6, 6, dtype=torch.uint8)
    with pytest.raises(TypeError, match="groups must be an int"):
        quantized_conv_relu_pool(
            x, weight, None, torch.full((4,), 0.01), groups=2.0,
            input_scale=0.1, input_zero_point=0, output_scale=0.1, output_zero_point=0,
        )


@pytest.mark.parametrize("method", ["int8_weight_only", "bf16"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_weight_quantizers_keep_block_settings(method, case):
    block = _block(case)
    quantizer = fcnnzoo.create_quantizer(method)
    quantized = quantizer.quantize(nn.Sequential(block), calibration=[_images(8, 1)])
    x = _images(3, 7)
    with torch.no_grad():
        expected = block(x)
        actual = quantized(x)
    assert actual.shape == expected.shape
    # int8 weights move each product by at most half a step of 1/127 relative, bfloat16 by 2**-9.
    assert (actual - expected).abs().max() <= 0.02 * expected.abs().max()
    for name in ("dilation", "groups", "padding", "pool_padding", "pool_dilation"):
        assert getattr(quantized[0], name) == getattr(block, name)
