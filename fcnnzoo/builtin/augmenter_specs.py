"""Built-in augmenters plugin: ``random_crop``, ``hflip``, ``gaussian_noise`` and those of :mod:`fcnnzoo.augmenters`.

It registers through the same hook as a third-party plugin does, under the
plugin name ``fcnnzoo.builtin.augmenters``. The classes live in
:mod:`fcnnzoo.builtin.augmenters` and :mod:`fcnnzoo.augmenters`, which import torch, so the specs name
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
        AugmenterSpec(
            name="rotate",
            factory="fcnnzoo.augmenters.geometric:Rotate",
            description="Rotate each image about its center by a random angle in [-degrees, degrees]",
        ),
        AugmenterSpec(
            name="translate",
            factory="fcnnzoo.augmenters.geometric:Translate",
            description="Shift each image by a random offset of up to max_shift pixels on each axis",
        ),
        AugmenterSpec(
            name="random_erasing",
            factory="fcnnzoo.augmenters.photometric:RandomErasing",
            description="Erase a random rectangle of each image with a constant or noise (cutout)",
        ),
        AugmenterSpec(
            name="brightness_contrast",
            factory="fcnnzoo.augmenters.photometric:BrightnessContrast",
            description="Shift the brightness and scale the contrast of each image by random amounts",
        ),
        AugmenterSpec(
            name="compose",
            factory="fcnnzoo.augmenters.compose:Compose",
            description="Apply a list of augmenters in order, to a share p of the images",
        ),
    ]
