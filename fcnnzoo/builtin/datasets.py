"""Built-in datasets plugin: ``digits`` (bundled with scikit-learn) and the file-based ones.

``mnist``, ``fashion_mnist``, ``cifar10`` and ``folder`` read files from the
folder a user names; their loaders live in :mod:`fcnnzoo.datasets`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

from fcnnzoo.datasets.cifar import load_cifar10
from fcnnzoo.datasets.folder import load_folder
from fcnnzoo.datasets.idx import load_fashion_mnist
from fcnnzoo.datasets.idx import load_mnist
from fcnnzoo.hookspecs import hookimpl
from fcnnzoo.specs import DatasetSpec

logger = logging.getLogger(__name__)

# The images are resized to the MNIST size that the built-in architectures expect.
DIGITS_IMAGE_SIZE: Final = (28, 28)
# 20 % of 1,797 images, rounded up by scikit-learn: 360 test and 1,437 train images.
DIGITS_TEST_FRACTION: Final = 0.2
# Fixed so that every run, and every later evaluation of a checkpoint, uses the same split.
DIGITS_SPLIT_SEED: Final = 0
# Pixel values in load_digits() are counts from 0 to 16.
DIGITS_MAX_PIXEL: Final = 16.0


def load_digits_splits(data_dir: str | Path | None = None):
    """Load scikit-learn's 1,797 handwritten digits as 28x28 train and test splits.

    The 8x8 images are scaled from ``0..16`` to ``[0, 1]``, resized to 28x28
    with bilinear interpolation and split with a fixed stratified split (20 %
    test), then normalized with the train split's mean and standard deviation.
    The data ships with scikit-learn, so nothing is read from disk beyond the
    installed package and nothing is downloaded.

    Args:
        data_dir: ignored, since the data is bundled; accepted so that every
            dataset is called the same way.

    Returns:
        A :class:`fcnnzoo.data.DatasetSplits` named ``"digits"``.
    """
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from fcnnzoo.data import make_splits
    from fcnnzoo.data import resize_images

    if data_dir is not None:
        logger.warning("Dataset 'digits' is bundled with scikit-learn, so data_dir=%s is ignored.", data_dir)

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).to(torch.float32).unsqueeze(1) / DIGITS_MAX_PIXEL
    images = resize_images(images, DIGITS_IMAGE_SIZE)
    labels = torch.from_numpy(bunch.target).to(torch.int64)

    indices = torch.arange(labels.shape[0]).numpy()
    train_indices, test_indices = train_test_split(
        indices,
        test_size=DIGITS_TEST_FRACTION,
        random_state=DIGITS_SPLIT_SEED,
        stratify=labels.numpy(),
    )
    train_indices = torch.from_numpy(train_indices)
    test_indices = torch.from_numpy(test_indices)

    classes = [str(int(label)) for label in bunch.target_names]
    return make_splits("digits", images[train_indices], labels[train_indices], images[test_indices], labels[test_indices], classes)


@hookimpl
def fcnnzoo_register_datasets() -> list[DatasetSpec]:
    """Register the built-in datasets."""
    return [
        DatasetSpec(
            name="digits",
            factory=load_digits_splits,
            description="scikit-learn's 1,797 handwritten 8x8 digits resized to 28x28 (1,437 train / 360 test, bundled)",
        ),
        DatasetSpec(
            name="mnist",
            factory=load_mnist,
            description="MNIST handwritten digits from the four IDX files (raw or .gz) in --data-dir",
        ),
        DatasetSpec(
            name="fashion_mnist",
            factory=load_fashion_mnist,
            description="Fashion-MNIST clothing images from the four IDX files (raw or .gz) in --data-dir",
        ),
        DatasetSpec(
            name="cifar10",
            factory=load_cifar10,
            description="CIFAR-10 32x32 color images from the binary batch files in --data-dir",
        ),
        DatasetSpec(
            name="folder",
            factory=load_folder,
            description="Images read with Pillow from --data-dir, one sub-folder per class (optionally under train/ and test/)",
        ),
    ]
