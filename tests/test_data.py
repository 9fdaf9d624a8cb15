"""Tests of the digits dataset and the dataset helpers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

import fcnnzoo
from fcnnzoo.data import channel_statistics
from fcnnzoo.data import make_splits
from fcnnzoo.data import normalize
from fcnnzoo.data import renormalize
from fcnnzoo.data import resize_images

# -- digits ------------------------------------------------------------------


def test_digits_registered_by_builtin_plugin():
    assert "digits" in fcnnzoo.list_datasets()
    plugin = next(info for info in fcnnzoo.list_plugins() if info.name == "fcnnzoo.builtin.datasets")
    assert "dataset:digits" in plugin.components


def test_digits_shapes_and_dtypes(digits):
    train_images, train_labels = digits.train.tensors
    test_images, test_labels = digits.test.tensors
    assert digits.name == "digits"
    assert train_images.shape == (1437, 1, 28, 28)
    assert test_images.shape == (360, 1, 28, 28)
    assert train_images.dtype == torch.float32
    assert test_images.dtype == torch.float32
    assert train_labels.dtype == torch.int64
    assert test_labels.dtype == torch.int64
    assert digits.classes == [str(digit) for digit in range(10)]
    assert digits.num_classes == 10
    assert digits.input_size == (28, 28)
    assert digits.in_channels == 1


def test_digits_split_is_stratified(digits):
    _, train_labels = digits.train.tensors
    _, test_labels = digits.test.tensors
    all_counts = torch.bincount(torch.from_numpy(load_digits().target), minlength=10)
    test_counts = torch.bincount(test_labels, minlength=10)
    train_counts = torch.bincount(train_labels, minlength=10)
    assert torch.equal(train_counts + test_counts, all_counts)
    # Each class keeps its share of 20 % in the test split, give or take one image.
    expected = all_counts.to(torch.float64) * 0.2
    assert torch.all((test_counts - expected).abs() <= 1.0), (test_counts, expected)


def test_digits_normalized_with_train_statistics(digits):
    train_images, _ = digits.train.tensors
    assert train_images.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert train_images.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    assert len(digits.mean) == 1
    assert len(digits.std) == 1
    # Raw pixels lie in [0, 1], so the stored statistics must too.
    assert 0.0 < digits.mean[0] < 1.0
    assert 0.0 < digits.std[0] < 1.0


def test_digits_images_are_resized_originals(digits):
    bunch = load_digits()
    originals = torch.from_numpy(bunch.images).to(torch.float32).unsqueeze(1) / 16.0
    resized = F.interpolate(originals, size=(28, 28), mode="bilinear", align_corners=False).flatten(1)
    targets = torch.from_numpy(bunch.target)

    for split in (digits.train, digits.test):
        images, labels = split.tensors
        raw = (images * digits.std[0] + digits.mean[0]).flatten(1)
        distances = torch.cdist(raw.to(torch.float64), resized.to(torch.float64))
        nearest = distances.argmin(dim=1)
        assert distances.min(dim=1).values.max().item() < 1e-4
        assert torch.equal(targets[nearest], labels)


def test_digits_loads_identically_twice(digits):
    again = fcnnzoo.load_dataset("digits")
    assert torch.equal(again.train.tensors[0], digits.train.tensors[0])
    assert torch.equal(again.train.tensors[1], digits.train.tensors[1])
    assert torch.equal(again.test.tensors[0], digits.test.tensors[0])
    assert again.mean == digits.mean
    assert again.std == digits.std


def test_digits_ignores_data_dir(digits, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="fcnnzoo.builtin.datasets"):
        splits = fcnnzoo.load_dataset("digits", data_dir=tmp_path / "does-not-exist")
    assert torch.equal(splits.test.tensors[0], digits.test.tensors[0])
    assert "data_dir=" in caplog.text
    assert "is ignored" in caplog.text


# -- resize_images -----------------------------------------------------------


def test_resize_matches_bilinear_upsampling():
    images = torch.rand(3, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    expected = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    assert torch.equal(resize_images(images, (28, 28)), expected)


def test_resize_downscaling_uses_antialias():
    images = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    expected = F.interpolate(images, size=(7, 7), mode="bilinear", align_corners=False, antialias=True)
    assert torch.equal(resize_images(images, (7, 7)), expected)


def test_resize_keeps_constant_image_constant():
    images = torch.full((1, 1, 8, 8), 0.25)
    resized = resize_images(images, (28, 28))
    assert resized.shape == (1, 1, 28, 28)
    assert torch.allclose(resized, torch.full_like(resized, 0.25))


def test_resize_same_size_returns_copy():
    images = torch.rand(1, 1, 4, 4)
    resized = resize_images(images, (4, 4))
    assert torch.equal(resized, images)
    assert resized.data_ptr() != images.data_ptr()


@pytest.mark.parametrize("size", [(0, 28), (28,), (28, -1), (28.0, 28)])
def test_resize_rejects_bad_size(size):
    with pytest.raises(ValueError, match="positive ints"):
        resize_images(torch.rand(1, 1, 8, 8), size)


def test_resize_rejects_3d_batch():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        resize_images(torch.rand(1, 8, 8), (28, 28))


# -- statistics and normalization --------------------------------------------


def test_channel_statistics_known_values():
    images = torch.zeros(2, 2, 1, 2)
    images[:, 0] = torch.tensor([[[1.0, 3.0]], [[5.0, 7.0]]])
    images[:, 1] = 2.0
    mean, std = channel_statistics(images)
    assert mean == pytest.approx((4.0, 2.0))
    # Channel 0 contains 1, 3, 5, 7: population std sqrt(5). Channel 1 is constant, so its std falls back to 1.
    assert std == pytest.approx((5.0**0.5, 1.0))


def test_normalize_per_channel():
    images = torch.ones(1, 2, 2, 2)
    images[:, 1] = 3.0
    normalized = normalize(images, (1.0, 1.0), (1.0, 2.0))
    assert torch.equal(normalized[:, 0], torch.zeros(1, 2, 2))
    assert torch.equal(normalized[:, 1], torch.ones(1, 2, 2))


def test_normalize_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match="one per channel"):
        normalize(torch.rand(1, 3, 2, 2), (0.5,), (0.5,))


@pytest.mark.parametrize("std", [(0.0,), (-1.0,), (float("nan"),)])
def test_normalize_rejects_bad_std(std):
    with pytest.raises(ValueError, match="positive finite"):
        normalize(torch.rand(1, 1, 2, 2), (0.0,), std)


def test_renormalize_identity_returns_input():
    images = torch.rand(2, 1, 3, 3)
    assert renormalize(images, (0.5,), (0.2,), (0.5,), (0.2,)) is images


def test_renormalize_converts_statistics():
    raw = torch.rand(2, 1, 3, 3, generator=torch.Generator().manual_seed(3))
    first = normalize(raw, (0.3,), (0.5,))
    second = normalize(raw, (0.1,), (0.25,))
    assert torch.allclose(renormalize(first, (0.3,), (0.5,), (0.1,), (0.25,)), second, atol=1e-6)


# -- make_splits ---------------------------------------------------------------


def test_make_splits_normalizes_both_splits_with_train_statistics():
    train_images = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2).clone()
    test_images = torch.full((1, 1, 2, 2), 1.0)
    splits = make_splits("toy", train_images, torch.tensor([0, 1]), test_images, torch.tensor([1]), ["a", "b"])
    assert splits.mean == (0.5,)
    assert splits.std == (0.5,)
    assert torch.equal(splits.test.tensors[0], torch.ones(1, 1, 2, 2))
    assert splits.classes == ["a", "b"]
    assert splits.input_size == (2, 2)


def test_make_splits_rejects_label_out_of_range():
    images = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"from 0 to 5"):
        make_splits("toy", images, torch.tensor([0, 5]), images, torch.tensor([0, 1]), ["a", "b"])


def test_make_splits_rejects_label_count_mismatch():
    images = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        make_splits("toy", images, torch.tensor([0]), images, torch.tensor([0, 1]), ["a", "b"])


def test_make_splits_rejects_different_image_shapes():
    with pytest.raises(ValueError, match="per image"):
        make_splits("toy", torch.rand(2, 1, 4, 4), torch.tensor([0, 1]), torch.rand(2, 1, 5, 5), torch.tensor([0, 1]), ["a", "b"])


def test_make_splits_rejects_empty_split():
    with pytest.raises(ValueError, match="non-empty"):
        make_splits("toy", torch.rand(2, 1, 4, 4), torch.tensor([0, 1]), torch.rand(0, 1, 4, 4), torch.tensor([], dtype=torch.int64), ["a", "b"])
