"""Built-in quantizers plugin: ``int8_weight_only``, ``int8`` and ``bf16``.

It registers through the same hook as a third-party plugin does. The
factories are "module:attribute" references to
:class:`fcnnzoo.quantization.Int8WeightOnly`,
:class:`fcnnzoo.int8_static.Int8Static` and
:class:`fcnnzoo.bfloat16.BFloat16`, so listing the quantizers imports no
torch.
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
            name="int8",
            factory="fcnnzoo.int8_static:Int8Static",
            description="Static int8: int8 weights and calibrated uint8 activations, integer conv-ReLU-pool and linear layers",
        ),
        QuantizerSpec(
            name="bf16",
            factory="fcnnzoo.bfloat16:BFloat16",
            description="bfloat16 weights for conv and linear layers, computed with float32 accumulation",
        ),
    ]
