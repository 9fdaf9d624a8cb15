"""Checkpoint folders: safetensors weights plus a JSON config, written atomically.

A checkpoint is a folder with two files. ``model.safetensors`` contains the
``state_dict`` (never pickled). ``config.json`` records what is needed to
rebuild the model: the architecture name and arguments, the quantization
method if any, the classes, the input size and normalization, and the
dataset. It also records the fcnnzoo version, the plugin that registers the
architecture (with its distribution and version), and the size and sha256
of the weights file. :func:`load` verifies the size and the hash before it
parses a single tensor. Other JSON files, such as ``metrics.json``, may sit in the same
folder and are written in the same atomic step.

Weights saved from a model wrapped in ``DistributedDataParallel`` or
``torch.compile`` are stored under the wrapped model's own keys, and
:func:`load` also accepts weights whose keys still carry the wrappers'
``module.`` or ``_orig_mod.`` prefixes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import uuid
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import Final

import torch
from torch import nn

__all__ = [
    "CONFIG_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "WEIGHTS_FILE",
    "WRAPPER_PREFIXES",
    "PreparedCheckpoint",
    "check_output_folder",
    "is_checkpoint",
    "load",
    "prepare",
    "read_config",
    "save",
    "unwrap_model",
    "write",
    "write_json_atomic",
]

logger = logging.getLogger(__name__)

WEIGHTS_FILE: Final = "model.safetensors"
CONFIG_FILE: Final = "config.json"
FORMAT_NAME: Final = "fcnnzoo-checkpoint"
# Bump when config.json changes incompatibly; load() rejects other versions.
FORMAT_VERSION: Final = 1

_REQUIRED_FIELDS: Final = (
    "format",
    "format_version",
    "architecture",
    "arguments",
    "in_channels",
    "num_classes",
    "input_size",
    "classes",
    "normalization",
    "quantization",
    "weights_sha256",
)
_RESERVED_FILES: Final = frozenset({WEIGHTS_FILE, CONFIG_FILE})
# Key prefixes that DistributedDataParallel ("module.") and torch.compile
# ("_orig_mod.") add to every state_dict key of the model they wrap.
WRAPPER_PREFIXES: Final = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class PreparedCheckpoint:
    """A checkpoint serialized in memory and ready for :func:`write`.

    Attributes:
        weights: the safetensors file contents.
        config: the ``config.json`` contents, including the weights' sha256.
        extra_files: more JSON documents for the folder, by file name.
    """

    weights: bytes
    config: dict[str, Any]
    extra_files: dict[str, Any] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        """Size of the weights file in bytes."""
        return len(self.weights)


def prepare(
    model: nn.Module,
    *,
    classes: Sequence[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    dataset: str | None = None,
    input_size: Sequence[int] | None = None,
    extra_files: Mapping[str, Any] | None = None,
) -> PreparedCheckpoint:
    """Serialize ``model`` and its metadata without touching the disk.

    Metadata that is not given falls back to what a checkpoint loaded with
    :func:`load` carries in ``model.fcnnzoo_checkpoint``, then to defaults:
    classes ``"0"``, ``"1"``, ..., mean 0 and standard deviation 1.

    Args:
        model: a model built by :func:`fcnnzoo.create_model` (it needs
            ``model.fcnnzoo_config``), possibly quantized, and possibly
            wrapped in ``DistributedDataParallel`` or ``torch.compile``.
        classes: class names, one per output.
        mean: per-channel mean the inputs are normalized with.
        std: per-channel standard deviation the inputs are normalized with.
        dataset: name of the dataset the model was trained on.
        input_size: ``(height, width)`` of the inputs; defaults to the
            architecture's.
        extra_files: JSON-serializable documents to write next to the
            weights, by plain file name such as ``"metrics.json"``.

    Returns:
        The serialized checkpoint.

    Raises:
        ValueError: if the model was not built by ``create_model`` or the
            metadata does not match it.
        TypeError: if a ``state_dict`` entry is not a tensor or some
            metadata cannot be stored as JSON.
    """
    model = unwrap_model(model)
    model_config = getattr(model, "fcnnzoo_config", None)
    if not isinstance(model_config, Mapping) or "architecture" not in model_config:
        raise ValueError(
            f"Cannot save a {type(model).__name__} as a checkpoint because it has no fcnnzoo_config. "
            "Build the model with fcnnzoo.create_model(name)."
        )
    previous = getattr(model, "fcnnzoo_checkpoint", None) or {}
    arguments = dict(model_config.get("arguments", {}))
    in_channels = int(arguments.get("in_channels", previous.get("in_channels", 1)))
    num_classes = int(arguments.get("num_classes", previous.get("num_classes", 0)))

    if classes is None:
        classes = previous.get("classes") or [str(index) for index in range(num_classes)]
    classes = [str(name) for name in classes]
    if len(classes) != num_classes:
        raise ValueError(f"The model has {num_classes} outputs but {len(classes)} class names were given: {classes}.")

    normalization = previous.get("normalization") or {}
    mean = _channel_values("mean", mean if mean is not None else normalization.get("mean", [0.0] * in_channels), in_channels)
    std = _channel_values("std", std if std is not None else normalization.get("std", [1.0] * in_channels), in_channels)
    if any(value <= 0 for value in std):
        raise ValueError(f"Every normalization std must be positive, got {std}.")

    if input_size is None:
        input_size = model_config.get("input_size") or previous.get("input_size")
    if input_size is None or len(input_size) != 2:
        raise ValueError(f"input_size must be (height, width), got {input_size!r}.")

    quantization = getattr(model, "fcnnzoo_quantization", None)
    weights = _serialize_state_dict(model)
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fcnnzoo_version": _fcnnzoo_version(),
        "architecture": model_config["architecture"],
        "plugin": _plugin_provenance(model_config["architecture"], previous.get("plugin")),
        "arguments": arguments,
        "in_channels": in_channels,
        "num_classes": num_classes,
        "input_size": [int(side) for side in input_size],
        "classes": classes,
        "normalization": {"mean": mean, "std": std},
        "dataset": dataset if dataset is not None else previous.get("dataset"),
        "quantization": dict(quantization) if quantization is not None else None,
        "weights_bytes": len(weights),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    _check_json("config.json", config)

    extra = dict(extra_files or {})
    for name, document in extra.items():
        if name in _RESERVED_FILES or not name or Path(name).name != name or name.startswith("."):
            raise ValueError(f"Invalid extra file name {name!r}: use a plain file name other than {sorted(_RESERVED_FILES)}.")
        _check_json(name, document)
    return PreparedCheckpoint(weights=weights, config=config, extra_files=extra)


def write(prepared: PreparedCheckpoint, directory: str | Path) -> Path:
    """Write a prepared checkpoint to ``directory`` atomically.

    Every file goes into a hidden temporary folder next to ``directory``,
    which then replaces it. If anything fails before the swap, the temporary
    folder is removed and an existing checkpoint at ``directory`` is left as
    it was. Missing parent folders are created.

    Returns:
        ``directory`` as an absolute path.

    Raises:
        FileExistsError: if ``directory`` is a file, or a non-empty folder
            that is not a checkpoint (so it is never deleted by mistake).
        OSError: if writing fails.
    """
    target = Path(directory).absolute()
    check_output_folder(target)
    target.parent.mkdir(parents=True, exist_ok=True)

    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        _write_bytes(staging / WEIGHTS_FILE, prepared.weights)
        _write_bytes(staging / CONFIG_FILE, _json_bytes(prepared.config))
        for name, document in prepared.extra_files.items():
            _write_bytes(staging / name, _json_bytes(document))
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("Wrote checkpoint %s (%d bytes of weights)", target, prepared.size_bytes)
    return target


def save(
    model: nn.Module,
    directory: str | Path,
    *,
    classes: Sequence[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    dataset: str | None = None,
    input_size: Sequence[int] | None = None,
    extra_files: Mapping[str, Any] | None = None,
) -> Path:
    """Save ``model`` as a checkpoint folder, atomically.

    Equivalent to ``write(prepare(model, ...), directory)``; see
    :func:`prepare` for the arguments and :func:`write` for the guarantees.

    Returns:
        ``directory`` as an absolute path.
    """
    prepared = prepare(
        model, classes=classes, mean=mean, std=std, dataset=dataset, input_size=input_size, extra_files=extra_files
    )
    return write(prepared, directory)


def load(directory: str | Path, *, fused: bool = True) -> nn.Module:
    """Load a checkpoint folder written by :func:`save`.

    The weights file's size and sha256 must match the ones in
    ``config.json``, and the weights are parsed with safetensors, so nothing
    is unpickled. The model is rebuilt with :func:`fcnnzoo.create_model`
    (and the recorded quantizer, if any) and gets
    ``model.fcnnzoo_checkpoint``, a dict with the config fields plus
    ``"path"``, so callers can read the classes and normalization. Weight
    keys that all start with ``module.`` or ``_orig_mod.`` (saved from a
    ``DistributedDataParallel`` or ``torch.compile`` wrapper by other code)
    are loaded without that prefix. A plugin version that differs from the
    recorded one is logged as a warning.

    Args:
        directory: the checkpoint folder.
        fused: build the conv-ReLU-pool blocks on the fused kernel.

    Returns:
        The model in eval mode.

    Raises:
        FileNotFoundError: if the folder, ``config.json`` or the weights
            file is missing.
        NotADirectoryError: if ``directory`` is a file.
        ValueError: if the config is invalid or from an unknown format
            version, the weights' size or sha256 does not match, the
            architecture or quantizer is not registered (with close names
            suggested), or the weights do not fit the architecture (the
            missing and unexpected keys are listed).
    """
    folder = Path(directory)
    config = read_config(folder)
    weights = _read_verified_weights(folder, config)

    try:
        model = _rebuild_model(config, fused)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Checkpoint config {folder / CONFIG_FILE} describes a model that cannot be built: {exc}") from exc
    _warn_on_plugin_version(config, folder)

    _load_state_dict(model, weights, folder)
    model.eval()
    model.fcnnzoo_checkpoint = {**config, "path": str(folder.absolute())}
    return model


def read_config(directory: str | Path) -> dict[str, Any]:
    """Read and validate a checkpoint's ``config.json`` without loading the weights.

    Raises:
        FileNotFoundError: if the folder or ``config.json`` is missing.
        NotADirectoryError: if ``directory`` is a file.
        ValueError: if the JSON is invalid, a field is missing, or the
            format version is not supported.
    """
    folder = Path(directory)
    if not folder.exists():
        raise FileNotFoundError(f"Checkpoint folder {folder} does not exist. Pass the --out folder of 'fcnnzoo train'.")
    if not folder.is_dir():
        raise NotADirectoryError(f"Checkpoint path {folder} is a file, not a checkpoint folder.")
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"Checkpoint config {config_path} is missing, so {folder} is not an fcnnzoo checkpoint.")

    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"Checkpoint config {config_path} is not valid JSON: {exc}.") from exc
    if not isinstance(config, dict):
        raise ValueError(f"Checkpoint config {config_path} must contain a JSON object, got {type(config).__name__}.")

    if config.get("format") != FORMAT_NAME:
        raise ValueError(f"Checkpoint config {config_path} has format {config.get('format')!r}; expected {FORMAT_NAME!r}.")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"Checkpoint config {config_path} has format_version {config.get('format_version')!r}, but this fcnnzoo "
            f"({_fcnnzoo_version()}) reads only version {FORMAT_VERSION}. Load it with the fcnnzoo version that wrote it."
        )
    missing = [name for name in _REQUIRED_FIELDS if name not in config]
    if missing:
        raise ValueError(f"Checkpoint config {config_path} is missing the fields {missing}.")
    _check_config_types(config, config_path)
    return config


def is_checkpoint(directory: str | Path) -> bool:
    """Return whether ``directory`` looks like a checkpoint folder (it has a ``config.json`` of this format)."""
    config_path = Path(directory) / CONFIG_FILE
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and config.get("format") == FORMAT_NAME


def check_output_folder(directory: str | Path) -> None:
    """Check that a checkpoint may be written to ``directory``.

    Allowed are a path that does not exist yet, an empty folder, and an
    existing checkpoint, which is replaced.

    Raises:
        FileExistsError: if ``directory`` is a file, or a non-empty folder
            that is not a checkpoint.
    """
    path = Path(directory)
    if not path.exists():
        return
    if not path.is_dir():
        raise FileExistsError(f"Output path {path} is an existing file. Choose a folder path for the checkpoint.")
    if any(path.iterdir()) and not is_checkpoint(path):
        raise FileExistsError(
            f"Output folder {path} is not empty and is not an fcnnzoo checkpoint, so it will not be replaced. "
            "Choose a new or empty folder."
        )


def write_json_atomic(path: str | Path, document: Any) -> Path:
    """Write ``document`` as JSON to ``path`` through a temporary file and a rename.

    Readers see either the old file or the complete new one.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        TypeError: if ``document`` cannot be stored as JSON.
    """
    target = Path(path)
    _check_json(target.name, document)
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        _write_bytes(staging, _json_bytes(document))
        os.replace(staging, target)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return target


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the model inside ``DistributedDataParallel``, ``DataParallel`` and ``torch.compile`` wrappers.

    Wrappers may be nested in any order; a model without wrappers is returned as it is.
    """
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
            continue
        # torch.compile returns an OptimizedModule that keeps the original model as the submodule _orig_mod.
        original = getattr(model, "_orig_mod", None)
        if isinstance(original, nn.Module):
            model = original
            continue
        return model


def _rebuild_model(config: Mapping[str, Any], fused: bool) -> nn.Module:
    """Build the architecture and apply the quantizer that ``config`` records, without weights."""
    from fcnnzoo.api import create_model
    from fcnnzoo.api import create_quantizer
    from fcnnzoo.errors import DuplicateNameError

    architecture = config["architecture"]
    plugin = (config.get("plugin") or {}).get("name")
    try:
        model = create_model(architecture, fused=fused, **config["arguments"])
    except DuplicateNameError:
        # Another plugin registered the same bare name after the checkpoint was written.
        if not plugin or ":" in architecture:
            raise
        model = create_model(f"{plugin}:{architecture}", fused=fused, **config["arguments"])

    quantization = config["quantization"]
    if quantization is not None:
        quantizer = create_quantizer(quantization["method"], **quantization.get("arguments", {}))
        # rebuild() makes the quantized structure without calibration data; quantizers without it quantize again.
        rebuild = getattr(quantizer, "rebuild", None)
        model = rebuild(model) if callable(rebuild) else quantizer.quantize(model)
    return model


def _plugin_provenance(architecture: str, previous: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return the name, distribution and version of the plugin that registers ``architecture``.

    Falls back to ``previous`` (what a loaded checkpoint recorded) when the
    name is no longer registered.
    """
    from fcnnzoo.registry import default_registry

    try:
        spec = default_registry().get("architecture", architecture)
    except ValueError:
        return dict(previous) if previous else None
    return {"name": spec.plugin, "distribution": spec.distribution, "version": spec.version}


def _warn_on_plugin_version(config: Mapping[str, Any], folder: Path) -> None:
    recorded = config.get("plugin")
    if not recorded:
        return
    installed = _plugin_provenance(config["architecture"], None)
    if installed is None or installed["version"] == recorded.get("version"):
        return
    logger.warning(
        "Checkpoint %s was written with %s %s, but %s is installed. The outputs may differ if the architecture changed.",
        folder,
        recorded.get("distribution") or recorded.get("name"),
        recorded.get("version"),
        installed["version"],
    )


def _strip_wrapper_prefixes(weights: dict[str, torch.Tensor], expected: set[str], folder: Path) -> dict[str, torch.Tensor]:
    """Remove ``module.`` and ``_orig_mod.`` prefixes that every key carries, until the keys fit ``expected``."""
    stripped = []
    while weights and set(weights) != expected:
        prefix = next((prefix for prefix in WRAPPER_PREFIXES if all(name.startswith(prefix) for name in weights)), None)
        if prefix is None:
            break
        weights = {name[len(prefix) :]: tensor for name, tensor in weights.items()}
        stripped.append(prefix)
    if stripped:
        logger.info("Checkpoint weights in %s carry the wrapper prefixes %s, which were removed", folder, stripped)
    return weights


def _serialize_state_dict(model: nn.Module) -> bytes:
    from safetensors.torch import save as safetensors_save

    tensors = {}
    for name, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"state_dict entry {name!r} is a {type(value).__name__}, not a tensor, so it cannot be stored in safetensors."
            )
        # A private contiguous CPU copy: safetensors rejects views and tensors that share memory (tied weights).
        tensors[name] = value.detach().to("cpu").contiguous().clone()
    return safetensors_save(tensors, metadata={"format": "pt"})


def _read_verified_weights(folder: Path, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load as safetensors_load

    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise FileNotFoundError(f"Checkpoint weights {weights_path} are missing. Retrain or restore the checkpoint.")
    # Hash and parse the same bytes, so the file cannot change in between.
    data = weights_path.read_bytes()
    expected_size = config.get("weights_bytes")
    if expected_size is not None and len(data) != expected_size:
        raise ValueError(
            f"Weights file {weights_path} is {len(data)} bytes but config.json records {expected_size}, "
            "so the file is truncated or was replaced. Retrain or restore it."
        )
    actual = hashlib.sha256(data).hexdigest()
    expected = config["weights_sha256"]
    if actual != expected:
        raise ValueError(
            f"Weights file {weights_path} has sha256 {actual} but config.json records {expected}: "
            "the file was modified or corrupted; retrain or restore it."
        )
    try:
        return safetensors_load(data)
    except SafetensorError as exc:
        raise ValueError(f"Checkpoint weights {weights_path} are not a valid safetensors file: {exc}.") from exc


def _load_state_dict(model: nn.Module, weights: dict[str, torch.Tensor], folder: Path) -> None:
    expected = model.state_dict()
    weights = _strip_wrapper_prefixes(weights, set(expected), folder)
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"Checkpoint weights in {folder} do not fit architecture {model.fcnnzoo_config['architecture']!r}: "
            f"missing keys {missing}, unexpected keys {unexpected}."
        )
    mismatched = [
        f"{name} {tuple(weights[name].shape)} vs {tuple(value.shape)}"
        for name, value in expected.items()
        if isinstance(value, torch.Tensor) and tuple(weights[name].shape) != tuple(value.shape)
    ]
    if mismatched:
        raise ValueError(f"Checkpoint weights in {folder} have shapes that do not fit the architecture (stored vs expected): {mismatched}.")
    model.load_state_dict(weights, strict=True)


def _check_config_types(config: dict[str, Any], config_path: Path) -> None:
    problems = []
    if not isinstance(config["architecture"], str):
        problems.append(f"architecture must be a string, got {config['architecture']!r}")
    if not isinstance(config["arguments"], dict):
        problems.append(f"arguments must be an object, got {config['arguments']!r}")
    num_classes = config["num_classes"]
    if not isinstance(num_classes, int) or num_classes <= 0:
        problems.append(f"num_classes must be a positive int, got {num_classes!r}")
    classes = config["classes"]
    if not isinstance(classes, list) or (isinstance(num_classes, int) and len(classes) != num_classes):
        problems.append(f"classes must be a list of num_classes={num_classes!r} names, got {classes!r}")
    input_size = config["input_size"]
    if not (isinstance(input_size, list) and len(input_size) == 2 and all(isinstance(side, int) and side > 0 for side in input_size)):
        problems.append(f"input_size must be [height, width] in pixels, got {input_size!r}")
    normalization = config["normalization"]
    if not isinstance(normalization, dict) or not {"mean", "std"} <= set(normalization):
        problems.append(f"normalization must be an object with mean and std, got {normalization!r}")
    quantization = config["quantization"]
    if quantization is not None and not (isinstance(quantization, dict) and isinstance(quantization.get("method"), str)):
        problems.append(f"quantization must be null or an object with a method name, got {quantization!r}")
    plugin = config.get("plugin")
    if plugin is not None and not (isinstance(plugin, dict) and isinstance(plugin.get("name"), str)):
        problems.append(f"plugin must be null or an object with a name, got {plugin!r}")
    size = config.get("weights_bytes")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        problems.append(f"weights_bytes must be a non-negative int, got {size!r}")
    sha256 = config["weights_sha256"]
    if not isinstance(sha256, str) or len(sha256) != 64 or not set(sha256) <= set("0123456789abcdef"):
        problems.append(f"weights_sha256 must be 64 lowercase hex digits, got {sha256!r}")
    if problems:
        raise ValueError(f"Checkpoint config {config_path} is invalid: {'. '.join(problems)}.")


def _channel_values(name: str, values: Sequence[float], channels: int) -> list[float]:
    values = [float(value) for value in values]
    if len(values) != channels or not all(math.isfinite(value) for value in values):
        raise ValueError(f"Normalization {name} must have {channels} finite values (one per input channel), got {values}.")
    return values


def _check_json(name: str, document: Any) -> None:
    try:
        json.dumps(document, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Cannot store {name} as JSON: {exc}.") from exc


def _json_bytes(document: Any) -> bytes:
    return (json.dumps(document, indent=2, allow_nan=False) + "\n").encode("utf-8")


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def _swap_into_place(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``, replacing an existing ``target`` folder."""
    if not target.exists():
        os.replace(staging, target)
        _fsync_folder(target.parent)
        return

    # POSIX cannot exchange two folders in one rename, so the old one moves
    # aside first and is restored if the second rename fails.
    # NOTE: a crash between the two renames leaves the old checkpoint in the
    # hidden .<name>.old-* folder next to the target, not at the target.
    backup = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"
    os.replace(target, backup)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(backup, target)
        raise
    _fsync_folder(target.parent)
    shutil.rmtree(backup, ignore_errors=True)


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        logger.debug("Could not fsync folder %s", folder)
    finally:
        os.close(descriptor)


def _fcnnzoo_version() -> str:
    from fcnnzoo import __version__

    return __version__
