"""End-to-end jobs behind the command line: train to a checkpoint, evaluate one, quantize one.

Each function validates its inputs before the slow work starts, writes its
outputs atomically and returns a JSON-friendly report. The command line only
parses arguments and prints these reports.
"""

from __future__ import annotations

import inspect
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
from fcnnzoo.throughput import THROUGHPUT_BATCH_SIZE
from fcnnzoo.throughput import compare_throughput
from fcnnzoo.training import DEFAULT_BATCH_SIZE
from fcnnzoo.training import DEFAULT_LABEL_SMOOTHING
from fcnnzoo.training import DEFAULT_LR
from fcnnzoo.training import DEFAULT_OPTIMIZER
from fcnnzoo.training import DEFAULT_SCHEDULE
from fcnnzoo.training import EpochRecord
from fcnnzoo.training import TrainingState
from fcnnzoo.training import check_early_stopping
from fcnnzoo.training import check_hyperparameters
from fcnnzoo.training import distributed
from fcnnzoo.training import evaluate
from fcnnzoo.training import resolve_optimizer_settings
from fcnnzoo.training import train
from fcnnzoo.training import history as history_files
from fcnnzoo.training import resume as resume_files

__all__ = [
    "DEFAULT_CALIBRATION_BATCHES",
    "DEFAULT_CALIBRATION_BATCH_SIZE",
    "EVALUATION_SPLITS",
    "METRICS_FILE",
    "QUANTIZATION_REPORT_FILE",
    "evaluate_checkpoint",
    "quantize_checkpoint",
    "train_to_checkpoint",
]

logger = logging.getLogger(__name__)

METRICS_FILE: Final = "metrics.json"
# Splits that evaluate_checkpoint measures.
EVALUATION_SPLITS: Final = ("test", "validation")
QUANTIZATION_REPORT_FILE: Final = "quantization.json"
# Calibration data of quantizers that need it: batches of the train split.
DEFAULT_CALIBRATION_BATCHES: Final = 10
DEFAULT_CALIBRATION_BATCH_SIZE: Final = 32
# The train split is shuffled with this seed before it is cut into calibration batches.
CALIBRATION_SEED: Final = 0


def train_to_checkpoint(
    model_name: str,
    out: str | Path,
    *,
    epochs: int,
    dataset: str = "digits",
    data_dir: str | Path | None = None,
    dataset_arguments: Mapping[str, Any] | None = None,
    validation_fraction: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LR,
    schedule: str = DEFAULT_SCHEDULE,
    label_smoothing: float = DEFAULT_LABEL_SMOOTHING,
    seed: int = 0,
    augment: Sequence[tuple[str, Mapping[str, Any]]] = (),
    progress: bool | None = None,
    optimizer: str = DEFAULT_OPTIMIZER,
    momentum: float | None = None,
    weight_decay: float | None = None,
    step_size: int | None = None,
    gamma: float | None = None,
    early_stopping: int | None = None,
    resume: str | Path | None = None,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
) -> dict[str, Any]:
    """Train a registered architecture on a registered dataset and save it as a checkpoint.

    After every epoch the checkpoint folder ``out`` is replaced atomically by
    the current weights, ``config.json`` and ``history.json``, and then
    receives ``history.csv`` and the resume state (``resume.json`` and
    ``resume.safetensors``). After the last epoch ``metrics.json`` joins the
    checkpoint, and ``training-curve.png`` is drawn when matplotlib is
    installed. ``seed`` seeds torch's global generator before the model is
    built, so the initial weights are reproducible too. The model is built
    for the dataset's channels, classes and image size, so a 3-channel 32x32
    dataset gets a matching network.

    With ``resume``, the run continues after the last epoch saved in that
    folder and ends with the same weights, history and metrics (apart from
    timings) as a run that was never interrupted. Every other argument must
    repeat the interrupted run's value.

    Inside a ``torch.distributed`` process group (``fcnnzoo train`` under
    ``torchrun``) every process trains and only rank 0 writes ``out``;
    ``batch_size`` is the global batch, split evenly over the processes.

    Args:
        model_name: architecture name, as in ``fcnnzoo list models``.
        out: the checkpoint folder to write.
        epochs: number of passes over the train split.
        dataset: dataset name, as in ``fcnnzoo list datasets``.
        data_dir: folder with the dataset's files, for datasets that need them.
        dataset_arguments: dataset-specific arguments, such as ``resize`` for ``folder``.
        validation_fraction: share of each class of the train split held out
            as a validation split and measured after training, or ``None``.
        batch_size: training examples per optimizer step.
        lr: learning rate, the peak of the schedule.
        schedule: learning-rate schedule, ``"cosine"``, ``"step"`` or ``"constant"``.
        label_smoothing: label smoothing of the training loss, in ``[0, 1)``.
        seed: seed for the initial weights, the batch order and augmentation.
        augment: ``(name, keyword arguments)`` of each augmenter, applied in order.
        progress: show a progress bar; ``None`` shows it only on a terminal.
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"``.
        momentum: SGD momentum in ``[0, 1)``; ``None`` means 0.9 for SGD.
        weight_decay: non-negative weight decay; ``None`` means 0.01 for
            AdamW and 0 otherwise.
        step_size: epochs between decays of the ``"step"`` schedule.
        gamma: decay factor of the ``"step"`` schedule.
        early_stopping: stop after this many epochs without a lower
            validation loss; needs ``validation_fraction``.
        resume: a folder written by an interrupted run, normally ``out``.
        on_epoch_end: called with each epoch's record after its checkpoint
            and resume state are written; an exception it raises ends the
            run and leaves that state behind.

    Returns:
        The metrics written to ``metrics.json`` plus ``"checkpoint"``, the
        absolute path of ``out``. With a validation split they include
        ``validation_accuracy``, ``validation_loss`` and ``validation_examples``.

    Raises:
        ValueError: if a name is unknown, a value is out of range, a dataset
            file is invalid, the model does not fit the dataset, or the
            resume state is invalid, finished or from other options.
        TypeError: if a component rejects its arguments.
        FileNotFoundError: if ``data_dir``, a dataset file or the resume
            state does not exist.
        FileExistsError: if ``out`` is a file or a non-empty folder that is
            not a checkpoint.
    """
    check_hyperparameters(
        epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, schedule=schedule, label_smoothing=label_smoothing
    )
    settings = resolve_optimizer_settings(
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        schedule=schedule,
        step_size=step_size,
        gamma=gamma,
        epochs=epochs,
    )
    check_early_stopping(early_stopping, has_validation=validation_fraction is not None)
    options = {
        "model": model_name,
        "dataset": dataset,
        "dataset_arguments": dict(dataset_arguments or {}),
        "validation_fraction": validation_fraction,
        "epochs": epochs,
        "batch_size": batch_size,
        **settings.to_dict(),
        "label_smoothing": label_smoothing,
        "seed": seed,
        "augment": [{"name": name, "arguments": dict(arguments)} for name, arguments in augment],
        "early_stopping": early_stopping,
    }
    resume_from: TrainingState | None = None
    if resume is not None:
        resume_from, saved_options = resume_files.read_state(resume)
        resume_files.check_options(resume, saved_options, options)
        if resume_from.finished:
            raise ValueError(
                f"The run in {resume} has already {'stopped early' if resume_from.stopped_early else 'finished'} "
                f"after epoch {resume_from.epoch} of {resume_from.epochs}, so there is nothing to resume."
            )
        logger.info("Resuming %s after epoch %d of %d", resume, resume_from.epoch, resume_from.epochs)
    checkpoint.check_output_folder(out)
    # Look every name up before loading data, so that a typo fails at once.
    default_registry().get("architecture", model_name)
    default_registry().get("dataset", dataset)
    augmenters = [_build_component("augmenter", create_augmenter, name, arguments) for name, arguments in augment]
    dataset_arguments = dict(dataset_arguments or {})
    splits = load_dataset(dataset, data_dir=data_dir, validation_fraction=validation_fraction, **dataset_arguments)
    group = distributed.current_group()
    device = group.device if group is not None else torch.device("cpu")

    torch.manual_seed(seed)
    model = create_model(model_name, **_model_arguments_for(model_name, splits))

    def save_checkpoint(history: Sequence[EpochRecord], extra_files: Mapping[str, Any]) -> Path:
        return checkpoint.save(
            model,
            out,
            classes=splits.classes,
            mean=splits.mean,
            std=splits.std,
            dataset=splits.name,
            input_size=splits.input_size,
            extra_files={history_files.JSON_FILE: history_files.history_document(history), **extra_files},
        )

    last_state: list[TrainingState] = []

    def save_epoch(state: TrainingState) -> None:
        # The checkpoint replaces the whole folder, so the files beside it are written after it.
        # NOTE: a crash between the swap and write_state leaves this epoch's checkpoint without resume state.
        folder = save_checkpoint(state.history, {})
        history_files.write_history_csv(folder, state.history)
        resume_files.write_state(folder, state, options)
        last_state[:] = [state]
        if on_epoch_end is not None:
            on_epoch_end(state.history[-1])

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
        optimizer=optimizer,
        momentum=momentum,
        weight_decay=weight_decay,
        step_size=step_size,
        gamma=gamma,
        early_stopping=early_stopping,
        resume_from=resume_from,
        on_epoch_end=save_epoch,
        device=device,
    )

    validation_metrics = {}
    if splits.validation is not None:
        validation = evaluate(model, splits.validation, device=device)
        validation_metrics = {
            "validation_accuracy": validation.accuracy,
            "validation_loss": validation.loss,
            "validation_examples": validation.count,
        }

    metrics = {
        "model": model_name,
        "dataset": splits.name,
        "dataset_arguments": dataset_arguments,
        "validation_fraction": validation_fraction,
        **result.metrics(),
        **validation_metrics,
        "batch_size": batch_size,
        **settings.to_dict(),
        "label_smoothing": label_smoothing,
        "seed": seed,
        "augment": options["augment"],
        "early_stopping": early_stopping,
    }
    if group is not None:
        metrics["world_size"] = group.world_size
        if not group.is_main:
            return {**metrics, "checkpoint": str(Path(out).absolute())}
    path = save_checkpoint(result.history, {METRICS_FILE: metrics})
    history_files.write_history_csv(path, result.history)
    resume_files.write_state(path, last_state[0], options)
    history_files.write_training_curve(path, result.history)
    return {**metrics, "checkpoint": str(path)}


def evaluate_checkpoint(
    directory: str | Path,
    *,
    data_dir: str | Path | None = None,
    dataset: str | None = None,
    dataset_arguments: Mapping[str, Any] | None = None,
    split: str = "test",
    validation_fraction: float | None = None,
) -> dict[str, Any]:
    """Load a checkpoint, verifying its weights' sha256, and measure it on a split of its dataset.

    For a checkpoint written by :func:`train_to_checkpoint` the test numbers
    equal the ``test_accuracy`` and ``test_loss`` in its ``metrics.json``
    when the dataset is loaded with the same arguments.

    Args:
        directory: the checkpoint folder.
        data_dir: folder with the dataset's files, for datasets that need them.
        dataset: dataset to measure on; ``None`` uses the one the checkpoint records.
        dataset_arguments: dataset-specific arguments, as given at training time.
        split: ``"test"``, or ``"validation"`` with ``validation_fraction``.
        validation_fraction: the fraction the validation split was taken with.

    Returns:
        ``model``, ``dataset``, ``checkpoint``, ``quantization``, ``split``,
        and the split's numbers: ``test_accuracy``, ``test_loss`` and
        ``test_examples``, or ``validation_accuracy`` and so on.

    Raises:
        FileNotFoundError: if the checkpoint or one of its files is missing.
        ValueError: if the checkpoint is invalid or tampered with, its
            dataset is unknown or does not match the model, or ``split`` is
            invalid.
    """
    if split not in EVALUATION_SPLITS:
        raise ValueError(f"Unknown split {split!r}. Use one of {', '.join(EVALUATION_SPLITS)}.")
    if split == "validation" and validation_fraction is None:
        raise ValueError(
            "Evaluating the validation split needs the validation fraction the model was trained with "
            "(--validation-fraction; metrics.json records it as validation_fraction)."
        )
    model = checkpoint.load(directory)
    config = model.fcnnzoo_checkpoint
    images = _split_for(config, data_dir, dataset, dataset_arguments, split, validation_fraction)
    result = evaluate(model, images)
    return {
        "model": config["architecture"],
        "dataset": dataset if dataset is not None else config["dataset"],
        "checkpoint": config["path"],
        "quantization": config["quantization"],
        "split": split,
        f"{split}_accuracy": result.accuracy,
        f"{split}_loss": result.loss,
        f"{split}_examples": result.count,
    }


def quantize_checkpoint(
    directory: str | Path,
    out: str | Path,
    *,
    method: str,
    arguments: Mapping[str, Any] | None = None,
    data_dir: str | Path | None = None,
    calibration_batches: int | None = None,
    calibration_batch_size: int = DEFAULT_CALIBRATION_BATCH_SIZE,
) -> dict[str, Any]:
    """Quantize a float checkpoint into a new checkpoint and compare the two on the test split.

    Quantizers that need calibration data (``needs_calibration``, such as
    ``int8``) get ``calibration_batches`` batches of the checkpoint
    dataset's train split, never the test split, shuffled with a fixed
    seed. Size, test accuracy and loss, and inference throughput at batch
    256 (:func:`fcnnzoo.throughput.compare_throughput`) are measured for both
    models. The report is written to ``quantization.json`` inside ``out``,
    in the same atomic step as the quantized checkpoint.

    Args:
        directory: the float checkpoint folder.
        out: the folder for the quantized checkpoint; it must differ from ``directory``.
        method: quantizer name, as in ``fcnnzoo list quantizers``.
        arguments: keyword arguments for the quantizer.
        data_dir: folder with the dataset's files, for datasets that need them.
        calibration_batches: number of calibration batches; None means
            :data:`DEFAULT_CALIBRATION_BATCHES` for quantizers that calibrate.
            It must be None for quantizers that do not.
        calibration_batch_size: images per calibration batch.

    Returns:
        The report: ``method``, ``arguments``, ``model``, ``dataset``,
        ``source``, ``checkpoint``, ``size_bytes_before``,
        ``size_bytes_after``, ``size_ratio``, ``accuracy_before``,
        ``accuracy_after``, ``loss_before``, ``loss_after``,
        ``throughput_batch_size``, ``throughput_before`` and
        ``throughput_after`` (images per second), and ``calibration``
        (split, batches, batch size and images, or None).

    Raises:
        ValueError: if ``out`` is ``directory``, the checkpoint is already
            quantized or invalid, the method is unknown, or the calibration
            options are invalid or ask for more batches than the train split has.
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
    needs_calibration = bool(getattr(quantizer, "needs_calibration", False))
    calibration_batches = _check_calibration_options(method, needs_calibration, calibration_batches, calibration_batch_size)

    model = checkpoint.load(source)
    config = model.fcnnzoo_checkpoint
    if config["quantization"] is not None:
        raise ValueError(
            f"Checkpoint {source} is already quantized with {config['quantization']['method']!r}. Quantize the float checkpoint instead."
        )
    test = _split_for(config, data_dir)
    calibration = None
    if needs_calibration:
        train_split = _split_for(config, data_dir, split="train")
        calibration = _calibration_batches(train_split.tensors[0], calibration_batches, calibration_batch_size, config["dataset"])
    before = evaluate(model, test)

    if calibration is None:
        quantized = quantizer.quantize(model)
    else:
        quantized = quantizer.quantize(model, calibration=calibration)
    if getattr(quantized, "fcnnzoo_quantization", None) is None:
        raise ValueError(
            f"Quantizer {method!r} returned a model without fcnnzoo_quantization, so the checkpoint could not be loaded again. "
            "Fix the quantizer plugin."
        )
    if getattr(quantized, "fcnnzoo_config", None) is None:
        quantized.fcnnzoo_config = model.fcnnzoo_config
    after = evaluate(quantized, test)

    # Both models are timed on the same test images, one after the other.
    test_images = test.tensors[0]
    throughput_before, throughput_after = compare_throughput([model, quantized], test_images)

    prepared = checkpoint.prepare(
        quantized,
        classes=config["classes"],
        mean=config["normalization"]["mean"],
        std=config["normalization"]["std"],
        dataset=config["dataset"],
        input_size=config["input_size"],
    )
    size_before = (source / checkpoint.WEIGHTS_FILE).stat().st_size
    report = {
        "method": method,
        "arguments": arguments,
        "model": config["architecture"],
        "dataset": config["dataset"],
        "source": str(source),
        "checkpoint": str(target),
        "size_bytes_before": size_before,
        "size_bytes_after": prepared.size_bytes,
        "size_ratio": size_before / prepared.size_bytes,
        "accuracy_before": before.accuracy,
        "accuracy_after": after.accuracy,
        "loss_before": before.loss,
        "loss_after": after.loss,
        "throughput_batch_size": THROUGHPUT_BATCH_SIZE,
        "throughput_before": throughput_before,
        "throughput_after": throughput_after,
        "calibration": None
        if calibration is None
        else {
            "split": "train",
            "batches": len(calibration),
            "batch_size": calibration_batch_size,
            "images": sum(batch.shape[0] for batch in calibration),
        },
    }
    checkpoint.write(replace(prepared, extra_files={QUANTIZATION_REPORT_FILE: report}), target)
    return report


def _check_calibration_options(method: str, needs_calibration: bool, batches: int | None, batch_size: int) -> int:
    """Validate the calibration options before any slow work and return the number of batches to use."""
    for name, value in (("calibration_batches", batches), ("calibration_batch_size", batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    if not needs_calibration:
        if batches is not None:
            raise ValueError(
                f"Quantizer {method!r} does not calibrate, so calibration_batches={batches} (--calib-batches) does not apply. "
                "Drop it, or use a calibrating method such as int8."
            )
        return 0
    return DEFAULT_CALIBRATION_BATCHES if batches is None else batches


def _calibration_batches(images: torch.Tensor, batches: int, batch_size: int, dataset: str) -> list[torch.Tensor]:
    """Shuffle ``images`` with :data:`CALIBRATION_SEED` and cut the first ``batches`` batches of ``batch_size``.

    Raises:
        ValueError: if the images fill fewer than ``batches`` batches (the last one may be partial).
    """
    available = -(-images.shape[0] // batch_size)
    if batches > available:
        noun = "batch" if available == 1 else "batches"
        raise ValueError(
            f"calibration_batches={batches} (--calib-batches) asks for more than the train split of {dataset!r} has: "
            f"{images.shape[0]} images fill {available} {noun} of {batch_size}. Use at most {available} {noun}."
        )
    order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(CALIBRATION_SEED))
    chosen = images[order[: batches * batch_size]]
    return list(chosen.split(batch_size))


def _build_component(kind: str, factory: Callable[..., Any], name: str, arguments: Mapping[str, Any]) -> Any:
    """Call ``factory(name, **arguments)``, naming the component in a TypeError about its arguments."""
    try:
        return factory(name, **dict(arguments))
    except TypeError as exc:
        raise TypeError(f"Invalid arguments {dict(arguments)} for {kind} {name!r}: {exc}") from exc


def _model_arguments_for(model_name: str, splits: DatasetSplits) -> dict[str, Any]:
    """Return the ``create_model`` arguments that fit the architecture to the dataset.

    ``input_size`` is passed only to factories that take it and only when the
    images differ from the architecture's default size, so fully
    convolutional networks keep working on any size.
    """
    spec = default_registry().get("architecture", model_name)
    arguments: dict[str, Any] = {"in_channels": splits.in_channels, "num_classes": splits.num_classes}
    if tuple(splits.input_size) != tuple(spec.input_size):
        try:
            parameters = inspect.signature(spec.factory).parameters
        except (TypeError, ValueError):
            parameters = {}
        if "input_size" in parameters:
            arguments["input_size"] = tuple(splits.input_size)
        else:
            logger.info("Architecture %r takes no input_size, so it runs on the %s images as they are", model_name, splits.name)
    return arguments


def _split_for(
    config: Mapping[str, Any],
    data_dir: str | Path | None,
    dataset: str | None = None,
    dataset_arguments: Mapping[str, Any] | None = None,
    split: str = "test",
    validation_fraction: float | None = None,
) -> TensorDataset:
    """Load a split of the checkpoint's dataset (or of ``dataset``), normalized as the checkpoint expects.

    ``split`` is ``"test"``, ``"validation"`` or ``"train"``.
    """
    name = dataset if dataset is not None else config["dataset"]
    if name is None:
        raise ValueError(f"Checkpoint {config['path']} records no dataset, so it cannot be evaluated. Save it with dataset=<name>.")
    splits: DatasetSplits = load_dataset(
        name, data_dir=data_dir, validation_fraction=validation_fraction, **dict(dataset_arguments or {})
    )
    if splits.in_channels != config["in_channels"] or splits.classes != config["classes"]:
        raise ValueError(
            f"Dataset {name!r} now has {splits.in_channels} channels and classes {splits.classes}, but checkpoint "
            f"{config['path']} expects {config['in_channels']} channels and classes {config['classes']}."
        )
    if list(splits.input_size) != list(config["input_size"]):
        raise ValueError(
            f"Dataset {name!r} has {splits.input_size[0]}x{splits.input_size[1]} images, but checkpoint {config['path']} "
            f"expects {config['input_size'][0]}x{config['input_size'][1]}. Load the dataset with the arguments it was "
            "trained with, such as --dataset folder:resize=HxW."
        )

    mean = config["normalization"]["mean"]
    std = config["normalization"]["std"]
    chosen = {"validation": splits.validation, "train": splits.train}.get(split, splits.test)
    images, labels = chosen.tensors
    if list(splits.mean) != list(mean) or list(splits.std) != list(std):
        logger.warning("Dataset %r is normalized differently than checkpoint %s expects, so the images are converted", name, config["path"])
    return TensorDataset(renormalize(images, splits.mean, splits.std, mean, std), labels)
