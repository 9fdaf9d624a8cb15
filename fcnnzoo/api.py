"""The public Python API: create, list and register components.

Every function looks components up in the process-wide registry, which loads
plugins on first use. Importing this module imports neither torch nor any
plugin.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from fcnnzoo.registry import PluginInfo
from fcnnzoo.registry import default_registry

if TYPE_CHECKING:
    from torch import nn

    from fcnnzoo.data import DatasetSplits

__all__ = [
    "create_augmenter",
    "create_model",
    "create_quantizer",
    "list_augmenters",
    "list_datasets",
    "list_models",
    "list_plugins",
    "list_quantizers",
    "load",
    "load_dataset",
    "model_info",
    "register_plugin",
    "save",
    "unregister_plugin",
]


def _check_arguments(kind: str, name: str, factory: Any, arguments: dict[str, Any]) -> None:
    """Raise TypeError naming any keyword argument that ``factory`` does not accept.

    Factories whose signature cannot be read, or that take ``**kwargs``, are
    left to raise their own errors.
    """
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return
    accepted = [
        parameter.name
        for parameter in parameters
        if parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    unknown = [key for key in arguments if key not in accepted]
    if unknown:
        choices = ", ".join(accepted) if accepted else "none"
        raise TypeError(
            f"The {kind} {name!r} does not accept the argument {', '.join(repr(key) for key in unknown)}. "
            f"Accepted arguments: {choices}."
        )


def create_model(
    name: str,
    *,
    fused: bool = True,
    in_channels: int | None = None,
    num_classes: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered architecture.

    Args:
        name: the architecture name, as in ``list_models()``.
        fused: run every conv-ReLU-pool block on the fused C++ kernel
            (``True``) or on the PyTorch composite (``False``). Both build the
            same network with the same ``state_dict`` keys.
        in_channels: input channels; defaults to the architecture's own.
        num_classes: number of output classes; defaults to the architecture's own.
        **kwargs: architecture-specific arguments such as ``depth``.

    Returns:
        The model in training mode. ``model.fcnnzoo_config`` records the
        architecture name and arguments, which checkpoints store.

    Raises:
        ValueError: if ``name`` is not registered.
    """
    from fcnnzoo.nn import set_fused

    spec = default_registry().get("architecture", name)
    arguments = {
        "in_channels": spec.in_channels if in_channels is None else in_channels,
        "num_classes": spec.num_classes if num_classes is None else num_classes,
        **kwargs,
    }
    _check_arguments("architecture", name, spec.factory, arguments)
    model = spec.factory(**arguments)
    set_fused(model, fused)
    # An input_size argument (an int means a square) overrides the spec's default.
    input_size = kwargs.get("input_size", spec.input_size)
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    model.fcnnzoo_config = {
        "architecture": name,
        "arguments": arguments,
        "input_size": list(input_size),
    }
    return model


def list_models(pattern: str | None = None) -> list[str]:
    """Return the registered architecture names, optionally filtered by a shell-style pattern such as ``"fcnn*"``."""
    return [spec.name for spec in default_registry().specs("architecture", pattern)]


def model_info(name: str) -> dict[str, Any]:
    """Describe an architecture: its spec plus the parameter count of the default build.

    Raises:
        ValueError: if ``name`` is not registered.
    """
    spec = default_registry().get("architecture", name)
    model = create_model(name, fused=False)
    return {
        "name": spec.name,
        "plugin": spec.plugin,
        "description": spec.description,
        "in_channels": spec.in_channels,
        "num_classes": spec.num_classes,
        "input_size": list(spec.input_size),
        "min_input_size": list(spec.min_input_size) if spec.min_input_size else None,
        "tags": list(spec.tags),
        "params": sum(p.numel() for p in model.parameters()),
    }


def create_augmenter(name: str, **kwargs: Any) -> Any:
    """Build a registered augmenter, for example ``create_augmenter("hflip", p=0.5, seed=0)``.

    ``name`` may also be a spec as the command line takes it, such as
    ``create_augmenter("rotate:degrees=10,p=0.5", seed=0)``; its arguments
    and ``kwargs`` are combined.

    Raises:
        ValueError: if ``name`` is not registered, the spec is invalid, or
            an argument is given both in the spec and in ``kwargs``.
        TypeError: if the augmenter does not accept an argument or its type.
    """
    if isinstance(name, str) and ":" in name:
        from fcnnzoo.component_spec import parse_component_spec

        spec_text = name
        name, spec_arguments = parse_component_spec(spec_text, "augmenter spec")
        both = sorted(set(spec_arguments) & set(kwargs))
        if both:
            raise ValueError(f"The augmenter spec {spec_text!r} and the keyword arguments both set {', '.join(both)}. Set each once.")
        kwargs = {**spec_arguments, **kwargs}
    spec = default_registry().get("augmenter", name)
    _check_arguments("augmenter", name, spec.factory, kwargs)
    return spec.factory(**kwargs)


def list_augmenters(pattern: str | None = None) -> list[str]:
    """Return the registered augmenter names, optionally filtered by a shell-style pattern."""
    return [spec.name for spec in default_registry().specs("augmenter", pattern)]


def create_quantizer(name: str, **kwargs: Any) -> Any:
    """Build a registered quantizer; call its ``quantize(model)`` to get a quantized copy.

    Raises:
        ValueError: if ``name`` is not registered.
    """
    spec = default_registry().get("quantizer", name)
    _check_arguments("quantizer", name, spec.factory, kwargs)
    return spec.factory(**kwargs)


def list_quantizers(pattern: str | None = None) -> list[str]:
    """Return the registered quantizer names, optionally filtered by a shell-style pattern."""
    return [spec.name for spec in default_registry().specs("quantizer", pattern)]


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    validation_fraction: float | None = None,
    validation_seed: int = 0,
    **kwargs: Any,
) -> DatasetSplits:
    """Load a registered dataset from local files (``digits`` needs none); nothing is downloaded.

    Args:
        name: the dataset name, as in ``list_datasets()``.
        data_dir: the folder with the dataset's files.
        validation_fraction: share of each class of the train split to move
            into ``splits.validation``, in ``(0, 1)``; ``None`` keeps the
            train split whole.
        validation_seed: seed of the validation choice. The default keeps the
            same validation images for every training seed.
        **kwargs: dataset-specific arguments, such as ``resize`` for ``folder``.

    Returns:
        The splits, normalized with the statistics of the full train split.

    Raises:
        ValueError: if ``name`` is not registered or its files are invalid.
        FileNotFoundError: if ``data_dir`` or a file it needs does not exist.
        TypeError: if the dataset does not accept an argument.
    """
    from fcnnzoo.data import with_validation

    spec = default_registry().get("dataset", name)
    _check_arguments("dataset", name, spec.factory, {"data_dir": data_dir, **kwargs})
    splits = spec.factory(data_dir=data_dir, **kwargs)
    if validation_fraction is not None:
        splits = with_validation(splits, validation_fraction, validation_seed)
    return splits


def list_datasets(pattern: str | None = None) -> list[str]:
    """Return the registered dataset names, optionally filtered by a shell-style pattern."""
    return [spec.name for spec in default_registry().specs("dataset", pattern)]


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register a plugin object at run time and return its name.

    Raises:
        PluginError: if the plugin is already registered or its hooks fail.
        DuplicateNameError: if it registers a name that is already taken.
    """
    return default_registry().register_plugin(plugin, name)


def unregister_plugin(plugin: object) -> None:
    """Remove a plugin, given by object or name, with all it registered.

    Raises:
        ValueError: if the plugin is not registered.
    """
    default_registry().unregister_plugin(plugin)


def list_plugins() -> list[PluginInfo]:
    """Return every known plugin with its source, status and components."""
    return default_registry().plugins()


def save(model: nn.Module, directory: str | Path, **metadata: Any) -> Path:
    """Write ``model`` as a checkpoint folder (safetensors weights plus a JSON config).

    See :func:`fcnnzoo.checkpoint.save` for the arguments.
    """
    from fcnnzoo import checkpoint

    return checkpoint.save(model, directory, **metadata)


def load(directory: str | Path) -> nn.Module:
    """Read a checkpoint folder written by :func:`save`, verifying the weights' sha256.

    See :func:`fcnnzoo.checkpoint.load` for the errors it raises.
    """
    from fcnnzoo import checkpoint

    return checkpoint.load(directory)
