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
from dataclasses import replace

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
    "stratified_split",
    "with_validation",
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
        validation: ``TensorDataset(images, labels)`` held out of the train
            set by :func:`with_validation`, or ``None``. It is normalized
            like the other splits.
    """

    name: str
    train: TensorDataset
    test: TensorDataset
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int]
    in_channels: int
    validation: TensorDataset | None = None

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

    # One channel at a time, so the float64 copy stays a third of a color batch's size.
    means = []
    stds = []
    for channel in range(images.shape[1]):
        values = images[:, channel].to(torch.float64).reshape(-1)
        means.append(float(values.mean()))
        std = float(values.std(unbiased=False))
        stds.append(std if std > 0 else 1.0)
    return tuple(means), tuple(stds)


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
    return (images.to(torch.float32) - mean_tensor).div_(std_tensor)


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


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split example indices into kept and held-out ones, class by class.

    Each class gives ``round(fraction * count)`` of its examples, chosen at
    random with ``seed``, to the held-out part, so the class shares stay as
    they were. A class with too few examples to give one keeps them all.

    Args:
        labels: int labels of shape ``(N,)``.
        fraction: share of each class to hold out, in ``(0, 1)``.
        seed: seed of the random choice; the same seed gives the same split.

    Returns:
        ``(kept, held_out)``: sorted int64 index tensors that together cover ``range(N)``.

    Raises:
        TypeError: if ``fraction`` is not a number or ``seed`` not an int.
        ValueError: if ``fraction`` is outside ``(0, 1)``, ``seed`` is
            negative, or either part would be empty.
    """
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool):
        raise TypeError(f"The held-out fraction must be a number in (0, 1), got {fraction!r} of type {type(fraction).__name__}.")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"The held-out fraction must be in (0, 1), got {fraction!r}.")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"The split seed must be an int, got {seed!r} of type {type(seed).__name__}.")
    if seed < 0:
        raise ValueError(f"The split seed must not be negative, got {seed}.")

    generator = torch.Generator().manual_seed(seed)
    held_out_parts = []
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        count = round(fraction * members.numel())
        members = members[torch.randperm(members.numel(), generator=generator)]
        held_out_parts.append(members[:count])
    held_out = torch.sort(torch.cat(held_out_parts)).values if held_out_parts else torch.zeros(0, dtype=torch.int64)
    keep_mask = torch.ones(labels.shape[0], dtype=torch.bool)
    keep_mask[held_out] = False
    kept = torch.nonzero(keep_mask).flatten()

    if held_out.numel() == 0 or kept.numel() == 0:
        raise ValueError(
            f"Holding out a fraction of {fraction} of {labels.shape[0]} examples leaves {kept.numel()} kept and "
            f"{held_out.numel()} held out, but both parts need at least one example. Choose another fraction."
        )
    return kept, held_out


def with_validation(splits: DatasetSplits, fraction: float, seed: int = 0) -> DatasetSplits:
    """Move a stratified share of the train split into a validation split.

    The normalization stays the one computed on the full train split, so a
    model evaluates on the test split identically with or without a
    validation split.

    Args:
        splits: the dataset, without a validation split.
        fraction: share of each class of the train split to move, in ``(0, 1)``.
        seed: seed of the random choice.

    Returns:
        A copy of ``splits`` with a smaller ``train`` and a ``validation`` split.

    Raises:
        TypeError: if ``fraction`` is not a number.
        ValueError: if ``splits`` already has a validation split, ``fraction``
            is outside ``(0, 1)``, or either part would be empty.
    """
    if splits.validation is not None:
        raise ValueError(f"Dataset {splits.name!r} already has a validation split of {len(splits.validation)} images.")
    images, labels = splits.train.tensors
    train_indices, validation_indices = stratified_split(labels, fraction, seed)
    return replace(
        splits,
        train=TensorDataset(images[train_indices], labels[train_indices]),
        validation=TensorDataset(images[validation_indices], labels[validation_indices]),
    )
