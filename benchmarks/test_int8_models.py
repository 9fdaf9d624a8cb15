"""Speed of static int8 ``fcnn`` inference against the float fused model.

One group, ``fcnn int8 inference, batch 256``, contains three variants of
the same seeded network on the same digits images: the float model on the fused
kernel, the float model on the PyTorch composite, and the ``int8`` model
calibrated on those images. Every benchmark checks that the int8 logits
stay close to the float logits and pick the same class for almost every image.
"""

from __future__ import annotations

import pytest
import torch
from pytest_benchmark.fixture import BenchmarkFixture
from torch import nn

import fcnnzoo

INFERENCE_BATCH = 256
VARIANTS = ["float fused", "float unfused", "int8"]
# The int8 logits may differ from the float ones by this share of the float
# logits' largest magnitude, and pick another class for this share of images.
MAX_RELATIVE_ERROR = 0.05
MAX_DISAGREEMENT = 0.02


@pytest.fixture(scope="module")
def digits_batch() -> torch.Tensor:
    """The first 256 normalized train images of digits."""
    return fcnnzoo.load_dataset("digits").train.tensors[0][:INFERENCE_BATCH].contiguous()


@pytest.fixture(scope="module")
def models(digits_batch: torch.Tensor) -> dict[str, nn.Module]:
    """The three variants, sharing the seeded float weights."""
    torch.manual_seed(0)
    fused = fcnnzoo.create_model("fcnn", fused=True).eval()
    unfused = fcnnzoo.create_model("fcnn", fused=False).eval()
    unfused.load_state_dict(fused.state_dict())
    calibration = list(digits_batch.split(32))
    int8 = fcnnzoo.create_quantizer("int8").quantize(fused, calibration=calibration)
    return {"float fused": fused, "float unfused": unfused, "int8": int8}


@pytest.mark.parametrize("variant", VARIANTS)
def test_fcnn_int8_inference(benchmark: BenchmarkFixture, models: dict[str, nn.Module], digits_batch: torch.Tensor, variant: str) -> None:
    model = models[variant]
    benchmark.group = f"fcnn int8 inference, batch {INFERENCE_BATCH}"
    benchmark.extra_info["num_threads"] = torch.get_num_threads()

    with torch.no_grad():
        expected = models["float unfused"](digits_batch)
        logits = benchmark(model, digits_batch)

    error = ((logits - expected).abs().max() / expected.abs().max()).item()
    disagreement = (logits.argmax(dim=1) != expected.argmax(dim=1)).float().mean().item()
    assert error <= MAX_RELATIVE_ERROR
    assert disagreement <= MAX_DISAGREEMENT
