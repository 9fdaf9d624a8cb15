"""Tests of the static int8 quantizer: observers, int8 layers against an integer reference, structure and edge cases."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fcnnzoo
from fcnnzoo.int8_layers import BIAS_LIMIT
from fcnnzoo.int8_layers import StaticInt8ConvReLUPool
from fcnnzoo.int8_layers import StaticInt8Linear
from fcnnzoo.int8_static import Int8Static
from fcnnzoo.int8_static import plan_sites
from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.observers import MIN_ACTIVATION_SCALE
from fcnnzoo.observers import MinMaxObserver
from fcnnzoo.observers import MseObserver
from fcnnzoo.observers import PercentileObserver
from fcnnzoo.observers import affine_parameters

OBSERVER_NAMES = ["minmax", "percentile", "mse"]


def _images(count: int, seed: int, size: int = 12) -> torch.Tensor:
    return torch.randn(count, 1, size, size, generator=torch.Generator().manual_seed(seed))


def _chain_model(seed: int = 0) -> nn.Sequential:
    """conv-ReLU-pool -> conv-ReLU-pool -> flatten -> linear -> ReLU -> dropout -> linear, on 12x12 inputs."""
    torch.manual_seed(seed)
    return nn.Sequential(
        ConvReLUPool(1, 4, 3, padding=1),
        ConvReLUPool(4, 6, 3),
        nn.Flatten(),
        nn.Linear(6 * 2 * 2, 8),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(8, 3),
    ).eval()


def _calibration(batches: int = 3, seed: int = 1) -> list[torch.Tensor]:
    return [_images(8, seed + index) for index in range(batches)]


def _quantize(model: nn.Module, calibration=None, **arguments) -> nn.Module:
    quantizer = fcnnzoo.create_quantizer("int8", **arguments)
    return quantizer.quantize(model, calibration=_calibration() if calibration is None else calibration)


# -- observers and affine parameters ---------------------------------------------------


def test_affine_parameters_both_signs():
    scale, zero_point = affine_parameters(-1.0, 3.0)
    assert scale == pytest.approx(4.0 / 255)
    assert zero_point == 64  # round(1 / (4 / 255)) = round(63.75)


def test_affine_parameters_positive_range_has_zero_point_0():
    scale, zero_point = affine_parameters(2.0, 5.1)
    assert scale == pytest.approx(5.1 / 255)
    assert zero_point == 0


def test_affine_parameters_negative_range_has_zero_point_255():
    scale, zero_point = affine_parameters(-5.1, -2.0)
    assert scale == pytest.approx(5.1 / 255)
    assert zero_point == 255


def test_affine_parameters_zero_range_gets_min_scale():
    scale, zero_point = affine_parameters(0.0, 0.0)
    assert scale == MIN_ACTIVATION_SCALE
    assert zero_point == 0


def test_affine_parameters_reject_nan():
    with pytest.raises(ValueError, match=r"must be finite, got \[nan, 1.0\]"):
        affine_parameters(math.nan, 1.0)


def test_minmax_observer_over_batches():
    observer = MinMaxObserver()
    observer.observe(torch.tensor([0.5, 2.0]))
    observer.observe(torch.tensor([[-1.0, 1.0]]))
    assert observer.value_range() == (-1.0, 2.0)
    scale, zero_point = observer.quantization_parameters()
    assert scale == pytest.approx(3.0 / 255)
    assert zero_point == 85


def test_percentile_observer_hand_computed():
    # 0, 1, ..., 100: the 1st and 99th percentiles with linear interpolation are 1 and 99.
    observer = PercentileObserver(99.0)
    observer.observe(torch.arange(0, 51, dtype=torch.float32))
    observer.observe(torch.arange(51, 101, dtype=torch.float32))
    assert observer.value_range() == pytest.approx((1.0, 99.0))
    assert observer.quantization_parameters() == (pytest.approx(99.0 / 255), 0)


def test_percentile_observer_clips_outlier():
    values = torch.cat([torch.linspace(0, 1, 9999), torch.tensor([1000.0])])
    observer = PercentileObserver(99.9)
    observer.observe(values)
    _, high = observer.value_range()
    assert high < 1.0 + 1e-6


def test_mse_observer_keeps_exact_grid():
    # The integers 0..255 are exact at scale 1, the full range, and every narrower range clips some.
    observer = MseObserver()
    observer.observe(torch.arange(0, 256, dtype=torch.float32))
    assert observer.value_range() == (0.0, 255.0)
    assert observer.quantization_parameters() == (1.0, 0)


def test_mse_observer_hand_computed_outlier():
    # 1000 values of 1.0 and one of 100.0; a candidate range is [0, k] for k = 1..100.
    # With scale k/255, 1.0 becomes round(255/k) * k/255, and 100 clips to k.
    # The squared error 1000 * (3k/255 - 1)^2 + (100 - k)^2 is smallest at k = 98:
    # 23.4 + 4, against 28.1 at k = 99, 31.1 at k = 100 and 28.9 at k = 97.
    observer = MseObserver()
    observer.observe(torch.cat([torch.ones(1000), torch.tensor([100.0])]))
    low, high = observer.value_range()
    assert low == pytest.approx(0.98)
    assert high == pytest.approx(98.0)


def test_observer_without_values():
    with pytest.raises(ValueError, match="minmax observer has seen no values"):
        MinMaxObserver().value_range()


def test_percentile_out_of_range():
    with pytest.raises(ValueError, match=r"percentile must be a number in \(50, 100\], got 101"):
        PercentileObserver(101)


# -- layers against an integer reference ----------------------------------------------


def _reference_block(x: torch.Tensor, layer: nn.Module, weight: torch.Tensor, settings: dict) -> torch.Tensor:
    """The quantized block in int64 arithmetic: unfold + integer matmul, pool, ReLU, float32 requantization."""
    input_scale = float(layer.input_scale)
    input_zero_point = int(layer.input_zero_point)
    if x.dtype == torch.uint8:
        xq = x.to(torch.int64)
    else:
        inverse = torch.tensor(1.0 / input_scale, dtype=torch.float32)
        xq = (torch.round(x.float() * inverse) + input_zero_point).clamp(0, 255).to(torch.int64)

    batch, _, height, width = xq.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    padding = settings["padding"]
    # Centering before padding makes the padded taps the real value 0, as padding with the zero point would.
    padded = F.pad(xq - input_zero_point, (padding[1], padding[1], padding[0], padding[0]))
    columns = F.unfold(padded.to(torch.float64), (kernel_h, kernel_w), stride=settings["stride"]).round().to(torch.int64)
    acc = weight.reshape(out_channels, -1).to(torch.int64) @ columns
    if layer.bias_int32 is not None:
        acc = acc + layer.bias_int32.to(torch.int64).view(1, -1, 1)
    out_h = (height + 2 * padding[0] - kernel_h) // settings["stride"][0] + 1
    out_w = (width + 2 * padding[1] - kernel_w) // settings["stride"][1] + 1
    acc = acc.view(batch, out_channels, out_h, out_w)

    pooled = F.max_pool2d(acc.to(torch.float64), settings["pool_kernel"], settings["pool_stride"]).to(torch.int64)
    if layer.relu:
        pooled = pooled.clamp(min=0)
    multiplier = (float(layer.input_scale) * layer.weight_scale.double() / float(layer.output_scale)).float()
    product = pooled.to(torch.float32) * multiplier.view(1, -1, 1, 1)
    q = (torch.round(product) + int(layer.output_zero_point)).clamp(0, 255).to(torch.uint8)
    if layer.output_uint8:
        return q
    return (q.float() - int(layer.output_zero_point)) * float(layer.output_scale)


def _reference_layer(x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    if isinstance(layer, StaticInt8ConvReLUPool):
        settings = dict(stride=layer.stride, padding=layer.padding, pool_kernel=layer.pool_kernel, pool_stride=layer.pool_stride)
        return _reference_block(x, layer, layer.weight_int8, settings)
    images = x.reshape(-1, layer.in_features, 1, 1)
    weight = layer.weight_int8.view(layer.out_features, layer.in_features, 1, 1)
    settings = dict(stride=(1, 1), padding=(0, 0), pool_kernel=(1, 1), pool_stride=(1, 1))
    return _reference_block(images, layer, weight, settings).reshape(x.shape[0], layer.out_features)


@pytest.mark.parametrize("observer", OBSERVER_NAMES)
def test_model_equals_integer_reference_layer_by_layer(observer):
    quantized = _quantize(_chain_model(), observer=observer)
    x = _images(5, 99)
    expected = x
    for module in quantized:
        if isinstance(module, (StaticInt8ConvReLUPool, StaticInt8Linear)):
            actual_layer = module(expected)
            expected = _reference_layer(expected, module)
            assert actual_layer.dtype == expected.dtype
            assert torch.equal(actual_layer, expected)
        else:
            expected = module(expected)
    with torch.no_grad():
        assert torch.equal(quantized(x), expected)


def test_weights_and_bias_follow_the_formulas():
    model = _chain_model()
    quantized = _quantize(model)
    for index in (0, 1, 3, 6):
        float_layer, layer = model[index], quantized[index]
        weight = float_layer.weight.detach().double()
        rows = weight.reshape(weight.shape[0], -1)
        scale = (rows.abs().amax(dim=1) / 127).float()
        assert torch.equal(layer.weight_scale, scale)
        broadcast = scale.double().view(-1, *([1] * (weight.dim() - 1)))
        assert torch.equal(layer.weight_int8, torch.round(weight / broadcast).to(torch.int8))
        bias_units = float_layer.bias.detach().double() / (float(layer.input_scale) * scale.double())
        assert torch.equal(layer.bias_int32, torch.round(bias_units).to(torch.int32))


def test_chain_passes_uint8_and_shares_parameters():
    quantized = _quantize(_chain_model())
    assert [quantized[index].output_uint8 for index in (0, 1, 3, 6)] == [True, True, True, False]
    for first, second in ((0, 1), (1, 3), (3, 6)):
        assert torch.equal(quantized[first].output_scale, quantized[second].input_scale)
        assert torch.equal(quantized[first].output_zero_point, quantized[second].input_zero_point)
    hidden = quantized[:4](_images(2, 5))
    assert hidden.dtype == torch.uint8


def test_relu_folded_and_dropout_removed():
    quantized = _quantize(_chain_model())
    assert quantized[3].relu is True
    assert quantized[6].relu is False
    assert type(quantized[4]) is nn.Identity
    assert type(quantized[5]) is nn.Identity
    assert type(quantized[2]) is nn.Flatten


def test_state_dict_keys_stable():
    quantized = _quantize(_chain_model())
    layer_keys = ["weight_int8", "weight_scale", "bias_int32", "input_scale", "input_zero_point", "output_scale", "output_zero_point"]
    expected = [f"{index}.{key}" for index in (0, 1, 3, 6) for key in layer_keys]
    assert list(quantized.state_dict()) == expected
    rebuilt = Int8Static().rebuild(_chain_model(seed=5))
    assert list(rebuilt.state_dict()) == expected


def test_rebuild_and_load_gives_equal_outputs():
    quantized = _quantize(_chain_model())
    rebuilt = Int8Static().rebuild(_chain_model(seed=7))
    rebuilt.load_state_dict(quantized.state_dict())
    x = _images(6, 3)
    assert torch.equal(rebuilt(x), quantized(x))
    assert rebuilt.fcnnzoo_quantization == {"method": "int8", "arguments": {"observer": "minmax"}}


def test_quantized_close_to_float():
    model = _chain_model()
    quantized = _quantize(model, calibration=_calibration(batches=6))
    x = _images(16, 50)
    with torch.no_grad():
        expected = model(x)
        actual = quantized(x)
    error = (actual - expected).abs().max() / expected.abs().max()
    assert error < 0.1


def test_float_model_unchanged():
    model = _chain_model()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    _quantize(model)
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    assert type(model[4]) is nn.ReLU


def test_standalone_linear_keeps_float_output():
    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = ConvReLUPool(1, 2, 3)
            self.fc = nn.Linear(2 * 5 * 5, 4)

        def forward(self, x):
            return self.fc(self.block(x).flatten(1))

    torch.manual_seed(0)
    quantized = _quantize(Head().eval())
    assert quantized.block.output_uint8 is False
    assert quantized.fc.output_uint8 is False
    assert quantized(_images(2, 4)).dtype == torch.float32


def test_linear_root_model():
    torch.manual_seed(0)
    model = nn.Linear(4, 3).eval()
    x = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(2))
    quantized = fcnnzoo.create_quantizer("int8").quantize(model, calibration=[x.reshape(10, 4)])
    assert isinstance(quantized, StaticInt8Linear)
    output = quantized(x)
    assert output.shape == (2, 5, 3)
    assert torch.allclose(output, model(x), atol=0.05)


def test_plan_of_fcnn():
    sites = {site.name: site for site in plan_sites(fcnnzoo.create_model("fcnn"))}
    assert list(sites) == ["features.0", "features.1", "classifier.1", "classifier.4"]
    # features and classifier are joined by FCNN.forward, not inside one Sequential.
    assert sites["features.1"].next_site is None
    assert sites["classifier.1"].next_site is sites["classifier.4"]
    assert sites["classifier.1"].identities == ["classifier.2", "classifier.3"]


def test_calibration_accepts_loader_pairs():
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.cat(_calibration()), torch.zeros(24)), batch_size=8)
    from_pairs = _quantize(_chain_model(), calibration=loader)
    from_tensors = _quantize(_chain_model())
    x = _images(3, 8)
    assert torch.equal(from_pairs(x), from_tensors(x))


# -- edge cases --------------------------------------------------------------------------


def _scales(model: nn.Module) -> list[torch.Tensor]:
    return [tensor for key, tensor in model.state_dict().items() if key.endswith("scale")]


def _assert_scales_finite_positive(model: nn.Module) -> None:
    for scale in _scales(model):
        assert bool(torch.isfinite(scale).all())
        assert bool((scale > 0).all())
    for module in model.modules():
        if isinstance(module, (StaticInt8ConvReLUPool, StaticInt8Linear)):
            multiplier = module.multiplier()
            assert bool(torch.isfinite(multiplier).all())
            assert bool((multiplier >= torch.finfo(torch.float32).tiny).all())


def test_zero_weight_channel():
    model = _chain_model()
    with torch.no_grad():
        model[0].weight[2] = 0.0
        model[3].weight[5] = 0.0
    quantized = _quantize(model)
    _assert_scales_finite_positive(quantized)
    assert int(quantized[0].weight_int8[2].abs().sum()) == 0
    # The zero channel keeps its bias: its output is ReLU(bias), max-pooled.
    x = _images(4, 9)
    expected = model[0](x)[:, 2]
    actual = quantized[0](x).float()
    step = float(quantized[0].output_scale)
    actual_channel = (actual[:, 2] - int(quantized[0].output_zero_point)) * step
    assert torch.allclose(actual_channel, expected, atol=step)
    assert bool(torch.isfinite(quantized(x)).all())


def test_zero_channel_with_zero_bias():
    model = _chain_model()
    with torch.no_grad():
        model[1].weight[0] = 0.0
        model[1].bias[0] = 0.0
    quantized = _quantize(model)
    _assert_scales_finite_positive(quantized)
    assert quantized[1].weight_scale[0].item() == 1.0
    assert quantized[1].bias_int32[0].item() == 0


def test_subnormal_weight_channel(caplog):
    model = _chain_model()
    with torch.no_grad():
        model[0].weight[1] = 1e-40
        model[3].weight[0] = -3e-42
    with caplog.at_level(logging.WARNING, logger="fcnnzoo.int8_layers"):
        quantized = _quantize(model)
    _assert_scales_finite_positive(quantized)
    assert int(quantized[0].weight_int8[1].abs().sum()) == 0
    assert "'0' in output channels [1]" in caplog.text
    assert "'3' in output channels [0]" in caplog.text
    assert bool(torch.isfinite(quantized(_images(3, 2))).all())


def test_huge_bias_stays_within_limit():
    model = _chain_model()
    with torch.no_grad():
        model[3].bias[1] = 1e6
    quantized = _quantize(model)
    _assert_scales_finite_positive(quantized)
    assert int(quantized[3].bias_int32.abs().max()) <= BIAS_LIMIT


@pytest.mark.parametrize("observer", OBSERVER_NAMES)
def test_constant_calibration_data(observer, caplog):
    calibration = [torch.full((4, 1, 12, 12), 0.25)]
    with caplog.at_level(logging.WARNING, logger="fcnnzoo.int8_static"):
        quantized = _quantize(_chain_model(), calibration=calibration, observer=observer)
    _assert_scales_finite_positive(quantized)
    assert "every calibration value of the input of layer '0' is 0.25" in caplog.text
    assert float(quantized[0].input_scale) == pytest.approx(0.25 / 255)
    assert int(quantized[0].input_zero_point) == 0
    output = quantized(_images(3, 1))
    assert bool(torch.isfinite(output).all())


def test_all_zero_calibration_data():
    quantized = _quantize(_chain_model(), calibration=[torch.zeros(2, 1, 12, 12)])
    _assert_scales_finite_positive(quantized)
    assert float(quantized[0].input_scale) == MIN_ACTIVATION_SCALE
    assert bool(torch.isfinite(quantized(_images(3, 1))).all())


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_one_sided_calibration_data(sign):
    calibration = [sign * _images(8, seed).abs() for seed in range(2)]
    quantized = _quantize(_chain_model(), calibration=calibration)
    _assert_scales_finite_positive(quantized)
    assert int(quantized[0].input_zero_point) == (0 if sign > 0 else 255)
    x = sign * _images(4, 11).abs()
    # The real value 0 is exact: an all-zero input quantizes to the zero point.
    zero = torch.zeros(1, 1, 12, 12)
    assert torch.equal(quantized[0](zero), _reference_layer(zero, quantized[0]))
    assert bool(torch.isfinite(quantized(x)).all())


def test_values_outside_range_saturate():
    quantized = _quantize(_chain_model())
    low = (0 - int(quantized[0].input_zero_point)) * float(quantized[0].input_scale)
    high = (255 - int(quantized[0].input_zero_point)) * float(quantized[0].input_scale)
    x = _images(4, 12) * 1e6
    x[0, 0, 0, 0] = 3e38
    x[1, 0, 0, 0] = -3e38
    clamped = x.clamp(low, high)
    outside = quantized(x)
    assert bool(torch.isfinite(outside).all())
    assert torch.equal(outside, quantized(clamped))
    assert torch.equal(quantized[0](x), quantized[0](clamped))


def test_no_quantizable_layer():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    with pytest.raises(ValueError, match=r"int8 found no layer to quantize in Sequential\. It quantizes fcnnzoo\.nn\.ConvReLUPool and nn\.Linear"):
        _quantize(model)


def test_no_calibration_data():
    with pytest.raises(ValueError, match=r"int8 needs calibration data: call quantize\(model, calibration=batches\)"):
        fcnnzoo.create_quantizer("int8").quantize(_chain_model())


def test_empty_calibration_iterable():
    with pytest.raises(ValueError, match="int8 got no calibration batches: the calibration iterable is empty"):
        _quantize(_chain_model(), calibration=[])


def test_calibration_batch_not_a_tensor():
    with pytest.raises(TypeError, match="Calibration batch 1 is a str, not a tensor"):
        _quantize(_chain_model(), calibration=[_images(2, 0), "images"])


def test_calibration_batch_with_nan():
    batch = _images(2, 0)
    batch[1, 0, 3, 3] = math.nan
    with pytest.raises(ValueError, match="Calibration batch 0 contains NaN or infinity"):
        _quantize(_chain_model(), calibration=[batch])


def test_calibration_batch_empty():
    with pytest.raises(ValueError, match=r"Calibration batch 0 has shape \(0, 1, 12, 12\) and contains no inputs"):
        _quantize(_chain_model(), calibration=[torch.zeros(0, 1, 12, 12)])


def test_calibration_batch_integer_dtype():
    with pytest.raises(TypeError, match="Calibration batch 0 has dtype torch.int64"):
        _quantize(_chain_model(), calibration=[torch.zeros(2, 1, 12, 12, dtype=torch.int64)])


def test_unknown_observer():
    with pytest.raises(ValueError, match=r"Unknown int8 observer 'histogram'\. Use one of minmax, percentile, mse"):
        fcnnzoo.create_quantizer("int8", observer="histogram")


def test_percentile_with_other_observer():
    with pytest.raises(ValueError, match=r"percentile=99\.9 applies only to observer='percentile', not 'mse'"):
        fcnnzoo.create_quantizer("int8", observer="mse", percentile=99.9)


def test_shared_layer_rejected():
    layer = nn.Linear(4, 4)
    model = nn.Sequential(layer, nn.ReLU(), layer)
    with pytest.raises(ValueError, match=r"int8 cannot quantize layers used at several places in the model: \['0'\]"):
        _quantize(model, calibration=[torch.randn(2, 4)])


def test_layer_rejects_integer_input():
    quantized = _quantize(_chain_model())
    with pytest.raises(TypeError, match="takes a floating-point input or the uint8 output of another int8 layer, got torch.int64"):
        quantized[0](torch.zeros(1, 1, 12, 12, dtype=torch.int64))


def test_linear_rejects_wrong_features():
    quantized = _quantize(_chain_model())
    with pytest.raises(ValueError, match=r"last dimension is in_features=8, got shape \(2, 7\)"):
        quantized[6](torch.zeros(2, 7))


def test_already_quantized():
    quantized = _quantize(_chain_model())
    with pytest.raises(ValueError, match="already quantized with 'int8'"):
        _quantize(quantized)


def test_nan_weight_names_layer():
    model = _chain_model()
    with torch.no_grad():
        model[3].weight[0, 0] = math.nan
    with pytest.raises(ValueError, match="Cannot quantize layer '3': its weight contains NaN or infinity"):
        _quantize(model)


def test_weight_only_ignores_calibration():
    model = _chain_model()
    quantizer = fcnnzoo.create_quantizer("int8_weight_only")
    assert quantizer.needs_calibration is False
    with_data = quantizer.quantize(model, calibration=_calibration())
    without_data = quantizer.quantize(model)
    x = _images(3, 6)
    assert torch.equal(with_data(x), without_data(x))


def test_nonfinite_inputs_give_finite_outputs():
    quantized = _quantize(_chain_model())
    x = _images(3, 13)
    x[0, 0, 2, 2] = math.inf
    x[1, 0, 5, 5] = -math.inf
    x[2, 0, 7, 7] = math.nan
    output = quantized(x)
    assert bool(torch.isfinite(output).all())
    # NaN quantizes to the zero point, which is the real value 0.
    zeroed = x.clone()
    zeroed[2, 0, 7, 7] = 0.0
    assert torch.equal(output[2], quantized(zeroed)[2])
