"""Tests of the conformance kit: every registered component passes, and broken ones are caught."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

import fcnnzoo
from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.specs import ArchitectureSpec
from fcnnzoo.specs import AugmenterSpec
from fcnnzoo.specs import QuantizerSpec
from fcnnzoo.testing import ConformanceError
from fcnnzoo.testing import check_architecture
from fcnnzoo.testing import check_augmenter
from fcnnzoo.testing import check_plugin
from fcnnzoo.testing import check_quantizer

PLUGIN_PACKAGES = sorted(path.name for path in (Path(__file__).parents[1] / "plugins").iterdir() if (path / "pyproject.toml").exists())


def _builtin_plugin_names() -> list[str]:
    """Every built-in plugin; each package in plugins/ runs check_plugin in its own tests."""
    return [info.name for info in fcnnzoo.list_plugins() if info.source == "builtin"]


def test_every_plugin_package_is_installed():
    distributions = {info.distribution for info in fcnnzoo.list_plugins() if info.status == "ok"}
    assert PLUGIN_PACKAGES
    for package in PLUGIN_PACKAGES:
        assert package in distributions, f"{package} is in plugins/ but not installed; run 'make install'"
        tests = (Path(__file__).parents[1] / "plugins" / package / "tests").glob("test_*.py")
        assert any("check_plugin(" in path.read_text() for path in tests), f"the tests of {package} do not run fcnnzoo.testing.check_plugin"


@pytest.mark.parametrize("plugin", _builtin_plugin_names())
def test_builtin_plugin_conforms(plugin):
    # compose has no default list of augmenters to chain.
    checked = check_plugin(plugin, {"compose": {"augmenters": ["hflip", "rotate:degrees=10"]}})
    info = {info.name: info for info in fcnnzoo.list_plugins()}[plugin]
    expected = sorted(component for component in info.components if not component.startswith("dataset:"))
    assert sorted(f"{kind}:{name}" for kind, names in checked.items() for name in names) == expected


@pytest.mark.parametrize("name", ["random_crop", "hflip", "gaussian_noise"])
def test_builtin_augmenter_with_arguments(name):
    check_augmenter(name, {"p": 0.5}, shape=(8, 3, 16, 12))


def test_quantizer_on_other_architectures():
    assert check_quantizer("int8_weight_only", model="lenet5") < 0.05
    assert check_quantizer("int8_weight_only", model="resnet8") < 0.05


# -- broken components the kit must catch --------------------------------------------


class WrongShape(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.block = ConvReLUPool(in_channels, 4, 3)
        self.head = nn.Linear(4 * 13 * 13, num_classes + 1)

    def forward(self, x):
        return self.head(self.block(x).flatten(1))


class NonFinite(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.head = nn.Linear(in_channels * 28 * 28, num_classes)

    def forward(self, x):
        return self.head(x.flatten(1)) / 0.0


class FusedKeysDiffer(nn.Module):
    """A model whose state_dict keys depend on ``fused``, which breaks the contract."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.block = ConvReLUPool(in_channels, 4, 3)
        self.head = nn.Linear(4 * 13 * 13, num_classes)

    def forward(self, x):
        return self.head(self.block(x).flatten(1))

    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        if not self.block.fused:
            state["extra"] = torch.zeros(1)
        return state


class Pooled(nn.Module):
    """Fully convolutional: any input of at least 3x3 works."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(self.conv(x)).flatten(1)


def _architectures(*specs: ArchitectureSpec):
    class Plugin:
        @fcnnzoo.hookimpl
        def fcnnzoo_register_architectures(self):
            return list(specs)

    return Plugin()


@pytest.mark.parametrize(
    ("factory", "problem"),
    [
        (WrongShape, r"forward returned shape \(2, 11\), expected \(2, 10\)"),
        (NonFinite, "forward returned non-finite logits"),
        (FusedKeysDiffer, "different state_dict keys"),
    ],
)
def test_kit_catches_bad_architecture(fcnnzoo_plugin, factory, problem):
    fcnnzoo_plugin(_architectures(ArchitectureSpec(name="bad_arch", factory=factory, description="broken on purpose")), name="bad")
    with pytest.raises(ConformanceError, match=f"architecture 'bad_arch': .*{problem}"):
        check_architecture("bad_arch")


@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        ((4, 4), r"declares min_input_size=\(4, 4\), but the smallest input with finite logits is \(3, 3\)"),
        ((2, 2), r"declares min_input_size=\(2, 2\), but the smallest input with finite logits is \(3, 3\)"),
    ],
)
def test_kit_checks_declared_min_input_size(fcnnzoo_plugin, declared, problem):
    spec = ArchitectureSpec(name="pooled", factory=Pooled, description="fully convolutional", min_input_size=declared)
    fcnnzoo_plugin(_architectures(spec), name="pooled-plugin")
    with pytest.raises(ConformanceError, match=problem):
        check_architecture("pooled")


def test_kit_accepts_correct_min_input_size(fcnnzoo_plugin):
    spec = ArchitectureSpec(name="pooled_ok", factory=Pooled, description="fully convolutional", min_input_size=(3, 3))
    fcnnzoo_plugin(_architectures(spec), name="pooled-ok")
    card = check_architecture("pooled_ok")
    assert card["min_input_size"] == [3, 3]
    assert card["params"] == 1 * 10 * 9 + 10


def test_kit_catches_description_with_newline(fcnnzoo_plugin):
    spec = ArchitectureSpec(name="wordy", factory=Pooled, description="line one\nline two", min_input_size=(3, 3))
    fcnnzoo_plugin(_architectures(spec), name="wordy-plugin")
    with pytest.raises(ConformanceError, match="the description must be one non-empty line"):
        check_architecture("wordy")


class ChangesDtype:
    def __call__(self, images, generator=None):
        return images.half()


class InPlace:
    def __call__(self, images, generator=None):
        return images.mul_(2)


class Unseeded:
    def __call__(self, images, generator=None):
        return images + torch.rand(images.shape, dtype=images.dtype)


class IgnoresSeed:
    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, images, generator=None):
        noise = torch.randn(images.shape, generator=generator, dtype=images.dtype) if generator is not None else torch.randn(images.shape, dtype=images.dtype)
        return images + noise


def _augmenters(**factories):
    class Plugin:
        @fcnnzoo.hookimpl
        def fcnnzoo_register_augmenters(self):
            return [AugmenterSpec(name=name, factory=factory, description="broken on purpose") for name, factory in factories.items()]

    return Plugin()


@pytest.mark.parametrize(
    ("factory", "problem"),
    [
        (ChangesDtype, r"turned a \(4, 1, 28, 28\) torch.float32 batch into \(4, 1, 28, 28\) torch.float16"),
        (InPlace, "changed its input batch in place"),
        (Unseeded, "gave different torch.float32 outputs for the same generator seed"),
        (IgnoresSeed, "two augmenters built with seed=0 gave different outputs"),
    ],
)
def test_kit_catches_bad_augmenter(fcnnzoo_plugin, factory, problem):
    fcnnzoo_plugin(_augmenters(bad_augmenter=factory), name="bad-augmenters")
    with pytest.raises(ConformanceError, match=f"augmenter 'bad_augmenter': {problem}"):
        check_augmenter("bad_augmenter")


class InPlaceQuantizer:
    def quantize(self, model):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.copy_(parameter.half().float())
        return copy.deepcopy(model)


class NoisyQuantizer:
    def quantize(self, model):
        noisy = copy.deepcopy(model)
        with torch.no_grad():
            for parameter in noisy.parameters():
                parameter.add_(torch.randn_like(parameter))
        return noisy


class ReturnsSelf:
    def quantize(self, model):
        return model


def _quantizers(**factories):
    class Plugin:
        @fcnnzoo.hookimpl
        def fcnnzoo_register_quantizers(self):
            return [QuantizerSpec(name=name, factory=factory, description="broken on purpose") for name, factory in factories.items()]

    return Plugin()


@pytest.mark.parametrize(
    ("factory", "problem"),
    [
        (InPlaceQuantizer, "quantize\\(model\\) changed the float model"),
        (NoisyQuantizer, "the quantized logits differ from the float logits by"),
        (ReturnsSelf, "quantize\\(model\\) must return a new nn.Module"),
        (object, "the factory built a object, which has no quantize\\(model\\) method"),
    ],
)
def test_kit_catches_bad_quantizer(fcnnzoo_plugin, factory, problem):
    fcnnzoo_plugin(_quantizers(bad_quantizer=factory), name="bad-quantizers")
    with pytest.raises(ConformanceError, match=f"quantizer 'bad_quantizer': {problem}"):
        check_quantizer("bad_quantizer")


def test_check_plugin_unknown_or_broken():
    with pytest.raises(ConformanceError, match="plugin 'nobody' is not registered"):
        check_plugin("nobody")


def test_check_plugin_runs_every_component(fcnnzoo_plugin):
    spec = ArchitectureSpec(name="pooled_plugin_model", factory=Pooled, description="fully convolutional", min_input_size=(3, 3))
    fcnnzoo_plugin(_architectures(spec), name="whole-plugin")
    assert check_plugin("whole-plugin") == {"architecture": ["pooled_plugin_model"], "augmenter": [], "quantizer": []}
