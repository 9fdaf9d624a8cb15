"""Inference throughput of a model, measured the same way for float and quantized models."""

from __future__ import annotations

import statistics
import time
from typing import Final

import torch
from torch import nn

__all__ = ["THROUGHPUT_BATCH_SIZE", "THROUGHPUT_REPEATS", "measure_throughput"]

THROUGHPUT_BATCH_SIZE: Final = 256
THROUGHPUT_REPEATS: Final = 5


def measure_throughput(
    model: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = THROUGHPUT_BATCH_SIZE,
    repeats: int = THROUGHPUT_REPEATS,
) -> float:
    """Measure inference throughput in images per second on one batch.

    The batch is the first ``batch_size`` images, repeated when there are
    fewer. After one warm-up call, the model runs ``repeats`` times in eval
    mode under ``torch.no_grad()``; the median wall time of a call gives the
    throughput. The model is put back into the mode it was in.

    Args:
        model: the model to time.
        images: a float tensor of shape ``(N, C, H, W)`` with ``N >= 1``.
        batch_size: images per call.
        repeats: timed calls.

    Returns:
        Images per second.

    Raises:
        ValueError: if ``images`` is empty, or ``batch_size`` or ``repeats``
            is not positive.
    """
    if batch_size <= 0 or repeats <= 0:
        raise ValueError(f"batch_size and repeats must be positive, got {batch_size} and {repeats}.")
    if images.dim() == 0 or images.shape[0] == 0:
        raise ValueError(f"Cannot measure throughput on an empty batch of shape {tuple(images.shape)}.")
    copies = -(-batch_size // images.shape[0])
    batch = images.repeat(copies, *([1] * (images.dim() - 1)))[:batch_size].contiguous()

    was_training = model.training
    model.eval()
    seconds = []
    try:
        with torch.no_grad():
            model(batch)
            for _ in range(repeats):
                start = time.perf_counter()
                model(batch)
                seconds.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return batch_size / statistics.median(seconds)
