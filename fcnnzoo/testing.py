"""Conformance kit: checks a plugin author runs in their own tests.

Each ``check_*`` function builds a registered component through the public
API and raises :class:`ConformanceError` (an ``AssertionError``, so pytest
reports it as a test failure) naming the component and the broken rule.
:func:`registered_plugin` and :func:`isolated_registry` scope a plugin or a
whole registry to one test; the ``fcnnzoo_plugin`` pytest fixture in
:mod:`fcnnzoo.pytest_plugin` wraps :func:`registered_plugin`.

Example, in a plugin's own test file::

    import fcnnzoo.testing

    def test_conforms():
        fcnnzoo.testing.check_plugin("myplugin")

Importing this module imports torch.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any
from typing import Final

import torch
from torch import nn

from fcnnzoo.api import create_augmenter
from fcnnzoo.api import create_model
from fcnnzoo.api import create_quantizer
from fcnnzoo.api import model_info
from fcnnzoo.api import register_plugin
from fcnnzoo.api import unregister_plugin
from fcnnzoo.cards import count_parameters
from fcnnzoo.cards import find_min_input_size
from fcnnzoo.registry import BUILTIN_PLUGINS
from fcnnzoo.registry import ENTRY_POINT_GROUP
from fcnnzoo.registry import Registry
from fcnnzoo.registry import default_registry
from fcnnzoo.registry import qualified_name
from fcnnzoo.registry import replace_default_registry

__all__ = [
    "ConformanceError",
    "check_architecture",
    "check_augmenter",
    "check_plugin",
    "check_quantizer",
    "isolated_registry",
    "registered_plugin",
]

# Fused and composite models run the same arithmetic in a different order,
# so float32 outputs agree to about 1e-6 relative; these bounds leave margin.
FUSED_RTOL: Final = 1e-4
FUSED_ATOL: Final = 1e-5
# A quantized model's logits may differ from the float model's by at most this
# fraction of the float logits' largest magnitude. Per-channel int8 weights
# stay near 1 %, so 5 % flags a broken quantizer, not rounding.
QUANTIZER_TOLERANCE: Final = 0.05
# Extra channels and classes used to check that a factory honours the arguments.
OTHER_CHANNELS: Final = 3
OTHER_CLASSES: Final = 7


class ConformanceError(AssertionError):
    """A component broke a rule of the plugin contract."""


def _fail(kind: str, name: str, problem: str) -> None:
    raise ConformanceError(f"{kind} {name!r}: {problem}")


def _images(batch: int, channels: int, size: tuple[int, int], seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, *size, generator=generator, dtype=dtype)


def _check_logits(name: str, logits: object, batch: int, num_classes: int, where: str) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor):
        _fail("architecture", name, f"{where}: forward returned a {type(logits).__name__}, expected a tensor of logits.")
    if tuple(logits.shape) != (batch, num_classes):
        _fail("architecture", name, f"{where}: forward returned shape {tuple(logits.shape)}, expected {(batch, num_classes)}.")
    if not torch.isfinite(logits).all():
        _fail("architecture", name, f"{where}: forward returned non-finite logits.")
    return logits


def check_architecture(name: str, *, batch_size: int = 2) -> dict[str, Any]:
    """Check a registered architecture against the plugin contract.

    The rules are these. The factory builds an ``nn.Module`` for the
    declared channels, classes and input size, and for other channel and
    class counts. The forward pass maps ``(N, C, H, W)`` to finite
    ``(N, num_classes)`` logits. ``fused=True`` and ``fused=False`` give the
    same ``state_dict`` keys and the same outputs. The backward pass gives
    finite gradients. The computed card agrees with the model, and a
    declared ``min_input_size`` is the smallest input the model accepts.

    Args:
        name: a bare or qualified architecture name.
        batch_size: images per checked forward pass.

    Returns:
        The model card from :func:`fcnnzoo.model_info`.

    Raises:
        ConformanceError: naming the architecture and the broken rule.
    """
    spec = default_registry().get("architecture", name)
    if not spec.description.strip() or "\n" in spec.description:
        _fail("architecture", name, "the description must be one non-empty line.")

    torch.manual_seed(0)
    fused = create_model(name, fused=True).eval()
    torch.manual_seed(0)
    composite = create_model(name, fused=False).eval()
    images = _images(batch_size, spec.in_channels, spec.input_size)
    with torch.no_grad():
        fused_logits = _check_logits(name, fused(images), batch_size, spec.num_classes, f"at the declared input size {spec.input_size}")

    if list(fused.state_dict()) != list(composite.state_dict()):
        _fail("architecture", name, "fused=True and fused=False builds have different state_dict keys.")
    composite.load_state_dict(fused.state_dict())
    with torch.no_grad():
        composite_logits = composite(images)
    if not torch.allclose(fused_logits, composite_logits, rtol=FUSED_RTOL, atol=FUSED_ATOL):
        difference = (fused_logits - composite_logits).abs().max().item()
        _fail("architecture", name, f"fused and composite outputs differ by up to {difference:.3g}.")

    other = create_model(name, in_channels=OTHER_CHANNELS, num_classes=OTHER_CLASSES).eval()
    with torch.no_grad():
        _check_logits(
            name,
            other(_images(batch_size, OTHER_CHANNELS, spec.input_size)),
            batch_size,
            OTHER_CLASSES,
            f"built with in_channels={OTHER_CHANNELS}, num_classes={OTHER_CLASSES}",
        )

    _check_backward(name, fused, images, spec.num_classes)
    return _check_card(name, spec, fused)


def _check_backward(name: str, model: nn.Module, images: torch.Tensor, num_classes: int) -> None:
    model.train()
    labels = torch.arange(images.shape[0]) % num_classes
    loss = nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    gradients = [parameter.grad for parameter in model.parameters() if parameter.requires_grad]
    if not gradients or any(gradient is None for gradient in gradients):
        _fail("architecture", name, "the backward pass left a trainable parameter without a gradient.")
    if not all(torch.isfinite(gradient).all() for gradient in gradients):
        _fail("architecture", name, "the backward pass gave non-finite gradients.")
    model.zero_grad(set_to_none=True)
    model.eval()


def _check_card(name: str, spec: Any, model: nn.Module) -> dict[str, Any]:
    card = model_info(qualified_name(spec))
    if card["params"] != count_parameters(model):
        _fail("architecture", name, f"the card counts {card['params']} parameters, but the model has {count_parameters(model)}.")
    if card["macs"] <= 0:
        _fail("architecture", name, "the card counts no multiply-accumulates; is the forward pass built from convolutions and linear layers?")

    declared = spec.min_input_size
    if declared is not None:
        found = find_min_input_size(create_model(qualified_name(spec), fused=False).eval(), spec.in_channels, spec.input_size)
        if found != tuple(declared):
            _fail(
                "architecture",
                name,
                f"declares min_input_size={tuple(declared)}, but the smallest input with finite logits is {found}. "
                "Declare what the model accepts.",
            )
        with torch.no_grad():
            _check_logits(name, model(_images(1, spec.in_channels, declared)), 1, spec.num_classes, f"at min_input_size {tuple(declared)}")
    return card


def _accepts_seed(factory: Any) -> bool:
    try:
        return "seed" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def check_augmenter(name: str, arguments: Mapping[str, Any] | None = None, *, shape: tuple[int, int, int, int] = (4, 1, 28, 28)) -> None:
    """Check a registered augmenter against the plugin contract.

    The rules are these. The augmenter returns a tensor of the input's shape
    and dtype (float32 and float64) without changing its input. The same
    generator seed gives the same output. For a factory that takes a
    ``seed``, two augmenters built with the same seed give the same output.

    Args:
        name: a bare or qualified augmenter name.
        arguments: keyword arguments for the factory.
        shape: the ``(N, C, H, W)`` batch to augment.

    Raises:
        ConformanceError: naming the augmenter and the broken rule.
    """
    arguments = dict(arguments or {})
    for dtype in (torch.float32, torch.float64):
        images = _images(shape[0], shape[1], (shape[2], shape[3]), dtype=dtype)
        original = images.clone()
        outputs = []
        for _ in range(2):
            augment = create_augmenter(name, **arguments)
            outputs.append(augment(images, generator=torch.Generator().manual_seed(0)))
        result = outputs[0]
        if not isinstance(result, torch.Tensor):
            _fail("augmenter", name, f"returned a {type(result).__name__}, expected a tensor.")
        if result.shape != images.shape or result.dtype != images.dtype:
            _fail("augmenter", name, f"turned a {tuple(images.shape)} {images.dtype} batch into {tuple(result.shape)} {result.dtype}.")
        if not torch.equal(images, original):
            _fail("augmenter", name, "changed its input batch in place; return a new tensor.")
        if not torch.equal(outputs[0], outputs[1]):
            _fail("augmenter", name, f"gave different {dtype} outputs for the same generator seed.")

    spec = default_registry().get("augmenter", name)
    if _accepts_seed(spec.factory):
        images = _images(shape[0], shape[1], (shape[2], shape[3]))
        first = create_augmenter(name, **{**arguments, "seed": 0})(images)
        second = create_augmenter(name, **{**arguments, "seed": 0})(images)
        if not torch.equal(first, second):
            _fail("augmenter", name, "two augmenters built with seed=0 gave different outputs.")


def check_quantizer(
    name: str,
    arguments: Mapping[str, Any] | None = None,
    *,
    model: str = "fcnn",
    tolerance: float = QUANTIZER_TOLERANCE,
    batch_size: int = 16,
) -> float:
    """Check a registered quantizer against the plugin contract.

    The rules: ``quantize(model)`` returns a new ``nn.Module``, leaves the
    float model's weights unchanged, and gives finite logits of the same
    shape whose largest difference from the float logits is at most
    ``tolerance`` times the float logits' largest magnitude. A quantizer
    with ``needs_calibration`` gets the compared batch as its calibration data.

    Args:
        name: a bare or qualified quantizer name.
        arguments: keyword arguments for the factory.
        model: the architecture to quantize, built with seed 0.
        tolerance: the bound on the relative output error.
        batch_size: images in the compared batch.

    Returns:
        The relative output error.

    Raises:
        ConformanceError: naming the quantizer and the broken rule.
    """
    quantizer = create_quantizer(name, **dict(arguments or {}))
    if not callable(getattr(quantizer, "quantize", None)):
        _fail("quantizer", name, f"the factory built a {type(quantizer).__name__}, which has no quantize(model) method.")

    torch.manual_seed(0)
    float_model = create_model(model).eval()
    before = copy.deepcopy(float_model.state_dict())
    spec = default_registry().get("architecture", model)
    images = _images(batch_size, spec.in_channels, spec.input_size)
    if getattr(quantizer, "needs_calibration", False):
        # The compared batch doubles as the calibration data, so its activations stay within the calibrated ranges.
        quantized = quantizer.quantize(float_model, calibration=[images])
    else:
        quantized = quantizer.quantize(float_model)
    if not isinstance(quantized, nn.Module) or quantized is float_model:
        _fail("quantizer", name, "quantize(model) must return a new nn.Module, not the model itself or another object.")
    after = float_model.state_dict()
    if list(before) != list(after) or not all(torch.equal(before[key], after[key]) for key in before):
        _fail("quantizer", name, "quantize(model) changed the float model; quantize a copy.")

    quantized.eval()
    with torch.no_grad():
        expected = float_model(images)
        actual = quantized(images)
    if not isinstance(actual, torch.Tensor) or actual.shape != expected.shape or not torch.isfinite(actual).all():
        _fail("quantizer", name, "the quantized model does not return finite logits of the float model's shape.")
    error = ((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-12)).item()
    if error > tolerance:
        _fail("quantizer", name, f"the quantized logits differ from the float logits by {error:.1%} of their magnitude, above {tolerance:.1%}.")
    return error


def check_plugin(plugin: str, arguments: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, list[str]]:
    """Check that a registered plugin loaded and that each of its components conforms.

    Architectures, augmenters and quantizers are checked with the functions
    above, with their default arguments unless ``arguments`` gives others.
    Datasets are not checked, because most read files that only the user
    has.

    Args:
        plugin: the plugin name, as in ``fcnnzoo list plugins``.
        arguments: keyword arguments per augmenter or quantizer name, for
            components that need some, such as ``{"compose": {"augmenters":
            ["hflip"]}}``.

    Returns:
        The checked component names per kind.

    Raises:
        ConformanceError: if the plugin is not loaded, or a component fails.
    """
    registry = default_registry()
    infos = {info.name: info for info in registry.plugins()}
    info = infos.get(plugin)
    if info is None:
        raise ConformanceError(f"plugin {plugin!r} is not registered. Registered plugins: {', '.join(infos) or 'none'}.")
    if info.status != "ok":
        raise ConformanceError(f"plugin {plugin!r} is {info.status}: {info.error or info.reason}")

    checked: dict[str, list[str]] = {"architecture": [], "augmenter": [], "quantizer": []}
    checks = {"architecture": check_architecture, "augmenter": check_augmenter, "quantizer": check_quantizer}
    arguments = arguments or {}
    for kind, check in checks.items():
        for spec in registry.specs(kind, plugin=plugin):
            if kind == "architecture" or spec.name not in arguments:
                check(qualified_name(spec))
            else:
                check(qualified_name(spec), arguments[spec.name])
            checked[kind].append(spec.name)
    return checked


@contextlib.contextmanager
def registered_plugin(plugin: object, name: str | None = None) -> Iterator[str]:
    """Register ``plugin`` in the process-wide registry for the duration of a ``with`` block.

    A plugin that was registered before the block stays registered after it.

    Yields:
        The plugin's name.

    Raises:
        PluginError: as :func:`fcnnzoo.register_plugin` does.
    """
    registry = default_registry()
    existing = registry.name_of(plugin)
    registered = register_plugin(plugin, name)
    try:
        yield registered
    finally:
        # The test may have unregistered it already.
        if existing is None and registry.name_of(plugin) is not None:
            unregister_plugin(registered)


@contextlib.contextmanager
def isolated_registry(*, builtins: bool = True, entry_points: bool = False) -> Iterator[Registry]:
    """Give the ``with`` block a fresh process-wide registry, then restore the previous one.

    Use it to test a plugin without the other installed plugins, or to test
    environment variables such as ``FCNNZOO_DISABLE_PLUGINS``, which the
    registry reads when it first loads.

    Args:
        builtins: load the built-in plugins.
        entry_points: discover the installed third-party plugins.

    Yields:
        The fresh registry, not yet loaded.
    """
    registry = Registry(builtin_plugins=BUILTIN_PLUGINS if builtins else (), entry_point_group=ENTRY_POINT_GROUP if entry_points else None)
    previous = replace_default_registry(registry)
    try:
        yield registry
    finally:
        replace_default_registry(previous)
