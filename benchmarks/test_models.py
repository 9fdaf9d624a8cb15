"""Speed of every registered architecture, fused against unfused.

The architectures come from ``fcnnzoo.list_models()`` at collection time, so
architectures from installed plugins are benchmarked too. Each group holds one
architecture and one measurement, with a ``fused=True`` and a ``fused=False``
model that share their weights:

- inference throughput at batch 256 and latency at batch 1, in eval mode
  under ``torch.no_grad()``;
- one training step at batch 64: forward, cross-entropy loss, backward and an
  Adam step, in train mode.

Every benchmark checks the fused model's output (and, for training, its loss
and parameter gradients) against the unfused model's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from pytest_benchmark.fixture import BenchmarkFixture
from reference_checks import OUTPUT_ATOL
from reference_checks import OUTPUT_RTOL
from reference_checks import assert_parameter_gradient_close
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import fcnnzoo
from fcnnzoo import _C
from fcnnzoo.nn import ConvReLUPool

INFERENCE_BATCH = 256
LATENCY_BATCH = 1
TRAINING_BATCH = 64
VARIANTS = ["fused", "unfused"]
ARCHITECTURES = fcnnzoo.list_models()


def build_models(name: str) -> tuple[nn.Module, nn.Module]:
    """Return a fused and an unfused model of one architecture with the same seeded weights."""
    torch.manual_seed(0)
    fused = fcnnzoo.create_model(name, fused=True)
    unfused = fcnnzoo.create_model(name, fused=False)
    unfused.load_state_dict(fused.state_dict())
    return fused, unfused


def make_batch(name: str, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return seeded random images of the architecture's default input size and random labels."""
    info = fcnnzoo.model_info(name)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, info["in_channels"], *info["input_size"], generator=generator)
    labels = torch.randint(0, info["num_classes"], (batch,), generator=generator)
    return images, labels


def record_model(benchmark: BenchmarkFixture, name: str, images: torch.Tensor, model: nn.Module) -> None:
    if benchmark.disabled:
        # --benchmark-disable only checks results, so skip the extra forward passes below.
        return
    benchmark.extra_info["architecture"] = name
    benchmark.extra_info["input_shape"] = list(images.shape)
    benchmark.extra_info["params"] = sum(parameter.numel() for parameter in model.parameters())
    if any(module.fused for module in model.modules() if isinstance(module, ConvReLUPool)):
        benchmark.extra_info["kernels"] = select_kernels(model, images)
    benchmark.extra_info["num_threads"] = torch.get_num_threads()


def count_flops(run: Callable[[], object]) -> int:
    """Return the FLOPs (two per multiply-add) of the convolutions and matrix products that run() executes."""
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def select_kernels(model: nn.Module, images: torch.Tensor) -> list[str]:
    """Return the fused forward kernel that the C++ dispatcher picks for each ConvReLUPool layer, in call order."""
    kernels: list[str] = []

    def record_kernel(module: ConvReLUPool, args: tuple[torch.Tensor, ...]) -> None:
        kernels.append(
            _C.select_kernel(
                tuple(args[0].shape),
                tuple(module.weight.shape),
                stride=module.stride,
                padding=module.padding,
                pool_kernel=module.pool_kernel,
                pool_stride=module.pool_stride,
                ceil_mode=module.ceil_mode,
            )
        )

    layers = [module for module in model.modules() if isinstance(module, ConvReLUPool)]
    handles = [layer.register_forward_pre_hook(record_kernel) for layer in layers]
    try:
        with torch.no_grad():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
    return kernels


def run_inference(benchmark: BenchmarkFixture, name: str, variant: str, batch: int, group: str) -> None:
    fused, unfused = build_models(name)
    model = fused if variant == "fused" else unfused
    fused.eval()
    unfused.eval()
    images, _ = make_batch(name, batch)

    benchmark.group = f"{name} {group}"
    record_model(benchmark, name, images, model)

    with torch.no_grad():
        if not benchmark.disabled:
            benchmark.extra_info["flop_count"] = count_flops(lambda: unfused(images))
        result = benchmark(model, images)
        expected = unfused(images)

    torch.testing.assert_close(result, expected, rtol=OUTPUT_RTOL, atol=OUTPUT_ATOL)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_model_inference(benchmark: BenchmarkFixture, name: str, variant: str) -> None:
    run_inference(benchmark, name, variant, INFERENCE_BATCH, f"inference, batch {INFERENCE_BATCH}")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_model_latency(benchmark: BenchmarkFixture, name: str, variant: str) -> None:
    run_inference(benchmark, name, variant, LATENCY_BATCH, f"latency, batch {LATENCY_BATCH}")


def forward_backward(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Run the forward pass and the loss's backward pass with dropout seeded, and return the loss."""
    torch.manual_seed(1)
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    return loss.detach()


def check_training_gradients(name: str, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Assert that one forward and backward pass of the fused model matches the unfused model's."""
    fused, unfused = build_models(name)
    fused.train()
    unfused.train()

    loss = forward_backward(fused, images, labels)
    expected_loss = forward_backward(unfused, images, labels)

    torch.testing.assert_close(loss, expected_loss, rtol=OUTPUT_RTOL, atol=OUTPUT_ATOL)
    expected_parameters = dict(unfused.named_parameters())
    for parameter_name, parameter in fused.named_parameters():
        expected = expected_parameters[parameter_name]
        assert parameter.grad is not None, f"fused model has no gradient for {parameter_name}"
        assert_parameter_gradient_close(parameter.grad, expected.grad, f"grad of {parameter_name}")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_model_training_step(benchmark: BenchmarkFixture, name: str, variant: str) -> None:
    images, labels = make_batch(name, TRAINING_BATCH)
    check_training_gradients(name, images, labels)

    fused, unfused = build_models(name)
    model = copy.deepcopy(fused if variant == "fused" else unfused)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def training_step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.detach()

    benchmark.group = f"{name} training step, batch {TRAINING_BATCH}"
    record_model(benchmark, name, images, model)
    if not benchmark.disabled:
        benchmark.extra_info["flop_count"] = count_flops(lambda: forward_backward(copy.deepcopy(unfused), images, labels))
    loss = benchmark(training_step)

    assert torch.isfinite(loss), f"training step of {name} ({variant}) gave a non-finite loss {float(loss)}"
