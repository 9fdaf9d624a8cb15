"""Tests of the bf16 quantizer: rounding, bfloat16 layers against references, models, checkpoints and bad input."""

from __future__ import annotations

import copy
import json
import struct
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fcnnzoo
from cli_runs import assert_usage_error
from cli_runs import run
from fcnnzoo import checkpoint
from fcnnzoo.bfloat16 import BF16_MAX
from fcnnzoo.bfloat16 import BFloat16
from fcnnzoo.bfloat16 import BFloat16Conv2d
from fcnnzoo.bfloat16 import BFloat16ConvReLUPool
from fcnnzoo.bfloat16 import BFloat16Linear
from fcnnzoo.bfloat16 import round_to_bfloat16
from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.quantization import size_report
from fcnnzoo.testing import check_quantizer

BUILTIN_ARCHITECTURES = ["fcnn", "lenet5", "allconv"]
BFLOAT16_LAYERS = (BFloat16ConvReLUPool, BFloat16Conv2d, BFloat16Linear)
# Smallest positive bfloat16: a subnormal with 7 fraction bits below float32's smallest normal 2**-126.
BF16_SMALLEST_SUBNORMAL = 2.0**-133
# Unit roundoff of float32 and of bfloat16 (8 significant bits).
FLOAT32_UNIT_ROUNDOFF = 2.0**-24
BFLOAT16_UNIT_ROUNDOFF = 2.0**-8


def quantize(model: nn.Module, **arguments: object) -> nn.Module:
    return fcnnzoo.create_quantizer("bf16", **arguments).quantize(model)


def reference_bfloat16(values: torch.Tensor) -> torch.Tensor:
    """Round finite float32 values to bfloat16 on their bit patterns, to nearest with ties to even, as float32."""
    bits = values.to(torch.float32).view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    upper = bits >> 16
    lower = bits & 0xFFFF
    round_up = (lower > 0x8000) | ((lower == 0x8000) & ((upper & 1) == 1))
    rounded = (upper + round_up.to(torch.int64)) << 16
    signed = torch.where(rounded >= 2**31, rounded - 2**32, rounded)
    return signed.to(torch.int32).view(torch.float32)


def with_rounded_weight(layer: nn.Module) -> nn.Module:
    """Return a float copy of ``layer`` whose weight is rounded to bfloat16 by the bit-pattern reference."""
    clone = copy.deepcopy(layer)
    with torch.no_grad():
        clone.weight.copy_(reference_bfloat16(layer.weight.detach()))
    return clone


# -- rounding ------------------------------------------------------------------------


def test_rounding_matches_bit_reference():
    generator = torch.Generator().manual_seed(0)
    magnitudes = torch.logspace(-38, 38, 64).view(64, 1)
    weight = torch.randn(64, 256, generator=generator) * magnitudes
    rounded = round_to_bfloat16(weight)
    assert rounded.dtype == torch.bfloat16
    assert torch.equal(rounded.to(torch.float32), reference_bfloat16(weight))


def test_rounding_ties_go_to_even():
    # 1 + 2**-8 lies halfway between 1 and 1 + 2**-7, and 1 + 3 * 2**-8 between 1 + 2**-7 and 1 + 2**-6.
    weight = torch.tensor([1 + 2**-8, 1 + 3 * 2**-8, -(1 + 2**-8), 1 + 2**-8 + 2**-20])
    rounded = round_to_bfloat16(weight).to(torch.float32)
    assert rounded.tolist() == [1.0, 1 + 2**-6, -1.0, 1 + 2**-7]


def test_rounding_relative_error_at_most_half_ulp():
    weight = torch.randn(1000, generator=torch.Generator().manual_seed(1))
    error = (round_to_bfloat16(weight).to(torch.float32) - weight).abs()
    assert bool((error <= BFLOAT16_UNIT_ROUNDOFF * weight.abs()).all())
    assert error.max().item() > 0


def test_subnormal_weights_round_like_float32_bits():
    # bfloat16 keeps float32's exponent range, so float32 subnormals stay subnormal
    # with 7 fraction bits; below half of 2**-133 they round to zero.
    weight = torch.tensor([BF16_SMALLEST_SUBNORMAL, 3 * BF16_SMALLEST_SUBNORMAL, 1e-40, -1e-39, 1e-41, 2.0**-149, 2.0**-126])
    rounded = round_to_bfloat16(weight).to(torch.float32)
    assert torch.equal(rounded, reference_bfloat16(weight))
    assert rounded[0].item() == BF16_SMALLEST_SUBNORMAL
    assert rounded[1].item() == 3 * BF16_SMALLEST_SUBNORMAL
    assert rounded[2].item() == BF16_SMALLEST_SUBNORMAL
    assert rounded[4].item() == 0.0
    assert rounded[5].item() == 0.0
    assert rounded[6].item() == 2.0**-126


def test_subnormal_weights_give_finite_reference_outputs():
    layer = ConvReLUPool(2, 3, 3)
    with torch.no_grad():
        layer.weight.mul_(1e-39)
        layer.bias.zero_()
    quantized = BFloat16ConvReLUPool.from_float(layer)
    x = torch.randn(2, 2, 10, 10, generator=torch.Generator().manual_seed(2)) * 1e30
    with torch.no_grad():
        output = quantized(x)
        expected = with_rounded_weight(layer)(x)
    assert bool(torch.isfinite(output).all())
    assert output.abs().max().item() > 0
    torch.testing.assert_close(output, expected, rtol=1e-5, atol=0)


def test_largest_bfloat16_is_accepted():
    # Values below the midpoint (2 - 2**-8) * 2**127 round down to the largest bfloat16.
    weight = torch.tensor([BF16_MAX, -BF16_MAX, 3.395e38])
    assert round_to_bfloat16(weight).to(torch.float32).tolist() == [BF16_MAX, -BF16_MAX, BF16_MAX]


def test_weight_beyond_bfloat16_range_rejected():
    with pytest.raises(ValueError, match=r"Cannot quantize w to bfloat16: 2 value\(s\) up to 3\.4e\+38 .* exceed the bfloat16 maximum"):
        round_to_bfloat16(torch.tensor([1.0, 3.4e38, -3.3965e38]), "w")


def test_rounding_rejects_nan_and_integer_weights():
    with pytest.raises(ValueError, match=r"Cannot quantize w of shape \(2,\) to bfloat16: it contains NaN or infinity"):
        round_to_bfloat16(torch.tensor([1.0, float("nan")]), "w")
    with pytest.raises(TypeError, match="w has dtype torch.int64"):
        round_to_bfloat16(torch.tensor([1, 2]), "w")


# -- layers computed in float32 ------------------------------------------------------


@pytest.mark.parametrize("fused", [True, False])
def test_conv_relu_pool_equals_rounded_float_layer(fused):
    layer = ConvReLUPool(3, 8, 3, padding=1, pool_kernel=2, fused=fused)
    quantized = BFloat16ConvReLUPool.from_float(layer)
    assert quantized.fused is fused
    x = torch.randn(4, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        output = quantized(x)
        assert output.dtype == torch.float32
        assert torch.equal(output, with_rounded_weight(layer)(x))


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
def test_conv2d_equals_rounded_float_layer(layer):
    quantized = BFloat16Conv2d.from_float(layer)
    x = torch.randn(2, 4, 9, 9, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(quantized(x), with_rounded_weight(layer)(x))


def test_linear_equals_rounded_float_layer():
    layer = nn.Linear(40, 7)
    x = torch.randn(5, 40, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.equal(BFloat16Linear.from_float(layer)(x), with_rounded_weight(layer)(x))


def test_float64_input_computes_in_float64():
    layer = nn.Linear(6, 3)
    quantized = BFloat16Linear.from_float(layer)
    x = torch.randn(2, 6, dtype=torch.float64)
    output = quantized(x)
    assert output.dtype == torch.float64
    expected = F.linear(x, reference_bfloat16(layer.weight.detach()).double(), layer.bias.detach().double())
    assert torch.equal(output, expected)


# -- layers computed in bfloat16 -----------------------------------------------------


def bfloat16_product_bound(x16: torch.Tensor, w16: torch.Tensor, exact: torch.Tensor, terms: int) -> torch.Tensor:
    """Bound the error of a bfloat16 product accumulated in float32 and rounded to bfloat16.

    Float32 accumulation of ``terms`` products errs by at most ``terms * u32 * sum |x w|``,
    and the final rounding to bfloat16 adds at most ``u16`` times the result's magnitude.
    """
    accumulation = terms * FLOAT32_UNIT_ROUNDOFF * F.linear(x16.abs(), w16.abs())
    return accumulation + BFLOAT16_UNIT_ROUNDOFF * (exact.abs() + accumulation)


def test_linear_bfloat16_compute_matches_reference():
    layer = nn.Linear(200, 16)
    quantized = BFloat16Linear.from_float(layer, compute="bfloat16")
    x = torch.randn(32, 200, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        output = quantized(x)
        float_compute = BFloat16Linear.from_float(layer)(x)
    assert output.dtype == torch.float32

    x16 = x.to(torch.bfloat16).double()
    w16 = reference_bfloat16(layer.weight.detach()).double()
    exact = F.linear(x16, w16)
    bound = bfloat16_product_bound(x16, w16, exact, terms=200)
    error = (output.double() - layer.bias.detach().double() - exact).abs()
    assert bool((error <= bound + 1e-6).all()), (error - bound).max()
    # The bfloat16 path rounds inputs and outputs, so it must differ from the float32 path.
    assert not torch.equal(output, float_compute)


def test_conv2d_bfloat16_compute_matches_reference():
    layer = nn.Conv2d(8, 5, 3, padding=1)
    quantized = BFloat16Conv2d.from_float(layer, compute="bfloat16")
    x = torch.randn(2, 8, 7, 7, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        output = quantized(x)

    x16 = x.to(torch.bfloat16).double()
    w16 = reference_bfloat16(layer.weight.detach()).double()
    exact = F.conv2d(x16, w16, padding=1)
    accumulation = 8 * 9 * FLOAT32_UNIT_ROUNDOFF * F.conv2d(x16.abs(), w16.abs(), padding=1)
    bound = accumulation + BFLOAT16_UNIT_ROUNDOFF * (exact.abs() + accumulation)
    error = (output.double() - layer.bias.detach().double().view(1, -1, 1, 1) - exact).abs()
    assert bool((error <= bound + 1e-6).all()), (error - bound).max()


def test_conv_relu_pool_ignores_compute_argument():
    model = nn.Sequential(ConvReLUPool(1, 4, 3))
    quantized = quantize(model, compute="bfloat16")
    x = torch.randn(2, 1, 10, 10)
    with torch.no_grad():
        assert torch.equal(quantized(x), with_rounded_weight(model[0])(x))


# -- cached float32 weight -----------------------------------------------------------


def test_widened_weight_is_cached():
    quantized = BFloat16Linear.from_float(nn.Linear(4, 3))
    with torch.inference_mode():
        first = quantized.widened_weight(torch.float32)
        second = quantized.widened_weight(torch.float32)
    assert first is second
    assert first.dtype == torch.float32
    # The fused kernel's plan reads the version counter, which inference tensors lack.
    assert not first.is_inference()
    assert torch.equal(first, quantized.weight_bf16.to(torch.float32))


def test_cache_follows_load_state_dict():
    torch.manual_seed(0)
    source = quantize(fcnnzoo.create_model("fcnn"))
    torch.manual_seed(1)
    target = quantize(fcnnzoo.create_model("fcnn"))
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        before = target(x)
        assert not torch.equal(source(x), before)
        target.load_state_dict(source.state_dict())
        assert torch.equal(target(x), source(x))


def test_cache_follows_in_place_update():
    layer = nn.Linear(5, 2)
    quantized = BFloat16Linear.from_float(layer)
    x = torch.randn(3, 5)
    with torch.no_grad():
        quantized(x)
        quantized.weight_bf16.mul_(2)
        expected = F.linear(x, 2 * reference_bfloat16(layer.weight.detach()), layer.bias.detach())
        assert torch.equal(quantized(x), expected)


# -- storage -------------------------------------------------------------------------


def test_layer_storage():
    layer = BFloat16Linear.from_float(nn.Linear(5, 3))
    state = layer.state_dict()
    assert list(state) == ["weight_bf16", "bias"]
    assert state["weight_bf16"].dtype == torch.bfloat16
    assert state["weight_bf16"].shape == (3, 5)
    assert state["bias"].dtype == torch.float32
    assert list(layer.parameters()) == []


def test_layer_without_bias():
    layer = BFloat16Conv2d.from_float(nn.Conv2d(2, 3, 1, bias=False))
    assert layer.bias is None
    assert list(layer.state_dict()) == ["weight_bf16"]


@pytest.mark.parametrize("convert", [lambda m: m.float(), lambda m: m.double(), lambda m: m.to(torch.float32)], ids=["float", "double", "to"])
def test_dtype_conversion_keeps_bfloat16_storage(convert):
    quantized = quantize(fcnnzoo.create_model("fcnn"))
    expected = {key: value.clone() for key, value in quantized.state_dict().items() if key.endswith("weight_bf16")}
    convert(quantized)
    for key, value in expected.items():
        stored = quantized.state_dict()[key]
        assert stored.dtype == torch.bfloat16, key
        assert torch.equal(stored, value), key


def test_runs_on_meta_device():
    quantized = quantize(fcnnzoo.create_model("fcnn")).to("meta")
    output = quantized(torch.empty(3, 1, 28, 28, device="meta"))
    assert output.shape == (3, 10)
    assert output.device.type == "meta"


# -- quantizing models ---------------------------------------------------------------


@pytest.mark.parametrize("name", BUILTIN_ARCHITECTURES)
def test_quantize_replaces_every_layer(name):
    model = fcnnzoo.create_model(name)
    quantized = quantize(model)
    float_layers = [n for n, m in model.named_modules() if type(m) in (ConvReLUPool, nn.Conv2d, nn.Linear)]
    quantized_layers = [n for n, m in quantized.named_modules() if isinstance(m, BFLOAT16_LAYERS)]
    assert float_layers
    assert quantized_layers == float_layers
    assert not any(isinstance(m, (ConvReLUPool, nn.Conv2d, nn.Linear)) for m in quantized.modules())


@pytest.mark.parametrize("name", BUILTIN_ARCHITECTURES)
@pytest.mark.parametrize("compute", ["float32", "bfloat16"])
def test_quantized_outputs_close_to_float(name, compute):
    torch.manual_seed(0)
    model = fcnnzoo.create_model(name).eval()
    quantized = quantize(model, compute=compute)
    x = torch.randn(256, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
        actual = quantized(x)
    assert actual.dtype == torch.float32
    logit_range = (expected.max() - expected.min()).item()
    assert (actual - expected).abs().max().item() <= 0.02 * logit_range
    agreement = (actual.argmax(dim=1) == expected.argmax(dim=1)).float().mean().item()
    assert agreement >= 0.97


def test_quantized_model_metadata():
    model = fcnnzoo.create_model("fcnn", depth=1)
    quantized = quantize(model, compute="bfloat16")
    assert quantized.fcnnzoo_quantization == {"method": "bf16", "arguments": {"compute": "bfloat16"}}
    assert quantized.fcnnzoo_config == model.fcnnzoo_config
    assert not quantized.training
    assert model.training
    assert isinstance(model.features[0], ConvReLUPool)


def test_fcnn_size_report():
    model = fcnnzoo.create_model("fcnn")
    report = size_report(model, quantize(model))
    # 121,760 weights go from 4 to 2 bytes; the 170 biases stay float32.
    assert report["size_bytes_before"] == 121_930 * 4
    assert report["size_bytes_after"] == 121_760 * 2 + 170 * 4
    assert report["ratio"] >= 1.9


@pytest.mark.parametrize("compute", ["float32", "bfloat16"])
def test_conformance_kit_passes(compute):
    error = check_quantizer("bf16", {"compute": compute})
    assert 0 < error < 0.02


def test_create_quantizer_returns_builtin():
    quantizer = fcnnzoo.create_quantizer("bf16")
    assert type(quantizer) is BFloat16
    assert repr(quantizer) == "BFloat16(compute='float32')"
    assert "bf16" in fcnnzoo.list_quantizers()


# -- bad input -----------------------------------------------------------------------


def _fcnn_with(layer: str, value: float, field: str = "weight") -> nn.Module:
    model = fcnnzoo.create_model("fcnn")
    with torch.no_grad():
        getattr(model.get_submodule(layer), field).view(-1)[3] = value
    return model


@pytest.mark.parametrize(
    ("layer", "value", "field", "fragment"),
    [
        ("features.1", float("nan"), "weight", "Cannot quantize features.1.weight of shape (64, 32, 3, 3) to bfloat16: it contains NaN or infinity"),
        ("classifier.4", float("-inf"), "weight", "Cannot quantize classifier.4.weight of shape (10, 64) to bfloat16: it contains NaN"),
        ("features.0", float("nan"), "bias", "Cannot quantize features.0.bias of shape (32,): it contains NaN or infinity"),
        ("classifier.1", 3.4e38, "weight", "Cannot quantize classifier.1.weight to bfloat16: 1 value(s) up to 3.4e+38"),
    ],
    ids=["nan-weight", "inf-weight", "nan-bias", "beyond-range"],
)
def test_invalid_weight_rejected_by_layer_name(layer, value, field, fragment):
    with pytest.raises(ValueError) as info:
        quantize(_fcnn_with(layer, value, field))
    assert fragment in str(info.value)


def test_no_quantizable_layer_raises():
    with pytest.raises(ValueError, match=r"bf16 found no layer to quantize in Sequential\. It quantizes fcnnzoo\.nn\.ConvReLUPool"):
        quantize(nn.Sequential(nn.Flatten(), nn.ReLU()))


@pytest.mark.parametrize("first", ["bf16", "int8_weight_only"])
def test_already_quantized_model_raises(first):
    quantized = fcnnzoo.create_quantizer(first).quantize(fcnnzoo.create_model("lenet5"))
    with pytest.raises(ValueError, match=f"already quantized with '{first}'. Quantize the float model with 'bf16' instead"):
        quantize(quantized)


def test_rejects_non_module():
    with pytest.raises(TypeError, match="bf16 quantizes an nn.Module, got dict"):
        quantize({"weight": torch.zeros(2)})


@pytest.mark.parametrize("compute", ["float16", "", None, 32])
def test_invalid_compute_rejected(compute):
    with pytest.raises(ValueError, match=r"compute must be one of \['bfloat16', 'float32'\], got"):
        fcnnzoo.create_quantizer("bf16", compute=compute)


def test_unknown_argument_rejected():
    with pytest.raises(TypeError):
        fcnnzoo.create_quantizer("bf16", bits=16)


# -- trained fcnn through checkpoints and the command line ---------------------------


def _safetensors_dtypes(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_length])
    return {key: entry["dtype"] for key, entry in header.items() if key != "__metadata__"}


@pytest.mark.slow
@pytest.mark.parametrize("compute", ["float32", "bfloat16"])
def test_trained_fcnn_quantize_command(fcnn_run, tmp_path, capsys, compute):
    target = tmp_path / "bf16"
    code, out, err = run(capsys, "quantize", fcnn_run["path"], "--method", f"bf16:compute={compute}", "--out", target, "--json")
    assert code == 0, err
    report = json.loads(out)

    assert report["accuracy_before"] == fcnn_run["test_accuracy"]
    assert abs(report["accuracy_after"] - report["accuracy_before"]) <= 0.005
    source_bytes = (fcnn_run["path"] / checkpoint.WEIGHTS_FILE).stat().st_size
    target_bytes = (target / checkpoint.WEIGHTS_FILE).stat().st_size
    assert source_bytes / target_bytes >= 1.9
    dtypes = _safetensors_dtypes(target / checkpoint.WEIGHTS_FILE)
    assert {dtype for key, dtype in dtypes.items() if key.endswith("weight_bf16")} == {"BF16"}
    assert {dtype for key, dtype in dtypes.items() if key.endswith("bias")} == {"F32"}

    code, out, err = run(capsys, "eval", target, "--json")
    assert code == 0, err
    assert json.loads(out)["test_accuracy"] == report["accuracy_after"]


@pytest.mark.slow
def test_checkpoint_round_trip_outputs_equal(fcnn_run, tmp_path):
    model = fcnnzoo.load(fcnn_run["path"])
    quantized = quantize(model)
    path = fcnnzoo.save(quantized, tmp_path / "bf16")
    loaded = fcnnzoo.load(path)
    assert loaded.fcnnzoo_quantization == {"method": "bf16", "arguments": {"compute": "float32"}}
    x = torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        assert torch.equal(loaded(x), quantized(x))
    for key, value in quantized.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_command_rejects_weight_beyond_range(fcnn_run, tmp_path, capsys):
    model = fcnnzoo.load(fcnn_run["path"])
    with torch.no_grad():
        model.classifier[1].weight[0, 0] = 3.4e38
    source = fcnnzoo.save(model, tmp_path / "huge")
    target = tmp_path / "bf16"
    code, out, err = run(capsys, "quantize", source, "--method", "bf16", "--out", target)
    assert_usage_error(code, out, err, "classifier.1.weight", "exceed the bfloat16 maximum")
    assert not target.exists()


def test_command_rejects_invalid_compute(fcnn_run, tmp_path, capsys):
    code, out, err = run(capsys, "quantize", fcnn_run["path"], "--method", "bf16:compute=float16", "--out", tmp_path / "q")
    assert_usage_error(code, out, err, "compute must be one of", "'float16'")
    assert not (tmp_path / "q").exists()
