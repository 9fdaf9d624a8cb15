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

from fcnnzoo.errors import PluginError
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


def _call_factory(kind: str, spec: Any, arguments: dict[str, Any]) -> Any:
    """Call ``spec.factory(**arguments)``, attributing a crash to the plugin.

    ValueError and TypeError pass through unchanged, because factories raise
    them for invalid arguments, and so do the file errors that dataset
    loaders raise for a missing, misplaced or unreadable file. Any other
    exception is a defect of the plugin and becomes a PluginError that names
    the plugin and its package.
    """
    try:
        return spec.factory(**arguments)
    except (ValueError, TypeError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        raise
    except Exception as exc:
        text = " ".join(str(exc).split())
        reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        package = f"{spec.distribution} {spec.version}" if spec.distribution else "its package"
        raise PluginError(
            f"The {kind} {spec.name!r} of plugin {spec.plugin!r} failed to build: {reason}. "
            f"This is a defect in the plugin; report it to the authors of {package}."
        ) from exc


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
        name: the architecture name, as in ``list_models()``: a bare name,
            or ``plugin:name`` to pick one plugin's architecture.
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
        ValueError: if ``name`` is not registered, or an argument is invalid.
        DuplicateNameError: if a bare ``name`` belongs to several plugins.
        PluginError: if the plugin's factory cannot be imported, crashes or
            returns something other than an ``nn.Module``.
    """
    from torch import nn as torch_nn

    from fcnnzoo.nn import set_fused

    spec = default_registry().get("architecture", name)
    arguments = {
        "in_channels": spec.in_channels if in_channels is None else in_channels,
        "num_classes": spec.num_classes if num_classes is None else num_classes,
        **kwargs,
    }
    _check_arguments("architecture", name, spec.factory, arguments)
    model = _call_factory("architecture", spec, arguments)
    if not isinstance(model, torch_nn.Module):
        raise PluginError(
            f"The architecture {spec.name!r} of plugin {spec.plugin!r} built a {type(model).__name__}; expected a torch.nn.Module."
        )
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


def _names(kind: str, pattern: str | None, plugin: str | None) -> list[str]:
    registry = default_registry()
    return [registry.display_name(kind, spec) for spec in registry.specs(kind, pattern, plugin)]


def list_models(pattern: str | None = None, *, plugin: str | None = None) -> list[str]:
    """Return the registered architecture names.

    A name that several plugins register appears once per plugin, as
    ``plugin:name``, so that every returned name works in ``create_model``.

    Args:
        pattern: a shell-style filter such as ``"fcnn*"``, matched against
            the bare name, or against ``plugin:name`` if it contains a ``:``.
        plugin: keep only the architectures of this plugin.
    """
    return _names("architecture", pattern, plugin)


def model_info(name: str) -> dict[str, Any]:
    """Describe an architecture with a card computed from its default build.

    The card contains the spec's description, plugin, distribution, version,
    default input size, channels, number of classes and tags, plus
    ``params`` (parameter count), ``macs`` (multiply-accumulates of one image
    at the default input size) and, for fully convolutional architectures,
    ``min_input_size`` (the smallest input that gives finite logits). The
    computed values are cached per registered architecture.

    Args:
        name: a bare or qualified (``plugin:name``) architecture name.

    Returns:
        A JSON-friendly dictionary.

    Raises:
        ValueError: if ``name`` is not registered.
        DuplicateNameError: if a bare ``name`` belongs to several plugins.
        PluginError: if the architecture fails to build.
    """
    from fcnnzoo.cards import compute_card

    registry = default_registry()
    spec = registry.get("architecture", name)
    display_name = registry.display_name("architecture", spec)

    def compute() -> dict[str, Any]:
        model = create_model(f"{spec.plugin}:{spec.name}", fused=False)
        return compute_card(spec, model, display_name=display_name)

    card = registry.cached_card(spec, compute)
    card["name"] = display_name
    return card


def _lookup(kind: str, name: str) -> Any:
    """Return the spec registered as ``name``, explaining a spec string whose argument lacks its value.

    ``hflip:p`` reads as the qualified name of a component ``p`` of a
    plugin ``hflip``. When no such plugin exists but ``hflip`` is a
    registered name, the user most likely meant ``hflip:p=VALUE``, and the
    error says so.
    """
    registry = default_registry()
    try:
        return registry.get(kind, name)
    except ValueError:
        prefix, _, rest = name.rpartition(":")
        if prefix and rest and prefix in [spec.name for spec in registry.specs(kind, None)]:
            raise ValueError(
                f"Unknown {kind} {name!r}: no plugin {prefix!r} registers {rest!r}, and {rest!r} is not a key=value "
                f"argument of {prefix!r}. Write {prefix}:{rest}=VALUE to set it."
            ) from None
        raise


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
    spec = _lookup("augmenter", name)
    _check_arguments("augmenter", name, spec.factory, kwargs)
    return _call_factory("augmenter", spec, kwargs)


def list_augmenters(pattern: str | None = None, *, plugin: str | None = None) -> list[str]:
    """Return the registered augmenter names, filtered as :func:`list_models` does."""
    return _names("augmenter", pattern, plugin)


def create_quantizer(name: str, **kwargs: Any) -> Any:
    """Build a registered quantizer; call its ``quantize(model)`` to get a quantized copy.

    Raises:
        ValueError: if ``name`` is not registered.
    """
    spec = _lookup("quantizer", name)
    _check_arguments("quantizer", name, spec.factory, kwargs)
    return _call_factory("quantizer", spec, kwargs)


def list_quantizers(pattern: str | None = None, *, plugin: str | None = None) -> list[str]:
    """Return the registered quantizer names, filtered as :func:`list_models` does."""
    return _names("quantizer", pattern, plugin)


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

    spec = _lookup("dataset", name)
    _check_arguments("dataset", name, spec.factory, {"data_dir": data_dir, **kwargs})
    splits = _call_factory("dataset", spec, {"data_dir": data_dir, **kwargs})
    if validation_fraction is not None:
        splits = with_validation(splits, validation_fraction, validation_seed)
    return splits


def list_datasets(pattern: str | None = None, *, plugin: str | None = None) -> list[str]:
    """Return the registered dataset names, filtered as :func:`list_models` does."""
    return _names("dataset", pattern, plugin)


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register a plugin object at run time and return its name.

    Registering the same object again does nothing. A component name that
    another plugin already registers stays reachable as ``plugin:name``.

    Raises:
        PluginError: if another plugin has that name, or the plugin is
            incompatible, or its hooks are invalid, fail or return invalid
            specs.
    """
    return default_registry().register_plugin(plugin, name)


def unregister_plugin(plugin: object) -> None:
    """Remove a plugin, given by object or name, with all it registered.

    Raises:
        ValueError: if the plugin is not registered.
    """
    default_registry().unregister_plugin(plugin)


def list_plugins() -> list[PluginInfo]:
    """Return every known plugin with its source, provenance, status, hooks and components."""
    return default_registry().plugins()


def save(model: nn.Module, directory: str | Path, **metadata: Any) -> Path:
    """Write ``model`` as a checkpoint folder (safetensors weights plus a JSON config), atomically.

    A model wrapped in ``DistributedDataParallel`` or ``torch.compile`` is
    saved under the wrapped model's keys. See :func:`fcnnzoo.checkpoint.save`
    for the arguments.
    """
    from fcnnzoo import checkpoint

    return checkpoint.save(model, directory, **metadata)


def load(directory: str | Path) -> nn.Module:
    """Read a checkpoint folder written by :func:`save`, verifying the weights' size and sha256.

    See :func:`fcnnzoo.checkpoint.load` for the errors it raises.
    """
    from fcnnzoo import checkpoint

    return checkpoint.load(directory)
