"""End-to-end jobs behind the command line: train to a checkpoint, evaluate one, quantize one.

Each function validates its inputs before the slow work starts, writes its
outputs atomically and returns a JSON-friendly report. The command line only
parses arguments and prints these reports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from typing import Final

import torch
from torch.utils.data import TensorDataset

from fcnnzoo import checkpoint
from fcnnzoo.api import create_augmenter
from fcnnzoo.api import create_model
from fcnnzoo.api import create_quantizer
from fcnnzoo.api import load_dataset
from fcnnzoo.data import DatasetSplits
from fcnnzoo.data import renormalize
from fcnnzoo.registry import default_registry
from fcnnzoo.training import DEFAULT_BATCH_SIZE
from fcnnzoo.training import DEFAULT_LABEL_SMOOTHING
from fcnnzoo.training import DEFAULT_LR
from fcnnzoo.training import DEFAULT_SCHEDULE
from fcnnzoo.training import check_hyperparameters
from fcnnzoo.training import evaluate
from fcnnzoo.training import train

__all__ = [
    "METRICS_FILE",
    "QUANTIZATION_REPORT_FILE",
    "evaluate_checkpoint",
    "quantize_checkpoint",
    "train_to_checkpoint",
]

logger = logging.getLogger(__name__)

METRICS_FILE: Final = "metrics.json"
QUANTIZATION_REPORT_FILE: Final = "quantization.json"


def train_to_checkpoint(
    model_name: str,
    out: str | Path,
    *,
    epochs: int,
    dataset: str = "digits",
    data_dir: str | Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LR,
    schedule: str = DEFAULT_SCHEDULE,
    label_smoothing: float = DEFAULT_LABEL_SMOOTHING,
    seed: int = 0,
    augment: Sequence[tuple[str, Mapping[str, Any]]] = (),
    progress: bool | None = None,
) -> dict[str, Any]:
    """Train a registered architecture on a registered dataset and save it as a checkpoint.

    The checkpoint folder ``out`` receives the weights, ``config.json`` and
    ``metrics.json`` in one atomic step. ``seed`` seeds torch's global
    generator before the model is built, so the initial weights are
    reproducible too.

    Args:
        model_name: architecture name, as in ``fcnnzoo list models``.
        out: the checkpoint folder to write.
        epochs: number of passes over the train split.
        dataset: dataset name, as in ``fcnnzoo list datasets``.
        data_dir: folder with the dataset's files, for datasets that need them.
        batch_size: training examples per optimizer step.
        lr: Adam learning rate, the peak of the schedule.
        schedule: learning-rate schedule, ``"cosine"`` or ``"constant"``.
        label_smoothing: label smoothing of the training loss, in ``[0, 1)``.
        seed: seed for the initial weights, the batch order and augmentation.
        augment: ``(name, keyword arguments)`` of each augmenter, applied in order.
        progress: show a progress bar; ``None`` shows it only on a terminal.

    Returns:
        The metrics written to ``metrics.json`` plus ``"checkpoint"``, the
        absolute path of ``out``.

    Raises:
        ValueError: if a name is unknown, a value is out of range, or the
            model does not fit the dataset.
        TypeError: if a component rejects its arguments.
        FileExistsError: if ``out`` is a file or a non-empty folder that is
            not a checkpoint.
    """
    check_hyperparameters(
        epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, schedule=schedule, label_smoothing=label_smoothing
    )
    checkpoint.check_output_folder(out)
    # Look every name up before loading data, so that a typo fails at once.
    default_registry().get("architecture", model_name)
    default_registry().get("dataset", dataset)
    augmenters = [_build_component("augmenter", create_augmenter, name, arguments) for name, arguments in augment]
    splits = load_dataset(dataset, data_dir=data_dir)

    torch.manual_seed(seed)
    model = create_model(model_name, in_channels=splits.in_channels, num_classes=splits.num_classes)
    result = train(
        model,
        splits,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        schedule=schedule,
        label_smoothing=label_smoothing,
        seed=seed,
        augmenters=augmenters,
        progress=progress,
    )

    metrics = {
        "model": model_name,
        "dataset": splits.name,
        **result.metrics(),
        "batch_size": batch_size,
        "lr": lr,
        "schedule": schedule,
        "label_smoothing": label_smoothing,
        "seed": seed,
        "augment": [{"name": name, "arguments": dict(arguments)} for name, arguments in augment],
    }
    path = checkpoint.save(
        model,
        out,
        classes=splits.classes,
        mean=splits.mean,
        std=splits.std,
        dataset=splits.name,
        input_size=splits.input_size,
        extra_files={METRICS_FILE: metrics},
    )
    return {**metrics, "checkpoint": str(path)}


def evaluate_checkpoint(directory: str | Path, *, data_dir: str | Path | None = None) -> dict[str, Any]:
    """Load a checkpoint, verifying its weights' sha256, and measure it on its dataset's test split.

    For a checkpoint written by :func:`train_to_checkpoint` the numbers equal
    the ``test_accuracy`` and ``test_loss`` in its ``metrics.json``.

    Args:
        directory: the checkpoint folder.
        data_dir: folder with the dataset's files, for datasets that need them.

    Returns:
        ``model``, ``dataset``, ``checkpoint``, ``quantization``,
        ``test_accuracy``, ``test_loss`` and ``test_examples``.

    Raises:
        FileNotFoundError: if the checkpoint or one of its files is missing.
        ValueError: if the checkpoint is invalid or tampered with, or its
            dataset is unknown or does not match the model.
    """
    model = checkpoint.load(directory)
    config = model.fcnnzoo_checkpoint
    test = _test_split_for(config, data_dir)
    result = evaluate(model, test)
    return {
        "model": config["architecture"],
        "dataset": config["dataset"],
        "checkpoint": config["path"],
        "quantization": config["quantization"],
        "test_accuracy": result.accuracy,
        "test_loss": result.loss,
        "test_examples": result.count,
    }


def quantize_checkpoint(
    directory: str | Path,
    out: str | Path,
    *,
    method: str,
    arguments: Mapping[str, Any] | None = None,
    data_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Quantize a float checkpoint into a new checkpoint and compare the two on the test split.

    The report is written to ``quantization.json`` inside ``out``, in the
    same atomic step as the quantized checkpoint.

    Args:
        directory: the float checkpoint folder.
        out: the folder for the quantized checkpoint; it must differ from ``directory``.
        method: quantizer name, as in ``fcnnzoo list quantizers``.
        arguments: keyword arguments for the quantizer.
        data_dir: folder with the dataset's files, for datasets that need them.

    Returns:
        The report: ``method``, ``arguments``, ``model``, ``dataset``,
        ``source``, ``checkpoint``, ``size_bytes_before``,
        ``size_bytes_after``, ``accuracy_before``, ``accuracy_after``,
        ``loss_before`` and ``loss_after``.

    Raises:
        ValueError: if ``out`` is ``directory``, the checkpoint is already
            quantized or invalid, or the method is unknown.
        FileNotFoundError: if the checkpoint or one of its files is missing.
        FileExistsError: if ``out`` is a file or a non-empty folder that is
            not a checkpoint.
    """
    source = Path(directory).absolute()
    target = Path(out).absolute()
    if source.resolve() == target.resolve():
        raise ValueError(f"The output folder {target} is the source checkpoint. Choose another --out to keep the float checkpoint.")
    checkpoint.check_output_folder(target)
    arguments = dict(arguments or {})
    quantizer = _build_component("quantizer", create_quantizer, method, arguments)

    model = checkpoint.load(source)
    config = model.fcnnzoo_checkpoint
    if config["quantization"] is not None:
        raise ValueError(
            f"Checkpoint {source} is already quantized with {config['quantization']['method']!r}. Quantize the float checkpoint instead."
        )
    test = _test_split_for(config, data_dir)
    before = evaluate(model, test)

    quantized = quantizer.quantize(model)
    if getattr(quantized, "fcnnzoo_quantization", None) is None:
        raise ValueError(
            f"Quantizer {method!r} returned a model without fcnnzoo_quantization, so the checkpoint could not be loaded again. "
            "Fix the quantizer plugin."
        )
    if getattr(quantized, "fcnnzoo_config", None) is None:
        quantized.fcnnzoo_config = model.fcnnzoo_config
    after = evaluate(quantized, test)

    prepared = checkpoint.prepare(
        quantized,
        classes=config["classes"],
        mean=config["normalization"]["mean"],
        std=config["normalization"]["std"],
        dataset=config["dataset"],
        input_size=config["input_size"],
    )
    report = {
        "method": method,
        "arguments": arguments,
        "model": config["architecture"],
        "dataset": config["dataset"],
        "source": str(source),
        "checkpoint": str(target),
        "size_bytes_before": (source / checkpoint.WEIGHTS_FILE).stat().st_size,
        "size_bytes_after": prepared.size_bytes,
        "accuracy_before": before.accuracy,
        "accuracy_after": after.accuracy,
        "loss_before": before.loss,
        "loss_after": after.loss,
    }
    checkpoint.write(replace(prepared, extra_files={QUANTIZATION_REPORT_FILE: report}), target)
    return report


def _build_component(kind: str, factory: Callable[..., Any], name: str, arguments: Mapping[str, Any]) -> Any:
    """Call ``factory(name, **arguments)``, naming the component in a TypeError about its arguments."""
    try:
        return factory(name, **dict(arguments))
    except TypeError as exc:
        raise TypeError(f"Invalid arguments {dict(arguments)} for {kind} {name!r}: {exc}") from exc


def _test_split_for(config: Mapping[str, Any], data_dir: str | Path | None) -> TensorDataset:
    """Load the test split of the checkpoint's dataset, normalized as the checkpoint expects."""
    name = config["dataset"]
    if name is None:
        raise ValueError(f"Checkpoint {config['path']} records no dataset, so it cannot be evaluated. Save it with dataset=<name>.")
    splits: DatasetSplits = load_dataset(name, data_dir=data_dir)
    if splits.in_channels != config["in_channels"] or splits.classes != config["classes"]:
        raise ValueError(
            f"Dataset {name!r} now has {splits.in_channels} channels and classes {splits.classes}, but checkpoint "
            f"{config['path']} expects {config['in_channels']} channels and classes {config['classes']}."
        )

    mean = config["normalization"]["mean"]
    std = config["normalization"]["std"]
    images, labels = splits.test.tensors
    if list(splits.mean) != list(mean) or list(splits.std) != list(std):
        logger.warning("Dataset %r is normalized differently than checkpoint %s expects, so the test images are converted", name, config["path"])
    return TensorDataset(renormalize(images, splits.mean, splits.std, mean, std), labels)
