"""Spec dataclasses that plugins return from their hooks.

A spec describes one component and carries the factory that builds it. The
factory is either a callable or a ``"package.module:attribute"`` reference
that the registry imports the first time the component is looked up, so a
plugin module that returns references can be listed without importing torch.

The registry fills in the provenance fields, ``plugin`` (the name of the
plugin that returned the spec), ``distribution`` and ``version`` (of the
installed package that provides the plugin), so plugin authors leave them
empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from typing import Callable
from typing import Union

__all__ = [
    "ArchitectureSpec",
    "AugmenterSpec",
    "DatasetSpec",
    "Factory",
    "QuantizerSpec",
]

# A callable, or a "package.module:attribute" reference to one.
Factory = Union[Callable[..., Any], str]


@dataclass(frozen=True)
class ArchitectureSpec:
    """A network architecture.

    ``factory`` is called as ``factory(in_channels=..., num_classes=...,
    **kwargs)`` and returns an ``nn.Module`` that maps ``(N, C, H, W)`` images
    to ``(N, num_classes)`` logits. ``in_channels``, ``num_classes`` and
    ``input_size`` are the defaults the architecture is designed for;
    ``min_input_size`` is set by fully convolutional networks that accept any
    input at least that large.
    """

    name: str
    factory: Factory
    description: str
    in_channels: int = 1
    num_classes: int = 10
    input_size: tuple[int, int] = (28, 28)
    min_input_size: tuple[int, int] | None = None
    tags: tuple[str, ...] = ()
    plugin: str = ""
    distribution: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class AugmenterSpec:
    """A batched data augmenter.

    ``factory(**kwargs)`` returns a callable ``augment(images, generator=None)``
    that takes a float ``(N, C, H, W)`` batch and returns a batch of the same
    shape and dtype, drawing its randomness from ``generator`` when one is
    given.
    """

    name: str
    factory: Factory
    description: str
    plugin: str = ""
    distribution: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class QuantizerSpec:
    """A post-training quantization method.

    ``factory(**kwargs)`` returns an object with a ``quantize(model)`` method
    that returns a quantized copy of ``model`` and leaves ``model`` unchanged.
    """

    name: str
    factory: Factory
    description: str
    plugin: str = ""
    distribution: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """An image classification dataset read from local files.

    ``factory(data_dir=None, **kwargs)`` returns a
    :class:`fcnnzoo.data.DatasetSplits`. Nothing is downloaded: datasets
    that are not bundled with a Python package read ``data_dir``.
    """

    name: str
    factory: Factory
    description: str
    plugin: str = ""
    distribution: str | None = None
    version: str | None = None
