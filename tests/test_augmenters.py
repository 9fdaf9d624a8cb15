"""Tests of the built-in augmenters against hand-computed results."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
import torch.nn.functional as F

import fcnnzoo
from fcnnzoo.augment import Augmenter
from fcnnzoo.builtin.augmenters import GaussianNoise
from fcnnzoo.builtin.augmenters import HorizontalFlip
from fcnnzoo.builtin.augmenters import RandomCrop

BUILTIN_AUGMENTERS = [
    "random_crop",
    "hflip",
    "gaussian_noise",
    "rotate",
    "translate",
    "random_erasing",
    "brightness_contrast",
    "compose",
]


def ramp(count: int = 2, channels: int = 2, height: int = 3, width: int = 4, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return a batch whose values count up 0, 1, 2, ... in memory order."""
    return torch.arange(count * channels * height * width, dtype=dtype).view(count, channels, height, width)


def same_images(count: int, height: int = 8, width: int = 8) -> torch.Tensor:
    """Return ``count`` copies of one asymmetric image, so any per-sample difference comes from the augmenter."""
    image = torch.arange(height * width, dtype=torch.float32).view(1, 1, height, width)
    return image.expand(count, 1, height, width).contiguous()


# -- registration --------------------------------------------------------------


@pytest.mark.parametrize(("name", "cls"), [("random_crop", RandomCrop), ("hflip", HorizontalFlip), ("gaussian_noise", GaussianNoise)])
def test_create_augmenter_returns_builtin(name, cls):
    augmenter = fcnnzoo.create_augmenter(name, seed=0)
    assert type(augmenter) is cls
    assert isinstance(augmenter, Augmenter)
    assert augmenter.name == name


def test_builtins_listed_by_builtin_plugin():
    infos = {info.name: info for info in fcnnzoo.list_plugins()}
    components = infos["fcnnzoo.builtin.augmenters"].components
    for name in BUILTIN_AUGMENTERS:
        assert f"augmenter:{name}" in components


def test_repr_lists_arguments():
    assert repr(RandomCrop(seed=0)) == "RandomCrop(size=None, padding=(2, 2, 2, 2), padding_mode='zero', p=1.0, seed=0)"
    assert repr(HorizontalFlip(p=0.25, seed=3)) == "HorizontalFlip(p=0.25, seed=3)"
    assert repr(GaussianNoise(std=0.5)) == "GaussianNoise(std=0.5, p=1.0, seed=None)"


def test_defaults():
    crop = RandomCrop()
    flip = HorizontalFlip()
    noise = GaussianNoise()
    assert (crop.size, crop.padding, crop.padding_mode, crop.p) == (None, (2, 2, 2, 2), "zero", 1.0)
    assert flip.p == 0.5
    assert (noise.std, noise.p) == (0.1, 1.0)


# -- hflip -----------------------------------------------------------------------


def test_hflip_reverses_only_width():
    images = ramp()
    flipped = HorizontalFlip(p=1.0, seed=0)(images)
    assert flipped[0, 0].tolist() == [[3, 2, 1, 0], [7, 6, 5, 4], [11, 10, 9, 8]]
    assert flipped[1, 1].tolist() == [[39, 38, 37, 36], [43, 42, 41, 40], [47, 46, 45, 44]]


def test_hflip_apply_with_given_mask():
    images = ramp()
    flipped = HorizontalFlip().apply(images, {"apply": torch.tensor([False, True])})
    assert torch.equal(flipped[0], images[0])
    assert torch.equal(flipped[1], images[1].flip(-1))


def test_hflip_twice_is_identity():
    images = torch.randn(5, 3, 7, 6)
    flip = HorizontalFlip(p=1.0, seed=0)
    assert torch.equal(flip(flip(images)), images)


def test_hflip_decides_per_sample():
    images = same_images(400)
    flipped = HorizontalFlip(p=0.5, seed=0)(images)
    is_flipped = (flipped == images.flip(-1)).flatten(1).all(dim=1)
    is_kept = (flipped == images).flatten(1).all(dim=1)
    assert bool((is_flipped ^ is_kept).all())
    # 400 draws at p = 0.5: the count lies in 200 +- 60 (6 standard deviations).
    assert 140 <= int(is_flipped.sum()) <= 260


# -- random_crop -----------------------------------------------------------------


def test_crop_known_offset_matches_padded_slice():
    images = ramp()
    crop = RandomCrop(size=(3, 4), padding=(1, 2, 3, 0))
    parameters = {"apply": torch.tensor([True, True]), "top": torch.tensor([2, 0]), "left": torch.tensor([3, 0])}
    cropped = crop.apply(images, parameters)
    padded = F.pad(images, (1, 2, 3, 0))
    assert padded.shape == (2, 2, 6, 7)
    assert torch.equal(cropped[0], padded[0, :, 2:5, 3:7])
    assert torch.equal(cropped[1], padded[1, :, 0:3, 0:4])


def test_crop_padding_order_left_right_top_bottom():
    # One 3x4 channel 0..11, padded left 1, right 2, top 3, bottom 0.
    image = torch.arange(12, dtype=torch.float32).view(1, 1, 3, 4)
    crop = RandomCrop(size=(3, 4), padding=(1, 2, 3, 0))
    top_left = crop.apply(image, {"apply": torch.tensor([True]), "top": torch.tensor([2]), "left": torch.tensor([0])})
    assert top_left[0, 0].tolist() == [[0, 0, 0, 0], [0, 0, 1, 2], [0, 4, 5, 6]]
    bottom_right = crop.apply(image, {"apply": torch.tensor([True]), "top": torch.tensor([3]), "left": torch.tensor([3])})
    assert bottom_right[0, 0].tolist() == [[2, 3, 0, 0], [6, 7, 0, 0], [10, 11, 0, 0]]


def test_crop_smaller_size():
    image = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    crop = RandomCrop(size=2, padding=0)
    window = crop.apply(image, {"apply": torch.tensor([True]), "top": torch.tensor([1]), "left": torch.tensor([2])})
    assert window.shape == (1, 1, 2, 2)
    assert window[0, 0].tolist() == [[6, 7], [10, 11]]


def test_crop_unselected_sample_is_centered():
    images = ramp()
    crop = RandomCrop(padding=2)
    parameters = {"apply": torch.tensor([False, False]), "top": torch.tensor([0, 4]), "left": torch.tensor([4, 0])}
    assert torch.equal(crop.apply(images, parameters), images)


@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
def test_crop_padding_modes_match_functional_pad(padding_mode):
    images = ramp()
    crop = RandomCrop(padding=(1, 2, 2, 1), padding_mode=padding_mode)
    parameters = {"apply": torch.tensor([True, True]), "top": torch.tensor([0, 3]), "left": torch.tensor([3, 0])}
    cropped = crop.apply(images, parameters)
    padded = F.pad(images, (1, 2, 2, 1), mode=padding_mode)
    assert torch.equal(cropped[0], padded[0, :, 0:3, 3:7])
    assert torch.equal(cropped[1], padded[1, :, 3:6, 0:4])


def test_crop_outputs_are_padded_windows():
    images = same_images(64)
    cropped = RandomCrop(padding=2, seed=0)(images)
    padded = F.pad(images[:1], (2, 2, 2, 2))
    windows = {(top, left): padded[0, :, top : top + 8, left : left + 8] for top in range(5) for left in range(5)}
    found = []
    for sample in cropped:
        matches = [offset for offset, window in windows.items() if torch.equal(sample, window)]
        assert matches, "a cropped sample is not a window of the padded image"
        found.append(matches[0])
    # Each sample draws its own offset: 64 draws from 25 offsets cover most of them.
    assert len(set(found)) >= 15


def test_crop_offsets_cover_full_range():
    crop = RandomCrop(padding=2, seed=0)
    parameters = crop.sample(torch.zeros(500, 1, 28, 28), crop.generator)
    assert parameters["top"].min() == 0
    assert parameters["top"].max() == 4
    assert parameters["left"].min() == 0
    assert parameters["left"].max() == 4


def test_crop_size_larger_than_padded_image():
    crop = RandomCrop(size=(10, 10), padding=1)
    with pytest.raises(ValueError, match=r"random_crop size \(10, 10\) is larger than the padded images, 5x6"):
        crop(ramp())


def test_crop_reflect_padding_too_large():
    crop = RandomCrop(padding=3, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"padding_mode='reflect' must be smaller than the image side.*3x4"):
        crop(ramp())


# -- gaussian_noise ----------------------------------------------------------------


def test_noise_apply_with_given_noise():
    images = ramp()
    noise = torch.full(images.shape, 2.0)
    noisy = GaussianNoise(std=0.25).apply(images, {"apply": torch.tensor([True, False]), "noise": noise})
    assert torch.equal(noisy[0], images[0] + 0.5)
    assert torch.equal(noisy[1], images[1])


def test_noise_statistics():
    images = torch.zeros(64, 1, 28, 28)
    noisy = GaussianNoise(std=0.5, seed=0)(images)
    # 50,176 draws: the sample mean and std are within 1 % of 0 and 0.5.
    assert abs(noisy.mean().item()) < 0.01
    assert abs(noisy.std().item() - 0.5) < 0.005


def test_noise_differs_per_sample():
    noisy = GaussianNoise(std=0.1, seed=0)(same_images(2))
    assert not torch.equal(noisy[0], noisy[1])


def test_noise_selected_fraction():
    images = torch.zeros(400, 1, 4, 4)
    noisy = GaussianNoise(std=1.0, p=0.25, seed=0)(images)
    changed = (noisy != 0).flatten(1).any(dim=1)
    # 400 draws at p = 0.25: the count lies in 100 +- 52 (6 standard deviations).
    assert 48 <= int(changed.sum()) <= 152


def test_noise_zero_std_is_identity():
    images = torch.randn(3, 1, 5, 5)
    assert torch.equal(GaussianNoise(std=0.0, seed=0)(images), images)


# -- shared behaviour ----------------------------------------------------------------


def _build(name: str, **kwargs):
    if name == "compose":
        # A chain whose every step changes every sample, so compose's own p decides alone.
        kwargs = {"augmenters": ["hflip:p=1", "translate:max_shift=3"], **kwargs}
    return fcnnzoo.create_augmenter(name, **kwargs)


@pytest.mark.parametrize("name", BUILTIN_AUGMENTERS)
def test_p_zero_is_identity(name):
    images = torch.randn(16, 3, 10, 10)
    augmented = _build(name, p=0.0, seed=0)(images)
    assert torch.equal(augmented, images)
    assert augmented.data_ptr() != images.data_ptr()


@pytest.mark.parametrize("name", BUILTIN_AUGMENTERS)
def test_p_one_changes_every_sample(name):
    # Asymmetric images, so that a flip or a shifted crop always changes them.
    images = torch.randn(32, 1, 10, 10)
    augmented = _build(name, p=1.0, seed=0)(images)
    changed = (augmented != images).flatten(1).any(dim=1)
    if name == "random_crop":
        # A crop whose offset draw is the center leaves the image unchanged.
        assert int(changed.sum()) >= 28
    else:
        assert bool(changed.all())


@pytest.mark.parametrize("name", BUILTIN_AUGMENTERS)
def test_same_seed_same_outputs(name):
    images = torch.randn(16, 1, 12, 12)
    first = _build(name, p=0.5, seed=123)
    second = _build(name, p=0.5, seed=123)
    for _ in range(3):
        assert torch.equal(first(images), second(images))


@pytest.mark.parametrize("name", BUILTIN_AUGMENTERS)
def test_different_seeds_differ(name):
    images = torch.randn(64, 1, 12, 12)
    assert not torch.equal(_build(name, p=0.5, seed=1)(images), _build(name, p=0.5, seed=2)(images))


@pytest.mark.parametrize("name", BUILTIN_AUGMENTERS)
def test_calls_draw_fresh_randomness(name):
    images = torch.randn(64, 1, 12, 12)
    augmenter = _build(name, p=0.5, seed=0)
    assert not torch.equal(augmenter(images), augmenter(images))


@pytest.mark.parametrize("name", BUILTIN_AUGMENTERS)
def test_explicit_generator_leaves_own_untouched(name):
    images = torch.randn(16, 1, 12, 12)
    augmenter = _build(name, p=0.5, seed=7)
    with_generator = augmenter(images, generator=torch.Generator().manual_seed(99))
    again = augmenter(images, generator=torch.Generator().manual_seed(99))
    assert torch.equal(with_generator, again)
    assert torch.equal(augmenter(images), _build(name, p=0.5, seed=7)(images))


@pytest.mark.parametrize("name", BUILTIN_AUGMENTERS)
def test_manual_seed_restarts_stream(name):
    images = torch.randn(16, 1, 12, 12)
    augmenter = _build(name, p=0.5, seed=5)
    first = augmenter(images)
    augmenter(images)
    augmenter.manual_seed(5)
    assert torch.equal(augmenter(images), first)


@pytest.mark.parametrize("name", BUILTIN_AUGMENTERS)
def test_pickle_keeps_stream_position(name):
    images = torch.randn(16, 1, 12, 12)
    augmenter = _build(name, p=0.5, seed=5)
    augmenter(images)
    restored = pickle.loads(pickle.dumps(augmenter))
    assert torch.equal(restored(images), augmenter(images))


@pytest.mark.parametrize("name", BUILTIN_AUGMENTERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_keeps_shape_and_dtype(name, dtype):
    images = torch.randn(5, 3, 9, 11).to(dtype)
    augmented = _build(name, p=0.5, seed=0)(images)
    assert augmented.shape == images.shape
    assert augmented.dtype == dtype
    assert augmented.device == images.device


@pytest.mark.parametrize("name", BUILTIN_AUGMENTERS)
def test_empty_batch(name):
    images = torch.zeros(0, 1, 8, 8)
    assert _build(name, seed=0)(images).shape == (0, 1, 8, 8)


@pytest.mark.parametrize("name", BUILTIN_AUGMENTERS)
@pytest.mark.parametrize("shape", [(28, 28), (1, 28, 28), (1, 1, 1, 28, 28)])
def test_rejects_non_4d_input(name, shape):
    with pytest.raises(ValueError, match=rf"{name} expects a 4-D \(N, C, H, W\) batch, got shape"):
        _build(name, seed=0)(torch.zeros(shape))


@pytest.mark.parametrize("name", BUILTIN_AUGMENTERS)
def test_rejects_integer_images(name):
    with pytest.raises(TypeError, match=rf"{name} expects a floating-point batch, got dtype torch.uint8"):
        _build(name, seed=0)(torch.zeros(1, 1, 4, 4, dtype=torch.uint8))


@pytest.mark.parametrize("name", BUILTIN_AUGMENTERS)
def test_rejects_non_tensor(name):
    with pytest.raises(TypeError, match=f"{name} expects a torch.Tensor batch, got list"):
        _build(name, seed=0)([[0.0]])


@pytest.mark.parametrize("name", BUILTIN_AUGMENTERS)
def test_rejects_non_generator(name):
    with pytest.raises(TypeError, match=f"{name} generator must be a torch.Generator or None, got int"):
        _build(name, seed=0)(torch.zeros(1, 1, 4, 4), generator=3)


@pytest.mark.parametrize("name", BUILTIN_AUGMENTERS)
@pytest.mark.parametrize("p", [-0.1, 1.5, math.nan, math.inf])
def test_rejects_p_out_of_range(name, p):
    with pytest.raises(ValueError, match=rf"{name} p must be in \[0, 1\], got {p!r}"):
        _build(name, p=p)


@pytest.mark.parametrize("name", BUILTIN_AUGMENTERS)
def test_rejects_p_of_wrong_type(name):
    with pytest.raises(TypeError, match=f"{name} p must be a number in"):
        _build(name, p="0.5")


@pytest.mark.parametrize("name", BUILTIN_AUGMENTERS)
def test_rejects_bad_seed(name):
    with pytest.raises(ValueError, match=rf"{name} seed must be in \[0, 2\*\*64 - 1\], got -1"):
        _build(name, seed=-1)
    with pytest.raises(TypeError, match=f"{name} seed must be an int or None, got 1.5"):
        _build(name, seed=1.5)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"size": 0}, ValueError, r"random_crop size must be positive, got \(0, 0\)"),
        ({"size": (3, 4, 5)}, TypeError, r"random_crop size must be None, an int or a \(height, width\) pair"),
        ({"padding": -1}, ValueError, r"random_crop padding must not be negative, got \(-1, -1, -1, -1\)"),
        ({"padding": (1, 2)}, TypeError, r"random_crop padding must be an int or a \(left, right, top, bottom\) tuple"),
        ({"padding_mode": "mirror"}, ValueError, r"random_crop padding_mode must be one of 'zero', 'reflect', 'replicate', 'circular', got 'mirror'"),
    ],
)
def test_crop_rejects_bad_arguments(arguments, error, message):
    with pytest.raises(error, match=message):
        RandomCrop(**arguments)


@pytest.mark.parametrize(
    ("std", "error", "message"),
    [
        (-0.1, ValueError, r"gaussian_noise std must be a finite number >= 0, got -0.1"),
        (math.inf, ValueError, r"gaussian_noise std must be a finite number >= 0, got inf"),
        ("0.1", TypeError, r"gaussian_noise std must be a number, got '0.1'"),
    ],
)
def test_noise_rejects_bad_std(std, error, message):
    with pytest.raises(error, match=message):
        GaussianNoise(std=std)
