"""Classification metrics accumulated over batches."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ClassificationMeter", "count_parameters"]


@dataclass
class ClassificationMeter:
    """Running sums of cross-entropy loss and correct predictions over batches.

    Sums are kept per example in float64, so the averages do not depend on
    how the examples were split into batches beyond float32 rounding inside
    each batch.
    """

    loss_sum: float = 0.0
    correct: int = 0
    count: int = 0

    def update(self, logits: torch.Tensor, labels: torch.Tensor, loss_sum: torch.Tensor) -> None:
        """Add one batch.

        Args:
            logits: ``(N, num_classes)`` model outputs.
            labels: ``(N,)`` int64 targets.
            loss_sum: the batch's summed (not averaged) loss.
        """
        self.loss_sum += float(loss_sum.detach().to(torch.float64))
        self.correct += int((logits.detach().argmax(dim=1) == labels).sum())
        self.count += int(labels.shape[0])

    @property
    def loss(self) -> float:
        """Mean loss per example; NaN before the first update."""
        return self.loss_sum / self.count if self.count else float("nan")

    @property
    def accuracy(self) -> float:
        """Fraction of correct predictions; NaN before the first update."""
        return self.correct / self.count if self.count else float("nan")


def count_parameters(model: nn.Module) -> int:
    """Return the number of parameter elements in ``model``, counting shared parameters once."""
    return sum(parameter.numel() for parameter in model.parameters())
