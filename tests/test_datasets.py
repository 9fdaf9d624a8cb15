"""Tests of the file-based datasets (mnist, fashion_mnist, cifar10, folder) on files the tests write."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datafiles import idx_arrays
from datafiles import raw_images
from datafiles import write_cifar
from datafiles import write_folder
from datafiles import write_idx
from datafiles import write_image
from PIL import Image

import fcnnzoo
from fcnnzoo.data import stratified_split
from fcnnzoo.data import with_validation
from fcnnzoo.datasets.folder import parse_image_size
from fcnnzoo.datasets.idx import FASHION_MNIST_CLASSES

# -- registration -----------------------------------------------------------------


def test_file_datasets_registered():
    names = fcnnzoo.list_datasets()
    for name in ("digits", "mnist", "fashion_mnist", "cifar10", "folder"):
        assert name in names
    plugin = next(info for info in fcnnzoo.list_plugins() if info.name == "fcnnzoo.builtin.datasets")
    assert "dataset:cifar10" in plugin.components


# -- mnist and fashion_mnist ------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reads_idx_files(tmp_path, compress):
    arrays = idx_arrays()
    splits = fcnnzoo.load_dataset("mnist", data_dir=write_idx(tmp_path, arrays, compress=compress))
    assert splits.name == "mnist"
    assert splits.train.tensors[0].shape == (12, 1, 5, 5)
    assert splits.test.tensors[0].shape == (6, 1, 5, 5)
    assert splits.in_channels == 1
    assert splits.input_size == (5, 5)
    assert splits.classes == [str(digit) for digit in range(10)]
    assert splits.train.tensors[1].tolist() == arrays["train_labels"].tolist()
    assert splits.test.tensors[1].tolist() == arrays["test_labels"].tolist()
    expected = torch.from_numpy(arrays["test_images"]).float().unsqueeze(1) / 255
    assert torch.allclose(raw_images(splits, "test"), expected, atol=1e-6)


def test_mnist_mixed_raw_and_gzip(tmp_path):
    arrays = idx_arrays()
    write_idx(tmp_path, {key: arrays[key] for key in ("train_images", "train_labels")})
    write_idx(tmp_path, {key: arrays[key] for key in ("test_images", "test_labels")}, compress=True)
    splits = fcnnzoo.load_dataset("mnist", data_dir=tmp_path)
    assert len(splits.test) == 6


def test_fashion_mnist_class_names(tmp_path):
    splits = fcnnzoo.load_dataset("fashion_mnist", data_dir=write_idx(tmp_path))
    assert splits.name == "fashion_mnist"
    assert splits.classes == list(FASHION_MNIST_CLASSES)
    assert splits.classes[9] == "Ankle boot"


def test_mnist_missing_file_lists_it(tmp_path):
    write_idx(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing 1 of its 4 files .*t10k-labels-idx1-ubyte"):
        fcnnzoo.load_dataset("mnist", data_dir=tmp_path)


def test_mnist_wrong_magic_number(tmp_path):
    write_idx(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[3] = 3
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte has the magic number 0x00000803, expected 0x00000801"):
        fcnnzoo.load_dataset("mnist", data_dir=tmp_path)


def test_mnist_images_and_labels_swapped(tmp_path):
    write_idx(tmp_path)
    images = tmp_path / "train-images-idx3-ubyte"
    labels = tmp_path / "train-labels-idx1-ubyte"
    images_data, labels_data = images.read_bytes(), labels.read_bytes()
    images.write_bytes(labels_data)
    labels.write_bytes(images_data)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte has the magic number 0x00000801, expected 0x00000803"):
        fcnnzoo.load_dataset("mnist", data_dir=tmp_path)


def test_mnist_truncated_data(tmp_path):
    write_idx(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte is truncated: its header declares 6x5x5 values, which need 150 bytes after the header, but it has 143"):
        fcnnzoo.load_dataset("mnist", data_dir=tmp_path)


def test_mnist_truncated_header(tmp_path):
    write_idx(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:9])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte is truncated: it has 9 bytes, fewer than its 16-byte header"):
        fcnnzoo.load_dataset("mnist", data_dir=tmp_path)


def test_mnist_trailing_bytes(tmp_path):
    write_idx(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\x00\x01")
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte has 2 bytes after the 12 bytes of data"):
        fcnnzoo.load_dataset("mnist", data_dir=tmp_path)


def test_mnist_truncated_gzip(tmp_path):
    write_idx(tmp_path, compress=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz is not a valid gzip file"):
        fcnnzoo.load_dataset("mnist", data_dir=tmp_path)


def test_mnist_count_mismatch(tmp_path):
    arrays = idx_arrays()
    arrays["train_labels"] = arrays["train_labels"][:-1]
    write_idx(tmp_path, arrays)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte has 12 images but .*train-labels-idx1-ubyte has 11 labels"):
        fcnnzoo.load_dataset("mnist", data_dir=tmp_path)


def test_mnist_label_out_of_range(tmp_path):
    arrays = idx_arrays()
    arrays["test_labels"][4] = 10
    write_idx(tmp_path, arrays)
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte has the label 10 at index 4, expected labels from 0 to 9"):
        fcnnzoo.load_dataset("mnist", data_dir=tmp_path)


def test_mnist_train_and_test_sizes_differ(tmp_path):
    arrays = idx_arrays()
    arrays["test_images"] = np.zeros((6, 4, 5), dtype=np.uint8)
    write_idx(tmp_path, arrays)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte has 4x5 images, expected 5x5"):
        fcnnzoo.load_dataset("mnist", data_dir=tmp_path)


def test_mnist_needs_data_dir():
    with pytest.raises(ValueError, match=r"Dataset 'mnist' is read from local files: pass the folder"):
        fcnnzoo.load_dataset("mnist")


def test_mnist_data_dir_does_not_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"The data folder .*nowhere for dataset 'mnist' does not exist"):
        fcnnzoo.load_dataset("mnist", data_dir=tmp_path / "nowhere")


def test_mnist_data_dir_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(NotADirectoryError, match=r"is not a folder"):
        fcnnzoo.load_dataset("mnist", data_dir=path)


# -- cifar10 ------------------------------------------------------------------------


@pytest.mark.parametrize("subfolder", [False, True])
def test_cifar10_reads_batches(tmp_path, subfolder):
    splits = fcnnzoo.load_dataset("cifar10", data_dir=write_cifar(tmp_path, subfolder=subfolder))
    assert splits.train.tensors[0].shape == (20, 3, 32, 32)
    assert splits.test.tensors[0].shape == (4, 3, 32, 32)
    assert splits.in_channels == 3
    assert splits.input_size == (32, 32)
    assert splits.classes[0] == "airplane"
    assert splits.classes[9] == "truck"
    # Train file 2 (index 1), record 3: label (1 + 3) % 10 and red value 10 * 1 + 3.
    raw = raw_images(splits)
    assert int(splits.train.tensors[1][7]) == 4
    assert raw[7, 0, 5, 9].item() == pytest.approx(13 / 255, abs=1e-6)
    assert raw[7, 1, 0, 0].item() == pytest.approx(14 / 255, abs=1e-6)
    assert raw[7, 2, 31, 31].item() == pytest.approx(15 / 255, abs=1e-6)
    assert splits.test.tensors[1].tolist() == [5, 6, 7, 8]


def test_cifar10_class_names_from_meta(tmp_path):
    write_cifar(tmp_path)
    names = [f"class{index}" for index in range(10)]
    (tmp_path / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    assert fcnnzoo.load_dataset("cifar10", data_dir=tmp_path).classes == names


def test_cifar10_meta_with_wrong_count(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "batches.meta.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match=r"batches.meta.txt lists 2 class names, expected 10"):
        fcnnzoo.load_dataset("cifar10", data_dir=tmp_path)


def test_cifar10_truncated_record(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"data_batch_3.bin is truncated or damaged: its 12192 bytes are not a whole number of 3073-byte records"):
        fcnnzoo.load_dataset("cifar10", data_dir=tmp_path)


def test_cifar10_empty_file(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "test_batch.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"test_batch.bin is empty"):
        fcnnzoo.load_dataset("cifar10", data_dir=tmp_path)


def test_cifar10_label_out_of_range(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "data_batch_1.bin"
    data = bytearray(path.read_bytes())
    data[3073] = 57
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"data_batch_1.bin has the label 57 in record 1, expected labels from 0 to 9"):
        fcnnzoo.load_dataset("cifar10", data_dir=tmp_path)


def test_cifar10_missing_batches(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_4.bin").unlink()
    (tmp_path / "test_batch.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing 2 of its 6 files .*data_batch_4.bin, test_batch.bin"):
        fcnnzoo.load_dataset("cifar10", data_dir=tmp_path)


# -- folder -------------------------------------------------------------------------


def test_folder_classes_sorted_and_hidden_ignored(tmp_path):
    write_folder(tmp_path, {"zebra": 5, "ant": 5, "moose": 5})
    write_image(tmp_path / ".hidden" / "x.png")
    write_image(tmp_path / "ant" / ".secret.png", size=(9, 9))
    write_image(tmp_path / "ant" / ".cache" / "y.png", size=(9, 9))
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    splits = fcnnzoo.load_dataset("folder", data_dir=tmp_path)
    assert splits.classes == ["ant", "moose", "zebra"]
    assert splits.in_channels == 1
    assert splits.input_size == (6, 4)
    # 20 % of each class of 5 images is held out: 1 per class.
    assert len(splits.train) == 12
    assert len(splits.test) == 3
    assert sorted(splits.test.tensors[1].tolist()) == [0, 1, 2]


def test_folder_pixel_values_and_labels(tmp_path):
    write_folder(tmp_path / "train", {"a": 2, "b": 2})
    write_folder(tmp_path / "test", {"a": 1, "b": 1})
    splits = fcnnzoo.load_dataset("folder", data_dir=tmp_path)
    # Class "b" is index 1, so its images are filled with 20 + index.
    assert splits.train.tensors[1].tolist() == [0, 0, 1, 1]
    assert raw_images(splits)[:, 0, 0, 0].tolist() == pytest.approx([0 / 255, 1 / 255, 20 / 255, 21 / 255], abs=1e-6)
    assert splits.test.tensors[1].tolist() == [0, 1]
    assert raw_images(splits, "test")[:, 0, 3, 2].tolist() == pytest.approx([0 / 255, 20 / 255], abs=1e-6)


def test_folder_color_images_give_three_channels(tmp_path):
    write_folder(tmp_path, {"a": 3, "b": 3}, mode="RGB")
    write_image(tmp_path / "a" / "gray.png", mode="L", value=60)
    splits = fcnnzoo.load_dataset("folder", data_dir=tmp_path)
    assert splits.in_channels == 3
    images = torch.cat([raw_images(splits), raw_images(splits, "test")])
    # The gray image is repeated on all three channels.
    gray = [image for image in images if torch.allclose(image, torch.full_like(image, 60 / 255), atol=1e-6)]
    assert len(gray) == 1


def test_folder_channels_option(tmp_path):
    write_folder(tmp_path, {"a": 3, "b": 3}, mode="RGB")
    assert fcnnzoo.load_dataset("folder", data_dir=tmp_path, channels=1).in_channels == 1


def test_folder_mixed_sizes_name_file(tmp_path):
    write_folder(tmp_path, {"a": 3, "b": 3}, size=(6, 4))
    odd = write_image(tmp_path / "b" / "odd.png", size=(7, 4))
    with pytest.raises(ValueError) as error:
        fcnnzoo.load_dataset("folder", data_dir=tmp_path)
    message = str(error.value)
    assert str(odd) in message
    assert "is 7x4 (height x width), expected 6x4" in message
    assert "resize=HxW" in message


@pytest.mark.parametrize("resize", [(8, 8), 8, "8x8", [8, 8]])
def test_folder_resize_option(tmp_path, resize):
    write_folder(tmp_path, {"a": 3, "b": 3}, size=(6, 4))
    write_image(tmp_path / "b" / "odd.png", size=(7, 4))
    splits = fcnnzoo.load_dataset("folder", data_dir=tmp_path, resize=resize)
    assert splits.input_size == (8, 8)
    assert splits.train.tensors[0].shape[2:] == (8, 8)


def test_folder_empty_class_reported(tmp_path):
    write_folder(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".DS_Store").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"class folder .*empty contains no images"):
        fcnnzoo.load_dataset("folder", data_dir=tmp_path)


def test_folder_without_classes(tmp_path):
    write_image(tmp_path / "loose.png")
    with pytest.raises(ValueError, match=r"has no class sub-folders"):
        fcnnzoo.load_dataset("folder", data_dir=tmp_path)


def test_folder_unreadable_image(tmp_path):
    write_folder(tmp_path, {"a": 3, "b": 3})
    broken = tmp_path / "a" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ValueError, match=rf"File {broken} cannot be read as an image"):
        fcnnzoo.load_dataset("folder", data_dir=tmp_path)


def test_folder_truncated_image(tmp_path):
    write_folder(tmp_path, {"a": 3, "b": 3})
    path = write_image(tmp_path / "a" / "cut.png", value=7)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (6, 4), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(ValueError, match=rf"File {path} cannot be read as an image"):
        fcnnzoo.load_dataset("folder", data_dir=tmp_path)


def test_folder_test_classes_must_match(tmp_path):
    write_folder(tmp_path / "train", {"a": 2, "b": 2})
    write_folder(tmp_path / "test", {"a": 1, "c": 1})
    with pytest.raises(ValueError, match=r"has the classes \['a', 'c'\], expected the classes of .*train: \['a', 'b'\]"):
        fcnnzoo.load_dataset("folder", data_dir=tmp_path)


def test_folder_train_without_test_holds_out(tmp_path):
    write_folder(tmp_path / "train", {"a": 10, "b": 10})
    splits = fcnnzoo.load_dataset("folder", data_dir=tmp_path, test_fraction=0.3)
    assert len(splits.test) == 6
    assert torch.bincount(splits.test.tensors[1]).tolist() == [3, 3]


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("big", ValueError, r"folder resize must be HxW"),
        (0, ValueError, r"positive sides"),
        (2.5, TypeError, r"folder resize must be None, an int"),
        ((3, 4, 5), TypeError, r"folder resize must be None, an int"),
    ],
)
def test_parse_image_size_rejects(value, error, message):
    with pytest.raises(error, match=message):
        parse_image_size(value)


def test_folder_rejects_bad_channels(tmp_path):
    write_folder(tmp_path, {"a": 2, "b": 2})
    with pytest.raises(ValueError, match=r"folder channels must be 1, 3 or None \(chosen from the images\), got 2"):
        fcnnzoo.load_dataset("folder", data_dir=tmp_path, channels=2)


def test_folder_rejects_unknown_argument(tmp_path):
    with pytest.raises(TypeError, match=r"does not accept the argument 'rezise'"):
        fcnnzoo.load_dataset("folder", data_dir=tmp_path, rezise=8)


# -- validation split ------------------------------------------------------------------


def test_stratified_split_keeps_class_shares():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    kept, held = stratified_split(labels, 0.1, seed=0)
    assert torch.bincount(labels[held]).tolist() == [5, 3, 2]
    assert torch.equal(torch.sort(torch.cat([kept, held])).values, torch.arange(100))
    assert torch.equal(held, torch.sort(held).values)


def test_stratified_split_seeded():
    labels = torch.arange(200) % 4
    first = stratified_split(labels, 0.25, seed=3)[1]
    assert torch.equal(first, stratified_split(labels, 0.25, seed=3)[1])
    assert not torch.equal(first, stratified_split(labels, 0.25, seed=4)[1])


@pytest.mark.parametrize(("fraction", "error"), [(0.0, ValueError), (1.0, ValueError), (-0.5, ValueError), ("0.1", TypeError)])
def test_stratified_split_rejects_fraction(fraction, error):
    with pytest.raises(error, match="fraction"):
        stratified_split(torch.arange(10) % 2, fraction, seed=0)


def test_stratified_split_rejects_empty_part():
    with pytest.raises(ValueError, match=r"but both parts need at least one example"):
        stratified_split(torch.tensor([0, 1, 2]), 0.1, seed=0)


def test_validation_split_from_train(digits):
    splits = with_validation(digits, 0.1, seed=0)
    assert len(splits.train) + len(splits.validation) == len(digits.train)
    assert len(splits.validation) == pytest.approx(144, abs=5)
    # The test split and the normalization do not change.
    assert splits.test is digits.test
    assert splits.mean == digits.mean
    # Every validation image is one of the original train images, with its label.
    train_images, train_labels = digits.train.tensors
    validation_images, validation_labels = splits.validation.tensors
    distances = torch.cdist(validation_images.flatten(1), train_images.flatten(1), compute_mode="donot_use_mm_for_euclid_dist")
    nearest = distances.argmin(dim=1)
    assert distances.min(dim=1).values.max().item() == 0.0
    assert torch.equal(train_labels[nearest], validation_labels)


def test_load_dataset_with_validation_fraction(digits):
    splits = fcnnzoo.load_dataset("digits", validation_fraction=0.2, validation_seed=1)
    assert len(splits.validation) == pytest.approx(287, abs=5)
    assert torch.equal(splits.test.tensors[0], digits.test.tensors[0])
    again = fcnnzoo.load_dataset("digits", validation_fraction=0.2, validation_seed=1)
    assert torch.equal(splits.validation.tensors[1], again.validation.tensors[1])


def test_validation_split_only_once(digits):
    with pytest.raises(ValueError, match=r"already has a validation split"):
        with_validation(with_validation(digits, 0.1), 0.1)
