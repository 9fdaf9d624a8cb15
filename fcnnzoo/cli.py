"""The ``fcnnzoo`` command line: argument parsing, output and exit codes.

The work itself lives in :mod:`fcnnzoo.workflows` and the public API. Exit
codes: 0 on success, 2 on bad usage or invalid input (with one line
``fcnnzoo: error: ...`` on stderr), 1 on other operating system errors and
130 when interrupted. ``--json`` prints exactly one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any
from typing import Final
from typing import NoReturn

from fcnnzoo import __version__
from fcnnzoo.component_spec import parse_component_spec
from fcnnzoo.registry import PluginError
from fcnnzoo.registry import PluginWarning

__all__ = ["main", "parse_component_spec"]

logger = logging.getLogger(__name__)

PROG: Final = "fcnnzoo"
EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

# Errors that mean the input was wrong. They end the command with exit code 2.
USER_ERRORS: Final = (
    ValueError,
    TypeError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    PluginError,
)

_LIST_KINDS: Final = ("models", "augmenters", "quantizers", "datasets", "plugins")
# Classes that 'fcnnzoo predict' lists per image by default. It repeats fcnnzoo.prediction.DEFAULT_TOP_K
# because building the parser must not import torch (a test checks that the two agree).
_DEFAULT_TOP_K: Final = 5
# fcnnzoo.workflows.DEFAULT_CALIBRATION_BATCHES and DEFAULT_CALIBRATION_BATCH_SIZE, repeated for the same reason.
_DEFAULT_CALIBRATION_BATCHES: Final = 10
_DEFAULT_CALIBRATION_BATCH_SIZE: Final = 32


class UsageError(Exception):
    """A command line that argparse rejected."""


class _ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` instead of printing usage and exiting.

    A subcommand parser may be given ``add_arguments``, a function that adds
    its arguments the first time the parser parses or prints help. The
    ``train`` arguments show training defaults, which live in a module that
    imports torch, so deferring them keeps ``fcnnzoo --help`` and
    ``fcnnzoo list`` free of torch.
    """

    def __init__(self, *args: Any, add_arguments: Callable[[argparse.ArgumentParser], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._add_arguments = add_arguments

    def _complete(self) -> None:
        if self._add_arguments is not None:
            add_arguments, self._add_arguments = self._add_arguments, None
            add_arguments(self)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._complete()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._complete()
        return super().format_help()

    def format_usage(self) -> str:
        self._complete()
        return super().format_usage()

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (run '{self.prog} --help' for usage)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def _smoothing(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with one subcommand per job."""
    common = _ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of a summary")
    common.add_argument("-v", "--verbose", action="count", default=0, help="log more: -v logs each epoch, -vv adds debug messages and error tracebacks")

    parser = _ArgumentParser(prog=PROG, description="A model zoo of convolutional image classifiers with a fused conv-ReLU-pool kernel.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    list_parser = commands.add_parser("list", parents=[common], help="list registered components")
    list_parser.add_argument("kind", choices=_LIST_KINDS, help="what to list")
    list_parser.add_argument("pattern", nargs="?", default=None, help="shell-style name filter, such as 'fcnn*', or 'plugin:*' to match qualified names")
    list_parser.add_argument("--plugin", default=None, help="list only the components of this plugin, as in 'fcnnzoo list plugins'")

    info_parser = commands.add_parser("info", parents=[common], help="describe an architecture with its computed model card")
    info_parser.add_argument("model", help="architecture name, as in 'fcnnzoo list models', or plugin:name")

    commands.add_parser("train", parents=[common], help="train a model and save a checkpoint", add_arguments=_add_train_arguments)

    commands.add_parser("eval", parents=[common], help="evaluate a checkpoint on its dataset's test split", add_arguments=_add_eval_arguments)

    quantize_parser = commands.add_parser("quantize", parents=[common], help="quantize a checkpoint and compare it with the original")
    quantize_parser.add_argument("checkpoint", help="float checkpoint folder written by 'fcnnzoo train'")
    quantize_parser.add_argument("--method", required=True, metavar="NAME[:key=value,...]", help="quantizer, as in 'fcnnzoo list quantizers'")
    quantize_parser.add_argument("--out", required=True, help="folder for the quantized checkpoint and quantization.json")
    quantize_parser.add_argument("--data-dir", default=None, help="folder with the dataset's files, for datasets that are not bundled")
    quantize_parser.add_argument(
        "--calib-batches",
        type=_positive_int,
        default=None,
        metavar="N",
        help=f"calibration batches from the train split, for quantizers that calibrate such as int8 (default {_DEFAULT_CALIBRATION_BATCHES})",
    )
    quantize_parser.add_argument(
        "--calib-batch-size",
        type=_positive_int,
        default=_DEFAULT_CALIBRATION_BATCH_SIZE,
        metavar="N",
        help=f"images per calibration batch (default {_DEFAULT_CALIBRATION_BATCH_SIZE})",
    )

    predict_parser = commands.add_parser("predict", parents=[common], help="print the most likely classes of image files")
    predict_parser.add_argument("checkpoint", help="checkpoint folder written by 'fcnnzoo train'")
    predict_parser.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="image file in any format Pillow reads; it is converted to the checkpoint's channels and resized to its input size",
    )
    predict_parser.add_argument(
        "--top-k",
        type=_positive_int,
        default=None,
        metavar="K",
        help=f"number of classes listed per image, at most the checkpoint's class count (default: {_DEFAULT_TOP_K}, or every class if fewer)",
    )
    return parser


def _add_eval_arguments(eval_parser: argparse.ArgumentParser) -> None:
    """Add the ``eval`` arguments, whose split names come from :mod:`fcnnzoo.workflows`."""
    from fcnnzoo.workflows import EVALUATION_SPLITS

    eval_parser.add_argument("checkpoint", help="checkpoint folder written by 'fcnnzoo train'")
    eval_parser.add_argument("--data-dir", default=None, help="folder with the dataset's files, for datasets that are not bundled")
    eval_parser.add_argument(
        "--dataset",
        default=None,
        metavar="NAME[:key=value,...]",
        help="dataset with the arguments it was trained with (default: the checkpoint's dataset, without arguments)",
    )
    eval_parser.add_argument("--split", choices=EVALUATION_SPLITS, default="test", help="split to measure (default: test)")
    eval_parser.add_argument(
        "--validation-fraction",
        type=_fraction,
        default=None,
        metavar="FRACTION",
        help="the --validation-fraction given to train, for --split validation",
    )


def _add_train_arguments(train_parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` arguments, whose defaults come from :mod:`fcnnzoo.training`."""
    from fcnnzoo.training import DEFAULT_BATCH_SIZE
    from fcnnzoo.training import DEFAULT_LABEL_SMOOTHING
    from fcnnzoo.training import DEFAULT_LR
    from fcnnzoo.training import DEFAULT_OPTIMIZER
    from fcnnzoo.training import DEFAULT_SCHEDULE
    from fcnnzoo.training import OPTIMIZERS
    from fcnnzoo.training import SCHEDULES

    train_parser.add_argument("model", help="architecture name, as in 'fcnnzoo list models'")
    train_parser.add_argument(
        "--dataset",
        default="digits",
        metavar="NAME[:key=value,...]",
        help="dataset, as in 'fcnnzoo list datasets', with its arguments, such as 'folder:resize=32x32' (default: digits)",
    )
    train_parser.add_argument("--data-dir", default=None, help="folder with the dataset's files, for datasets that are not bundled")
    train_parser.add_argument(
        "--validation-fraction",
        type=_fraction,
        default=None,
        metavar="FRACTION",
        help="hold out this share of each class of the train split as a validation split (seed 0) and report its accuracy",
    )
    train_parser.add_argument("--epochs", type=_positive_int, required=True, help="number of passes over the train split")
    train_parser.add_argument(
        "--out",
        default=None,
        help="checkpoint folder to write after every epoch; an existing checkpoint there is replaced (default with --resume: that folder)",
    )
    train_parser.add_argument(
        "--resume",
        default=None,
        metavar="DIR",
        help="continue the interrupted run saved in DIR; repeat the options of that run",
    )
    train_parser.add_argument("--seed", type=_non_negative_int, default=0, help="seed for weights, batch order and augmentation (default: 0)")
    train_parser.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE, help=f"training images per optimizer step (default: {DEFAULT_BATCH_SIZE})")
    train_parser.add_argument("--lr", type=_positive_float, default=DEFAULT_LR, help=f"peak learning rate (default: {DEFAULT_LR:g})")
    train_parser.add_argument(
        "--optimizer", default=DEFAULT_OPTIMIZER, help=f"optimizer: {', '.join(OPTIMIZERS)} (default: {DEFAULT_OPTIMIZER})"
    )
    train_parser.add_argument("--momentum", type=float, default=None, help="SGD momentum in [0, 1) (default for sgd: 0.9)")
    train_parser.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="L2 penalty for adam and sgd, decoupled weight decay for adamw (default: 0.01 for adamw, else 0)",
    )
    train_parser.add_argument(
        "--schedule",
        default=DEFAULT_SCHEDULE,
        help=f"learning-rate schedule: {', '.join(SCHEDULES)}; cosine anneals to zero per batch, step decays per epoch (default: {DEFAULT_SCHEDULE})",
    )
    train_parser.add_argument(
        "--step-size", type=_positive_int, default=None, help="epochs between two decays of the step schedule (default: a third of --epochs)"
    )
    train_parser.add_argument("--gamma", type=float, default=None, help="factor in (0, 1] of each step-schedule decay (default: 0.1)")
    train_parser.add_argument(
        "--early-stopping",
        type=_positive_int,
        default=None,
        metavar="PATIENCE",
        help="stop once the validation loss has not fallen for PATIENCE epochs; needs --validation-fraction",
    )
    train_parser.add_argument(
        "--label-smoothing",
        type=_smoothing,
        default=DEFAULT_LABEL_SMOOTHING,
        help=f"label smoothing of the training loss, in [0, 1) (default: {DEFAULT_LABEL_SMOOTHING:g})",
    )
    train_parser.add_argument(
        "--augment",
        action="append",
        default=[],
        metavar="NAME[:key=value,...]",
        help="augment training batches, such as 'random_crop:padding=2'; repeat to chain augmenters",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        options = build_parser().parse_args(arguments)
    except UsageError as exc:
        _print_error(str(exc))
        return EXIT_USAGE
    except SystemExit as exc:
        # --help and --version print and exit with code 0.
        return exc.code if isinstance(exc.code, int) else EXIT_OK

    with _cli_logging(options.verbose), warnings.catch_warnings():
        # The registry already logs every broken plugin, so its warning would repeat the message.
        warnings.simplefilter("ignore", PluginWarning)
        try:
            document = _COMMANDS[options.command](options)
            if document is None:
                # A process other than rank 0 of a distributed run prints nothing.
                return EXIT_OK
        except USER_ERRORS as exc:
            logger.debug("Command failed", exc_info=True)
            _print_error(_one_line(exc))
            return EXIT_USAGE
        except OSError as exc:
            logger.debug("Command failed", exc_info=True)
            _print_error(_one_line(exc))
            return EXIT_FAILURE
        except KeyboardInterrupt:
            _print_error("interrupted")
            return EXIT_INTERRUPTED

    if options.json:
        text = json.dumps(document, indent=2, allow_nan=False)
    else:
        text = _HUMAN_FORMATTERS[options.command](options, document)
    return _print_output(text)


# -- commands: each returns a JSON-friendly document ----------------------


def _run_list(options: argparse.Namespace) -> Any:
    from fcnnzoo.registry import default_registry

    registry = default_registry()
    if options.kind == "plugins":
        import fnmatch

        infos = registry.plugins()
        if options.pattern is not None:
            infos = [info for info in infos if fnmatch.fnmatchcase(info.name, options.pattern)]
        if options.plugin is not None:
            infos = [info for info in infos if info.name == options.plugin]
        return [info.to_dict() for info in infos]

    kind = {"models": "architecture", "augmenters": "augmenter", "quantizers": "quantizer", "datasets": "dataset"}[options.kind]
    if options.plugin is not None and options.plugin not in {info.name for info in registry.plugins()}:
        names = ", ".join(info.name for info in registry.plugins())
        raise ValueError(f"Unknown plugin {options.plugin!r} in --plugin. Run 'fcnnzoo list plugins' to see the plugins: {names}.")
    rows = []
    for spec in registry.specs(kind, options.pattern, options.plugin):
        row = {
            "name": registry.display_name(kind, spec),
            "qualified_name": f"{spec.plugin}:{spec.name}",
            "plugin": spec.plugin,
            "distribution": spec.distribution,
            "version": spec.version,
            "description": spec.description,
        }
        if kind == "architecture":
            row.update(
                in_channels=spec.in_channels,
                num_classes=spec.num_classes,
                input_size=list(spec.input_size),
                tags=list(spec.tags),
            )
        rows.append(row)
    return rows


def _run_info(options: argparse.Namespace) -> Any:
    from fcnnzoo.api import model_info

    return model_info(options.model)


def _run_train(options: argparse.Namespace) -> Any:
    from fcnnzoo.training import distributed

    context = distributed.context_from_environment()
    if context is None:
        return _train(options)
    if context.rank != 0:
        # Rank 0 logs and prints for the whole job; the others report only warnings and errors.
        logging.getLogger("fcnnzoo").setLevel(max(logging.WARNING, logging.getLogger("fcnnzoo").level))
    try:
        with distributed.process_group(context):
            metrics = _train(options)
    except distributed.DIST_ERRORS as exc:
        raise ValueError(
            f"Distributed training failed on rank {context.rank} of {context.world_size}: {exc} "
            "Another process may have failed or be unreachable; see its error."
        ) from exc
    return metrics if context.rank == 0 else None


def _train(options: argparse.Namespace) -> Any:
    from fcnnzoo.workflows import train_to_checkpoint

    augment = [parse_component_spec(text, "--augment") for text in options.augment]
    dataset, dataset_arguments = parse_component_spec(options.dataset, "--dataset")
    out = options.out if options.out is not None else options.resume
    if out is None:
        raise ValueError("train needs --out DIR, the checkpoint folder to write (or --resume DIR to continue a run there).")
    return train_to_checkpoint(
        options.model,
        out,
        epochs=options.epochs,
        dataset=dataset,
        data_dir=options.data_dir,
        dataset_arguments=dataset_arguments,
        validation_fraction=options.validation_fraction,
        batch_size=options.batch_size,
        lr=options.lr,
        schedule=options.schedule,
        label_smoothing=options.label_smoothing,
        seed=options.seed,
        augment=augment,
        optimizer=options.optimizer,
        momentum=options.momentum,
        weight_decay=options.weight_decay,
        step_size=options.step_size,
        gamma=options.gamma,
        early_stopping=options.early_stopping,
        resume=options.resume,
    )


def _run_eval(options: argparse.Namespace) -> Any:
    from fcnnzoo.workflows import evaluate_checkpoint

    dataset, dataset_arguments = (None, {}) if options.dataset is None else parse_component_spec(options.dataset, "--dataset")
    return evaluate_checkpoint(
        options.checkpoint,
        data_dir=options.data_dir,
        dataset=dataset,
        dataset_arguments=dataset_arguments,
        split=options.split,
        validation_fraction=options.validation_fraction,
    )


def _run_quantize(options: argparse.Namespace) -> Any:
    from fcnnzoo.workflows import quantize_checkpoint

    method, arguments = parse_component_spec(options.method, "--method")
    return quantize_checkpoint(
        options.checkpoint,
        options.out,
        method=method,
        arguments=arguments,
        data_dir=options.data_dir,
        calibration_batches=options.calib_batches,
        calibration_batch_size=options.calib_batch_size,
    )


def _run_predict(options: argparse.Namespace) -> Any:
    from fcnnzoo.prediction import predict_files

    return predict_files(options.checkpoint, options.images, top_k=options.top_k)


_COMMANDS: Final = {
    "list": _run_list,
    "info": _run_info,
    "train": _run_train,
    "eval": _run_eval,
    "quantize": _run_quantize,
    "predict": _run_predict,
}


# -- human-readable output ------------------------------------------------


def _format_list(options: argparse.Namespace, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"No {options.kind} found."
    if options.kind == "plugins":
        table = []
        for row in rows:
            package = f"{row['distribution']} {row['version']}" if row["distribution"] else "-"
            hooks = ", ".join(hook.removeprefix("fcnnzoo_register_") for hook in row["hooks"]) or "-"
            if row["status"] == "ok":
                detail = ", ".join(row["components"]) or "-"
            else:
                detail = row["error"] or row["reason"] or "-"
            table.append((row["name"], package, row["status"], hooks, detail))
        return _table(("name", "package", "status", "hooks", "registered or error"), table)
    return _table(("name", "plugin", "description"), [(row["name"], row["plugin"], row["description"]) for row in rows])


def _format_info(options: argparse.Namespace, info: dict[str, Any]) -> str:
    package = f"{info['distribution']} {info['version']}" if info["distribution"] else "-"
    minimum = info["min_input_size"]
    lines = [
        f"name: {info['name']}",
        f"qualified name: {info['qualified_name']}",
        f"description: {info['description']}",
        f"plugin: {info['plugin']} ({package})",
        f"input: {info['in_channels']} x {info['input_size'][0]} x {info['input_size'][1]} (channels x height x width)",
        f"minimum input size: {f'{minimum[0]} x {minimum[1]}' if minimum else 'fixed input size'}",
        f"classes: {info['num_classes']}",
        f"tags: {', '.join(info['tags']) or '-'}",
        f"parameters: {info['params']:,}",
        f"multiply-accumulates per image: {info['macs']:,}",
    ]
    return "\n".join(lines)


def _format_train(options: argparse.Namespace, metrics: dict[str, Any]) -> str:
    lines = [
        f"Trained {metrics['model']} ({metrics['params']:,} parameters) on {metrics['dataset']} "
        f"for {_count(metrics['epochs'], 'epoch')} in {metrics['train_seconds']:.1f} s.",
        f"Test accuracy {metrics['test_accuracy']:.4f}, test loss {metrics['test_loss']:.4f} "
        f"over {metrics['test_examples']} images.",
    ]
    if "validation_accuracy" in metrics:
        lines.append(
            f"Validation accuracy {metrics['validation_accuracy']:.4f}, validation loss "
            f"{metrics['validation_loss']:.4f} over {metrics['validation_examples']} images."
        )
    if metrics.get("stopped_early"):
        lines.append(f"Stopped early after epoch {metrics['epochs']}: the validation loss had stopped falling.")
    lines.append(f"Checkpoint: {metrics['checkpoint']}")
    return "\n".join(lines)


def _format_eval(options: argparse.Namespace, report: dict[str, Any]) -> str:
    quantization = report["quantization"]
    model = report["model"] if quantization is None else f"{report['model']} ({quantization['method']})"
    split = report["split"]
    return "\n".join(
        [
            f"Checkpoint {report['checkpoint']}: {model} on {report['dataset']}.",
            f"{split.capitalize()} accuracy {report[f'{split}_accuracy']:.4f}, {split} loss {report[f'{split}_loss']:.4f} "
            f"over {report[f'{split}_examples']} images.",
        ]
    )


def _format_quantize(options: argparse.Namespace, report: dict[str, Any]) -> str:
    ratio = report["size_bytes_before"] / report["size_bytes_after"]
    speedup = report["throughput_after"] / report["throughput_before"]
    lines = [f"Quantized {report['source']} with {report['method']} into {report['checkpoint']}."]
    calibration = report.get("calibration")
    if calibration is not None:
        lines.append(
            f"Calibrated on {calibration['images']} {calibration['split']} images "
            f"({calibration['batches']} {'batch' if calibration['batches'] == 1 else 'batches'} of up to {calibration['batch_size']})."
        )
    lines += [
        f"Weights: {report['size_bytes_before']:,} -> {report['size_bytes_after']:,} bytes ({ratio:.2f}x smaller).",
        f"Test accuracy: {report['accuracy_before']:.4f} -> {report['accuracy_after']:.4f} "
        f"({100 * (report['accuracy_after'] - report['accuracy_before']):+.2f} percentage points).",
        f"Throughput at batch {report['throughput_batch_size']}: {report['throughput_before']:,.0f} -> "
        f"{report['throughput_after']:,.0f} images/s ({speedup:.2f}x).",
    ]
    return "\n".join(lines)


def _format_predict(options: argparse.Namespace, report: dict[str, Any]) -> str:
    lines = []
    for prediction in report["predictions"]:
        lines.append(f"{prediction['image']}:")
        width = max(len(entry["class"]) for entry in prediction["top_k"])
        lines.extend(f"  {entry['class'].ljust(width)}  {entry['probability']:.4f}" for entry in prediction["top_k"])
    return "\n".join(lines)


_HUMAN_FORMATTERS: Final = {
    "list": _format_list,
    "info": _format_info,
    "train": _format_train,
    "eval": _format_eval,
    "quantize": _format_quantize,
    "predict": _format_predict,
}


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


# -- errors and logging ---------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _print_output(text: str) -> int:
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (such as `head`) closed the pipe early. Point stdout at
        # devnull so that the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    return EXIT_OK


def _print_error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is at the time of each record."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        # StreamHandler.__init__ and setStream assign the stream, which this property ignores.
        pass


@contextlib.contextmanager
def _cli_logging(verbosity: int) -> Iterator[None]:
    """Send fcnnzoo's log records to stderr while a command runs, then restore the logger."""
    if verbosity <= 0:
        level = logging.WARNING
    elif verbosity == 1:
        level = logging.INFO
    else:
        level = logging.DEBUG
    package_logger = logging.getLogger("fcnnzoo")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    previous_level = package_logger.level

    package_logger.addHandler(handler)
    package_logger.setLevel(level)
    try:
        yield
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)
