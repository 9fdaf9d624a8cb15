"""Built-in architectures plugin: ``fcnn``, ``lenet5`` and ``allconv``.

It registers through the same hook as a third-party plugin does.
"""

from __future__ import annotations

from fcnnzoo.hookspecs import hookimpl
from fcnnzoo.models import FCNN
from fcnnzoo.models import AllConv
from fcnnzoo.models import LeNet5
from fcnnzoo.models.allconv import DEFAULT_DEPTH
from fcnnzoo.models.allconv import min_input_side
from fcnnzoo.specs import ArchitectureSpec


@hookimpl
def fcnnzoo_register_architectures() -> list[ArchitectureSpec]:
    """Return the specs of the built-in architectures."""
    allconv_side = min_input_side(DEFAULT_DEPTH)
    return [
        ArchitectureSpec(
            name="fcnn",
            factory=FCNN,
            description="Reference network: conv-ReLU-pool blocks (32, 64 channels), dense 64, dropout, dense",
            in_channels=1,
            num_classes=10,
            input_size=(28, 28),
            tags=("reference",),
        ),
        ArchitectureSpec(
            name="lenet5",
            factory=LeNet5,
            description="LeNet-5 with ReLU and max-pooling: conv 5x5 (6, 16 channels), dense 120, 84",
            in_channels=1,
            num_classes=10,
            input_size=(28, 28),
            tags=("classic",),
        ),
        ArchitectureSpec(
            name="allconv",
            factory=AllConv,
            description="Fully convolutional: conv-ReLU-pool stages, 1x1 class convolution, global average pooling",
            in_channels=1,
            num_classes=10,
            input_size=(28, 28),
            min_input_size=(allconv_side, allconv_side),
            tags=("fully-convolutional",),
        ),
    ]
