"""Comparisons of the fused results with the PyTorch composite, shared by the benchmark modules."""

from __future__ import annotations

import torch

OUTPUT_RTOL = 1e-5
OUTPUT_ATOL = 1e-4

# Rounding in the fused kernels (Winograd in particular) differs from oneDNN's
# by about 1e-6 relative. Where two values of a pool window are that close, the
# two paths can pick different winners and route one gradient value to another
# input position. Gradients are therefore compared with room for a few such
# flips: a flip moves two input-gradient elements and shifts a weight gradient
# by well under 1% of its norm, while a wrong backward pass breaks both checks.
MAX_FLIPPED_FRACTION = 1e-3
MAX_RELATIVE_NORM_ERROR = 1e-2


def assert_input_gradient_close(actual: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    """Assert that an input gradient matches the reference except at a few pool-window ties.

    Args:
        actual: gradient from the fused path.
        expected: gradient from the PyTorch composite.
        name: what the gradient is for, shown in the failure message.

    Raises:
        AssertionError: if the shapes differ or more than ``MAX_FLIPPED_FRACTION``
            of the elements differ by more than the tolerance.
    """
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    scale = max(float(expected.abs().max()), 1.0) if expected.numel() else 1.0
    close = torch.isclose(actual, expected, rtol=1e-4, atol=1e-4 * scale)
    mismatched = int((~close).sum())
    allowed = int(MAX_FLIPPED_FRACTION * expected.numel())
    assert mismatched <= allowed, (
        f"{name}: {mismatched} of {expected.numel()} elements differ from the reference "
        f"(at most {allowed} allowed), largest difference {float((actual - expected).abs().max()):.3g}"
    )


def assert_parameter_gradient_close(actual: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    """Assert that a weight or bias gradient is within ``MAX_RELATIVE_NORM_ERROR`` of the reference.

    Args:
        actual: gradient from the fused path.
        expected: gradient from the PyTorch composite.
        name: what the gradient is for, shown in the failure message.

    Raises:
        AssertionError: if the shapes differ or ``||actual - expected|| / ||expected||``
            exceeds ``MAX_RELATIVE_NORM_ERROR``.
    """
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    reference_norm = float(expected.norm())
    error = float((actual - expected).norm()) / max(reference_norm, 1e-12)
    assert error <= MAX_RELATIVE_NORM_ERROR, (
        f"{name}: relative error {error:.3g} exceeds {MAX_RELATIVE_NORM_ERROR} (reference norm {reference_norm:.3g})"
    )
