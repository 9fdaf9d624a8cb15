"""Tests of model cards: counts checked by hand, the minimum input size and the cache."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fcnnzoo
from fcnnzoo import cards
from fcnnzoo.cards import count_macs
from fcnnzoo.cards import find_min_input_size
from fcnnzoo.specs import ArchitectureSpec
from fcnnzoo.testing import isolated_registry


def test_fcnn_card_counts_by_hand():
    # conv 3x3 1->32 at 26x26, conv 3x3 32->64 at 11x11, linear 64*5*5 -> 64, linear 64 -> 10.
    macs = 32 * 9 * 26 * 26 + 64 * 32 * 9 * 11 * 11 + 64 * 5 * 5 * 64 + 64 * 10
    params = (32 * 9 + 32) + (64 * 32 * 9 + 64) + (64 * 5 * 5 * 64 + 64) + (64 * 10 + 10)
    card = fcnnzoo.model_info("fcnn")
    assert card["macs"] == macs == 2_528_000
    assert card["params"] == params == 121_930
    assert card["min_input_size"] is None


def test_lenet5_card_counts_by_hand():
    # conv 5x5 (padding 2) 1->6 at 28x28, conv 5x5 6->16 at 10x10, linear 400 -> 120 -> 84 -> 10.
    macs = 6 * 25 * 28 * 28 + 16 * 6 * 25 * 10 * 10 + 400 * 120 + 120 * 84 + 84 * 10
    card = fcnnzoo.model_info("lenet5")
    assert card["macs"] == macs == 416_520
    assert card["params"] == sum(p.numel() for p in fcnnzoo.create_model("lenet5").parameters())


def test_card_fields():
    card = fcnnzoo.model_info("allconv")
    assert card["name"] == "allconv"
    assert card["qualified_name"] == "fcnnzoo.builtin.architectures:allconv"
    assert card["plugin"] == "fcnnzoo.builtin.architectures"
    assert card["distribution"] == "fcnnzoo"
    assert card["version"] == fcnnzoo.__version__
    assert card["in_channels"] == 1
    assert card["num_classes"] == 10
    assert card["input_size"] == [28, 28]
    assert card["min_input_size"] == [8, 8]
    assert card["tags"] == ["fully-convolutional"]
    assert card["description"]


def test_macs_count_fused_model_as_zero_convs():
    # The fused op is opaque to the FLOP counter; cards therefore use fused=False builds.
    torch.manual_seed(0)
    fused = fcnnzoo.create_model("fcnn", fused=True).eval()
    images = torch.zeros(1, 1, 28, 28)
    assert count_macs(fused, images) == 64 * 5 * 5 * 64 + 64 * 10


def test_min_input_size_search():
    model = nn.Sequential(nn.Conv2d(1, 2, (5, 3)), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert find_min_input_size(model, 1, (28, 28)) == (5, 3)
    fixed = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2))
    assert find_min_input_size(fixed, 1, (28, 28)) is None


def test_card_is_cached(monkeypatch):
    calls = []
    original = cards.compute_card

    def counting(*args, **kwargs):
        calls.append(args[0].name)
        return original(*args, **kwargs)

    monkeypatch.setattr(cards, "compute_card", counting)
    with isolated_registry():
        first = fcnnzoo.model_info("lenet5")
        first["params"] = -1
        second = fcnnzoo.model_info("lenet5")
    assert calls == ["lenet5"]
    assert second["params"] > 0


class Widths:
    def __init__(self, width: int) -> None:
        self.width = width

    @fcnnzoo.hookimpl
    def fcnnzoo_register_architectures(self):
        width = self.width

        def build(in_channels, num_classes):
            return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 28 * 28, width), nn.Linear(width, num_classes))

        return [ArchitectureSpec(name="widths", factory=build, description="two linear layers")]


def test_card_cache_dropped_on_unregister(fcnnzoo_plugin):
    fcnnzoo.register_plugin(Widths(4), name="widths")
    assert fcnnzoo.model_info("widths")["macs"] == 28 * 28 * 4 + 4 * 10
    fcnnzoo.unregister_plugin("widths")
    fcnnzoo_plugin(Widths(8), name="widths")
    assert fcnnzoo.model_info("widths")["macs"] == 28 * 28 * 8 + 8 * 10


def test_card_of_clashing_name_uses_qualified_name(fcnnzoo_plugin):
    fcnnzoo_plugin(Widths(2), name="clashing")
    fcnnzoo_plugin(_Renamed(), name="other")
    with pytest.raises(fcnnzoo.DuplicateNameError, match="'clashing:widths' or 'other:widths'"):
        fcnnzoo.model_info("widths")
    card = fcnnzoo.model_info("other:widths")
    assert card["name"] == "other:widths"
    assert card["plugin"] == "other"
    assert card["macs"] == 28 * 28 * 3 + 3 * 10


class _Renamed(Widths):
    def __init__(self) -> None:
        super().__init__(3)
