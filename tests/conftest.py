"""Shared fixtures: the digits dataset, a trained fcnn checkpoint and small test-only plugins."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import fcnnzoo
from fcnnzoo.data import DatasetSplits
from fcnnzoo.data import make_splits
from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.specs import ArchitectureSpec
from fcnnzoo.specs import DatasetSpec
from fcnnzoo.specs import QuantizerSpec

# Epochs of the shared fcnn run; the default recipe reaches >= 0.97 on digits within them.
FCNN_EPOCHS = 10


class TinyCNN(nn.Module):
    """One conv-ReLU-pool block and a linear classifier: trains on digits in well under a second."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 4) -> None:
        super().__init__()
        self.block = ConvReLUPool(in_channels, width, 3)
        self.classifier = nn.Linear(width * 13 * 13, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.block(x).flatten(1))


class HalfPrecisionQuantizer:
    """A test-only quantizer: stores the classifier weight as float16 in a buffer.

    It changes the ``state_dict`` keys (``classifier.weight`` becomes
    ``classifier.weight_half``), so a loader that skips ``quantize()`` fails.
    """

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def quantize(self, model: nn.Module) -> nn.Module:
        quantized = copy.deepcopy(model)
        linear = quantized.classifier
        half = (linear.weight.detach() * self.scale).to(torch.float16)
        del linear.weight
        linear.register_buffer("weight_half", half)
        linear.forward = lambda x, layer=linear: nn.functional.linear(x, layer.weight_half.float(), layer.bias)
        quantized.fcnnzoo_quantization = {"method": "test_half", "arguments": {"scale": self.scale}}
        return quantized


def make_synthetic_splits(name: str = "synthetic", train_count: int = 64, test_count: int = 32, seed: int = 0) -> DatasetSplits:
    """Build a two-class 28x28 dataset: a bright square in the left or the right half."""
    generator = torch.Generator().manual_seed(seed)

    def images_and_labels(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(count) % 2
        images = torch.rand(count, 1, 28, 28, generator=generator) * 0.2
        for index, label in enumerate(labels.tolist()):
            left = 4 if label == 0 else 18
            images[index, 0, 10:18, left : left + 6] += 0.8
        return images, labels

    train_images, train_labels = images_and_labels(train_count)
    test_images, test_labels = images_and_labels(test_count)
    return make_splits(name, train_images, train_labels, test_images, test_labels, ["left", "right"])


class ComponentsPlugin:
    """Registers ``tiny_cnn``, the ``test_half`` quantizer and the ``synthetic`` dataset."""

    @fcnnzoo.hookimpl
    def fcnnzoo_register_architectures(self) -> list[ArchitectureSpec]:
        return [ArchitectureSpec(name="tiny_cnn", factory=TinyCNN, description="test-only one-block CNN")]

    @fcnnzoo.hookimpl
    def fcnnzoo_register_quantizers(self) -> list[QuantizerSpec]:
        return [QuantizerSpec(name="test_half", factory=HalfPrecisionQuantizer, description="test-only float16 classifier")]

    @fcnnzoo.hookimpl
    def fcnnzoo_register_datasets(self) -> list[DatasetSpec]:
        def load(data_dir: Any = None) -> DatasetSplits:
            return make_synthetic_splits()

        return [DatasetSpec(name="synthetic", factory=load, description="test-only two-class squares")]


@pytest.fixture
def test_components():
    """Register the test-only components for one test, then remove them."""
    plugin = ComponentsPlugin()
    fcnnzoo.register_plugin(plugin, name="test-components")
    try:
        yield plugin
    finally:
        fcnnzoo.unregister_plugin("test-components")


@pytest.fixture(scope="session")
def digits() -> DatasetSplits:
    """The digits dataset, loaded once per session (treat as read-only)."""
    return fcnnzoo.load_dataset("digits")


@pytest.fixture
def synthetic() -> DatasetSplits:
    """A small two-class dataset that a tiny model learns in one epoch."""
    return make_synthetic_splits()


@pytest.fixture(scope="session")
def fcnn_run(tmp_path_factory) -> dict[str, Any]:
    """Train fcnn on digits with the default recipe once per session.

    Returns the report of ``train_to_checkpoint`` plus ``"path"``, the checkpoint
    folder. Tests must not modify the folder; copy it first.
    """
    from fcnnzoo.workflows import train_to_checkpoint

    out = tmp_path_factory.mktemp("fcnn-digits") / "checkpoint"
    report = train_to_checkpoint("fcnn", out, epochs=FCNN_EPOCHS, dataset="digits", seed=0, progress=False)
    return {**report, "path": Path(report["checkpoint"])}
