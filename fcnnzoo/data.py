"""In-memory image classification datasets and the helpers that build them.

Every dataset plugin returns a :class:`DatasetSplits`: float32 images in
``(N, C, H, W)`` layout, already normalized with per-channel statistics of
the train split, and int64 labels. Dataset plugins build one with
:func:`make_splits` from raw images scaled to ``[0, 1]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

__all__ = [
    "DatasetSplits",
    "channel_statistics",
    "make_splits",
    "normalize",
    "renormalize",
    "resize_images",
]


@dataclass(frozen=True)
class DatasetSplits:
    """A dataset loaded into memory, split into train and test sets.

    Attributes:
        name: the registered dataset name, such as ``"digits"``.
        train: ``TensorDataset(images, labels)`` used for training.
        test: ``TensorDataset(images, labels)`` held out for evaluation.
        classes: class names, indexed by label.
        mean: per-channel mean of the raw train images, used to normalize
            both splits.
        std: per-channel standard deviation of the raw train images.
        input_size: image ``(height, width)`` in pixels.
        in_channels: number of image channels.
    """

    name: str
    train: TensorDataset
    test: TensorDataset
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int]
    in_channels: int

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a float ``(N, C, H, W)`` batch to ``size`` with bilinear interpolation.

    Downscaling uses antialiasing, so small details average out instead of
    aliasing. The result is deterministic on the CPU.

    Args:
        images: float images of shape ``(N, C, H, W)``.
        size: target ``(height, width)`` in pixels.

    Returns:
        A float32 tensor of shape ``(N, C, *size)``.

    Raises:
        ValueError: if ``images`` is not 4-D or ``size`` is not two positive ints.
    """
    if images.dim() != 4:
        raise ValueError(f"Expected images of shape (N, C, H, W), got shape {tuple(images.shape)}.")
    if len(size) != 2 or any(not isinstance(side, int) or side <= 0 for side in size):
        raise ValueError(f"Image size must be two positive ints (height, width), got {size!r}.")

    images = images.to(torch.float32)
    if tuple(images.shape[-2:]) == tuple(size):
        return images.clone()

    shrinks = size[0] < images.shape[-2] or size[1] < images.shape[-1]
    return F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrinks)


def channel_statistics(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Compute the per-channel mean and standard deviation of a ``(N, C, H, W)`` batch.

    The standard deviation is the population one (``unbiased=False``), and a
    channel with no variation gets 1.0 so that normalizing never divides by zero.

    Returns:
        ``(mean, std)``, each a tuple with one float per channel.

    Raises:
        ValueError: if ``images`` is not 4-D or has no pixels.
    """
    if images.dim() != 4 or images.numel() == 0:
        raise ValueError(f"Expected a non-empty batch of shape (N, C, H, W), got shape {tuple(images.shape)}.")

    per_channel = images.to(torch.float64).transpose(0, 1).reshape(images.shape[1], -1)
    mean = per_channel.mean(dim=1)
    std = per_channel.std(dim=1, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple(float(value) for value in mean), tuple(float(value) for value in std)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Return ``(images - mean) / std`` per channel, as float32.

    Raises:
        ValueError: if ``mean`` or ``std`` does not have one value per channel,
            or a standard deviation is not a positive finite number.
    """
    channels = images.shape[1]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"Expected {channels} mean and std values (one per channel), got mean={list(mean)} and std={list(std)}.")
    if any(not math.isfinite(value) or value <= 0 for value in std):
        raise ValueError(f"Every standard deviation must be a positive finite number, got std={list(std)}.")

    mean_tensor = torch.tensor(mean, dtype=torch.float32).view(1, channels, 1, 1)
    std_tensor = torch.tensor(std, dtype=torch.float32).view(1, channels, 1, 1)
    return (images.to(torch.float32) - mean_tensor) / std_tensor


def renormalize(
    images: torch.Tensor,
    from_mean: Sequence[float],
    from_std: Sequence[float],
    to_mean: Sequence[float],
    to_std: Sequence[float],
) -> torch.Tensor:
    """Convert images normalized with ``from_mean``/``from_std`` to ``to_mean``/``to_std``.

    Returns ``images`` itself when both normalizations are equal, so the
    common case costs nothing and changes no bit.
    """
    if list(from_mean) == list(to_mean) and list(from_std) == list(to_std):
        return images
    channels = images.shape[1]
    scale = torch.tensor(from_std, dtype=torch.float32).view(1, channels, 1, 1)
    shift = torch.tensor(from_mean, dtype=torch.float32).view(1, channels, 1, 1)
    return normalize(images * scale + shift, to_mean, to_std)


def make_splits(
    name: str,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    classes: Sequence[str],
) -> DatasetSplits:
    """Normalize raw images with train-split statistics and wrap them as :class:`DatasetSplits`.

    Args:
        name: the dataset name.
        train_images: float images ``(N, C, H, W)`` scaled to ``[0, 1]``.
        train_labels: integer labels ``(N,)`` in ``[0, len(classes))``.
        test_images: test images, same channels and size as the train images.
        test_labels: test labels.
        classes: class names, indexed by label.

    Returns:
        The splits, with float32 images and int64 labels.

    Raises:
        ValueError: if shapes disagree, a split is empty, or a label is out of range.
    """
    for split, images, labels in (("train", train_images, train_labels), ("test", test_images, test_labels)):
        if images.dim() != 4 or images.shape[0] == 0:
            raise ValueError(f"Dataset {name!r}: {split} images must be a non-empty (N, C, H, W) batch, got shape {tuple(images.shape)}.")
        if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"Dataset {name!r}: {split} labels must have shape ({images.shape[0]},) to match the images, got {tuple(labels.shape)}."
            )
        if labels.min() < 0 or labels.max() >= len(classes):
            raise ValueError(
                f"Dataset {name!r}: {split} labels must lie in [0, {len(classes)}), got values from {int(labels.min())} to {int(labels.max())}."
            )
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(
            f"Dataset {name!r}: train images have shape {tuple(train_images.shape[1:])} per image but test images have {tuple(test_images.shape[1:])}."
        )

    mean, std = channel_statistics(train_images)
    train = TensorDataset(normalize(train_images, mean, std), train_labels.to(torch.int64))
    test = TensorDataset(normalize(test_images, mean, std), test_labels.to(torch.int64))
    return DatasetSplits(
        name=name,
        train=train,
        test=test,
        classes=[str(label) for label in classes],
        mean=mean,
        std=std,
        input_size=(int(train_images.shape[2]), int(train_images.shape[3])),
        in_channels=int(train_images.shape[1]),
    )
