"""Built-in quantizers plugin: ``int8_weight_only``.

It registers through the same hook as a third-party plugin does. The factory
is a "module:attribute" reference to :class:`fcnnzoo.quantization.Int8WeightOnly`,
so listing the quantizers imports no torch.
"""

from __future__ import annotations

from fcnnzoo.hookspecs import hookimpl
from fcnnzoo.specs import QuantizerSpec


@hookimpl
def fcnnzoo_register_quantizers() -> list[QuantizerSpec]:
    """Return the specs of the built-in quantizers."""
    return [
        QuantizerSpec(
            name="int8_weight_only",
            factory="fcnnzoo.quantization:Int8WeightOnly",
            description="Per-output-channel symmetric int8 weights for conv and linear layers, dequantized for compute",
        ),
        QuantizerSpec(
            name="bf16",
            factory="fcnnzoo.bfloat16:BFloat16",
            description="bfloat16 weights for conv and linear layers, computed with float32 accumulation",
        ),
    ]
