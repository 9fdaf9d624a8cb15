"""Image classification data from a folder with one sub-folder of images per class.

Two layouts are accepted::

    DIR/cat/001.png, DIR/dog/002.jpg, ...               # a test split is held out
    DIR/train/cat/..., DIR/test/cat/..., ...             # the splits are given

Class names are the sub-folder names, sorted, and a label is the class's
index in that order. Files and folders whose names start with a dot are
ignored, as are files whose suffix Pillow does not read as an image.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import Final

from fcnnzoo.datasets.files import resolve_data_dir

if TYPE_CHECKING:
    import numpy as np
    import torch

    from fcnnzoo.data import DatasetSplits

__all__ = ["DEFAULT_TEST_FRACTION", "list_class_folders", "list_images", "load_folder", "parse_image_size", "read_images"]

logger = logging.getLogger(__name__)

TRAIN_FOLDER: Final = "train"
TEST_FOLDER: Final = "test"
# Share of each class held out as the test split when the folder has no test/ sub-folder.
DEFAULT_TEST_FRACTION: Final = 0.2
# Pillow modes that hold one gray value per pixel; "LA" and "La" carry alpha, which is dropped.
GRAY_MODES: Final = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
MAX_PIXEL: Final = 255.0
_SIZE_PATTERN: Final = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


def parse_image_size(value: Any) -> tuple[int, int] | None:
    """Convert a ``resize`` argument to ``(height, width)``.

    Accepts ``None``, an int (a square), a ``(height, width)`` pair of ints,
    or a string ``"HxW"`` or ``"N"``, as the command line passes it.

    Raises:
        TypeError: if ``value`` has another type.
        ValueError: if a side is not a positive int or the string has another form.
    """
    if value is None:
        return None
    if isinstance(value, str):
        match = _SIZE_PATTERN.fullmatch(value)
        if match is not None:
            value = (int(match.group(1)), int(match.group(2)))
        elif value.strip().isdigit():
            value = int(value)
        else:
            raise ValueError(f"folder resize must be HxW, such as '32x32', or one int for a square, got {value!r}.")
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2 or any(not isinstance(side, int) or isinstance(side, bool) for side in value):
        raise TypeError(f"folder resize must be None, an int, a (height, width) pair of ints or 'HxW', got {value!r}.")
    if value[0] <= 0 or value[1] <= 0:
        raise ValueError(f"folder resize must have positive sides, got {tuple(value)!r}.")
    return (int(value[0]), int(value[1]))


def list_class_folders(root: Path) -> list[Path]:
    """Return the visible sub-folders of ``root``, sorted by name.

    Raises:
        ValueError: if there is none.
    """
    classes = sorted((entry for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith(".")), key=lambda entry: entry.name)
    if not classes:
        raise ValueError(f"The folder {root} has no class sub-folders. Put the images of each class in a sub-folder named after it.")
    return classes


def list_images(class_folder: Path, extensions: frozenset[str]) -> tuple[list[Path], list[Path]]:
    """Find the image files in ``class_folder`` and its visible sub-folders, sorted by path.

    Returns:
        ``(images, skipped)``: the files with an image suffix in
        ``extensions`` and the other visible files.
    """
    images = []
    skipped = []
    for path in sorted(class_folder.rglob("*")):
        relative = path.relative_to(class_folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.suffix.lower() in extensions:
            images.append(path)
        else:
            skipped.append(path)
    return images, skipped


def load_folder(
    data_dir: str | Path | None = None,
    resize: int | tuple[int, int] | str | None = None,
    channels: int | None = None,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    split_seed: int = 0,
) -> DatasetSplits:
    """Load an image folder with one sub-folder per class, read with Pillow.

    If ``data_dir`` has a ``train`` sub-folder, the classes are read from
    ``data_dir/train`` and the test split from ``data_dir/test``, which must
    have the same class folders. Otherwise every visible sub-folder of
    ``data_dir`` is a class, and ``test_fraction`` of each class is held out
    as the test split, chosen at random with ``split_seed``. Pixels are
    scaled from ``0..255`` to ``[0, 1]``.

    Args:
        data_dir: the dataset folder.
        resize: ``(height, width)`` every image is resized to with bilinear
            interpolation, an int for a square, or ``"HxW"``. ``None`` keeps
            the size, and then every image must have the same one.
        channels: 1 (grayscale) or 3 (RGB). ``None`` picks 1 when every
            image is grayscale and 3 otherwise. Alpha channels are dropped.
        test_fraction: share of each class held out as the test split when
            there is no ``test`` sub-folder, in ``(0, 1)``.
        split_seed: seed of the held-out choice.

    Returns:
        The train and test splits.

    Raises:
        ValueError: if a class folder has no images, an image cannot be read,
            images differ in size without ``resize``, the train and test
            folders have different classes, or an argument is out of range.
        TypeError: if an argument has the wrong type.
        FileNotFoundError: if ``data_dir`` does not exist.
    """
    import torch
    from PIL import Image

    from fcnnzoo.data import make_splits
    from fcnnzoo.data import stratified_split

    size = parse_image_size(resize)
    if channels is not None and (not isinstance(channels, int) or isinstance(channels, bool) or channels not in (1, 3)):
        raise ValueError(f"folder channels must be 1, 3 or None (chosen from the images), got {channels!r}.")
    folder = resolve_data_dir("folder", data_dir)

    train_root = folder / TRAIN_FOLDER
    has_splits = train_root.is_dir()
    if not has_splits:
        train_root = folder
    class_folders = list_class_folders(train_root)
    classes = [entry.name for entry in class_folders]
    test_root = folder / TEST_FOLDER if has_splits and (folder / TEST_FOLDER).is_dir() else None

    Image.init()
    extensions = frozenset(Image.registered_extensions())
    train_files, train_labels = _collect_files(class_folders, extensions)
    test_files: list[Path] = []
    test_labels: list[int] = []
    if test_root is not None:
        test_classes = [entry.name for entry in list_class_folders(test_root)]
        if test_classes != classes:
            raise ValueError(
                f"The test folder {test_root} has the classes {test_classes}, expected the classes of {train_root}: {classes}."
            )
        test_files, test_labels = _collect_files([test_root / name for name in classes], extensions)

    images = read_images([*train_files, *test_files], size, channels)
    labels = torch.tensor([*train_labels, *test_labels], dtype=torch.int64)
    train_count = len(train_files)
    if test_root is not None:
        splits = make_splits("folder", images[:train_count], labels[:train_count], images[train_count:], labels[train_count:], classes)
    else:
        if has_splits:
            logger.info("The folder %s has no %s sub-folder, so %g of each class is held out for testing", folder, TEST_FOLDER, test_fraction)
        train_indices, test_indices = stratified_split(labels, test_fraction, split_seed)
        splits = make_splits(
            "folder", images[train_indices], labels[train_indices], images[test_indices], labels[test_indices], classes
        )
    logger.info("Loaded folder %s: %d classes, %d train and %d test images", folder, len(classes), len(splits.train), len(splits.test))
    return splits


def _collect_files(class_folders: Sequence[Path], extensions: frozenset[str]) -> tuple[list[Path], list[int]]:
    """List each class folder's images with their labels, raising ValueError for a class folder without images."""
    files: list[Path] = []
    labels: list[int] = []
    skipped: list[Path] = []
    for label, class_folder in enumerate(class_folders):
        images, others = list_images(class_folder, extensions)
        if not images:
            raise ValueError(
                f"The class folder {class_folder} contains no images. Add images (such as .png or .jpg files) or remove the folder."
            )
        files.extend(images)
        labels.extend([label] * len(images))
        skipped.extend(others)
    if skipped:
        logger.warning("Skipped %d files that are not images by their suffix, such as %s", len(skipped), skipped[0])
    return files, labels


def read_images(paths: Sequence[Path], size: tuple[int, int] | None, channels: int | None) -> torch.Tensor:
    """Decode ``paths`` into one float ``(N, C, H, W)`` batch in ``[0, 1]``.

    A first pass reads only the headers, so a wrong size or mode is reported
    before any pixel is decoded.

    Args:
        paths: the image files.
        size: ``(height, width)`` every image is resized to with bilinear
            interpolation; ``None`` requires every image to have the same size.
        channels: 1 (grayscale) or 3 (RGB) to convert every image to;
            ``None`` picks 1 when every image is grayscale and 3 otherwise.

    Returns:
        The images, scaled from ``0..255`` to ``[0, 1]``.

    Raises:
        ValueError: if a file cannot be read as an image, or the sizes differ
            without ``size``.
    """
    import numpy as np
    import torch

    modes = []
    expected_size = None
    first_path = None
    for path in paths:
        with _open_image(path) as image:
            modes.append(image.mode)
            image_size = (image.height, image.width)
        if expected_size is None:
            expected_size, first_path = image_size, path
        elif size is None and image_size != expected_size:
            raise ValueError(
                f"Image {path} is {image_size[0]}x{image_size[1]} (height x width), expected {expected_size[0]}x{expected_size[1]} "
                f"like {first_path}. Resize the images, or pass resize=HxW (--dataset folder:resize=HxW on the command line)."
            )
    if channels is None:
        channels = 1 if all(mode in GRAY_MODES for mode in modes) else 3

    arrays: list[np.ndarray] = []
    for path in paths:
        with _open_image(path) as image:
            arrays.append(_decode(path, image, channels, size))
    stacked = np.stack(arrays)
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous().to(torch.float32) / MAX_PIXEL


def _open_image(path: Path) -> Any:
    from PIL import Image

    try:
        return Image.open(path)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"File {path} cannot be read as an image: {exc}") from exc


def _decode(path: Path, image: Any, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """Convert an open image to a uint8 ``(H, W, channels)`` array, resized to ``size`` if given."""
    import numpy as np
    from PIL import Image

    try:
        # NOTE: Pillow clips 16-bit and float grayscale images to 0..255 when it converts them to "L".
        converted = image.convert("L" if channels == 1 else "RGB")
        if size is not None and (converted.height, converted.width) != size:
            converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        array = np.asarray(converted, dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise ValueError(f"File {path} cannot be read as an image: {exc}") from exc
    return array.reshape(array.shape[0], array.shape[1], channels)
