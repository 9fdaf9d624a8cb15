"""Writers of small dataset files for the tests: IDX, CIFAR-10 batches and image folders."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file: magic 0x0000080N, big-endian sizes, then the values."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(side).to_bytes(4, "big") for side in array.shape)
    return header + array.astype(np.uint8).tobytes()


def idx_arrays(train_count: int = 12, test_count: int = 6, side: int = 5) -> dict[str, np.ndarray]:
    """Images whose pixel (0, 0) is 10 times the image index and whose last pixel is 255, with labels cycling through 0..9."""
    arrays = {}
    for split, count in (("train", train_count), ("test", test_count)):
        images = np.zeros((count, side, side), dtype=np.uint8)
        images[:, 0, 0] = np.arange(count) * 10
        images[:, side - 1, side - 1] = 255
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = (np.arange(count) % 10).astype(np.uint8)
    return arrays


def write_idx(folder: Path, arrays: dict[str, np.ndarray] | None = None, compress: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for key, array in (arrays or idx_arrays()).items():
        data = idx_bytes(array)
        if compress:
            (folder / f"{IDX_NAMES[key]}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / IDX_NAMES[key]).write_bytes(data)
    return folder


def cifar_record(label: int, value: int) -> bytes:
    """One CIFAR record: a label byte, then red, green and blue planes filled with value, value + 1, value + 2."""
    planes = [bytes([(value + offset) % 256]) * 1024 for offset in range(3)]
    return bytes([label]) + b"".join(planes)


def write_cifar(folder: Path, records_per_file: int = 4, subfolder: bool = False) -> Path:
    target = folder / "cifar-10-batches-bin" if subfolder else folder
    target.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{index}.bin" for index in range(1, 6)] + ["test_batch.bin"]
    for file_index, name in enumerate(names):
        records = [cifar_record((file_index + record) % 10, 10 * file_index + record) for record in range(records_per_file)]
        (target / name).write_bytes(b"".join(records))
    return folder


def write_image(path: Path, size: tuple[int, int] = (6, 4), mode: str = "L", value: int = 100) -> Path:
    """Write a PNG of (height, width) size filled with value."""
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, value // 2, 255 - value)
    Image.new(mode, (size[1], size[0]), color).save(path)
    return path


def write_folder(root: Path, classes: dict[str, int], mode: str = "L", size: tuple[int, int] = (6, 4)) -> Path:
    for class_index, (name, count) in enumerate(classes.items()):
        for index in range(count):
            write_image(root / name / f"{index:03d}.png", size=size, mode=mode, value=20 * class_index + index)
    return root


def raw_images(splits, split: str = "train") -> torch.Tensor:
    """Undo the normalization of a split, back to pixel values in [0, 1]."""
    images = getattr(splits, split).tensors[0]
    mean = torch.tensor(splits.mean).view(1, -1, 1, 1)
    std = torch.tensor(splits.std).view(1, -1, 1, 1)
    return images * std + mean
