"""Tests of static int8 checkpoints: the Python round trip, 'fcnnzoo quantize --method int8', eval and bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import fcnnzoo
from fcnnzoo import cli
from fcnnzoo import workflows
from fcnnzoo.data import DatasetSplits
from fcnnzoo.data import renormalize
from fcnnzoo.int8_layers import StaticInt8ConvReLUPool
from fcnnzoo.int8_layers import StaticInt8Linear
from fcnnzoo.specs import ArchitectureSpec
from fcnnzoo.specs import DatasetSpec
from fcnnzoo.training import evaluate
from cli_runs import assert_usage_error
from cli_runs import run

OBSERVER_NAMES = ["minmax", "percentile", "mse"]
# The accuracy targets of static int8 on digits with fcnn.
MAX_ACCURACY_DROP = 0.005
MIN_SIZE_RATIO = 3.5


@pytest.fixture
def tiny_run(test_components, tmp_path, capsys) -> Path:
    """A tiny_cnn trained for one epoch on the synthetic dataset (64 train images) through the command line."""
    out = tmp_path / "tiny"
    code, _, err = run(capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "16", "--out", out)
    assert code == 0, err
    return out


def _train_batches(checkpoint: nn.Module, batches: int, batch_size: int) -> list[torch.Tensor]:
    """Rebuild the calibration batches that 'fcnnzoo quantize' takes from the checkpoint's train split."""
    config = checkpoint.fcnnzoo_checkpoint
    splits = fcnnzoo.load_dataset(config["dataset"])
    images = renormalize(splits.train.tensors[0], splits.mean, splits.std, config["normalization"]["mean"], config["normalization"]["std"])
    return workflows._calibration_batches(images, batches, batch_size, config["dataset"])


# -- Python round trip ------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path, digits):
    torch.manual_seed(0)
    model = fcnnzoo.create_model("fcnn").eval()
    calibration = list(digits.train.tensors[0][:96].split(32))
    quantized = fcnnzoo.create_quantizer("int8", observer="percentile", percentile=99.9).quantize(model, calibration=calibration)
    fcnnzoo.save(quantized, tmp_path / "int8", dataset="digits")

    loaded = fcnnzoo.load(tmp_path / "int8")
    assert loaded.fcnnzoo_checkpoint["quantization"] == {"method": "int8", "arguments": {"observer": "percentile", "percentile": 99.9}}
    assert isinstance(loaded.features[0], StaticInt8ConvReLUPool)
    assert isinstance(loaded.classifier[4], StaticInt8Linear)
    images = digits.test.tensors[0][:64]
    with torch.no_grad():
        assert torch.equal(loaded(images), quantized(images))
    for key, tensor in quantized.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key


def test_saved_weights_are_int8(tmp_path, digits):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    model = fcnnzoo.create_model("fcnn").eval()
    quantized = fcnnzoo.create_quantizer("int8").quantize(model, calibration=[digits.train.tensors[0][:32]])
    fcnnzoo.save(quantized, tmp_path / "int8", dataset="digits")
    tensors = load_file(tmp_path / "int8" / "model.safetensors")
    assert tensors["features.1.weight_int8"].dtype == torch.int8
    assert tensors["classifier.1.bias_int32"].dtype == torch.int32
    assert tensors["classifier.4.output_zero_point"].dtype == torch.int32
    assert not any(tensor.dtype == torch.float32 and tensor.numel() > 64 for tensor in tensors.values())


# -- accuracy and size on digits with a trained fcnn --------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("observer", OBSERVER_NAMES)
def test_fcnn_accuracy_drop_per_observer(fcnn_run, digits, observer):
    model = fcnnzoo.load(fcnn_run["path"])
    calibration = _train_batches(model, 10, 32)
    quantized = fcnnzoo.create_quantizer("int8", observer=observer).quantize(model, calibration=calibration)
    float_accuracy = evaluate(model, digits.test).accuracy
    int8_accuracy = evaluate(quantized, digits.test).accuracy
    assert float_accuracy == fcnn_run["test_accuracy"]
    assert int8_accuracy >= float_accuracy - MAX_ACCURACY_DROP


@pytest.mark.slow
def test_fcnn_quantize_int8_cli(fcnn_run, tmp_path, capsys):
    target = tmp_path / "int8"
    code, out, err = run(capsys, "quantize", fcnn_run["path"], "--method", "int8", "--calib-batches", "4", "--out", target, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["method"] == "int8"
    assert report["calibration"] == {"split": "train", "batches": 4, "batch_size": 32, "images": 128}
    assert report["accuracy_before"] == fcnn_run["test_accuracy"]
    assert report["accuracy_after"] >= report["accuracy_before"] - MAX_ACCURACY_DROP
    assert report["size_ratio"] >= MIN_SIZE_RATIO
    assert report["size_bytes_after"] == (target / "model.safetensors").stat().st_size
    assert report["throughput_batch_size"] == 256
    assert report["throughput_before"] > 0
    assert report["throughput_after"] > 0
    assert json.loads((target / "quantization.json").read_text()) == report

    # The checkpoint loads back to the model that the same calibration batches give in process.
    loaded = fcnnzoo.load(target)
    expected = fcnnzoo.create_quantizer("int8").quantize(fcnnzoo.load(fcnn_run["path"]), calibration=_train_batches(loaded, 4, 32))
    images = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(images), expected(images))

    code, out, err = run(capsys, "eval", target, "--json")
    assert code == 0, err
    evaluation = json.loads(out)
    assert evaluation["test_accuracy"] == report["accuracy_after"]
    assert evaluation["quantization"] == {"method": "int8", "arguments": {"observer": "minmax"}}


# -- the command line on a tiny model -------------------------------------------------------------


def test_quantize_int8_summary(tiny_run, tmp_path, capsys):
    code, out, err = run(capsys, "quantize", tiny_run, "--method", "int8:observer=mse", "--calib-batches", "2", "--out", tmp_path / "q")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1] == "Calibrated on 64 train images (2 batches of up to 32)."
    assert lines[2].startswith("Weights: ")
    assert lines[3].startswith("Test accuracy: ")
    assert "percentage points" in lines[3]
    assert lines[4].startswith("Throughput at batch 256: ")
    assert lines[4].endswith("x).")


def test_quantize_int8_too_many_default_batches(tiny_run, tmp_path, capsys):
    # The synthetic train split has 64 images, fewer than the 10 default batches of 32 need.
    code, out, err = run(capsys, "quantize", tiny_run, "--method", "int8", "--out", tmp_path / "q")
    assert_usage_error(code, out, err, "calibration_batches=10", "64 images fill 2 batches of 32", "Use at most 2 batches")
    assert not (tmp_path / "q").exists()


def test_quantize_int8_partial_last_batch(tiny_run, tmp_path, capsys):
    code, out, err = run(capsys, "quantize", tiny_run, "--method", "int8", "--calib-batches", "3", "--calib-batch-size", "30", "--out", tmp_path / "q", "--json")
    assert code == 0, err
    assert json.loads(out)["calibration"] == {"split": "train", "batches": 3, "batch_size": 30, "images": 64}


def test_quantize_int8_eval_round_trip(tiny_run, tmp_path, capsys):
    target = tmp_path / "q"
    code, out, err = run(capsys, "quantize", tiny_run, "--method", "int8", "--calib-batches", "1", "--out", target, "--json")
    assert code == 0, err
    report = json.loads(out)
    code, out, err = run(capsys, "eval", target, "--json")
    assert code == 0, err
    assert json.loads(out)["test_accuracy"] == report["accuracy_after"]


@pytest.mark.parametrize(
    ("arguments", "fragments"),
    [
        (["--method", "int8", "--calib-batches", "0"], ["--calib-batches", "'0'"]),
        (["--method", "int8", "--calib-batches", "-2"], ["--calib-batches", "'-2'"]),
        (["--method", "int8", "--calib-batches", "two"], ["--calib-batches", "'two'"]),
        (["--method", "int8", "--calib-batch-size", "0"], ["--calib-batch-size", "'0'"]),
        (["--method", "int8", "--calib-batches", "3"], ["calibration_batches=3", "Use at most 2 batches"]),
        (["--method", "int8_weight_only", "--calib-batches", "2"], ["'int8_weight_only' does not calibrate", "--calib-batches"]),
        (["--method", "int8:observer=histogram"], ["'histogram'", "minmax, percentile, mse"]),
        (["--method", "int8:observer=minmax,percentile=99"], ["percentile=99", "observer='percentile'"]),
        (["--method", "int8:observer=percentile,percentile=120"], ["percentile", "120"]),
    ],
)
def test_quantize_int8_bad_options(tiny_run, tmp_path, capsys, arguments, fragments):
    code, out, err = run(capsys, "quantize", tiny_run, *arguments, "--out", tmp_path / "q")
    assert_usage_error(code, out, err, *fragments)
    assert not (tmp_path / "q").exists()


def test_quantize_plugin_quantizer_without_calibration(tiny_run, tmp_path, capsys):
    code, out, err = run(capsys, "quantize", tiny_run, "--method", "test_half", "--out", tmp_path / "half", "--json")
    assert code == 0, err
    assert json.loads(out)["calibration"] is None


class ConvOnly(nn.Module):
    """A classifier of plain nn.Conv2d layers, which int8 does not quantize."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


class ConvOnlyPlugin:
    @fcnnzoo.hookimpl
    def fcnnzoo_register_architectures(self) -> list[ArchitectureSpec]:
        return [ArchitectureSpec(name="conv_only", factory=ConvOnly, description="test-only plain convolution", num_classes=2)]


def test_quantize_int8_no_quantizable_layer(test_components, tmp_path, capsys):
    fcnnzoo.register_plugin(ConvOnlyPlugin(), name="conv-only")
    try:
        source = tmp_path / "conv"
        code, _, err = run(capsys, "train", "conv_only", "--dataset", "synthetic", "--epochs", "1", "--out", source)
        assert code == 0, err
        code, out, err = run(capsys, "quantize", source, "--method", "int8", "--calib-batches", "1", "--out", tmp_path / "q")
    finally:
        fcnnzoo.unregister_plugin("conv-only")
    assert_usage_error(code, out, err, "int8 found no layer to quantize in ConvOnly", "fcnnzoo.nn.ConvReLUPool and nn.Linear")
    assert not (tmp_path / "q").exists()


def test_quantize_int8_zero_and_subnormal_channels(tiny_run, tmp_path, capsys):
    model = fcnnzoo.load(tiny_run)
    with torch.no_grad():
        model.block.weight[0] = 0.0
        model.block.weight[1] = 1e-40
    edited = tmp_path / "edited"
    fcnnzoo.save(model, edited)
    code, out, err = run(capsys, "quantize", edited, "--method", "int8", "--calib-batches", "2", "--out", tmp_path / "q", "--json")
    assert code == 0, err
    assert "'block' in output channels [1]" in err
    loaded = fcnnzoo.load(tmp_path / "q")
    for key, tensor in loaded.state_dict().items():
        if key.endswith("scale"):
            assert bool(torch.isfinite(tensor).all()), key
            assert bool((tensor > 0).all()), key
    assert int(loaded.block.weight_int8[0].abs().sum()) == 0
    assert int(loaded.block.weight_int8[1].abs().sum()) == 0


def test_calibration_never_reads_test_split(tiny_run, tmp_path, monkeypatch):
    seen: list[torch.Tensor] = []
    original = workflows._calibration_batches

    def record(images, batches, batch_size, dataset):
        seen.append(images)
        return original(images, batches, batch_size, dataset)

    monkeypatch.setattr(workflows, "_calibration_batches", record)
    workflows.quantize_checkpoint(tiny_run, tmp_path / "q", method="int8", calibration_batches=1)
    splits = fcnnzoo.load_dataset("synthetic")
    assert torch.equal(seen[0], splits.train.tensors[0])


def test_calibration_options_python_api(tiny_run, tmp_path):
    with pytest.raises(ValueError, match="calibration_batches must be a positive int, got 0"):
        workflows.quantize_checkpoint(tiny_run, tmp_path / "q", method="int8", calibration_batches=0)
    with pytest.raises(ValueError, match="calibration_batch_size must be a positive int, got -1"):
        workflows.quantize_checkpoint(tiny_run, tmp_path / "q", method="int8", calibration_batch_size=-1)


def test_cli_calibration_defaults_match_workflows():
    assert cli._DEFAULT_CALIBRATION_BATCHES == workflows.DEFAULT_CALIBRATION_BATCHES
    assert cli._DEFAULT_CALIBRATION_BATCH_SIZE == workflows.DEFAULT_CALIBRATION_BATCH_SIZE


class ConstantImagesPlugin:
    """Registers ``constant``: two classes whose train images are all 0.5, so calibration sees constant data."""

    @fcnnzoo.hookimpl
    def fcnnzoo_register_datasets(self) -> list[DatasetSpec]:
        def load(data_dir: Any = None) -> DatasetSplits:
            labels = torch.arange(32) % 2
            images = torch.full((32, 1, 28, 28), 0.5)
            test_images = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
            return DatasetSplits("constant", TensorDataset(images, labels), TensorDataset(test_images, labels[:16]), ["a", "b"], (0.0,), (1.0,), (28, 28), 1)

        return [DatasetSpec(name="constant", factory=load, description="test-only constant images")]


def test_quantize_int8_constant_calibration_data(test_components, tmp_path, capsys):
    fcnnzoo.register_plugin(ConstantImagesPlugin(), name="constant-images")
    try:
        source = tmp_path / "tiny"
        code, _, err = run(capsys, "train", "tiny_cnn", "--dataset", "constant", "--epochs", "1", "--out", source)
        assert code == 0, err
        code, out, err = run(capsys, "quantize", source, "--method", "int8", "--calib-batches", "1", "--out", tmp_path / "q", "--json")
    finally:
        fcnnzoo.unregister_plugin("constant-images")
    assert code == 0, err
    assert "every calibration value of the input of layer 'block' is 0.5" in err
    loaded = fcnnzoo.load(tmp_path / "q")
    assert float(loaded.block.input_scale) == pytest.approx(0.5 / 255)
    for key, tensor in loaded.state_dict().items():
        if key.endswith("scale"):
            assert bool(torch.isfinite(tensor).all()), key
            assert bool((tensor > 0).all()), key
    # The test images in [0, 1) go past the calibrated 0.5 and saturate instead of producing NaN.
    assert bool(torch.isfinite(loaded(torch.rand(4, 1, 28, 28))).all())


def _docs_python_example() -> str:
    text = (Path(__file__).resolve().parents[1] / "docs" / "quantization.md").read_text(encoding="utf-8")
    section = text.split("## From Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert match is not None, "docs/quantization.md has no python block under '## From Python'"
    return match.group(1)


@pytest.mark.slow
def test_docs_python_example_runs(fcnn_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(fcnn_run["path"], tmp_path / "runs" / "fcnn")
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(_docs_python_example(), "docs/quantization.md", "exec"), namespace)
    accuracy = float(capsys.readouterr().out.strip())
    assert accuracy >= fcnn_run["test_accuracy"] - MAX_ACCURACY_DROP
    images = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(namespace["restored"](images), namespace["quantized"](images))
