"""Command-line tests of the file-based datasets, the validation split and their bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from datafiles import idx_arrays
from datafiles import write_cifar
from datafiles import write_folder
from datafiles import write_idx

from cli_runs import assert_usage_error
from cli_runs import run


@pytest.fixture
def mnist_dir(tmp_path) -> Path:
    """MNIST-style IDX files with 40 train and 20 test 28x28 images."""
    arrays = idx_arrays(train_count=40, test_count=20, side=28)
    return write_idx(tmp_path / "mnist", arrays, compress=True)


def test_train_mnist_end_to_end(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "fcnn", "--dataset", "mnist", "--data-dir", mnist_dir, "--epochs", "1", "--out", out, "--json")
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["dataset"] == "mnist"
    assert metrics["test_examples"] == 20
    code, stdout, err = run(capsys, "eval", out, "--data-dir", mnist_dir, "--json")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["test_accuracy"] == metrics["test_accuracy"]
    assert report["test_loss"] == metrics["test_loss"]


def test_train_cifar10_builds_three_channel_model(tmp_path, capsys):
    data = write_cifar(tmp_path / "cifar", records_per_file=4, subfolder=True)
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "fcnn", "--dataset", "cifar10", "--data-dir", data, "--epochs", "1", "--out", out, "--json")
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["in_channels"] == 3
    assert config["input_size"] == [32, 32]
    assert config["arguments"]["input_size"] == [32, 32]
    assert config["classes"][0] == "airplane"
    code, stdout, err = run(capsys, "eval", out, "--data-dir", data, "--json")
    assert code == 0, err
    assert json.loads(stdout)["test_examples"] == 4


def test_train_folder_with_resize(tmp_path, capsys):
    data = write_folder(tmp_path / "images", {"a": 5, "b": 5}, size=(20, 24))
    out = tmp_path / "run"
    code, stdout, err = run(
        capsys, "train", "lenet5", "--dataset", "folder:resize=16x16", "--data-dir", data, "--epochs", "1", "--out", out, "--json"
    )
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["dataset_arguments"] == {"resize": "16x16"}
    assert json.loads((out / "config.json").read_text())["input_size"] == [16, 16]
    # Evaluating without the resize gives 20x24 images, which the checkpoint does not expect.
    code, stdout, err = run(capsys, "eval", out, "--data-dir", data)
    assert_usage_error(code, stdout, err, "20x24 images", "expects 16x16", "folder:resize=HxW")
    code, stdout, err = run(capsys, "eval", out, "--data-dir", data, "--dataset", "folder:resize=16x16", "--json")
    assert code == 0, err
    assert json.loads(stdout)["test_accuracy"] == metrics["test_accuracy"]


def test_train_with_validation_split(test_components, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run(
        capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "1", "--validation-fraction", "0.25", "--out", out, "--json"
    )
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["validation_fraction"] == 0.25
    # 64 train images in two classes of 32: 8 of each class are held out.
    assert metrics["validation_examples"] == 16
    assert 0.0 <= metrics["validation_accuracy"] <= 1.0
    code, stdout, err = run(capsys, "eval", out, "--split", "validation", "--validation-fraction", "0.25", "--json")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["split"] == "validation"
    assert report["validation_accuracy"] == metrics["validation_accuracy"]
    assert report["validation_loss"] == metrics["validation_loss"]
    assert report["validation_examples"] == 16
    code, stdout, err = run(capsys, "eval", out, "--split", "validation", "--validation-fraction", "0.25")
    assert code == 0, err
    assert "Validation accuracy" in stdout


def test_eval_validation_needs_fraction(tmp_path, capsys):
    # The option check comes before the checkpoint is read, so no checkpoint is needed.
    code, out, err = run(capsys, "eval", tmp_path, "--split", "validation")
    assert_usage_error(code, out, err, "--validation-fraction")


# -- bad input: exit code 2 and one line naming the file or value -------------------------


def _corrupt_magic(folder: Path) -> str:
    path = folder / "train-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[2] = 0x0D
    path.write_bytes(bytes(data))
    return str(path)


def _truncate(folder: Path) -> str:
    path = folder / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:100])
    return str(path)


def _drop_label(folder: Path) -> str:
    arrays = idx_arrays(train_count=10, test_count=5, side=28)
    arrays["test_labels"] = arrays["test_labels"][:4]
    write_idx(folder, {"test_labels": arrays["test_labels"]})
    return str(folder / "t10k-labels-idx1-ubyte")


@pytest.mark.parametrize(
    ("damage", "fragments"),
    [
        (_corrupt_magic, ["magic number 0x00000d03", "expected 0x00000803"]),
        (_truncate, ["is truncated", "5x28x28 values"]),
        (_drop_label, ["has 5 images but", "has 4 labels"]),
    ],
)
def test_train_rejects_malformed_idx(tmp_path, capsys, damage, fragments):
    folder = write_idx(tmp_path / "data", idx_arrays(train_count=10, test_count=5, side=28))
    path = damage(folder)
    code, out, err = run(capsys, "train", "fcnn", "--dataset", "mnist", "--data-dir", folder, "--epochs", "1", "--out", tmp_path / "run")
    assert_usage_error(code, out, err, path, *fragments)
    assert not (tmp_path / "run").exists()


def test_train_rejects_truncated_cifar(tmp_path, capsys):
    folder = write_cifar(tmp_path / "cifar")
    path = folder / "data_batch_2.bin"
    path.write_bytes(path.read_bytes()[:-1])
    code, out, err = run(capsys, "train", "fcnn", "--dataset", "cifar10", "--data-dir", folder, "--epochs", "1", "--out", tmp_path / "run")
    assert_usage_error(code, out, err, str(path), "3073-byte records")


def test_train_rejects_mixed_folder_sizes(tmp_path, capsys):
    folder = write_folder(tmp_path / "images", {"a": 2, "b": 2}, size=(6, 4))
    odd = write_folder(tmp_path / "images", {"c": 1}, size=(5, 5)) / "c" / "000.png"
    code, out, err = run(capsys, "train", "fcnn", "--dataset", "folder", "--data-dir", folder, "--epochs", "1", "--out", tmp_path / "run")
    assert_usage_error(code, out, err, str(odd), "expected 6x4")


def test_train_rejects_empty_class_folder(tmp_path, capsys):
    folder = write_folder(tmp_path / "images", {"a": 2, "b": 2})
    (folder / "c").mkdir()
    code, out, err = run(capsys, "train", "fcnn", "--dataset", "folder", "--data-dir", folder, "--epochs", "1", "--out", tmp_path / "run")
    assert_usage_error(code, out, err, str(folder / "c"), "contains no images")


def test_train_rejects_missing_data_dir(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    code, out, err = run(capsys, "train", "fcnn", "--dataset", "mnist", "--data-dir", missing, "--epochs", "1", "--out", tmp_path / "run")
    assert_usage_error(code, out, err, str(missing), "does not exist")


def test_eval_rejects_missing_data_dir(test_components, tmp_path, capsys):
    checkpoint = tmp_path / "run"
    code, _, err = run(capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "1", "--out", checkpoint)
    assert code == 0, err
    missing = tmp_path / "nowhere"
    code, out, err = run(capsys, "eval", checkpoint, "--dataset", "mnist", "--data-dir", missing)
    assert_usage_error(code, out, err, str(missing), "does not exist")


def test_train_mnist_without_data_dir(tmp_path, capsys):
    code, out, err = run(capsys, "train", "fcnn", "--dataset", "mnist", "--epochs", "1", "--out", tmp_path / "run")
    assert_usage_error(code, out, err, "'mnist'", "--data-dir")


def test_unknown_dataset_suggests_name(tmp_path, capsys):
    code, out, err = run(capsys, "train", "fcnn", "--dataset", "mnsit", "--epochs", "1", "--out", tmp_path / "run")
    assert_usage_error(code, out, err, "Unknown dataset 'mnsit'", "Did you mean 'mnist'")


def test_unknown_dataset_argument(tmp_path, capsys):
    folder = write_folder(tmp_path / "images", {"a": 2, "b": 2})
    code, out, err = run(
        capsys, "train", "fcnn", "--dataset", "folder:rezise=8", "--data-dir", folder, "--epochs", "1", "--out", tmp_path / "run"
    )
    assert_usage_error(code, out, err, "'rezise'", "resize")


def test_bad_dataset_argument_value(tmp_path, capsys):
    folder = write_folder(tmp_path / "images", {"a": 2, "b": 2})
    code, out, err = run(
        capsys, "train", "fcnn", "--dataset", "folder:resize=big", "--data-dir", folder, "--epochs", "1", "--out", tmp_path / "run"
    )
    assert_usage_error(code, out, err, "'big'", "HxW")


@pytest.mark.parametrize("value", ["0", "1", "-0.2", "half"])
def test_validation_fraction_out_of_range(tmp_path, capsys, value):
    code, out, err = run(capsys, "train", "fcnn", "--epochs", "1", "--validation-fraction", value, "--out", tmp_path / "run")
    assert_usage_error(code, out, err, "--validation-fraction", repr(value))


def test_mnist_label_file_with_bad_label(tmp_path, capsys):
    arrays = idx_arrays(train_count=10, test_count=5, side=28)
    arrays["train_labels"] = np.full(10, 12, dtype=np.uint8)
    folder = write_idx(tmp_path / "data", arrays)
    code, out, err = run(capsys, "train", "fcnn", "--dataset", "mnist", "--data-dir", folder, "--epochs", "1", "--out", tmp_path / "run")
    assert_usage_error(code, out, err, str(folder / "train-labels-idx1-ubyte"), "label 12")


def test_train_rejects_corrupt_gzip(tmp_path, capsys):
    folder = write_idx(tmp_path / "data", idx_arrays(train_count=10, test_count=5, side=28), compress=True)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-6])
    code, out, err = run(capsys, "train", "fcnn", "--dataset", "mnist", "--data-dir", folder, "--epochs", "1", "--out", tmp_path / "run")
    assert_usage_error(code, out, err, str(path), "not a valid gzip file")


def test_train_rejects_unreadable_image(tmp_path, capsys):
    folder = write_folder(tmp_path / "images", {"a": 2, "b": 2})
    broken = folder / "b" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    code, out, err = run(capsys, "train", "fcnn", "--dataset", "folder", "--data-dir", folder, "--epochs", "1", "--out", tmp_path / "run")
    assert_usage_error(code, out, err, str(broken), "cannot be read as an image")


def test_train_rejects_cifar_label_out_of_range(tmp_path, capsys):
    folder = write_cifar(tmp_path / "cifar")
    path = folder / "test_batch.bin"
    data = bytearray(path.read_bytes())
    data[0] = 99
    path.write_bytes(bytes(data))
    code, out, err = run(capsys, "train", "fcnn", "--dataset", "cifar10", "--data-dir", folder, "--epochs", "1", "--out", tmp_path / "run")
    assert_usage_error(code, out, err, str(path), "label 99 in record 0", "0 to 9")
