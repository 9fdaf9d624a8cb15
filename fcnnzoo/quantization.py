"""Runtime of weight-quantized models: quantized layers, a quantizer base class and size reports.

Weights are quantized per output channel and symmetrically: channel ``c``
gets the scale ``max|w_c| / 127`` and stores ``round(w_c / scale)`` as int8
in ``[-127, 127]``. A quantized layer keeps the int8 weight in the buffer
``weight_int8``, the float32 scales in ``weight_scale`` and the float32 bias
in ``bias``, and dequantizes the weight on every forward call, so it
computes in floating point. A float model and its quantized copy have the
same module names, which makes the quantized ``state_dict`` keys stable: a
loader rebuilds the structure by quantizing a freshly built float model and
then calls ``load_state_dict``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from typing import Any
from typing import ClassVar
from typing import Final

import torch
import torch.nn.functional as F
from torch import nn

from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.nn import ConvReLUPoolMixin

__all__ = [
    "Conv2dSettingsMixin",
    "Int8WeightOnly",
    "QuantizedConv2d",
    "QuantizedConvReLUPool",
    "QuantizedLinear",
    "Quantizer",
    "dequantize_per_channel",
    "quantize_per_channel",
    "size_report",
    "state_dict_nbytes",
]

logger = logging.getLogger(__name__)

# Symmetric range: -128 is left out so that a channel's scale maps its
# largest magnitude to exactly 127 on both signs.
INT8_MAX: Final = 127

# Scale of an all-zero channel. Its weights are 0 at any scale, and a fixed
# positive value keeps every scale finite and the dequantized weight free of NaN.
ZERO_CHANNEL_SCALE: Final = 1.0


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize a weight symmetrically to int8 with one scale per output channel (dimension 0).

    A channel's scale is ``max|w| / 127``, at least the smallest normal
    float32 so that subnormal weights never produce a zero or subnormal
    scale, and :data:`ZERO_CHANNEL_SCALE` for a channel of zeros. Each
    element's round-trip error is then at most half its channel's scale.

    Args:
        weight: a floating-point tensor of shape ``(out_channels, ...)``.

    Returns:
        The int8 tensor of ``weight``'s shape and the float32 scales of
        shape ``(out_channels,)``, on ``weight``'s device.

    Raises:
        ValueError: if ``weight`` has no dimensions or contains NaN or infinity.
    """
    if weight.dim() < 1:
        raise ValueError(f"Cannot quantize a weight with no dimensions, got shape {tuple(weight.shape)}.")
    values = weight.detach().to(torch.float32)
    if not torch.isfinite(values).all():
        raise ValueError(f"Cannot quantize a weight of shape {tuple(weight.shape)} that contains NaN or infinity.")

    rows = values.reshape(values.shape[0], -1)
    if rows.shape[1] == 0:
        max_abs = torch.zeros(rows.shape[0], dtype=torch.float32, device=rows.device)
    else:
        max_abs = rows.abs().amax(dim=1)
    scale = (max_abs / INT8_MAX).clamp(min=torch.finfo(torch.float32).tiny)
    scale = torch.where(max_abs == 0, torch.full_like(scale, ZERO_CHANNEL_SCALE), scale)

    broadcast_scale = scale.view(-1, *([1] * (values.dim() - 1)))
    quantized = torch.round(values / broadcast_scale).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return quantized, scale


def dequantize_per_channel(quantized: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return ``quantized * scale`` as ``dtype``, with ``scale`` broadcast over dimension 0."""
    broadcast_scale = scale.view(-1, *([1] * (quantized.dim() - 1)))
    return (quantized.to(torch.float32) * broadcast_scale).to(dtype)


class _QuantizedWeightLayer(nn.Module):
    """Common storage of the quantized layers: int8 weight, float32 scales and float32 bias."""

    weight_int8: torch.Tensor
    weight_scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        weight_int8, weight_scale = quantize_per_channel(weight)
        self.register_buffer("weight_int8", weight_int8)
        self.register_buffer("weight_scale", weight_scale)
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.float32).clone())

    def dequantize_parameters(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return the weight and bias in ``like``'s floating-point dtype, or float32 for other inputs."""
        dtype = like.dtype if like.is_floating_point() else torch.float32
        weight = dequantize_per_channel(self.weight_int8, self.weight_scale, dtype)
        bias = None if self.bias is None else self.bias.to(dtype)
        return weight, bias


class QuantizedConvReLUPool(ConvReLUPoolMixin, _QuantizedWeightLayer):
    """A :class:`~fcnnzoo.nn.ConvReLUPool` with an int8 weight, run on the same fused op.

    Build it with :meth:`from_float`. ``fused`` chooses between
    :func:`fcnnzoo.ops.conv_relu_pool` and the PyTorch composite, as in the
    float layer.
    """

    def __init__(self, source: ConvReLUPool) -> None:
        super().__init__(source.weight, source.bias)
        self.copy_settings(source)
        self.fused = source.fused

    @classmethod
    def from_float(cls, source: ConvReLUPool) -> QuantizedConvReLUPool:
        """Quantize the weight of ``source`` and copy its configuration."""
        return cls(source)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.dequantize_parameters(x)
        return self.run_conv_relu_pool(x, weight, bias)

    def extra_repr(self) -> str:
        return f"{self.describe_settings(has_bias=self.bias is not None)}, weight=int8"


class Conv2dSettingsMixin:
    """The settings of an ``nn.Conv2d`` and its convolution, for layers that replace one with a stored weight."""

    padding_mode: str
    _reversed_padding_repeated_twice: list[int]

    def copy_conv2d_settings(self, source: nn.Conv2d) -> None:
        """Copy every convolution setting of ``source``, including ``padding_mode``, dilation and groups."""
        self.in_channels = source.in_channels
        self.out_channels = source.out_channels
        self.kernel_size = source.kernel_size
        self.stride = source.stride
        self.padding = source.padding
        self.dilation = source.dilation
        self.groups = source.groups
        self.padding_mode = source.padding_mode
        self._reversed_padding_repeated_twice = list(source._reversed_padding_repeated_twice)

    def convolve(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """Convolve ``x`` with ``weight`` and ``bias`` as the source ``nn.Conv2d`` would."""
        if self.padding_mode != "zeros":
            # nn.Conv2d pads explicitly for the non-zero modes and then convolves without padding.
            padded = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv2d(padded, weight, bias, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class QuantizedConv2d(Conv2dSettingsMixin, _QuantizedWeightLayer):
    """An ``nn.Conv2d`` with an int8 weight; build it with :meth:`from_float`.

    Every convolution setting of the source carries over, including
    ``padding_mode``, dilation and groups.
    """

    def __init__(self, source: nn.Conv2d) -> None:
        super().__init__(source.weight, source.bias)
        self.copy_conv2d_settings(source)

    @classmethod
    def from_float(cls, source: nn.Conv2d) -> QuantizedConv2d:
        """Quantize the weight of ``source`` and copy its configuration."""
        return cls(source)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.dequantize_parameters(x)
        return self.convolve(x, weight, bias)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
            f"padding_mode={self.padding_mode!r}, bias={self.bias is not None}, weight=int8"
        )


class QuantizedLinear(_QuantizedWeightLayer):
    """An ``nn.Linear`` with an int8 weight; build it with :meth:`from_float`."""

    def __init__(self, source: nn.Linear) -> None:
        super().__init__(source.weight, source.bias)
        self.in_features = source.in_features
        self.out_features = source.out_features

    @classmethod
    def from_float(cls, source: nn.Linear) -> QuantizedLinear:
        """Quantize the weight of ``source`` and copy its configuration."""
        return cls(source)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.dequantize_parameters(x)
        return F.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, weight=int8"


class Quantizer:
    """Base class of post-training quantizers that swap layers for quantized ones.

    :meth:`quantize` deep-copies the model, replaces every module for which
    :meth:`is_quantizable` is true with :meth:`convert_module`'s result under
    the same name, and tags the copy. Subclasses set :attr:`method` and
    implement those two methods; :meth:`arguments` returns the constructor
    arguments, which the tag records so that a loader can rebuild the
    quantizer. A quantizer that needs calibration data sets
    :attr:`needs_calibration` and overrides :meth:`convert` and
    :meth:`rebuild`.
    """

    method: ClassVar[str] = "quantizer"
    # Whether quantize() needs calibration batches, so callers know to load data.
    needs_calibration: ClassVar[bool] = False

    def is_quantizable(self, module: nn.Module) -> bool:
        """Return whether ``module`` is a layer that this quantizer replaces."""
        raise NotImplementedError(f"{type(self).__name__} must implement is_quantizable().")

    def convert_module(self, module: nn.Module) -> nn.Module:
        """Return the quantized replacement of ``module``, leaving ``module`` unchanged."""
        raise NotImplementedError(f"{type(self).__name__} must implement convert_module().")

    def arguments(self) -> dict[str, Any]:
        """Return the constructor arguments as JSON-friendly values."""
        return {}

    def quantize(self, model: nn.Module, calibration: Iterable[Any] | None = None) -> nn.Module:
        """Return a quantized deep copy of ``model`` in eval mode, leaving ``model`` unchanged.

        The copy carries ``fcnnzoo_quantization = {"method": ..., "arguments":
        {...}}`` and a copy of ``model.fcnnzoo_config`` when the model has one.

        Args:
            model: the float model.
            calibration: batches of inputs for quantizers that calibrate,
                such as a list of tensors or a ``DataLoader``; quantizers
                without :attr:`needs_calibration` ignore it.

        Raises:
            TypeError: if ``model`` is not an ``nn.Module``.
            ValueError: if ``model`` is already quantized or has no layer
                this quantizer replaces, if a weight contains NaN or
                infinity, or if the quantizer needs calibration data and
                ``calibration`` is None.
        """
        self._check_model(model)
        if self.needs_calibration and calibration is None:
            raise ValueError(
                f"{self.method} needs calibration data: call quantize(model, calibration=batches) with an iterable of "
                "input batches, such as a few batches of the training images."
            )
        return self._tag(self.convert(copy.deepcopy(model), calibration), model)

    def convert(self, model: nn.Module, calibration: Iterable[Any] | None) -> nn.Module:
        """Replace the quantizable layers of ``model``, a private copy, and return the new root."""
        return _replace_modules(model, self)

    def rebuild(self, model: nn.Module) -> nn.Module:
        """Return the quantized structure of ``model`` for ``load_state_dict`` to fill with saved values.

        Checkpoint loaders call it instead of :meth:`quantize`, because they
        have no calibration data. This default quantizes ``model``, which
        suits quantizers that need no data.
        """
        return self.quantize(model)

    def _check_model(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"{self.method} quantizes an nn.Module, got {type(model).__name__}.")
        existing = getattr(model, "fcnnzoo_quantization", None)
        if existing is not None:
            raise ValueError(
                f"The model is already quantized with {existing.get('method')!r}. "
                f"Quantize the float model with {self.method!r} instead."
            )
        names = [name for name, module in model.named_modules() if self.is_quantizable(module)]
        if not names:
            raise ValueError(f"{self.method} found no layer to quantize in {type(model).__name__}. {self.describe_targets()}")
        logger.debug("%s quantizes %d layers of %s: %s", self.method, len(names), type(model).__name__, ", ".join(names))

    def _tag(self, quantized: nn.Module, model: nn.Module) -> nn.Module:
        """Put ``quantized`` in eval mode and record the method and ``model``'s config on it."""
        quantized.eval()
        quantized.fcnnzoo_quantization = {"method": self.method, "arguments": self.arguments()}
        config = getattr(model, "fcnnzoo_config", None)
        if config is not None:
            quantized.fcnnzoo_config = copy.deepcopy(config)
        return quantized

    def describe_targets(self) -> str:
        """Return a sentence naming the layer types this quantizer replaces, for error messages."""
        return "It replaces no layer type."

    def __repr__(self) -> str:
        listed = ", ".join(f"{key}={value!r}" for key, value in self.arguments().items())
        return f"{type(self).__name__}({listed})"


def _replace_modules(root: nn.Module, quantizer: Quantizer) -> nn.Module:
    """Replace the quantizable modules of ``root`` in place and return the new root.

    A module shared by several parents is converted once, so the copy keeps
    the sharing. The root itself is replaced when it is quantizable.
    """
    converted: dict[int, nn.Module] = {}

    def convert(module: nn.Module) -> nn.Module:
        key = id(module)
        if key not in converted:
            converted[key] = quantizer.convert_module(module)
        return converted[key]

    if quantizer.is_quantizable(root):
        return convert(root)
    # remove_duplicate=False lists every path to a shared module, so each gets the replacement.
    targets = [(name, module) for name, module in root.named_modules(remove_duplicate=False) if quantizer.is_quantizable(module)]
    for name, module in targets:
        parent_name, _, attribute = name.rpartition(".")
        setattr(root.get_submodule(parent_name), attribute, convert(module))
    return root


def state_dict_nbytes(model: nn.Module) -> int:
    """Return the bytes that the tensors of ``model.state_dict()`` occupy, counting each entry."""
    return sum(tensor.numel() * tensor.element_size() for tensor in model.state_dict().values())


def size_report(float_model: nn.Module, quantized_model: nn.Module) -> dict[str, Any]:
    """Compare the ``state_dict`` sizes of a float model and its quantized copy.

    Returns:
        ``{"size_bytes_before": int, "size_bytes_after": int, "ratio": float}``
        where ``ratio`` is before divided by after.

    Raises:
        ValueError: if the quantized model's ``state_dict`` is empty.
    """
    before = state_dict_nbytes(float_model)
    after = state_dict_nbytes(quantized_model)
    if after == 0:
        raise ValueError("The quantized model's state_dict is empty, so no size ratio exists. Pass the quantized copy, not an empty module.")
    return {"size_bytes_before": before, "size_bytes_after": after, "ratio": before / after}


# Exact types, not subclasses: a subclass may override forward() or be read
# directly by its owner (nn.MultiheadAttention reads out_proj.weight), so
# replacing it could change what the model computes.
QUANTIZED_TYPES: Final = {
    ConvReLUPool: QuantizedConvReLUPool,
    nn.Conv2d: QuantizedConv2d,
    nn.Linear: QuantizedLinear,
}


class Int8WeightOnly(Quantizer):
    """Store conv and linear weights as per-output-channel symmetric int8.

    Every ``fcnnzoo.nn.ConvReLUPool``, ``nn.Conv2d`` and ``nn.Linear`` (exact
    type) becomes its quantized counterpart from :mod:`fcnnzoo.quantization`,
    which keeps an int8 weight with float32 scales and computes in floating
    point. Activations and all other layers stay as they are. It takes no
    arguments.
    """

    method = "int8_weight_only"

    def is_quantizable(self, module: nn.Module) -> bool:
        return type(module) in QUANTIZED_TYPES

    def convert_module(self, module: nn.Module) -> nn.Module:
        return QUANTIZED_TYPES[type(module)].from_float(module)

    def describe_targets(self) -> str:
        return "It quantizes fcnnzoo.nn.ConvReLUPool, nn.Conv2d and nn.Linear layers, and the model has none."
