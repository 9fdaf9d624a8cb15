"""bfloat16 quantization: conv and linear weights stored as bfloat16, computed with float32 accumulation.

A weight is rounded to bfloat16 once, to nearest with ties to even, and
stored in the buffer ``weight_bf16``, which makes it half the size of the
float32 weight in a checkpoint. bfloat16 has float32's 8 exponent bits, so
every finite float32 weight keeps its magnitude except those above
:data:`BF16_MAX` (they would round to infinity and are rejected) and
float32 subnormals below half of bfloat16's smallest subnormal
(``2**-133``), which round to zero. The bias stays float32.

What runs in which precision:

- ``ConvReLUPool`` always runs on the float32 fused kernel. The bfloat16
  weight is widened to float32 (exactly) once and cached, and activations
  stay float32. On an AVX-512 CPU with ``avx512_bf16``, the fused float32
  kernel was faster than PyTorch's bfloat16 convolution at batch 256 and at
  batch 1 (numbers in :class:`BFloat16`).
- ``nn.Conv2d`` and ``nn.Linear`` run in float32 with the widened weight by
  default. With ``compute="bfloat16"`` they round their input activations to
  bfloat16 and run PyTorch's bfloat16 convolution or matrix product, which
  accumulates in float32 inside oneDNN and rounds its output to bfloat16.
  The float32 bias is added after that rounding, and the result is returned
  in the input's dtype.

A quantized model returns float32 output for float32 input, and the
input's dtype for other floating-point inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from typing import Any
from typing import Final
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from fcnnzoo import planned
from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.nn import ConvReLUPoolMixin
from fcnnzoo.quantization import Conv2dSettingsMixin
from fcnnzoo.quantization import Quantizer

__all__ = [
    "BF16_MAX",
    "BFloat16",
    "BFloat16Conv2d",
    "BFloat16ConvReLUPool",
    "BFloat16Linear",
    "COMPUTE_DTYPES",
    "round_to_bfloat16",
]

# Largest finite bfloat16, (2 - 2**-7) * 2**127. A float32 at or above the
# midpoint to the next power of two rounds to infinity.
BF16_MAX: Final = float(torch.finfo(torch.bfloat16).max)

# Values of the ``compute`` argument: the dtype that nn.Conv2d and nn.Linear compute in.
COMPUTE_DTYPES: Final = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def round_to_bfloat16(weight: torch.Tensor, name: str = "weight") -> torch.Tensor:
    """Round a weight to bfloat16, to nearest with ties to even.

    Args:
        weight: a floating-point tensor.
        name: what to call the tensor in error messages, such as ``"features.0.weight"``.

    Returns:
        A detached bfloat16 copy of ``weight`` on its device.

    Raises:
        TypeError: if ``weight`` is not a floating-point tensor.
        ValueError: if ``weight`` contains NaN or infinity, or a value that
            rounds to infinity because its magnitude exceeds :data:`BF16_MAX`.
    """
    if not weight.is_floating_point():
        raise TypeError(f"bf16 quantizes floating-point weights, but {name} has dtype {weight.dtype}. Convert the model to float32 first.")
    values = weight.detach()
    if not torch.isfinite(values).all():
        raise ValueError(
            f"Cannot quantize {name} of shape {tuple(weight.shape)} to bfloat16: it contains NaN or infinity. "
            "Quantize a model whose training converged to finite weights."
        )

    rounded = values.to(torch.bfloat16)
    overflow = torch.isinf(rounded)
    if overflow.any():
        largest = values[overflow].abs().max().item()
        raise ValueError(
            f"Cannot quantize {name} to bfloat16: {int(overflow.sum())} value(s) up to {largest:.6g} in magnitude exceed "
            f"the bfloat16 maximum {BF16_MAX:.6g} and would become infinity. Scale the weights down or use int8_weight_only."
        )
    return rounded.clone()


class _WidenedWeight(NamedTuple):
    """The stored bfloat16 weight, its version when it was widened, and the widened copy."""

    source: torch.Tensor
    version: int
    weight: torch.Tensor


def _check_bias(bias: torch.Tensor | None, name: str) -> None:
    if bias is not None and not torch.isfinite(bias.detach()).all():
        raise ValueError(
            f"Cannot quantize {name} of shape {tuple(bias.shape)}: it contains NaN or infinity. "
            "Quantize a model whose training converged to finite weights."
        )


class _BFloat16WeightLayer(nn.Module):
    """Common storage of the bfloat16 layers: bfloat16 weight, float32 bias and a cached widened weight.

    The widened copy is not in the ``state_dict``. It is made again when the
    stored weight is replaced or changed in place through PyTorch, as
    ``load_state_dict``, ``copy_`` and ``.to(device)`` do, and when the
    requested dtype changes. An inference-mode tensor has no version counter,
    so a stored weight created in inference mode is widened on every call.
    """

    weight_bf16: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, name: str) -> None:
        super().__init__()
        self.register_buffer("weight_bf16", round_to_bfloat16(weight, f"{name}.weight"))
        _check_bias(bias, f"{name}.bias")
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.float32).clone())
        self._widened: _WidenedWeight | None = None

    def widened_weight(self, dtype: torch.dtype) -> torch.Tensor:
        """Return the stored weight converted to ``dtype``, from the cache when it is current."""
        stored = self.weight_bf16
        if stored.dtype == dtype:
            return stored
        if torch.compiler.is_compiling() or stored.is_inference():
            return stored.to(dtype)

        # The cache keeps a reference to the stored tensor, so identity means the
        # same buffer, and its version counter shows whether it changed in place.
        cached = self._widened
        if cached is None or cached.source is not stored or cached.version != stored._version or cached.weight.dtype != dtype:
            # A tensor made outside inference mode keeps a version counter, so the
            # fused kernel's plan can tell that the weight has not changed.
            with torch.inference_mode(False), torch.no_grad():
                cached = _WidenedWeight(stored, stored._version, stored.to(dtype))
            self._widened = cached
        return cached.weight

    def bias_as(self, dtype: torch.dtype) -> torch.Tensor | None:
        """Return the bias in ``dtype``, or None for a layer without bias."""
        bias = self.bias
        if bias is None or bias.dtype == dtype:
            return bias
        return bias.to(dtype)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> nn.Module:
        # Module.float(), .double() and .to(dtype) convert every floating-point
        # buffer; the stored weight goes back to bfloat16 so that it stays half
        # the size. Values survive the round trip for float32 and float64.
        result = super()._apply(fn, recurse)
        if self.weight_bf16.dtype != torch.bfloat16:
            self.weight_bf16 = self.weight_bf16.to(torch.bfloat16)
        return result


def _compute_dtype_of(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.float32


class BFloat16ConvReLUPool(ConvReLUPoolMixin, _BFloat16WeightLayer):
    """A :class:`~fcnnzoo.nn.ConvReLUPool` with a bfloat16 weight, run on the float32 fused kernel.

    The weight is widened to the input's dtype once and cached, so a float32
    input runs exactly what a float ``ConvReLUPool`` with the rounded weight
    runs. ``fused`` chooses between the fused kernel and the PyTorch
    composite, as in the float layer. Build it with :meth:`from_float`.
    """

    def __init__(self, source: ConvReLUPool, name: str = "ConvReLUPool") -> None:
        super().__init__(source.weight, source.bias, name)
        self.copy_settings(source)
        self.fused = source.fused

    @classmethod
    def from_float(cls, source: ConvReLUPool, name: str = "ConvReLUPool") -> BFloat16ConvReLUPool:
        """Round the weight of ``source`` to bfloat16 and copy its configuration; ``name`` labels errors."""
        return cls(source, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = _compute_dtype_of(x)
        weight = self.widened_weight(dtype)
        bias = self.bias_as(dtype)
        if self.fused:
            output = planned.planned_forward(self, x, weight, bias)
            if output is not None:
                return output
        return self.run_conv_relu_pool(x, weight, bias)

    def extra_repr(self) -> str:
        return f"{self.describe_settings(has_bias=self.bias is not None)}, weight=bfloat16"


class BFloat16Conv2d(Conv2dSettingsMixin, _BFloat16WeightLayer):
    """An ``nn.Conv2d`` with a bfloat16 weight; build it with :meth:`from_float`.

    Every convolution setting of the source carries over, including
    ``padding_mode``, dilation and groups. ``compute`` is ``"float32"``
    (widened weight, input dtype kept) or ``"bfloat16"`` (input rounded to
    bfloat16, output rounded to bfloat16 before the float32 bias is added).
    """

    def __init__(self, source: nn.Conv2d, name: str = "Conv2d", compute: str = "float32") -> None:
        super().__init__(source.weight, source.bias, name)
        self.compute = _check_compute(compute)
        self.copy_conv2d_settings(source)

    @classmethod
    def from_float(cls, source: nn.Conv2d, name: str = "Conv2d", compute: str = "float32") -> BFloat16Conv2d:
        """Round the weight of ``source`` to bfloat16 and copy its configuration; ``name`` labels errors."""
        return cls(source, name, compute)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = _compute_dtype_of(x)
        if self.compute == "bfloat16":
            output = self.convolve(x.to(torch.bfloat16), self.weight_bf16, None).to(dtype)
            bias = self.bias_as(dtype)
            return output if bias is None else output + bias.view(1, -1, 1, 1)
        return self.convolve(x, self.widened_weight(dtype), self.bias_as(dtype))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
            f"padding_mode={self.padding_mode!r}, bias={self.bias is not None}, weight=bfloat16, compute={self.compute}"
        )


class BFloat16Linear(_BFloat16WeightLayer):
    """An ``nn.Linear`` with a bfloat16 weight; build it with :meth:`from_float`.

    ``compute`` works as in :class:`BFloat16Conv2d`.
    """

    def __init__(self, source: nn.Linear, name: str = "Linear", compute: str = "float32") -> None:
        super().__init__(source.weight, source.bias, name)
        self.compute = _check_compute(compute)
        self.in_features = source.in_features
        self.out_features = source.out_features

    @classmethod
    def from_float(cls, source: nn.Linear, name: str = "Linear", compute: str = "float32") -> BFloat16Linear:
        """Round the weight of ``source`` to bfloat16 and copy its configuration; ``name`` labels errors."""
        return cls(source, name, compute)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = _compute_dtype_of(x)
        if self.compute == "bfloat16":
            output = F.linear(x.to(torch.bfloat16), self.weight_bf16).to(dtype)
            bias = self.bias_as(dtype)
            return output if bias is None else output + bias
        return F.linear(x, self.widened_weight(dtype), self.bias_as(dtype))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"weight=bfloat16, compute={self.compute}"
        )


def _check_compute(compute: object) -> str:
    if not isinstance(compute, str) or compute not in COMPUTE_DTYPES:
        raise ValueError(f"compute must be one of {sorted(COMPUTE_DTYPES)}, got {compute!r}.")
    return compute


# Exact types, not subclasses, for the reason given at QUANTIZED_TYPES in fcnnzoo.quantization.
BFLOAT16_TYPES: Final = {
    ConvReLUPool: BFloat16ConvReLUPool,
    nn.Conv2d: BFloat16Conv2d,
    nn.Linear: BFloat16Linear,
}


class BFloat16(Quantizer):
    """Store conv and linear weights as bfloat16 and compute with float32 accumulation.

    Every ``fcnnzoo.nn.ConvReLUPool``, ``nn.Conv2d`` and ``nn.Linear`` (exact
    type) becomes its bfloat16 counterpart from :mod:`fcnnzoo.bfloat16`.
    Other layers stay as they are. What runs in which precision:

    - ``ConvReLUPool``: float32 activations on the fused float32 kernel, with
      the bfloat16 weight widened to float32 once and cached.
    - ``nn.Conv2d`` and ``nn.Linear`` with ``compute="float32"``, the
      default: float32 with the widened weight.
    - ``nn.Conv2d`` and ``nn.Linear`` with ``compute="bfloat16"``: bfloat16
      inputs and outputs with float32 accumulation inside oneDNN, and then
      the float32 bias.

    The default follows ``benchmarks/test_bf16.py`` on a 2-core AVX-512 CPU
    with ``avx512_bf16`` (PyTorch 2.13, 2 threads). There the fused float32
    conv-ReLU-pool blocks of fcnn ran 3 to 25 times faster than PyTorch's
    bfloat16 conv, ReLU and max-pool, at batch 256 and at batch 1. bfloat16
    linear layers were faster only for the 1600-to-64 layer at batch 256
    (about 1.5 times), and slower at batch 1 and for the 64-to-10 layer. So
    ``compute="bfloat16"`` pays off only for large conv and linear layers at
    large batches.

    Args:
        compute: ``"float32"`` or ``"bfloat16"``, the precision of the
            ``nn.Conv2d`` and ``nn.Linear`` products.

    Raises:
        ValueError: if ``compute`` is not one of :data:`COMPUTE_DTYPES`.
    """

    method = "bf16"

    def __init__(self, compute: str = "float32") -> None:
        self.compute = _check_compute(compute)

    def arguments(self) -> dict[str, Any]:
        return {"compute": self.compute}

    def is_quantizable(self, module: nn.Module) -> bool:
        return type(module) in BFLOAT16_TYPES

    def convert_module(self, module: nn.Module) -> nn.Module:
        name = type(module).__name__
        if type(module) is ConvReLUPool:
            return BFloat16ConvReLUPool.from_float(module, name)
        return BFLOAT16_TYPES[type(module)].from_float(module, name, self.compute)

    def quantize(self, model: nn.Module, calibration: Iterable[Any] | None = None) -> nn.Module:
        """Return a bfloat16 deep copy of ``model`` in eval mode, leaving ``model`` unchanged.

        ``calibration`` is accepted for the common quantizer interface and
        ignored, because bfloat16 rounding needs no data.

        The copy carries ``fcnnzoo_quantization = {"method": "bf16",
        "arguments": {"compute": ...}}`` and a copy of ``model.fcnnzoo_config``
        when the model has one.

        Raises:
            TypeError: if ``model`` is not an ``nn.Module``.
            ValueError: if ``model`` is already quantized or has no layer to
                quantize, or if a weight or bias contains NaN or infinity or a
                weight exceeds the bfloat16 range. The message names the layer.
        """
        if isinstance(model, nn.Module) and getattr(model, "fcnnzoo_quantization", None) is None:
            self._check_layers(model)
        return super().quantize(model, calibration)

    def _check_layers(self, model: nn.Module) -> None:
        """Check the weight and bias of every layer to quantize, so that errors name the layer as the model does."""
        for name, module in model.named_modules():
            if self.is_quantizable(module):
                label = name or type(module).__name__
                round_to_bfloat16(module.weight, f"{label}.weight")
                _check_bias(module.bias, f"{label}.bias")

    def describe_targets(self) -> str:
        return "It quantizes fcnnzoo.nn.ConvReLUPool, nn.Conv2d and nn.Linear layers, and the model has none."
