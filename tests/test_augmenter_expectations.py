"""Hand-computed checks of rotate, translate, random_erasing, brightness_contrast and compose.

Also covers seeding across DataLoader workers and epochs, spec strings from
Python, and bad augmenter input on the command line.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from cli_runs import run
from torch.utils.data import Dataset

import fcnnzoo
from fcnnzoo.augment import worker_seed
from fcnnzoo.augmenters.compose import Compose
from fcnnzoo.augmenters.geometric import Rotate
from fcnnzoo.augmenters.geometric import Translate
from fcnnzoo.augmenters.photometric import BrightnessContrast
from fcnnzoo.augmenters.photometric import RandomErasing
from fcnnzoo.augmenters.sampling import resample
from fcnnzoo.component_spec import format_component_spec
from fcnnzoo.component_spec import parse_component_spec

NEW_AUGMENTERS = ["rotate", "translate", "random_erasing", "brightness_contrast", "compose"]


def ramp(count: int = 2, channels: int = 2, height: int = 3, width: int = 4) -> torch.Tensor:
    """Return a batch whose values count up 0, 1, 2, ... in memory order."""
    return torch.arange(count * channels * height * width, dtype=torch.float32).view(count, channels, height, width)


def everyone(count: int) -> torch.Tensor:
    return torch.ones(count, dtype=torch.bool)


# -- registration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [("rotate", Rotate), ("translate", Translate), ("random_erasing", RandomErasing), ("brightness_contrast", BrightnessContrast)],
)
def test_new_augmenters_registered(name, cls):
    assert name in fcnnzoo.list_augmenters()
    assert type(fcnnzoo.create_augmenter(name, seed=0)) is cls
    plugin = next(info for info in fcnnzoo.list_plugins() if info.name == "fcnnzoo.builtin.augmenters")
    assert f"augmenter:{name}" in plugin.components


def test_repr_of_new_augmenters():
    assert repr(Rotate(seed=1)) == "Rotate(degrees=(-15.0, 15.0), interpolation='bilinear', padding_mode='zero', p=1.0, seed=1)"
    assert repr(Translate(max_shift=(1, 2))) == "Translate(max_shift=(1.0, 2.0), interpolation='bilinear', padding_mode='zero', p=1.0, seed=None)"
    assert repr(RandomErasing()) == "RandomErasing(scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0, p=0.5, seed=None)"
    assert repr(BrightnessContrast(brightness=0.5, contrast=0.25)) == "BrightnessContrast(brightness=0.5, contrast=0.25, p=1.0, seed=None)"


# -- rotate ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("angle", "turns"), [(90.0, 1), (180.0, 2), (270.0, 3), (-90.0, 3), (360.0, 0), (450.0, 1)])
def test_rotate_right_angles_equal_rot90(angle, turns):
    images = ramp(2, 3, 5, 5)
    rotated = Rotate().apply(images, {"apply": everyone(2), "angle": torch.tensor([angle, angle])})
    assert torch.equal(rotated, torch.rot90(images, turns, dims=(-2, -1)))


def test_rotate_90_on_2x2_by_hand():
    image = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    rotated = Rotate().apply(image, {"apply": everyone(1), "angle": torch.tensor([90.0])})
    # Counterclockwise: the right column becomes the top row.
    assert rotated[0, 0].tolist() == [[2.0, 4.0], [1.0, 3.0]]


def test_rotate_180_on_rectangle_flips_both_axes():
    images = ramp()
    rotated = Rotate().apply(images, {"apply": everyone(2), "angle": torch.tensor([180.0, -180.0])})
    assert torch.equal(rotated, images.flip(-1).flip(-2))


def test_rotate_degrees_pair_through_call():
    images = ramp(4, 1, 6, 6)
    rotated = Rotate(degrees=(90, 90), seed=0)(images)
    assert torch.equal(rotated, torch.rot90(images, 1, dims=(-2, -1)))


def test_rotate_45_by_hand():
    # 3x3 ramp 0..8 turned by 45 degrees, with s = 1 / sqrt(2). The center stays.
    image = torch.arange(9, dtype=torch.float32).view(1, 1, 3, 3)
    rotated = Rotate().apply(image, {"apply": everyone(1), "angle": torch.tensor([45.0])})
    s = 1 / math.sqrt(2)
    assert rotated[0, 0, 1, 1].item() == pytest.approx(4.0, abs=1e-6)
    # Output (0, 0) reads source (row 1 - 2s, col 1): between the zero row above
    # the image and pixel (0, 1) = 1, which gets the weight 2 - 2s.
    assert rotated[0, 0, 0, 0].item() == pytest.approx(2 - 2 * s, abs=1e-6)
    # Output (0, 1) reads source (row 1 - s, col 1 + s): weights s and 1 - s on
    # rows 0 and 1, 1 - s and s on columns 1 and 2, which gives 4 - 2s.
    assert rotated[0, 0, 0, 1].item() == pytest.approx(4 - 2 * s, abs=1e-6)


def test_rotate_nearest_keeps_values():
    images = ramp(1, 1, 7, 7)
    rotated = Rotate(interpolation="nearest").apply(images, {"apply": everyone(1), "angle": torch.tensor([30.0])})
    values = set(images.flatten().tolist()) | {0.0}
    assert set(rotated.flatten().tolist()) <= values


def test_rotate_replicate_fills_from_edge():
    image = torch.full((1, 1, 5, 5), 7.0)
    rotated = Rotate(padding_mode="replicate").apply(image, {"apply": everyone(1), "angle": torch.tensor([30.0])})
    assert torch.allclose(rotated, image)
    zero = Rotate().apply(image, {"apply": everyone(1), "angle": torch.tensor([30.0])})
    assert zero[0, 0, 0, 0].item() < 7.0


def test_rotate_unselected_sample_copied():
    images = ramp()
    rotated = Rotate().apply(images, {"apply": torch.tensor([False, True]), "angle": torch.tensor([33.0, 180.0])})
    assert torch.equal(rotated[0], images[0])
    assert torch.equal(rotated[1], images[1].flip(-1).flip(-2))


def test_rotate_angles_cover_range():
    rotate = Rotate(degrees=10, seed=0)
    angles = rotate.sample(torch.zeros(1000, 1, 4, 4), rotate.generator)["angle"]
    assert angles.min().item() >= -10.0
    assert angles.max().item() <= 10.0
    assert angles.min().item() < -9.5
    assert angles.max().item() > 9.5


# -- translate ------------------------------------------------------------------------------


@pytest.mark.parametrize("padding_mode", ["zero", "reflect", "replicate", "circular"])
@pytest.mark.parametrize(("dy", "dx"), [(1, 2), (-2, 1), (0, -3), (2, -2)])
def test_translate_integer_shift_matches_pad(padding_mode, dy, dx):
    images = ramp(1, 2, 4, 5)
    shifted = Translate(padding_mode=padding_mode).apply(
        images, {"apply": everyone(1), "dy": torch.tensor([float(dy)]), "dx": torch.tensor([float(dx)])}
    )
    margin = 3
    mode = "constant" if padding_mode == "zero" else padding_mode
    padded = F.pad(images, (margin,) * 4, mode=mode)
    expected = padded[:, :, margin - dy : margin - dy + 4, margin - dx : margin - dx + 5]
    assert torch.equal(shifted, expected)


def test_translate_right_by_one_by_hand():
    image = torch.arange(12, dtype=torch.float32).view(1, 1, 3, 4)
    shifted = Translate().apply(image, {"apply": everyone(1), "dy": torch.tensor([0.0]), "dx": torch.tensor([1.0])})
    assert shifted[0, 0].tolist() == [[0, 0, 1, 2], [0, 4, 5, 6], [0, 8, 9, 10]]


def test_translate_half_pixel_interpolates():
    image = torch.arange(4, dtype=torch.float32).view(1, 1, 1, 4)
    shifted = Translate(padding_mode="replicate").apply(image, {"apply": everyone(1), "dy": torch.tensor([0.0]), "dx": torch.tensor([0.5])})
    assert shifted[0, 0, 0].tolist() == [0.0, 0.5, 1.5, 2.5]


def test_translate_nearest_gives_whole_pixels():
    translate = Translate(max_shift=3, interpolation="nearest", seed=0)
    images = ramp(64, 1, 6, 6)
    shifted = translate(images)
    values = set(images.flatten().tolist()) | {0.0}
    assert set(shifted.flatten().tolist()) <= values


def test_translate_per_axis_limits():
    translate = Translate(max_shift=(0, 2), seed=0)
    parameters = translate.sample(torch.zeros(500, 1, 4, 4), translate.generator)
    assert torch.all(parameters["dy"] == 0)
    assert parameters["dx"].abs().max().item() <= 2.0
    assert parameters["dx"].abs().max().item() > 1.9


# -- random_erasing ----------------------------------------------------------------------------


def test_erasing_known_rectangle_by_hand():
    images = ramp(2, 1, 3, 4)
    parameters = {
        "apply": torch.tensor([True, False]),
        "top": torch.tensor([1, 0]),
        "left": torch.tensor([2, 0]),
        "height": torch.tensor([2, 3]),
        "width": torch.tensor([1, 4]),
    }
    erased = RandomErasing(value=-1.0).apply(images, parameters)
    assert erased[0, 0].tolist() == [[0, 1, 2, 3], [4, 5, -1, 7], [8, 9, -1, 11]]
    assert torch.equal(erased[1], images[1])


def test_erasing_covers_all_channels():
    images = ramp(1, 3, 4, 4)
    parameters = {"apply": everyone(1), "top": torch.tensor([0]), "left": torch.tensor([0]), "height": torch.tensor([2]), "width": torch.tensor([2])}
    erased = RandomErasing().apply(images, parameters)
    assert torch.all(erased[0, :, :2, :2] == 0)
    assert torch.equal(erased[0, :, 2:, :], images[0, :, 2:, :])


def test_erasing_random_value_uses_noise():
    images = torch.zeros(1, 1, 2, 2)
    noise = torch.tensor([[[[5.0, 6.0], [7.0, 8.0]]]])
    parameters = {
        "apply": everyone(1),
        "top": torch.tensor([0]),
        "left": torch.tensor([1]),
        "height": torch.tensor([2]),
        "width": torch.tensor([1]),
        "noise": noise,
    }
    assert RandomErasing(value="random").apply(images, parameters)[0, 0].tolist() == [[0, 6], [0, 8]]


def test_erasing_rectangles_fit_and_follow_scale():
    erasing = RandomErasing(scale=(0.1, 0.2), ratio=(0.5, 2.0), seed=0)
    parameters = erasing.sample(torch.zeros(2000, 1, 20, 30), erasing.generator)
    area = (parameters["height"] * parameters["width"]).to(torch.float64) / 600
    assert torch.all(parameters["top"] >= 0)
    assert torch.all(parameters["top"] + parameters["height"] <= 20)
    assert torch.all(parameters["left"] + parameters["width"] <= 30)
    # Rounding the sides to whole pixels moves the area a little beyond the range.
    assert area.min().item() > 0.07
    assert area.max().item() < 0.25
    assert area.mean().item() == pytest.approx(0.15, abs=0.01)


def test_erasing_erases_one_rectangle():
    erased = RandomErasing(p=1.0, seed=3)(torch.ones(50, 1, 10, 10))
    for sample in erased[:, 0]:
        zero_rows = torch.nonzero((sample == 0).any(dim=1)).flatten()
        zero_cols = torch.nonzero((sample == 0).any(dim=0)).flatten()
        box = sample[zero_rows.min() : zero_rows.max() + 1, zero_cols.min() : zero_cols.max() + 1]
        assert torch.all(box == 0)
        assert int((sample == 0).sum()) == box.numel()


# -- brightness_contrast --------------------------------------------------------------------------


def test_brightness_contrast_by_hand():
    image = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    parameters = {"apply": everyone(1), "brightness": torch.tensor([0.5]), "contrast": torch.tensor([2.0])}
    changed = BrightnessContrast().apply(image, parameters)
    # Mean 1.5: (x - 1.5) * 2 + 1.5 + 0.5.
    assert changed[0, 0].tolist() == [[-1.0, 1.0], [3.0, 5.0]]


def test_brightness_contrast_mean_over_all_channels():
    images = ramp(2, 2, 1, 2)
    parameters = {"apply": torch.tensor([True, False]), "brightness": torch.tensor([0.0, 9.0]), "contrast": torch.tensor([0.0, 9.0])}
    changed = BrightnessContrast().apply(images, parameters)
    assert torch.equal(changed[0], torch.full((2, 1, 2), 1.5))
    assert torch.equal(changed[1], images[1])


def test_brightness_contrast_ranges():
    augmenter = BrightnessContrast(brightness=0.3, contrast=0.5, seed=0)
    parameters = augmenter.sample(torch.zeros(1000, 1, 2, 2), augmenter.generator)
    assert parameters["brightness"].abs().max().item() <= 0.3
    assert parameters["contrast"].min().item() >= 0.5
    assert parameters["contrast"].max().item() <= 1.5
    assert parameters["contrast"].max().item() > 1.45


# -- compose ----------------------------------------------------------------------------------------


def test_compose_applies_in_order():
    images = ramp()
    chain = Compose([("hflip", {"p": 1.0}), "translate:max_shift=[0,0]"], seed=0)
    assert torch.equal(chain(images), images.flip(-1))


def test_compose_of_objects_matches_manual_chain():
    images = ramp(8, 1, 6, 6)
    rotate = Rotate(degrees=(90, 90), seed=0)
    erase = RandomErasing(p=1.0, seed=4)
    expected = RandomErasing(p=1.0, seed=4)(torch.rot90(images, 1, dims=(-2, -1)))
    assert torch.equal(Compose([rotate, erase])(images), expected)


def test_compose_seed_drives_unseeded_steps():
    images = torch.randn(16, 1, 8, 8)
    first = fcnnzoo.create_augmenter("compose", augmenters=["rotate", "brightness_contrast"], seed=5)
    second = fcnnzoo.create_augmenter("compose", augmenters=["rotate", "brightness_contrast"], seed=5)
    assert torch.equal(first(images), second(images))


def test_compose_p_selects_samples():
    images = torch.randn(400, 1, 4, 4)
    chain = Compose(["hflip:p=1"], p=0.25, seed=0)
    out = chain(images)
    flipped = (out == images.flip(-1)).flatten(1).all(dim=1)
    kept = (out == images).flatten(1).all(dim=1)
    assert bool((flipped | kept).all())
    # 400 draws at p = 0.25: 100 +- 52 (6 standard deviations).
    assert 48 <= int(flipped.sum()) <= 152


def test_compose_shape_change_needs_p_one():
    images = ramp(2, 1, 6, 6)
    assert Compose(["random_crop:size=4,padding=0"])(images).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"compose with p=0.5 needs augmenters that keep the batch shape"):
        Compose(["random_crop:size=4,padding=0"], p=0.5)(images)


@pytest.mark.parametrize(
    ("augmenters", "error", "message"),
    [
        ([], ValueError, r"compose needs a non-empty list of augmenters"),
        ("hflip", TypeError, r"compose augmenters must be a list"),
        ([3], TypeError, r"compose augmenters must be augmenters, spec strings"),
        (["hflp"], ValueError, r"Unknown augmenter 'hflp'. Did you mean 'hflip'"),
    ],
)
def test_compose_rejects_bad_lists(augmenters, error, message):
    with pytest.raises(error, match=message):
        Compose(augmenters)


def test_compose_apply_not_supported():
    with pytest.raises(NotImplementedError, match="call it instead"):
        Compose(["hflip"]).apply(ramp(), {"apply": everyone(2)})


# -- spec strings from Python ------------------------------------------------------------------


def test_create_augmenter_from_spec():
    augmenter = fcnnzoo.create_augmenter("rotate:degrees=[-5,20],padding_mode=replicate", seed=3)
    assert augmenter.degrees == (-5.0, 20.0)
    assert augmenter.padding_mode == "replicate"
    assert augmenter.seed == 3


def test_create_augmenter_spec_conflict():
    with pytest.raises(ValueError, match=r"both set p"):
        fcnnzoo.create_augmenter("hflip:p=0.5", p=0.2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rotate:degrees=[-10,30]", ("rotate", {"degrees": [-10, 30]})),
        ("compose:augmenters=[hflip,rotate],p=0.5", ("compose", {"augmenters": ["hflip", "rotate"], "p": 0.5})),
        ("x:empty=[]", ("x", {"empty": []})),
    ],
)
def test_parse_spec_lists(text, expected):
    assert parse_component_spec(text) == expected


@pytest.mark.parametrize(("text", "message"), [("x:a=[1,2", "not closed"), ("x:a=1]", "no matching"), ("x:a=[[1]]", "nested")])
def test_parse_spec_rejects_brackets(text, message):
    with pytest.raises(ValueError, match=message):
        parse_component_spec(text)


def test_format_spec_round_trip():
    arguments = {"degrees": [-10, 30], "p": 0.5, "flag": True}
    assert parse_component_spec(format_component_spec("rotate", arguments)) == ("rotate", arguments)


# -- argument checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "arguments", "error", "message"),
    [
        ("rotate", {"degrees": "ten"}, TypeError, r"rotate degrees must be a finite number or a \(low, high\) pair"),
        ("rotate", {"degrees": -5}, ValueError, r"rotate degrees must be a number >= 0"),
        ("rotate", {"degrees": (10, -10)}, ValueError, r"low <= high"),
        ("rotate", {"interpolation": "cubic"}, ValueError, r"rotate interpolation must be one of 'bilinear', 'nearest', got 'cubic'"),
        ("rotate", {"padding_mode": "mirror"}, ValueError, r"rotate padding_mode must be one of"),
        ("translate", {"max_shift": "2"}, TypeError, r"translate max_shift must be a finite number"),
        ("translate", {"max_shift": -1}, ValueError, r"translate max_shift must not be negative"),
        ("random_erasing", {"scale": (0.5, 0.1)}, ValueError, r"random_erasing scale must satisfy 0 <= min <= max <= 1"),
        ("random_erasing", {"scale": 0.1}, TypeError, r"random_erasing scale must be a \(min, max\) pair"),
        ("random_erasing", {"ratio": (0, 1)}, ValueError, r"random_erasing ratio must be positive"),
        ("random_erasing", {"value": "noise"}, ValueError, r"random_erasing value must be a number or 'random', got 'noise'"),
        ("random_erasing", {"value": None}, TypeError, r"random_erasing value must be a finite number or 'random'"),
        ("brightness_contrast", {"brightness": -0.1}, ValueError, r"brightness_contrast brightness must be a finite number >= 0"),
        ("brightness_contrast", {"contrast": 1.5}, ValueError, r"brightness_contrast contrast must be in \[0, 1\]"),
        ("brightness_contrast", {"contrast": "x"}, TypeError, r"brightness_contrast contrast must be a number"),
    ],
)
def test_new_augmenters_reject_bad_arguments(name, arguments, error, message):
    with pytest.raises(error, match=message):
        fcnnzoo.create_augmenter(name, **arguments)


# -- DataLoader workers and epochs --------------------------------------------------------------------


class AugmentedImages(Dataset):
    """Eight identical images, each augmented on its own when it is read."""

    def __init__(self, augmenter) -> None:
        self.augmenter = augmenter
        self.image = torch.arange(36, dtype=torch.float32).view(1, 1, 6, 6)

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.augmenter(self.image)[0]


def _epochs(augmenter, loader_seed: int, epochs: int = 2) -> list[torch.Tensor]:
    loader = DataLoader(
        AugmentedImages(augmenter), batch_size=4, num_workers=2, generator=torch.Generator().manual_seed(loader_seed)
    )
    return [torch.cat(list(loader)) for _ in range(epochs)]


def test_workers_and_epochs_draw_distinct_values():
    first_epoch, second_epoch = _epochs(BrightnessContrast(brightness=1.0, seed=0), loader_seed=0)
    # Worker 0 reads images 0-3 and worker 1 images 4-7: every image differs.
    assert len({tuple(image.flatten().tolist()) for image in first_epoch}) == 8
    assert not torch.equal(first_epoch, second_epoch)
    # The same loader seed repeats the same values.
    again = _epochs(BrightnessContrast(brightness=1.0, seed=0), loader_seed=0)
    assert torch.equal(again[0], first_epoch)
    assert torch.equal(again[1], second_epoch)


def test_worker_seed_mixes_both_seeds():
    assert worker_seed(0, 10) != worker_seed(0, 11)
    assert worker_seed(0, 10) != worker_seed(1, 10)
    assert worker_seed(None, 10) == worker_seed(None, 10)
    assert 0 <= worker_seed(2**64 - 1, 2**64 + 5) < 2**64


def test_main_process_generator_not_reseeded():
    augmenter = BrightnessContrast(seed=0)
    first = augmenter(ramp())
    assert torch.equal(BrightnessContrast(seed=0)(ramp()), first)


# -- resample -------------------------------------------------------------------------------------------


def test_resample_identity_is_exact():
    images = torch.randn(3, 2, 5, 7)
    rows = torch.arange(5, dtype=torch.float32).view(1, 5, 1).expand(3, 5, 7)
    cols = torch.arange(7, dtype=torch.float32).view(1, 1, 7).expand(3, 5, 7)
    for mode in ("zero", "reflect", "replicate", "circular"):
        assert torch.equal(resample(images, rows, cols, "bilinear", mode), images)
        assert torch.equal(resample(images, rows, cols, "nearest", mode), images)


def test_resample_single_pixel_reflect():
    image = torch.full((1, 1, 1, 1), 3.0)
    out = resample(image, torch.full((1, 1, 1), -2.0), torch.full((1, 1, 1), 4.0), "bilinear", "reflect")
    assert out.item() == 3.0


# -- command line ---------------------------------------------------------------------------------------


def _assert_usage_error(code: int, out: str, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ("rotat:degrees=10", ["Unknown augmenter 'rotat'", "Did you mean 'rotate'"]),
        ("rotate:degrees=abc", ["'rotate'", "degrees", "'abc'"]),
        ("translate:max_shift=true", ["'translate'", "max_shift", "True"]),
        ("random_erasing:scale=0.3", ["'random_erasing'", "scale", "0.3"]),
        ("brightness_contrast:contrast=2", ["contrast must be in [0, 1], got 2"]),
        ("rotate:degree=10", ["'degree'", "degrees"]),
        ("compose", ["compose needs a non-empty list", "repeat --augment"]),
        ("compose:augmenters=[rotate,hflp]", ["Unknown augmenter 'hflp'", "Did you mean 'hflip'"]),
    ],
)
def test_cli_rejects_bad_augmenter(tmp_path, capsys, spec, fragments):
    code, out, err = run(capsys, "train", "fcnn", "--epochs", "1", "--augment", spec, "--out", tmp_path / "run")
    _assert_usage_error(code, out, err, *fragments)
    assert not (tmp_path / "run").exists()


def test_cli_trains_with_new_augmenters(test_components, tmp_path, capsys):
    code, out, err = run(
        capsys,
        "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "1", "--out", tmp_path / "run", "--json",
        "--augment", "rotate:degrees=10,padding_mode=replicate",
        "--augment", "translate:max_shift=[1,2]",
        "--augment", "random_erasing:p=0.5",
        "--augment", "compose:augmenters=[brightness_contrast,hflip],p=0.5",
    )
    assert code == 0, err
    assert "compose" in out
