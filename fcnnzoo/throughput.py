"""Inference throughput of a model, measured the same way for float and quantized models."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Final

import torch
from torch import nn

__all__ = ["COMPARISON_ROUNDS", "THROUGHPUT_BATCH_SIZE", "compare_throughput"]

THROUGHPUT_BATCH_SIZE: Final = 256
# Rounds of compare_throughput: each round times every model once, so load spikes hit all of them alike.
COMPARISON_ROUNDS: Final = 15


def compare_throughput(
    models: Sequence[nn.Module],
    images: torch.Tensor,
    *,
    batch_size: int = THROUGHPUT_BATCH_SIZE,
    rounds: int = COMPARISON_ROUNDS,
) -> list[float]:
    """Measure the inference throughput of several models, interleaved, in images per second.

    Each model first runs two warm-up calls. Then every round times one call
    of each model in turn, so that a load spike from other processes falls
    on all models alike, and the median call of each model gives its
    throughput. Models run in eval mode under ``torch.no_grad()`` and are
    put back into the mode they were in.

    Args:
        models: the models to compare, each taking the same batch.
        images: a float tensor of shape ``(N, C, H, W)`` with ``N >= 1``,
            repeated when it has fewer than ``batch_size`` images.
        batch_size: images per call.
        rounds: timed calls of each model.

    Returns:
        Images per second of each model, in the order of ``models``.

    Raises:
        ValueError: if ``models`` or ``images`` is empty, or ``batch_size``
            or ``rounds`` is not positive.
    """
    if not models:
        raise ValueError("compare_throughput needs at least one model.")
    if batch_size <= 0 or rounds <= 0:
        raise ValueError(f"batch_size and rounds must be positive, got {batch_size} and {rounds}.")
    if images.dim() == 0 or images.shape[0] == 0:
        raise ValueError(f"Cannot measure throughput on an empty batch of shape {tuple(images.shape)}.")
    copies = -(-batch_size // images.shape[0])
    batch = images.repeat(copies, *([1] * (images.dim() - 1)))[:batch_size].contiguous()

    modes = [model.training for model in models]
    seconds: list[list[float]] = [[] for _ in models]
    try:
        for model in models:
            model.eval()
        with torch.no_grad():
            for model in models:
                model(batch)
                model(batch)
            for _ in range(rounds):
                for index, model in enumerate(models):
                    start = time.perf_counter()
                    model(batch)
                    seconds[index].append(time.perf_counter() - start)
    finally:
        for model, was_training in zip(models, modes):
            model.train(was_training)
    return [batch_size / statistics.median(times) for times in seconds]
