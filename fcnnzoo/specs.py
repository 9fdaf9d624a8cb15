"""Spec dataclasses that plugins return from their hooks.

A spec describes one component and carries the factory that builds it. The
registry fills in ``plugin`` with the name of the plugin that returned the
spec, so plugin authors leave it empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import Callable

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "ArchitectureSpec",
    "AugmenterSpec",
    "DatasetSpec",
    "QuantizerSpec",
]


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
    factory: Callable[..., nn.Module]
    description: str
    in_channels: int = 1
    num_classes: int = 10
    input_size: tuple[int, int] = (28, 28)
    min_input_size: tuple[int, int] | None = None
    tags: tuple[str, ...] = ()
    plugin: str = ""


@dataclass(frozen=True)
class AugmenterSpec:
    """A batched data augmenter.

    ``factory(**kwargs)`` returns a callable ``augment(images, generator=None)``
    that takes a float ``(N, C, H, W)`` batch and returns a batch of the same
    shape and dtype, drawing its randomness from ``generator`` when one is
    given.
    """

    name: str
    factory: Callable[..., Any]
    description: str
    plugin: str = ""


@dataclass(frozen=True)
class QuantizerSpec:
    """A post-training quantization method.

    ``factory(**kwargs)`` returns an object with a ``quantize(model)`` method
    that returns a quantized copy of ``model`` and leaves ``model`` unchanged.
    """

    name: str
    factory: Callable[..., Any]
    description: str
    plugin: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """An image classification dataset read from local files.

    ``factory(data_dir=None, **kwargs)`` returns a
    :class:`fcnnzoo.data.DatasetSplits`. Nothing is downloaded: datasets
    that are not bundled with a Python package read ``data_dir``.
    """

    name: str
    factory: Callable[..., Any]
    description: str
    plugin: str = ""
