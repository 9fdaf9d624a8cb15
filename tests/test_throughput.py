"""Tests of the interleaved throughput comparison behind the quantize report."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from fcnnzoo.throughput import compare_throughput


class _Sleeper(nn.Module):
    """Return its input after sleeping, so one call takes at least ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.calls = 0
        self.shapes: set[tuple[int, ...]] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.shapes.add(tuple(x.shape))
        time.sleep(self.seconds)
        return x


def test_compare_throughput_bounded_by_call_time():
    slow = _Sleeper(0.004)
    fast = _Sleeper(0.0)
    slow_rate, fast_rate = compare_throughput([slow, fast], torch.zeros(3, 1, 4, 4), batch_size=8, rounds=4)
    # A call of slow takes at least 4 ms, so 8 images per call give at most 2000 images/s.
    assert 0 < slow_rate <= 8 / 0.004
    assert fast_rate > 0
    assert slow.calls == fast.calls == 2 + 4
    assert slow.shapes == {(8, 1, 4, 4)}


def test_compare_throughput_restores_training_mode():
    model = nn.Sequential(nn.Dropout(0.5)).train()
    compare_throughput([model], torch.ones(2, 3), batch_size=4, rounds=1)
    assert model.training


@pytest.mark.parametrize(
    ("models", "images", "arguments", "message"),
    [
        ([], torch.ones(2, 3), {}, "at least one model"),
        ([nn.Identity()], torch.ones(0, 3), {}, "empty batch"),
        ([nn.Identity()], torch.ones(2, 3), {"rounds": 0}, "must be positive"),
        ([nn.Identity()], torch.ones(2, 3), {"batch_size": -1}, "must be positive"),
    ],
)
def test_compare_throughput_rejects_bad_input(models, images, arguments, message):
    with pytest.raises(ValueError, match=message):
        compare_throughput(models, images, **arguments)
