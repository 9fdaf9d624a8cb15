"""The ``int8`` quantizer: post-training static int8 with calibrated activation ranges.

Every :class:`~fcnnzoo.nn.ConvReLUPool` and every ``nn.Linear`` (exact
types) becomes a layer of :mod:`fcnnzoo.int8_layers` with int8 weights and
uint8 activations. Calibration runs the float model on the given batches
and records the input and output of each such layer with an observer of
:mod:`fcnnzoo.observers`.

Inside an ``nn.Sequential`` the quantizer also looks at the neighbours:

- An ``nn.ReLU`` right after a quantized layer is folded into it and
  becomes ``nn.Identity``.
- When two quantized layers are separated only by ``nn.Flatten``,
  ``nn.Dropout`` or ``nn.Identity``, the first one hands its uint8 output
  to the second, whose input parameters it uses as output parameters. The
  ``nn.Dropout`` modules in between become ``nn.Identity`` (they do nothing
  in inference and take no uint8).

This relies on ``nn.Sequential`` running its children in order; a model
whose ``forward`` calls the children of its ``nn.Sequential`` directly is not
supported. Every other layer keeps its float output. Module names do not
change, so the ``state_dict`` keys of a quantized model depend only on the
float architecture, and :meth:`Int8Static.rebuild` recreates the same
structure without data for a checkpoint loader.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Final

import torch
from torch import nn

from fcnnzoo.int8_layers import ActivationParameters
from fcnnzoo.int8_layers import StaticInt8ConvReLUPool
from fcnnzoo.int8_layers import StaticInt8Linear
from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.observers import OBSERVERS
from fcnnzoo.observers import MinMaxObserver
from fcnnzoo.observers import Observer
from fcnnzoo.observers import PercentileObserver
from fcnnzoo.observers import create_observer
from fcnnzoo.quantization import Quantizer

__all__ = ["DEFAULT_OBSERVER", "Int8Static", "QuantizedSite", "plan_sites"]

logger = logging.getLogger(__name__)

DEFAULT_OBSERVER: Final = MinMaxObserver.name
# Exact types: a subclass may override forward(), which the int8 layer would not reproduce.
_QUANTIZABLE_TYPES: Final = (ConvReLUPool, nn.Linear)
# Modules that pass a uint8 tensor from one int8 layer to the next unchanged in inference.
_PASS_THROUGH_TYPES: Final = (nn.Flatten, nn.Dropout, nn.Identity)


@dataclass
class QuantizedSite:
    """A float layer that becomes an int8 layer, with what its neighbours allow.

    Attributes:
        name: the layer's module name in the model ("" for the root).
        module: the float layer.
        relu: whether a following ``nn.ReLU`` is folded into the layer.
        next_site: the int8 layer that receives this one's uint8 output, or None
            when the output stays float.
        identities: names of the modules after this layer that become
            ``nn.Identity``: the folded ReLU and the dropouts on the way to
            ``next_site``.
    """

    name: str
    module: nn.Module
    relu: bool = False
    next_site: QuantizedSite | None = None
    identities: list[str] = field(default_factory=list)

    @property
    def output_uint8(self) -> bool:
        """Whether the layer outputs uint8 for the next int8 layer."""
        return self.next_site is not None


def _is_quantizable(module: nn.Module) -> bool:
    return type(module) in _QUANTIZABLE_TYPES


def _join(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent else child


def plan_sites(model: nn.Module) -> list[QuantizedSite]:
    """Find the layers that the ``int8`` quantizer replaces, the ReLUs it folds and the uint8 hand-overs.

    Returns:
        One site per quantizable layer, in ``named_modules`` order.

    Raises:
        ValueError: if a quantizable layer is reachable under two names,
            because it could not get one set of input parameters.
    """
    paths = Counter(id(module) for _, module in model.named_modules(remove_duplicate=False) if _is_quantizable(module))
    shared = [name for name, module in model.named_modules() if _is_quantizable(module) and paths[id(module)] > 1]
    if shared:
        raise ValueError(
            f"int8 cannot quantize layers used at several places in the model: {shared}. "
            "Give each use its own layer, or use int8_weight_only."
        )

    sites = {name: QuantizedSite(name, module) for name, module in model.named_modules() if _is_quantizable(module)}
    for parent_name, parent in model.named_modules():
        if type(parent) is nn.Sequential:
            _link_sequential(parent_name, parent, sites)
    return list(sites.values())


def _link_sequential(parent_name: str, parent: nn.Sequential, sites: dict[str, QuantizedSite]) -> None:
    """Fold ReLUs and chain uint8 outputs between the children of one ``nn.Sequential``."""
    previous: QuantizedSite | None = None
    between: list[tuple[str, nn.Module]] = []
    for child_name, child in parent.named_children():
        name = _join(parent_name, child_name)
        if _is_quantizable(child):
            site = sites[name]
            if previous is not None:
                previous.next_site = site
                previous.identities.extend(path for path, module in between if type(module) is nn.Dropout)
            previous, between = site, []
        elif previous is not None and type(child) is nn.ReLU and not between:
            previous.relu = True
            previous.identities.append(name)
        elif previous is not None and type(child) in _PASS_THROUGH_TYPES:
            between.append((name, child))
        else:
            previous, between = None, []


class Int8Static(Quantizer):
    """Post-training static int8: int8 weights per output channel, uint8 activations per tensor.

    Weights are quantized symmetrically per output channel with
    :func:`~fcnnzoo.quantization.quantize_per_channel`, biases to int32 in
    units of ``input_scale * weight_scale``, and activations affinely to
    uint8 with ranges that the chosen observer picks from calibration data.

    Args:
        observer: ``"minmax"``, ``"percentile"`` or ``"mse"``.
        percentile: the percentile of the ``percentile`` observer, in
            ``(50, 100]``; None means 99.99. Only valid with that observer.

    Raises:
        ValueError: if the observer is unknown or ``percentile`` is out of
            range or given with another observer.
    """

    method = "int8"
    needs_calibration = True

    def __init__(self, observer: str = DEFAULT_OBSERVER, percentile: float | None = None) -> None:
        if observer not in OBSERVERS:
            raise ValueError(f"Unknown int8 observer {observer!r}. Use one of {', '.join(OBSERVERS)}, as in int8:observer=mse.")
        if percentile is not None and observer != PercentileObserver.name:
            raise ValueError(
                f"percentile={percentile!r} applies only to observer='percentile', not {observer!r}. "
                "Drop it or use int8:observer=percentile,percentile=99.9."
            )
        # Validates the percentile now rather than after calibration.
        create_observer(observer, percentile)
        self.observer = observer
        self.percentile = percentile

    def arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"observer": self.observer}
        if self.percentile is not None:
            arguments["percentile"] = self.percentile
        return arguments

    def is_quantizable(self, module: nn.Module) -> bool:
        return _is_quantizable(module)

    def describe_targets(self) -> str:
        return "It quantizes fcnnzoo.nn.ConvReLUPool and nn.Linear layers (exact types), and the model has none."

    def convert(self, model: nn.Module, calibration: Iterable[Any] | None) -> nn.Module:
        if calibration is None:
            raise ValueError("int8 needs calibration data: call quantize(model, calibration=batches).")
        model.eval()
        sites = plan_sites(model)
        for site in sites:
            _check_finite_parameters(site)
        input_observers, output_observers = self._calibrate(model, sites, calibration)

        replacements: dict[str, nn.Module] = {}
        for site in sites:
            input_parameters = _parameters_of(input_observers[site.name], f"the input of {_describe(site.name)}")
            if site.next_site is not None:
                next_name = site.next_site.name
                output_parameters = _parameters_of(input_observers[next_name], f"the input of {_describe(next_name)}")
            else:
                output_parameters = _parameters_of(output_observers[site.name], f"the output of {_describe(site.name)}")
            layer = _placeholder(site)
            layer.set_parameters(site.module.weight, site.module.bias, input_parameters, output_parameters, _describe(site.name))
            replacements[site.name] = layer
        return _replace(model, sites, replacements)

    def rebuild(self, model: nn.Module) -> nn.Module:
        """Return the int8 structure of ``model`` with neutral buffers, for ``load_state_dict`` to fill."""
        self._check_model(model)
        copied = copy.deepcopy(model)
        sites = plan_sites(copied)
        return self._tag(_replace(copied, sites, {site.name: _placeholder(site) for site in sites}), model)

    def _calibrate(
        self, model: nn.Module, sites: list[QuantizedSite], calibration: Iterable[Any]
    ) -> tuple[dict[str, Observer], dict[str, Observer]]:
        """Run ``model`` on every calibration batch and return the input and output observers by site name."""
        input_observers = {site.name: self._new_observer() for site in sites}
        # A layer that hands uint8 to the next one takes that layer's input parameters, so it needs no output observer.
        output_observers = {site.name: self._new_observer() for site in sites if not site.output_uint8}
        handles = []
        for site in sites:
            handles.append(site.module.register_forward_pre_hook(_input_hook(input_observers[site.name])))
            if site.name in output_observers:
                handles.append(site.module.register_forward_hook(_output_hook(output_observers[site.name], site.relu)))

        batches = 0
        images = 0
        try:
            with torch.no_grad():
                for index, item in enumerate(calibration):
                    batch = _calibration_tensor(item, index)
                    model(batch)
                    batches += 1
                    images += batch.shape[0]
        finally:
            for handle in handles:
                handle.remove()
        if batches == 0:
            raise ValueError("int8 got no calibration batches: the calibration iterable is empty. Pass at least one batch of inputs.")
        logger.info("int8 calibrated %d layers with the %s observer on %d batches (%d inputs)", len(sites), self.observer, batches, images)
        return input_observers, output_observers

    def _new_observer(self) -> Observer:
        return create_observer(self.observer, self.percentile)


def _check_finite_parameters(site: QuantizedSite) -> None:
    """Reject NaN or infinity in a layer's weight or bias before calibration spreads it into the activations."""
    for kind in ("weight", "bias"):
        tensor = getattr(site.module, kind)
        if tensor is not None and not torch.isfinite(tensor.detach()).all():
            raise ValueError(f"Cannot quantize {_describe(site.name)}: its {kind} contains NaN or infinity. Retrain or repair the float model.")


def _describe(name: str) -> str:
    return f"layer {name!r}" if name else "the model's root layer"


def _placeholder(site: QuantizedSite) -> nn.Module:
    if isinstance(site.module, ConvReLUPool):
        return StaticInt8ConvReLUPool.placeholder(site.module, output_uint8=site.output_uint8)
    return StaticInt8Linear.placeholder(site.module, relu=site.relu, output_uint8=site.output_uint8)


def _replace(model: nn.Module, sites: list[QuantizedSite], replacements: dict[str, nn.Module]) -> nn.Module:
    """Swap each site's layer for its replacement and each folded module for ``nn.Identity``, in place."""
    if "" in replacements:
        return replacements[""]
    swaps = dict(replacements)
    for site in sites:
        swaps.update({name: nn.Identity() for name in site.identities})
    for name, module in swaps.items():
        parent_name, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(parent_name), attribute, module)
    return model


def _parameters_of(observer: Observer, what: str) -> ActivationParameters:
    low, high = observer.value_range()
    if low == high:
        logger.warning(
            "int8: every calibration value of %s is %g, so its range is [%g, %g]; other values will saturate",
            what,
            low,
            min(low, 0.0),
            max(high, 0.0),
        )
    return observer.quantization_parameters()


def _calibration_tensor(item: Any, index: int) -> torch.Tensor:
    """Return the input tensor of one calibration item: a tensor, or the first element of a tuple or list."""
    batch = item[0] if isinstance(item, (tuple, list)) and item else item
    if not isinstance(batch, torch.Tensor):
        raise TypeError(
            f"Calibration batch {index} is a {type(item).__name__}, not a tensor or an (inputs, labels) pair. "
            "Pass batches of input tensors, such as a DataLoader over the training images."
        )
    if not batch.is_floating_point():
        raise TypeError(f"Calibration batch {index} has dtype {batch.dtype}; pass floating-point inputs, normalized as for the float model.")
    if batch.dim() == 0 or batch.shape[0] == 0:
        raise ValueError(f"Calibration batch {index} has shape {tuple(batch.shape)} and contains no inputs. Drop empty batches.")
    if not torch.isfinite(batch).all():
        raise ValueError(f"Calibration batch {index} contains NaN or infinity. Pass finite inputs.")
    return batch


def _input_hook(observer: Observer) -> Any:
    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        observer.observe(args[0])

    return hook


def _output_hook(observer: Observer, relu: bool) -> Any:
    def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        # A folded ReLU runs after this hook, so the hook applies it to what it records.
        observer.observe(output.clamp(min=0) if relu else output)

    return hook
