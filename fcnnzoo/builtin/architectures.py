"""Built-in architectures plugin: ``fcnn``, ``lenet5`` and ``allconv``.

It registers through the same hook as a third-party plugin does. The
factories are "module:attribute" references, so listing the architectures
imports neither torch nor the model classes.
"""

from __future__ import annotations

from fcnnzoo.hookspecs import hookimpl
from fcnnzoo.specs import ArchitectureSpec


@hookimpl
def fcnnzoo_register_architectures() -> list[ArchitectureSpec]:
    """Return the specs of the built-in architectures."""
    return [
        ArchitectureSpec(
            name="fcnn",
            factory="fcnnzoo.models.fcnn:FCNN",
            description="Reference network: conv-ReLU-pool blocks (32, 64 channels), dense 64, dropout, dense",
            in_channels=1,
            num_classes=10,
            input_size=(28, 28),
            tags=("reference",),
        ),
        ArchitectureSpec(
            name="lenet5",
            factory="fcnnzoo.models.lenet:LeNet5",
            description="LeNet-5 with ReLU and max-pooling: conv 5x5 (6, 16 channels), dense 120, 84",
            in_channels=1,
            num_classes=10,
            input_size=(28, 28),
            tags=("classic",),
        ),
        ArchitectureSpec(
            name="allconv",
            factory="fcnnzoo.models.allconv:AllConv",
            description="Fully convolutional: conv-ReLU-pool stages, 1x1 class convolution, global average pooling",
            in_channels=1,
            num_classes=10,
            input_size=(28, 28),
            # Three max-pools of 2 (the default depth) need 2**3 pixels per
            # side; the conformance tests check this against the model.
            min_input_size=(8, 8),
            tags=("fully-convolutional",),
        ),
    ]
