"""Per-epoch history files of a training run: JSON, CSV and a training-curve PNG."""

from __future__ import annotations

import csv
import io
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from typing import Final

from fcnnzoo.training.engine import EpochRecord

__all__ = ["CSV_FILE", "CURVE_FILE", "JSON_FILE", "history_document", "write_history_csv", "write_training_curve"]

logger = logging.getLogger(__name__)

JSON_FILE: Final = "history.json"
CSV_FILE: Final = "history.csv"
CURVE_FILE: Final = "training-curve.png"
# Column order of history.csv; a metric that was not measured is an empty cell.
CSV_COLUMNS: Final = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "validation_loss",
    "validation_accuracy",
    "test_loss",
    "test_accuracy",
    "lr",
    "seconds",
)


def history_document(history: Sequence[EpochRecord]) -> list[dict[str, Any]]:
    """Return the history as the JSON list that ``history.json`` contains, one object per epoch."""
    return [record.to_dict() for record in history]


def write_history_csv(directory: str | Path, history: Sequence[EpochRecord]) -> Path:
    """Write ``history.csv`` into ``directory`` atomically, one row per epoch.

    Returns:
        The path of the file.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in history:
        row = record.to_dict()
        writer.writerow(["" if row[column] is None else repr(row[column]) for column in CSV_COLUMNS])
    path = Path(directory) / CSV_FILE
    _write_atomic(path, buffer.getvalue().encode("utf-8"))
    return path


def write_training_curve(directory: str | Path, history: Sequence[EpochRecord]) -> Path | None:
    """Plot loss and accuracy per epoch into ``training-curve.png`` in ``directory``.

    Returns:
        The path of the PNG, or ``None`` when matplotlib is not installed
        (logged at INFO level) or the history is empty.
    """
    if not history:
        return None
    try:
        # A bare Figure renders through Agg without pyplot, so the caller's backend stays as it is.
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        logger.info("matplotlib is not installed, so no %s was drawn; install fcnnzoo[plot] to get it", CURVE_FILE)
        return None

    epochs = [record.epoch for record in history]
    figure = Figure(figsize=(9, 3.5), layout="constrained")
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for split in ("train", "validation", "test"):
        losses = [getattr(record, f"{split}_loss") for record in history]
        accuracies = [getattr(record, f"{split}_accuracy") for record in history]
        if all(value is None for value in losses):
            continue
        loss_axes.plot(epochs, [float("nan") if value is None else value for value in losses], marker="o", label=split)
        accuracy_axes.plot(epochs, [float("nan") if value is None else value for value in accuracies], marker="o", label=split)
    # The train loss includes label smoothing, the validation and test losses do not.
    loss_axes.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend()

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    path = Path(directory) / CURVE_FILE
    _write_atomic(path, buffer.getvalue())
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    staging = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        staging.write_bytes(data)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
