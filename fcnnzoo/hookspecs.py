"""Hook specifications that fcnnzoo plugins implement.

A plugin is any module or object with functions marked ``@fcnnzoo.hookimpl``
whose names match the hooks below. Each hook takes no arguments and returns
a list of specs; built-in components are registered through the same hooks.

``API_VERSION`` is the version of this hook API. A plugin may declare the
versions it supports with a module or class attribute named
``FCNNZOO_API_VERSION`` that holds a version specifier such as
``">=1.0,<2"``. The registry does not load a plugin whose specifier excludes
``API_VERSION`` and lists it as ``incompatible``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Final

import pluggy

if TYPE_CHECKING:
    from fcnnzoo.specs import ArchitectureSpec
    from fcnnzoo.specs import AugmenterSpec
    from fcnnzoo.specs import DatasetSpec
    from fcnnzoo.specs import QuantizerSpec

__all__ = [
    "API_VERSION",
    "API_VERSION_ATTRIBUTE",
    "PROJECT_NAME",
    "hookimpl",
    "hookspec",
]

PROJECT_NAME: Final = "fcnnzoo"

# The minor version grows when a hook or a spec field is added; the major
# version grows when an existing hook or field changes meaning or goes away.
API_VERSION: Final = "1.0"

# Name of the plugin attribute that declares the supported API versions.
API_VERSION_ATTRIBUTE: Final = "FCNNZOO_API_VERSION"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def fcnnzoo_register_architectures() -> list[ArchitectureSpec]:
    """Return the network architectures this plugin provides, as a list of ArchitectureSpec."""


@hookspec
def fcnnzoo_register_augmenters() -> list[AugmenterSpec]:
    """Return the batched data augmenters this plugin provides, as a list of AugmenterSpec."""


@hookspec
def fcnnzoo_register_quantizers() -> list[QuantizerSpec]:
    """Return the post-training quantization methods this plugin provides, as a list of QuantizerSpec."""


@hookspec
def fcnnzoo_register_datasets() -> list[DatasetSpec]:
    """Return the datasets this plugin provides, as a list of DatasetSpec."""
