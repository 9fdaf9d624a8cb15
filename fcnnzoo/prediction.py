"""Class predictions for image files from a checkpoint.

Each image is read with Pillow and converted to the checkpoint's channels
(grayscale or RGB, alpha dropped). An image of another size is resized to
the checkpoint's input size with bilinear interpolation, which stretches it
if the aspect ratio differs. The pixels are scaled from ``0..255`` to
``[0, 1]`` and normalized with the checkpoint's mean and standard deviation.
These are the steps the ``folder`` dataset takes with ``resize=HxW``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from typing import Final

import torch

from fcnnzoo import checkpoint
from fcnnzoo.data import normalize
from fcnnzoo.datasets.folder import read_images

__all__ = ["DEFAULT_TOP_K", "PREDICTION_BATCH_SIZE", "load_image_batch", "predict_files"]

logger = logging.getLogger(__name__)

# Classes listed per image when top_k is not given (fewer if the checkpoint has fewer classes).
DEFAULT_TOP_K: Final = 5
# Images decoded and run through the model at once, which bounds memory for long file lists.
PREDICTION_BATCH_SIZE: Final = 256
# Channel counts that Pillow images convert to: "L" (grayscale) and "RGB".
_READABLE_CHANNELS: Final = (1, 3)


def load_image_batch(paths: Sequence[str | Path], config: dict[str, Any]) -> torch.Tensor:
    """Read image files as a batch for the checkpoint that ``config`` describes.

    Args:
        paths: the image files.
        config: the checkpoint config, as :func:`fcnnzoo.checkpoint.read_config` returns it.

    Returns:
        A float32 ``(N, C, H, W)`` batch, normalized with the checkpoint's mean and std.

    Raises:
        FileNotFoundError: if a path does not exist.
        IsADirectoryError: if a path is a folder.
        ValueError: if a file cannot be read as an image, or the checkpoint
            takes a channel count other than 1 or 3.
    """
    files = _check_image_paths(paths)
    channels = config["in_channels"]
    if channels not in _READABLE_CHANNELS:
        raise ValueError(
            f"The checkpoint takes {channels}-channel inputs, but image files are read as grayscale (1 channel) or RGB (3 channels)."
        )

    height, width = config["input_size"]
    images = read_images(files, (height, width), channels)
    normalization = config["normalization"]
    return normalize(images, normalization["mean"], normalization["std"])


def predict_files(directory: str | Path, paths: Sequence[str | Path], *, top_k: int | None = None) -> dict[str, Any]:
    """Predict the most likely classes of image files with a checkpoint.

    Everything that can be checked without the weights (the config,
    ``top_k``, the image paths) is checked before the weights are loaded.

    Args:
        directory: the checkpoint folder.
        paths: the image files, in any format Pillow reads.
        top_k: number of classes listed per image, from 1 to the
            checkpoint's class count; ``None`` lists ``DEFAULT_TOP_K`` or
            every class if there are fewer.

    Returns:
        ``checkpoint``, ``model``, ``top_k`` and ``predictions``: one entry
        per image, in the order given, with ``image`` (the path) and
        ``top_k``, a list of ``{"class", "index", "probability"}`` with the
        most likely class first.

    Raises:
        FileNotFoundError: if the checkpoint, one of its files or an image is missing.
        IsADirectoryError: if an image path is a folder.
        ValueError: if the checkpoint is invalid or tampered with, ``top_k``
            is out of range, no image is given, or a file is not an image.
        TypeError: if ``top_k`` is not an int.
    """
    config = checkpoint.read_config(directory)
    classes = config["classes"]
    top_k = _check_top_k(top_k, len(classes), Path(directory))
    if not paths:
        raise ValueError("No image files given. Pass one or more image paths.")
    _check_image_paths(paths)

    model = checkpoint.load(directory)
    config = model.fcnnzoo_checkpoint
    predictions = []
    for start in range(0, len(paths), PREDICTION_BATCH_SIZE):
        chunk = list(paths[start : start + PREDICTION_BATCH_SIZE])
        batch = load_image_batch(chunk, config)
        with torch.no_grad():
            probabilities = torch.softmax(model(batch).to(torch.float32), dim=1)
        values, indices = probabilities.topk(top_k, dim=1)
        for path, row_values, row_indices in zip(chunk, values.tolist(), indices.tolist()):
            ranked = [
                {"class": classes[index], "index": index, "probability": probability}
                for probability, index in zip(row_values, row_indices)
            ]
            predictions.append({"image": str(path), "top_k": ranked})
    logger.info("Predicted %d images with checkpoint %s", len(predictions), config["path"])
    return {"checkpoint": config["path"], "model": config["architecture"], "top_k": top_k, "predictions": predictions}


def _check_image_paths(paths: Sequence[str | Path]) -> list[Path]:
    files = [Path(path) for path in paths]
    for path in files:
        if not path.exists():
            raise FileNotFoundError(f"Image file {path} does not exist. Check the path.")
        if path.is_dir():
            raise IsADirectoryError(f"Image path {path} is a folder. Pass image files, such as {path}/*.png.")
    return files


def _check_top_k(top_k: int | None, num_classes: int, directory: Path) -> int:
    if top_k is None:
        return min(DEFAULT_TOP_K, num_classes)
    if not isinstance(top_k, int) or isinstance(top_k, bool):
        raise TypeError(f"top_k must be an int, got {top_k!r}.")
    if not 1 <= top_k <= num_classes:
        raise ValueError(f"top_k must be between 1 and {num_classes}, the number of classes of checkpoint {directory}, got {top_k}.")
    return top_k
