"""Weight initialization shared by the built-in models."""

from __future__ import annotations

from torch import nn

from fcnnzoo.nn import ConvReLUPool

__all__ = ["init_weights_for_relu"]


def init_weights_for_relu(model: nn.Module) -> None:
    """Initialize every conv and linear layer of ``model`` in place for ReLU activations.

    Weights get He (Kaiming) uniform initialization with the fan-in and the
    ReLU gain, so each weight is drawn from ``U(-b, b)`` with
    ``b = sqrt(6 / fan_in)``, and biases start at zero. PyTorch's default
    layer initialization draws from a range smaller by a factor of sqrt(6).

    lenet5 and allconv use it. On digits with Adam (lr 1e-3, batch 64, 10
    epochs, seeds 0 to 2, 2-core CPU) allconv reached 0.981 to 0.989 test
    accuracy with it and 0.950 to 0.975 without, and lenet5 0.972 to 0.978
    against 0.961 to 0.969. fcnn keeps the default, which scored higher
    under the training engine's default recipe (0.989 to 0.994 against
    0.981 to 0.986 on seeds 0 to 4).
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear, ConvReLUPool)):
            nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
