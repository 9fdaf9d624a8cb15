"""Tests of ``fcnnzoo predict`` and of the checkpoint errors that every command reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from datafiles import raw_images
from datafiles import write_image
from PIL import Image

import fcnnzoo
from fcnnzoo import cli
from fcnnzoo import prediction
from fcnnzoo.data import normalize
from fcnnzoo.workflows import train_to_checkpoint
from cli_runs import assert_usage_error
from cli_runs import run

# Test images of the digits set written as PNGs by the tests below.
IMAGE_COUNT = 12


@pytest.fixture(scope="module")
def module_components():
    """Register the test-only components (tiny_cnn, synthetic) for every test of this module."""
    from conftest import ComponentsPlugin

    fcnnzoo.register_plugin(ComponentsPlugin(), name="test-components")
    try:
        yield
    finally:
        fcnnzoo.unregister_plugin("test-components")


@pytest.fixture(scope="module")
def trained_tiny_digits(module_components, tmp_path_factory) -> Path:
    """tiny_cnn trained on digits for two epochs, once per module (treat as read-only)."""
    out = tmp_path_factory.mktemp("tiny-digits") / "checkpoint"
    report = train_to_checkpoint("tiny_cnn", out, epochs=2, dataset="digits", seed=0, progress=False)
    return Path(report["checkpoint"])


@pytest.fixture
def tiny_digits(trained_tiny_digits, tmp_path) -> Path:
    """A private copy of the trained tiny_cnn checkpoint that a test may modify."""
    return Path(shutil.copytree(trained_tiny_digits, tmp_path / "tiny-digits"))


@pytest.fixture
def digit_pngs(digits, tmp_path) -> tuple[list[Path], torch.Tensor]:
    """The first digits test images as 8-bit grayscale PNGs, with their pixels as a uint8 tensor."""
    pixels = (raw_images(digits, "test")[:IMAGE_COUNT] * 255).round().clamp(0, 255).to(torch.uint8)
    paths = []
    for index, image in enumerate(pixels):
        path = tmp_path / "pngs" / f"digit{index:02d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(image[0].numpy(), mode="L").save(path)
        paths.append(path)
    return paths, pixels


def _reference_probabilities(checkpoint_path: Path, pixels: torch.Tensor) -> torch.Tensor:
    """Run the model as evaluation does: the loaded checkpoint on the normalized batch."""
    model = fcnnzoo.load(checkpoint_path)
    normalization = model.fcnnzoo_checkpoint["normalization"]
    batch = normalize(pixels.to(torch.float32) / 255, normalization["mean"], normalization["std"])
    with torch.no_grad():
        return torch.softmax(model(batch), dim=1)


# -- predictions ---------------------------------------------------------------------


def test_predict_matches_model_output(tiny_digits, digit_pngs, digits, capsys):
    paths, pixels = digit_pngs
    code, out, err = run(capsys, "predict", tiny_digits, *paths, "--top-k", "3", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["top_k"] == 3
    assert report["model"] == "tiny_cnn"
    assert [entry["image"] for entry in report["predictions"]] == [str(path) for path in paths]

    expected = _reference_probabilities(tiny_digits, pixels)
    expected_values, expected_indices = expected.topk(3, dim=1)
    for row, entry in enumerate(report["predictions"]):
        ranked = entry["top_k"]
        assert [item["index"] for item in ranked] == expected_indices[row].tolist()
        assert [item["class"] for item in ranked] == [digits.classes[index] for index in expected_indices[row].tolist()]
        assert torch.allclose(torch.tensor([item["probability"] for item in ranked]), expected_values[row], atol=1e-6)
        assert ranked[0]["index"] == int(expected[row].argmax())


def test_predict_is_mostly_right_on_digits(tiny_digits, digit_pngs, digits, capsys):
    paths, _ = digit_pngs
    code, out, err = run(capsys, "predict", tiny_digits, *paths, "--top-k", "1", "--json")
    assert code == 0, err
    predicted = [entry["top_k"][0]["index"] for entry in json.loads(out)["predictions"]]
    labels = digits.test.tensors[1][:IMAGE_COUNT].tolist()
    correct = sum(int(guess == label) for guess, label in zip(predicted, labels))
    assert correct >= IMAGE_COUNT - 2, (predicted, labels)


def test_predict_human_output(tiny_digits, digit_pngs, capsys):
    paths, pixels = digit_pngs
    code, out, err = run(capsys, "predict", tiny_digits, paths[0], "--top-k", "2")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{paths[0]}:"
    assert len(lines) == 3
    values, indices = _reference_probabilities(tiny_digits, pixels[:1]).topk(2, dim=1)
    for line, value, index in zip(lines[1:], values[0].tolist(), indices[0].tolist()):
        assert line.split() == [str(index), f"{value:.4f}"]


def test_default_top_k(tiny_digits, digit_pngs, capsys):
    paths, _ = digit_pngs
    code, out, err = run(capsys, "predict", tiny_digits, paths[0], "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["top_k"] == prediction.DEFAULT_TOP_K == cli._DEFAULT_TOP_K
    probabilities = [item["probability"] for item in report["predictions"][0]["top_k"]]
    assert probabilities == sorted(probabilities, reverse=True)


def test_default_top_k_capped_by_classes(module_components, tmp_path, capsys):
    out = tmp_path / "two-classes"
    train_to_checkpoint("tiny_cnn", out, epochs=1, dataset="synthetic", seed=0, progress=False)
    image = write_image(tmp_path / "square.png", size=(28, 28), value=40)
    code, stdout, err = run(capsys, "predict", out, image, "--json")
    assert code == 0, err
    ranked = json.loads(stdout)["predictions"][0]["top_k"]
    assert sorted(item["class"] for item in ranked) == ["left", "right"]
    assert sum(item["probability"] for item in ranked) == pytest.approx(1.0, abs=1e-6)


def test_rgb_image_converted_to_gray(tiny_digits, tmp_path):
    path = write_image(tmp_path / "color.png", size=(28, 28), mode="RGB", value=100)
    config = fcnnzoo.load(tiny_digits).fcnnzoo_checkpoint
    batch = prediction.load_image_batch([path], config)
    gray = Image.new("RGB", (1, 1), (100, 50, 155)).convert("L").getpixel((0, 0))
    expected = (gray / 255 - config["normalization"]["mean"][0]) / config["normalization"]["std"][0]
    assert batch.shape == (1, 1, 28, 28)
    assert torch.allclose(batch, torch.full_like(batch, expected), atol=1e-6)


def test_gray_image_converted_to_rgb(tiny_digits, tmp_path):
    path = write_image(tmp_path / "gray.png", size=(28, 28), value=60)
    config = fcnnzoo.load(tiny_digits).fcnnzoo_checkpoint
    rgb_config = {**config, "in_channels": 3, "normalization": {"mean": [0.1, 0.2, 0.3], "std": [0.5, 0.25, 1.0]}}
    batch = prediction.load_image_batch([path], rgb_config)
    assert batch.shape == (1, 3, 28, 28)
    for channel, (mean, std) in enumerate(zip([0.1, 0.2, 0.3], [0.5, 0.25, 1.0])):
        assert torch.allclose(batch[0, channel], torch.full((28, 28), (60 / 255 - mean) / std), atol=1e-6)


def test_image_of_other_size_resized(tiny_digits, tmp_path):
    pixels = np.zeros((56, 42), dtype=np.uint8)
    pixels[:28] = 200
    path = tmp_path / "large.png"
    Image.fromarray(pixels, mode="L").save(path)
    config = fcnnzoo.load(tiny_digits).fcnnzoo_checkpoint
    batch = prediction.load_image_batch([path], config)

    resized = np.asarray(Image.fromarray(pixels, mode="L").resize((28, 28), Image.Resampling.BILINEAR), dtype=np.float32)
    expected = normalize(torch.from_numpy(resized).view(1, 1, 28, 28) / 255, config["normalization"]["mean"], config["normalization"]["std"])
    assert batch.shape == (1, 1, 28, 28)
    assert torch.allclose(batch, expected, atol=1e-6)
    assert batch[0, 0, 0, 0] > batch[0, 0, -1, 0]


def test_predict_more_images_than_one_batch(tiny_digits, digit_pngs, monkeypatch, capsys):
    paths, pixels = digit_pngs
    monkeypatch.setattr(prediction, "PREDICTION_BATCH_SIZE", 5)
    code, out, err = run(capsys, "predict", tiny_digits, *paths, "--top-k", "1", "--json")
    assert code == 0, err
    predicted = [entry["top_k"][0]["index"] for entry in json.loads(out)["predictions"]]
    assert predicted == _reference_probabilities(tiny_digits, pixels).argmax(dim=1).tolist()


# -- invalid images and options ----------------------------------------------------------


def test_missing_image_exits_2(tiny_digits, tmp_path, capsys):
    missing = tmp_path / "nowhere.png"
    assert_usage_error(*run(capsys, "predict", tiny_digits, missing), str(missing), "does not exist")


def test_non_image_file_exits_2(tiny_digits, tmp_path, capsys):
    path = tmp_path / "notes.png"
    path.write_text("these are notes, not pixels")
    assert_usage_error(*run(capsys, "predict", tiny_digits, path), str(path), "cannot be read as an image")


def test_truncated_png_exits_2(tiny_digits, digit_pngs, capsys):
    paths, _ = digit_pngs
    data = paths[0].read_bytes()
    paths[0].write_bytes(data[: len(data) // 2])
    assert_usage_error(*run(capsys, "predict", tiny_digits, paths[0]), str(paths[0]), "cannot be read as an image")


def test_folder_as_image_exits_2(tiny_digits, tmp_path, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    assert_usage_error(*run(capsys, "predict", tiny_digits, folder), str(folder), "is a folder")


def test_no_image_exits_2(tiny_digits, capsys):
    assert_usage_error(*run(capsys, "predict", tiny_digits), "IMAGE")


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_invalid_top_k_exits_2(tiny_digits, digit_pngs, capsys, value):
    paths, _ = digit_pngs
    assert_usage_error(*run(capsys, "predict", tiny_digits, paths[0], "--top-k", value), "--top-k", repr(value))


def test_top_k_above_class_count_exits_2(tiny_digits, digit_pngs, capsys):
    paths, _ = digit_pngs
    assert_usage_error(*run(capsys, "predict", tiny_digits, paths[0], "--top-k", "11"), "top_k must be between 1 and 10", "got 11")


def test_top_k_checked_before_images(tiny_digits, tmp_path, capsys):
    assert_usage_error(*run(capsys, "predict", tiny_digits, tmp_path / "nowhere.png", "--top-k", "11"), "got 11")


def test_python_top_k_type_checked(tiny_digits, digit_pngs):
    paths, _ = digit_pngs
    with pytest.raises(TypeError, match="top_k must be an int, got 2.0"):
        prediction.predict_files(tiny_digits, paths, top_k=2.0)


def test_python_empty_image_list_rejected(tiny_digits):
    with pytest.raises(ValueError, match="No image files given"):
        prediction.predict_files(tiny_digits, [])


def test_unreadable_channel_count_rejected(tiny_digits, digit_pngs):
    paths, _ = digit_pngs
    config = {**fcnnzoo.load(tiny_digits).fcnnzoo_checkpoint, "in_channels": 2}
    with pytest.raises(ValueError, match="2-channel inputs"):
        prediction.load_image_batch(paths, config)


# -- invalid checkpoints, for every command that loads one -------------------------------------


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _command(name: str, checkpoint: Path, image: Path, tmp_path: Path) -> list[str | Path]:
    if name == "predict":
        return ["predict", checkpoint, image]
    if name == "quantize":
        return ["quantize", checkpoint, "--method", "int8_weight_only", "--out", tmp_path / "quantized"]
    return ["eval", checkpoint]


COMMANDS = ["predict", "eval", "quantize"]


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_config_exits_2(tiny_digits, digit_pngs, tmp_path, capsys, command):
    (tiny_digits / "config.json").unlink()
    arguments = _command(command, tiny_digits, digit_pngs[0][0], tmp_path)
    assert_usage_error(*run(capsys, *arguments), str(tiny_digits / "config.json"), "is missing")


@pytest.mark.parametrize("command", COMMANDS)
def test_changed_weight_byte_exits_2(tiny_digits, digit_pngs, tmp_path, capsys, command):
    weights = tiny_digits / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x40
    weights.write_bytes(bytes(data))
    arguments = _command(command, tiny_digits, digit_pngs[0][0], tmp_path)
    assert_usage_error(*run(capsys, *arguments), str(weights), "sha256", "modified or corrupted")
    assert not (tmp_path / "quantized").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_truncated_weights_exit_2(tiny_digits, digit_pngs, tmp_path, capsys, command):
    weights = tiny_digits / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:-7])
    arguments = _command(command, tiny_digits, digit_pngs[0][0], tmp_path)
    assert_usage_error(*run(capsys, *arguments), str(weights), f"is {len(data) - 7} bytes", f"records {len(data)}", "truncated")


@pytest.mark.parametrize("command", COMMANDS)
def test_misspelled_architecture_exits_2(tiny_digits, digit_pngs, tmp_path, capsys, command):
    _edit_config(tiny_digits, architecture="tiny_cnm")
    arguments = _command(command, tiny_digits, digit_pngs[0][0], tmp_path)
    assert_usage_error(*run(capsys, *arguments), str(tiny_digits / "config.json"), "'tiny_cnm'", "Did you mean 'tiny_cnn'")
