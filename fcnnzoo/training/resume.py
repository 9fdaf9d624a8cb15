"""Save and read the state that lets a training run continue exactly.

The state of a :class:`~fcnnzoo.training.engine.TrainingState` goes into
two files in the checkpoint folder: ``resume.safetensors`` contains every
tensor (weights, optimizer moments, RNG states) and ``resume.json`` contains
the rest plus the run's options and the sha256 of the tensor file. Nothing
is pickled, and each file is replaced atomically through a rename.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from typing import Final

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from fcnnzoo.training.engine import EpochRecord
from fcnnzoo.training.engine import TrainingState

__all__ = ["FORMAT_NAME", "STATE_FILE", "TENSORS_FILE", "check_options", "read_state", "write_state"]

STATE_FILE: Final = "resume.json"
TENSORS_FILE: Final = "resume.safetensors"
FORMAT_NAME: Final = "fcnnzoo-resume"
FORMAT_VERSION: Final = 1


def write_state(directory: str | Path, state: TrainingState, options: Mapping[str, Any]) -> None:
    """Write ``state`` and the run's ``options`` into the folder ``directory``.

    The tensor file is written first, so a crash leaves either the previous
    ``resume.json`` (whose hash then rejects the new tensors) or a complete pair.

    Args:
        directory: an existing folder, normally the run's checkpoint.
        state: the state after a finished epoch.
        options: the JSON-friendly options that a resumed run must repeat.

    Raises:
        OSError: if writing fails.
    """
    folder = Path(directory)
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state.model.items():
        tensors[f"model/{key}"] = value
    optimizer_values: dict[str, dict[str, Any]] = {}
    for parameter, values in state.optimizer["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{parameter}/{key}"] = value
            else:
                optimizer_values.setdefault(str(parameter), {})[key] = value
    for name, value in state.generators.items():
        tensors[f"generator/{name}"] = value
    # safetensors rejects views that share memory, so every tensor gets its own copy.
    data = save_safetensors({key: value.detach().cpu().contiguous().clone() for key, value in tensors.items()})

    document = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "epoch": state.epoch,
        "epochs": state.epochs,
        "stopped_early": state.stopped_early,
        "best_validation_loss": state.best_validation_loss,
        "epochs_without_improvement": state.epochs_without_improvement,
        "options": dict(options),
        "history": [record.to_dict() for record in state.history],
        "optimizer": {"param_groups": state.optimizer["param_groups"], "values": optimizer_values},
        "scheduler": state.scheduler,
        "tensors_sha256": hashlib.sha256(data).hexdigest(),
    }
    _write_atomic(folder / TENSORS_FILE, data)
    _write_atomic(folder / STATE_FILE, json.dumps(document, indent=2, allow_nan=False).encode("utf-8"))


def read_state(directory: str | Path) -> tuple[TrainingState, dict[str, Any]]:
    """Read the state that :func:`write_state` saved in ``directory``.

    Returns:
        The state and the options of the saved run.

    Raises:
        FileNotFoundError: if ``directory`` or its resume files do not exist.
        ValueError: if a file is not valid resume state or the tensors do
            not match the hash in ``resume.json``.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"Resume folder {folder} does not exist. Pass the --out folder of an earlier 'fcnnzoo train' run.")
    state_path = folder / STATE_FILE
    tensors_path = folder / TENSORS_FILE
    if not state_path.is_file() or not tensors_path.is_file():
        missing = STATE_FILE if not state_path.is_file() else TENSORS_FILE
        raise FileNotFoundError(
            f"Folder {folder} has no resume state ({missing} is missing). Resume only from the --out folder of a "
            "'fcnnzoo train' run, which saves its state after every epoch."
        )

    try:
        document = json.loads(state_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"Resume state {state_path} is not valid JSON: {exc}. Start a new run instead.") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise ValueError(f"{state_path} is not fcnnzoo resume state (expected format {FORMAT_NAME!r}).")
    if document.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"Resume state {state_path} has format version {document.get('format_version')!r}, "
            f"but this fcnnzoo reads version {FORMAT_VERSION}. Start a new run instead."
        )

    data = tensors_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != document.get("tensors_sha256"):
        raise ValueError(
            f"{tensors_path} does not match the sha256 recorded in {state_path}, so it was changed or only partly "
            "written. Start a new run instead."
        )
    try:
        tensors = load_safetensors(data)
    except SafetensorError as exc:
        raise ValueError(f"{tensors_path} is not a valid safetensors file: {exc}") from exc

    try:
        state = _state_from(document, tensors)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"Resume state {state_path} is incomplete or malformed ({exc!r}). Start a new run instead.") from exc
    return state, document["options"]


def check_options(directory: str | Path, saved: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Check that a resumed run repeats the options of the saved one.

    Raises:
        ValueError: naming the first option whose value differs.
    """
    # A JSON round trip turns tuples into lists, so both sides are compared in that form.
    current = json.loads(json.dumps(dict(current)))
    for name in sorted(set(saved) | set(current)):
        if saved.get(name) != current.get(name):
            raise ValueError(
                f"Cannot resume from {directory}: it was trained with {name}={saved.get(name)!r}, but this run has "
                f"{name}={current.get(name)!r}. Repeat the options of the first run, or choose a new --out."
            )


def _state_from(document: dict[str, Any], tensors: dict[str, torch.Tensor]) -> TrainingState:
    model: dict[str, torch.Tensor] = {}
    generators: dict[str, torch.Tensor] = {}
    optimizer_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        kind, _, rest = key.partition("/")
        if kind == "model":
            model[rest] = value
        elif kind == "generator":
            generators[rest] = value
        elif kind == "optimizer":
            parameter, _, name = rest.partition("/")
            optimizer_state.setdefault(int(parameter), {})[name] = value
    for parameter, values in document["optimizer"]["values"].items():
        optimizer_state.setdefault(int(parameter), {}).update(values)

    return TrainingState(
        epoch=int(document["epoch"]),
        epochs=int(document["epochs"]),
        history=[EpochRecord(**record) for record in document["history"]],
        model=model,
        optimizer={"state": optimizer_state, "param_groups": document["optimizer"]["param_groups"]},
        scheduler=document["scheduler"],
        generators=generators,
        best_validation_loss=document["best_validation_loss"],
        epochs_without_improvement=int(document["epochs_without_improvement"]),
        stopped_early=bool(document["stopped_early"]),
    )


def _write_atomic(path: Path, data: bytes) -> None:
    staging = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        with open(staging, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
