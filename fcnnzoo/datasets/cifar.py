"""CIFAR-10 from its binary batch files.

The binary version of CIFAR-10 stores fixed-size records: one label byte,
then the 32x32 image as three 1,024-byte planes (red, green, blue), each in
row-major order. The train split is ``data_batch_1.bin`` to
``data_batch_5.bin``, the test split ``test_batch.bin``, each with 10,000
records; ``batches.meta.txt`` lists the class names, one per line.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Final

from fcnnzoo.datasets.files import find_files
from fcnnzoo.datasets.files import read_file_bytes
from fcnnzoo.datasets.files import resolve_data_dir

if TYPE_CHECKING:
    import torch

    from fcnnzoo.data import DatasetSplits

__all__ = ["CIFAR10_CLASSES", "CIFAR10_FOLDER", "load_cifar10", "read_cifar_batch"]

logger = logging.getLogger(__name__)

# The folder that the official binary archive unpacks into.
CIFAR10_FOLDER: Final = "cifar-10-batches-bin"
CIFAR10_TRAIN_FILES: Final = tuple(f"data_batch_{index}.bin" for index in range(1, 6))
CIFAR10_TEST_FILE: Final = "test_batch.bin"
CIFAR10_META_FILE: Final = "batches.meta.txt"
CIFAR10_CLASSES: Final = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_CHANNELS: Final = 3
CIFAR_SIDE: Final = 32
CIFAR_RECORD_BYTES: Final = 1 + CIFAR_CHANNELS * CIFAR_SIDE * CIFAR_SIDE
MAX_PIXEL: Final = 255.0


def read_cifar_batch(path: Path, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one binary batch file, raw or gzip-compressed.

    Returns:
        ``(images, labels)``: uint8 images ``(N, 3, 32, 32)`` and int64 labels ``(N,)``.

    Raises:
        ValueError: if the file is empty, its size is not a whole number of
            records, or a label is not below ``num_classes``.
    """
    import numpy as np
    import torch

    data = read_file_bytes(path)
    records, remainder = divmod(len(data), CIFAR_RECORD_BYTES)
    if remainder:
        raise ValueError(
            f"File {path} is truncated or damaged: its {len(data)} bytes are not a whole number of "
            f"{CIFAR_RECORD_BYTES}-byte records (1 label byte and 3x32x32 pixel bytes); the last record has only "
            f"{remainder} bytes. Download the file again."
        )
    if records == 0:
        raise ValueError(f"File {path} is empty, expected {CIFAR_RECORD_BYTES}-byte records of 1 label byte and 3x32x32 pixel bytes.")

    table = np.frombuffer(data, dtype=np.uint8).reshape(records, CIFAR_RECORD_BYTES)
    labels = table[:, 0]
    if int(labels.max()) >= num_classes:
        bad = int(labels.argmax())
        raise ValueError(
            f"File {path} has the label {int(labels[bad])} in record {bad}, expected labels from 0 to {num_classes - 1}. "
            "Check that it is a CIFAR-10 file, not a CIFAR-100 one."
        )
    pixels = table[:, 1:].reshape(records, CIFAR_CHANNELS, CIFAR_SIDE, CIFAR_SIDE)
    return torch.from_numpy(pixels.copy()), torch.from_numpy(labels.astype(np.int64))


def read_class_names(path: Path) -> tuple[str, ...]:
    """Read ``batches.meta.txt``: one class name per line, blank lines ignored.

    Raises:
        ValueError: if it does not list exactly ten names.
    """
    names = tuple(line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip())
    if len(names) != len(CIFAR10_CLASSES):
        raise ValueError(f"File {path} lists {len(names)} class names, expected {len(CIFAR10_CLASSES)}, one per line.")
    return names


def load_cifar10(data_dir: str | Path | None = None) -> DatasetSplits:
    """Load CIFAR-10 (50,000 train and 10,000 test 32x32 color images) from its binary batch files.

    The files are looked for in ``data_dir/cifar-10-batches-bin`` when that
    folder exists, else in ``data_dir`` itself. Each may be gzip-compressed
    with a ``.gz`` suffix. The class names come from ``batches.meta.txt``
    when it is there, else from the standard list.

    Args:
        data_dir: the folder with the batch files, or the folder above ``cifar-10-batches-bin``.

    Returns:
        The train and test splits with 3 channels.

    Raises:
        ValueError: if ``data_dir`` is ``None`` or a file is invalid.
        FileNotFoundError: if the folder or a batch file is missing.
    """
    import torch

    from fcnnzoo.data import make_splits

    folder = resolve_data_dir("cifar10", data_dir)
    if (folder / CIFAR10_FOLDER).is_dir():
        folder = folder / CIFAR10_FOLDER
    paths = find_files("cifar10", folder, (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE))

    meta = folder / CIFAR10_META_FILE
    classes = read_class_names(meta) if meta.is_file() else CIFAR10_CLASSES

    # Batches stay uint8 until they are joined, so only the joined images are converted to float32.
    batches = [read_cifar_batch(path, len(classes)) for path in paths]
    train_images = torch.cat([images for images, _ in batches[:-1]]).to(torch.float32).div_(MAX_PIXEL)
    train_labels = torch.cat([labels for _, labels in batches[:-1]])
    test_images = batches[-1][0].to(torch.float32).div_(MAX_PIXEL)
    test_labels = batches[-1][1]
    del batches
    logger.info("Loaded cifar10 from %s: %d train and %d test images", folder, train_images.shape[0], test_images.shape[0])
    return make_splits("cifar10", train_images, train_labels, test_images, test_labels, classes)
