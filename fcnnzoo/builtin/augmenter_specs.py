"""Built-in augmenters plugin: ``random_crop``, ``hflip`` and ``gaussian_noise``.

It registers through the same hook as a third-party plugin does, under the
plugin name ``fcnnzoo.builtin.augmenters``. The classes live in
:mod:`fcnnzoo.builtin.augmenters`, which imports torch, so the specs name
them as "module:attribute" references that the registry imports only when
an augmenter is built.
"""

from __future__ import annotations

from fcnnzoo.hookspecs import hookimpl
from fcnnzoo.specs import AugmenterSpec


@hookimpl
def fcnnzoo_register_augmenters() -> list[AugmenterSpec]:
    """Return the specs of the built-in augmenters."""
    return [
        AugmenterSpec(
            name="random_crop",
            factory="fcnnzoo.builtin.augmenters:RandomCrop",
            description="Pad each image (2 pixels by default) and crop it back at a random per-sample offset",
        ),
        AugmenterSpec(
            name="hflip",
            factory="fcnnzoo.builtin.augmenters:HorizontalFlip",
            description="Mirror each image left to right with probability p",
        ),
        AugmenterSpec(
            name="gaussian_noise",
            factory="fcnnzoo.builtin.augmenters:GaussianNoise",
            description="Add zero-mean Gaussian noise of standard deviation std to each image",
        ),
    ]
