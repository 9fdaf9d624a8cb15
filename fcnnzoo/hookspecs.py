"""Hook specifications that fcnnzoo plugins implement.

A plugin is any module or object with functions marked ``@fcnnzoo.hookimpl``
whose names match the hooks below. Each hook takes no arguments and returns
a list of specs; built-in components are registered through the same hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from fcnnzoo.specs import ArchitectureSpec
    from fcnnzoo.specs import AugmenterSpec
    from fcnnzoo.specs import DatasetSpec
    from fcnnzoo.specs import QuantizerSpec

PROJECT_NAME = "fcnnzoo"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def fcnnzoo_register_architectures() -> list[ArchitectureSpec]:
    """Return the network architectures this plugin provides."""


@hookspec
def fcnnzoo_register_augmenters() -> list[AugmenterSpec]:
    """Return the batched data augmenters this plugin provides."""


@hookspec
def fcnnzoo_register_quantizers() -> list[QuantizerSpec]:
    """Return the post-training quantization methods this plugin provides."""


@hookspec
def fcnnzoo_register_datasets() -> list[DatasetSpec]:
    """Return the datasets this plugin provides."""
