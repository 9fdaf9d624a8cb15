"""Built-in quantizers plugin: ``int8_weight_only``.

It registers through the same hook as a third-party plugin does.
"""

from __future__ import annotations

from typing import Final

from torch import nn

from fcnnzoo.hookspecs import hookimpl
from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.quantization import QuantizedConv2d
from fcnnzoo.quantization import QuantizedConvReLUPool
from fcnnzoo.quantization import QuantizedLinear
from fcnnzoo.quantization import Quantizer
from fcnnzoo.specs import QuantizerSpec

__all__ = ["Int8WeightOnly"]

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


@hookimpl
def fcnnzoo_register_quantizers() -> list[QuantizerSpec]:
    """Return the specs of the built-in quantizers."""
    return [
        QuantizerSpec(
            name="int8_weight_only",
            factory=Int8WeightOnly,
            description="Per-output-channel symmetric int8 weights for conv and linear layers, dequantized for compute",
        ),
    ]
