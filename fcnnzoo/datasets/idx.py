"""MNIST and Fashion-MNIST from their IDX files.

An IDX file starts with a 4-byte magic number (two zero bytes, a type code
and the number of dimensions), then one big-endian uint32 per dimension,
then the values in row-major order. Both datasets ship four such files:
unsigned-byte images of shape ``(N, 28, 28)`` and unsigned-byte labels of
shape ``(N,)``, for a train and a test split.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Final

from fcnnzoo.datasets.files import find_files
from fcnnzoo.datasets.files import read_file_bytes
from fcnnzoo.datasets.files import resolve_data_dir

if TYPE_CHECKING:
    import numpy as np

    from fcnnzoo.data import DatasetSplits

__all__ = [
    "FASHION_MNIST_CLASSES",
    "IDX_FILES",
    "MNIST_CLASSES",
    "load_fashion_mnist",
    "load_idx_splits",
    "load_mnist",
    "read_idx_ubyte",
]

logger = logging.getLogger(__name__)

# The standard file names of both datasets, as the original archives unpack.
IDX_FILES: Final = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# Type code of unsigned bytes, the only type that both datasets use.
IDX_UNSIGNED_BYTE: Final = 0x08
IDX_HEADER_BYTES: Final = 4
IDX_DIMENSION_BYTES: Final = 4
MAX_PIXEL: Final = 255.0

MNIST_CLASSES: Final = tuple(str(digit) for digit in range(10))
FASHION_MNIST_CLASSES: Final = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def read_idx_ubyte(path: Path, dimensions: int) -> np.ndarray:
    """Read an unsigned-byte IDX file with ``dimensions`` dimensions, raw or gzip-compressed.

    Returns:
        A uint8 array of the shape the header declares.

    Raises:
        ValueError: if the magic number is wrong, the file is shorter than its
            header declares, or it has bytes after the declared data.
    """
    import numpy as np

    data = read_file_bytes(path)
    expected_magic = (IDX_UNSIGNED_BYTE << 8) | dimensions
    if len(data) < IDX_HEADER_BYTES:
        raise ValueError(f"File {path} is truncated: it has {len(data)} bytes, fewer than the 4-byte IDX magic number.")
    magic = int.from_bytes(data[:IDX_HEADER_BYTES], "big")
    if magic != expected_magic:
        raise ValueError(
            f"File {path} has the magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
            f"(an IDX file of unsigned bytes with {dimensions} dimension{'s' if dimensions > 1 else ''}). "
            "Check that the file is the right one of the four and not damaged."
        )

    header_bytes = IDX_HEADER_BYTES + IDX_DIMENSION_BYTES * dimensions
    if len(data) < header_bytes:
        raise ValueError(f"File {path} is truncated: it has {len(data)} bytes, fewer than its {header_bytes}-byte header.")
    shape = tuple(
        int.from_bytes(data[start : start + IDX_DIMENSION_BYTES], "big")
        for start in range(IDX_HEADER_BYTES, header_bytes, IDX_DIMENSION_BYTES)
    )
    expected_bytes = math.prod(shape)
    actual_bytes = len(data) - header_bytes
    described = "x".join(str(side) for side in shape)
    if actual_bytes < expected_bytes:
        raise ValueError(
            f"File {path} is truncated: its header declares {described} values, which need {expected_bytes} bytes "
            f"after the header, but it has {actual_bytes}. Download the file again."
        )
    if actual_bytes > expected_bytes:
        raise ValueError(
            f"File {path} has {actual_bytes - expected_bytes} bytes after the {expected_bytes} bytes of data that its "
            f"header declares ({described} values). Download the file again."
        )
    return np.frombuffer(data, dtype=np.uint8, count=expected_bytes, offset=header_bytes).reshape(shape)


def load_idx_splits(name: str, data_dir: str | Path | None, classes: tuple[str, ...]) -> DatasetSplits:
    """Load the four standard IDX files of an MNIST-style dataset from ``data_dir``.

    Images are scaled from ``0..255`` to ``[0, 1]`` and then normalized with
    the train split's statistics. Any image size is accepted, as long as
    the train and test images have the same one.

    Args:
        name: the dataset name, used in messages.
        data_dir: the folder that contains the files of :data:`IDX_FILES`,
            each raw or gzip-compressed with a ``.gz`` suffix.
        classes: class names, indexed by label.

    Returns:
        The train and test splits.

    Raises:
        ValueError: if ``data_dir`` is ``None`` or a file is invalid: wrong
            magic number, truncated, image and label counts that differ,
            labels out of range, or train and test images of different sizes.
        FileNotFoundError: if the folder or a file is missing.
    """
    import torch

    from fcnnzoo.data import make_splits

    folder = resolve_data_dir(name, data_dir)
    train_images_path, train_labels_path, test_images_path, test_labels_path = find_files(name, folder, IDX_FILES)

    split_tensors = []
    for images_path, labels_path in ((train_images_path, train_labels_path), (test_images_path, test_labels_path)):
        images = read_idx_ubyte(images_path, 3)
        labels = read_idx_ubyte(labels_path, 1)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"File {images_path} has {images.shape[0]} images but {labels_path} has {labels.shape[0]} labels. "
                "The counts must be equal. Check that both files come from the same split and download."
            )
        if images.shape[0] == 0:
            raise ValueError(f"File {images_path} contains no images.")
        if int(labels.max()) >= len(classes):
            bad = int(labels.argmax())
            raise ValueError(
                f"File {labels_path} has the label {int(labels[bad])} at index {bad}, "
                f"expected labels from 0 to {len(classes) - 1}."
            )
        tensor = torch.from_numpy(images.copy()).to(torch.float32).unsqueeze(1).div_(MAX_PIXEL)
        split_tensors.append((tensor, torch.from_numpy(labels.astype("int64"))))

    (train_images, train_labels), (test_images, test_labels) = split_tensors
    if train_images.shape[2:] != test_images.shape[2:]:
        raise ValueError(
            f"File {test_images_path} has {test_images.shape[2]}x{test_images.shape[3]} images, expected "
            f"{train_images.shape[2]}x{train_images.shape[3]} like the train images in {train_images_path}."
        )
    logger.info("Loaded %s from %s: %d train and %d test images", name, folder, train_images.shape[0], test_images.shape[0])
    return make_splits(name, train_images, train_labels, test_images, test_labels, classes)


def load_mnist(data_dir: str | Path | None = None) -> DatasetSplits:
    """Load MNIST's handwritten digits (60,000 train and 10,000 test 28x28 images) from ``data_dir``.

    See :func:`load_idx_splits` for the files and errors.
    """
    return load_idx_splits("mnist", data_dir, MNIST_CLASSES)


def load_fashion_mnist(data_dir: str | Path | None = None) -> DatasetSplits:
    """Load Fashion-MNIST's clothing images (60,000 train and 10,000 test 28x28 images) from ``data_dir``.

    See :func:`load_idx_splits` for the files and errors.
    """
    return load_idx_splits("fashion_mnist", data_dir, FASHION_MNIST_CLASSES)
