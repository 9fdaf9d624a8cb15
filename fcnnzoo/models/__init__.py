"""Model classes of the built-in architectures.

The plugin module :mod:`fcnnzoo.builtin.architectures` registers these
classes; import them from here to subclass or build them directly.
"""

from __future__ import annotations

from fcnnzoo.models.allconv import AllConv
from fcnnzoo.models.fcnn import FCNN
from fcnnzoo.models.lenet import LeNet5

__all__ = ["FCNN", "AllConv", "LeNet5"]
