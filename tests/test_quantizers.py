"""Tests of int8 weight-only quantization: the per-channel math, quantized layers and models, and size reports."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fcnnzoo
from fcnnzoo import ops
from fcnnzoo.quantization import Int8WeightOnly
from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.quantization import QuantizedConv2d
from fcnnzoo.quantization import QuantizedConvReLUPool
from fcnnzoo.quantization import QuantizedLinear
from fcnnzoo.quantization import dequantize_per_channel
from fcnnzoo.quantization import quantize_per_channel
from fcnnzoo.quantization import size_report
from fcnnzoo.quantization import state_dict_nbytes

BUILTIN_ARCHITECTURES = ["fcnn", "lenet5", "allconv"]


def quantize(model: nn.Module) -> nn.Module:
    return fcnnzoo.create_quantizer("int8_weight_only").quantize(model)


# -- per-channel quantization --------------------------------------------------------


def test_quantize_exact_values():
    # Powers of two keep every quotient exact: scales are 63.5 / 127 = 0.5 and 2.54 / 127 = 0.02.
    weight = torch.tensor([[63.5, -32.0, 1.0, 0.0], [0.0, 0.0, 0.0, -2.54]])
    quantized, scale = quantize_per_channel(weight)
    assert quantized.dtype == torch.int8
    assert scale.dtype == torch.float32
    assert scale[0].item() == 0.5
    assert scale[1].item() == pytest.approx(0.02)
    assert quantized.tolist() == [[127, -64, 2, 0], [0, 0, 0, -127]]


def test_round_trip_error_within_half_scale():
    generator = torch.Generator().manual_seed(0)
    magnitudes = torch.tensor([1e-4, 1e-2, 1.0, 30.0]).view(4, 1, 1, 1)
    weight = torch.randn(4, 3, 3, 3, generator=generator) * magnitudes
    quantized, scale = quantize_per_channel(weight)
    restored = dequantize_per_channel(quantized, scale)
    error = (restored - weight).abs()
    bound = (scale / 2).view(4, 1, 1, 1) * (1 + 1e-5)
    assert bool((error <= bound).all())
    assert quantized.abs().max().item() == 127
    assert quantized.min().item() >= -127


def test_largest_weight_maps_to_127_in_every_channel():
    weight = torch.randn(6, 10, generator=torch.Generator().manual_seed(1))
    quantized, _ = quantize_per_channel(weight)
    assert quantized.abs().amax(dim=1).tolist() == [127] * 6


def test_zero_channel_gets_finite_scale():
    weight = torch.tensor([[0.0, 0.0], [1.0, -0.5]])
    quantized, scale = quantize_per_channel(weight)
    assert scale[0].item() == 1.0
    assert quantized[0].tolist() == [0, 0]
    assert torch.equal(dequantize_per_channel(quantized, scale)[0], torch.zeros(2))


def test_subnormal_weights_get_finite_normal_scales():
    # 1e-41 and 1e-45 are subnormal in float32, and max/127 underflows to 0 for the second row.
    weight = torch.tensor([[1e-41, -5e-42], [1e-45, 0.0]])
    quantized, scale = quantize_per_channel(weight)
    assert bool(torch.isfinite(scale).all())
    assert bool((scale >= torch.finfo(torch.float32).tiny).all())
    restored = dequantize_per_channel(quantized, scale)
    assert bool(torch.isfinite(restored).all())
    assert bool(((restored - weight).abs() <= scale.view(2, 1) / 2).all())


def test_rejects_nan_weight():
    with pytest.raises(ValueError, match=r"weight of shape \(2, 2\) that contains NaN or infinity"):
        quantize_per_channel(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))


def test_quantize_model_with_infinite_weight_fails_cleanly():
    model = nn.Sequential(nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="contains NaN or infinity"):
        quantize(model)


# -- quantized layers ------------------------------------------------------------------


def _dequantized_copy(layer: nn.Module) -> nn.Module:
    """Return a float copy of ``layer`` whose weight is the quantize-dequantize round trip."""
    clone = copy.deepcopy(layer)
    quantized, scale = quantize_per_channel(layer.weight)
    with torch.no_grad():
        clone.weight.copy_(dequantize_per_channel(quantized, scale))
    return clone


@pytest.mark.parametrize(
    "layer",
    [
        nn.Conv2d(4, 6, 3, stride=2, padding=1),
        nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2, bias=False),
        nn.Conv2d(4, 6, 3, padding=1, padding_mode="reflect"),
        nn.Conv2d(4, 6, 3, padding="same", padding_mode="circular"),
    ],
    ids=["stride", "dilation-groups", "reflect", "same-circular"],
)
def test_quantized_conv2d_matches_dequantized_float(layer):
    quantized = QuantizedConv2d.from_float(layer)
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(quantized(x), _dequantized_copy(layer)(x))


def test_quantized_linear_matches_dequantized_float():
    layer = nn.Linear(20, 7)
    x = torch.randn(5, 20)
    with torch.no_grad():
        torch.testing.assert_close(QuantizedLinear.from_float(layer)(x), _dequantized_copy(layer)(x))


@pytest.mark.parametrize("fused", [True, False])
def test_quantized_conv_relu_pool_matches_dequantized_float(fused):
    layer = ConvReLUPool(3, 8, 3, padding=1, pool_kernel=2, fused=fused)
    quantized = QuantizedConvReLUPool.from_float(layer)
    assert quantized.fused is fused
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(quantized(x), _dequantized_copy(layer)(x), rtol=1e-4, atol=1e-5)


def test_quantized_conv_relu_pool_runs_fused_op(monkeypatch):
    calls = []
    original = ops.conv_relu_pool

    def counting(*args, **kwargs):
        calls.append(args[1].dtype)
        return original(*args, **kwargs)

    monkeypatch.setattr(ops, "conv_relu_pool", counting)
    quantized = QuantizedConvReLUPool.from_float(ConvReLUPool(1, 4, 3))
    quantized(torch.randn(1, 1, 8, 8))
    assert calls == [torch.float32]


def test_quantized_layer_storage():
    layer = QuantizedLinear.from_float(nn.Linear(5, 3))
    state = layer.state_dict()
    assert list(state) == ["weight_int8", "weight_scale", "bias"]
    assert state["weight_int8"].dtype == torch.int8
    assert state["weight_int8"].shape == (3, 5)
    assert state["weight_scale"].dtype == torch.float32
    assert state["weight_scale"].shape == (3,)
    assert state["bias"].dtype == torch.float32
    assert list(layer.parameters()) == []


def test_quantized_layer_without_bias():
    layer = QuantizedConv2d.from_float(nn.Conv2d(2, 3, 1, bias=False))
    assert layer.bias is None
    assert list(layer.state_dict()) == ["weight_int8", "weight_scale"]


def test_quantized_layer_computes_in_input_dtype():
    layer = nn.Linear(4, 2).double()
    quantized = QuantizedLinear.from_float(layer)
    output = quantized(torch.randn(3, 4, dtype=torch.float64))
    assert output.dtype == torch.float64


# -- quantizing models ---------------------------------------------------------------


@pytest.mark.parametrize("name", BUILTIN_ARCHITECTURES)
def test_quantize_replaces_every_layer(name):
    model = fcnnzoo.create_model(name)
    quantized = quantize(model)
    float_layers = [n for n, m in model.named_modules() if type(m) in (ConvReLUPool, nn.Conv2d, nn.Linear)]
    quantized_layers = [
        n for n, m in quantized.named_modules() if isinstance(m, (QuantizedConvReLUPool, QuantizedConv2d, QuantizedLinear))
    ]
    assert float_layers
    assert quantized_layers == float_layers
    assert not any(isinstance(m, (ConvReLUPool, nn.Conv2d, nn.Linear)) for m in quantized.modules())
    for key, tensor in quantized.state_dict().items():
        if key.endswith("weight_int8"):
            assert tensor.dtype == torch.int8, key
        else:
            assert tensor.dtype == torch.float32, key


def test_fcnn_quantized_state_dict_keys():
    quantized = quantize(fcnnzoo.create_model("fcnn"))
    assert list(quantized.state_dict()) == [
        f"{layer}.{field}"
        for layer in ("features.0", "features.1", "classifier.1", "classifier.4")
        for field in ("weight_int8", "weight_scale", "bias")
    ]


def test_quantize_leaves_original_untouched():
    model = fcnnzoo.create_model("fcnn")
    before = {key: value.clone() for key, value in model.state_dict().items()}
    quantized = quantize(model)
    assert quantized is not model
    assert model.training
    assert isinstance(model.features[0], ConvReLUPool)
    assert isinstance(model.classifier[1], nn.Linear)
    assert not hasattr(model, "fcnnzoo_quantization")
    after = model.state_dict()
    assert list(after) == list(before)
    for key in before:
        assert torch.equal(after[key], before[key]), key


def test_quantized_model_metadata():
    model = fcnnzoo.create_model("fcnn", depth=1)
    quantized = quantize(model)
    assert quantized.fcnnzoo_quantization == {"method": "int8_weight_only", "arguments": {}}
    assert quantized.fcnnzoo_config == model.fcnnzoo_config
    assert quantized.fcnnzoo_config is not model.fcnnzoo_config
    assert quantized.fcnnzoo_config["arguments"]["depth"] == 1
    assert not quantized.training


def test_model_without_config_stays_without():
    quantized = quantize(nn.Sequential(nn.Linear(3, 2)))
    assert not hasattr(quantized, "fcnnzoo_config")


@pytest.mark.parametrize("name", BUILTIN_ARCHITECTURES)
def test_quantized_outputs_close_to_float(name):
    torch.manual_seed(0)
    model = fcnnzoo.create_model(name).eval()
    quantized = quantize(model)
    x = torch.randn(512, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
        actual = quantized(x)
    logit_range = (expected.max() - expected.min()).item()
    assert (actual - expected).abs().max().item() <= 0.02 * logit_range
    agreement = (actual.argmax(dim=1) == expected.argmax(dim=1)).float().mean().item()
    assert agreement >= 0.95


@pytest.mark.parametrize("name", BUILTIN_ARCHITECTURES)
def test_quantized_fused_matches_composite(name):
    torch.manual_seed(0)
    fused = quantize(fcnnzoo.create_model(name, fused=True))
    composite_float = fcnnzoo.create_model(name, fused=False)
    composite_float.load_state_dict(fcnnzoo.create_model(name).state_dict())
    composite = quantize(composite_float)
    composite.load_state_dict(fused.state_dict())
    assert not any(m.fused for m in composite.modules() if isinstance(m, QuantizedConvReLUPool))
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), composite(x), rtol=1e-4, atol=1e-5)


def test_set_fused_reaches_quantized_layers():
    from fcnnzoo.nn import set_fused

    model = quantize(fcnnzoo.create_model("fcnn", fused=True))
    layers = [m for m in model.modules() if isinstance(m, QuantizedConvReLUPool)]
    assert len(layers) == 2
    set_fused(model, False)
    assert not any(layer.fused for layer in layers)
    assert "fused=False, weight=int8" in repr(layers[0])


@pytest.mark.parametrize("name", BUILTIN_ARCHITECTURES)
def test_state_dict_round_trip_into_fresh_model(name):
    torch.manual_seed(0)
    source = quantize(fcnnzoo.create_model(name))
    torch.manual_seed(1)
    target = quantize(fcnnzoo.create_model(name))
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        assert not torch.equal(source(x), target(x))
        target.load_state_dict(source.state_dict())
        assert torch.equal(source(x), target(x))


def test_no_quantizable_layer_raises():
    model = nn.Sequential(nn.Flatten(), nn.ReLU())
    with pytest.raises(ValueError, match=r"int8_weight_only found no layer to quantize in Sequential\. It quantizes fcnnzoo\.nn\.ConvReLUPool, nn\.Conv2d and nn\.Linear"):
        quantize(model)


def test_already_quantized_model_raises():
    quantized = quantize(fcnnzoo.create_model("lenet5"))
    with pytest.raises(ValueError, match="already quantized with 'int8_weight_only'"):
        quantize(quantized)


def test_rejects_non_module():
    with pytest.raises(TypeError, match="int8_weight_only quantizes an nn.Module, got dict"):
        quantize({"weight": torch.zeros(2)})


def test_root_layer_is_replaced():
    layer = nn.Linear(4, 3)
    quantized = quantize(layer)
    assert isinstance(quantized, QuantizedLinear)
    assert quantized.fcnnzoo_quantization["method"] == "int8_weight_only"
    assert isinstance(layer, nn.Linear)


def test_shared_layer_stays_shared():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    quantized = quantize(model)
    assert quantized[0] is quantized[2]
    assert isinstance(quantized[0], QuantizedLinear)


def test_linear_subclass_is_left_alone():
    # nn.MultiheadAttention reads out_proj.weight directly, so its
    # NonDynamicallyQuantizableLinear must keep a float weight.
    model = nn.Sequential(nn.Linear(8, 8))
    model.add_module("attention", nn.MultiheadAttention(8, 2))
    quantized = quantize(model)
    assert isinstance(quantized[0], QuantizedLinear)
    assert type(quantized.attention.out_proj) is type(model.attention.out_proj)
    x = torch.randn(3, 1, 8)
    with torch.no_grad():
        output, _ = quantized.attention(x, x, x)
    assert output.shape == (3, 1, 8)


# -- size report ---------------------------------------------------------------------


def test_state_dict_nbytes_counts_each_tensor():
    model = nn.Sequential(nn.Linear(10, 4), nn.BatchNorm1d(4))
    # Linear: 44 floats. BatchNorm: weight, bias, running mean and var, 16 floats, plus num_batches_tracked, one int64.
    assert state_dict_nbytes(model) == (44 + 16) * 4 + 8


def test_fcnn_size_report():
    model = fcnnzoo.create_model("fcnn")
    report = size_report(model, quantize(model))
    # Float: 121,930 float32 parameters. Quantized: 121,760 int8 weights plus
    # 170 float32 scales and 170 float32 biases (32 + 64 + 64 + 10 channels).
    assert report["size_bytes_before"] == 121_930 * 4
    assert report["size_bytes_after"] == 121_760 + 170 * 4 * 2
    assert report["ratio"] == pytest.approx(487_720 / 123_120)
    assert report["ratio"] > 3.5


@pytest.mark.parametrize("name", ["lenet5", "allconv"])
def test_size_ratio_of_other_builtins(name):
    model = fcnnzoo.create_model(name)
    assert size_report(model, quantize(model))["ratio"] > 3.5


def test_size_report_rejects_empty_quantized_model():
    with pytest.raises(ValueError, match="quantized model's state_dict is empty"):
        size_report(nn.Linear(2, 2), nn.ReLU())


# -- registration --------------------------------------------------------------------


def test_create_quantizer_returns_builtin():
    quantizer = fcnnzoo.create_quantizer("int8_weight_only")
    assert type(quantizer) is Int8WeightOnly
    assert repr(quantizer) == "Int8WeightOnly()"
    assert "int8_weight_only" in fcnnzoo.list_quantizers()


def test_quantizer_rejects_arguments():
    with pytest.raises(TypeError):
        fcnnzoo.create_quantizer("int8_weight_only", bits=4)
