"""The ``compose`` augmenter: several augmenters applied in order as one."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Callable

import torch

from fcnnzoo.augment import Augmenter
from fcnnzoo.augment import Parameters
from fcnnzoo.augment import check_image_batch

__all__ = ["Compose", "build_augmenter"]


def build_augmenter(item: Any) -> Callable[..., torch.Tensor]:
    """Turn one entry of a compose list into an augmenter.

    Args:
        item: an augmenter object (any callable ``augment(images, generator=None)``),
            a spec string such as ``"rotate:degrees=10"``, or a
            ``(name, arguments)`` pair.

    Returns:
        The augmenter.

    Raises:
        TypeError: if ``item`` has another type.
        ValueError: if a name is not registered.
    """
    from fcnnzoo.api import create_augmenter

    if isinstance(item, str):
        return create_augmenter(item)
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], Mapping):
        return create_augmenter(item[0], **dict(item[1]))
    if callable(item):
        return item
    raise TypeError(
        f"compose augmenters must be augmenters, spec strings such as 'rotate:degrees=10' or (name, arguments) pairs, "
        f"got {item!r} of type {type(item).__name__}."
    )


class Compose(Augmenter):
    """Apply several augmenters in order, to a random share ``p`` of the samples.

    Every augmenter in the list still applies its own probability ``p``.
    Each draws from its own generator when it was built with a ``seed``,
    else from the generator of the compose call, so one ``seed`` here makes
    the whole chain reproducible.

    Args:
        augmenters: a non-empty list of augmenter objects, spec strings such
            as ``"rotate:degrees=10"`` or ``(name, arguments)`` pairs.
        p: probability that a sample goes through the chain; the others are copied.
        seed: seed of the compose's own generator, or ``None``.

    Raises:
        TypeError: if an entry is not an augmenter or a spec.
        ValueError: if the list is empty or a name is unknown.
    """

    name = "compose"

    def __init__(self, augmenters: Sequence[Any] = (), p: float = 1.0, seed: int | None = None) -> None:
        super().__init__(p=p, seed=seed)
        if isinstance(augmenters, (str, bytes)) or not isinstance(augmenters, Sequence):
            raise TypeError(
                f"compose augmenters must be a list, got {augmenters!r} of type {type(augmenters).__name__}. "
                "On the command line, repeat --augment to chain augmenters."
            )
        if not augmenters:
            raise ValueError("compose needs a non-empty list of augmenters. On the command line, repeat --augment to chain augmenters.")
        self.augmenters = [build_augmenter(item) for item in augmenters]

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Run the chain on the selected samples.

        Returns:
            A new batch. It has the shape of ``images`` unless ``p`` is 1 and
            an augmenter changes the size, such as ``random_crop`` with a ``size``.

        Raises:
            TypeError: if ``images`` is not a floating-point tensor.
            ValueError: if ``images`` is not 4-D, or ``p < 1`` and the chain changes the shape.
        """
        images = check_image_batch(self.name, images)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"{self.name} generator must be a torch.Generator or None, got {type(generator).__name__}.")
        source = self.own_generator() if generator is None else generator
        selected = self.sample_apply_mask(images.shape[0], source)

        augmented = images
        for augment in self.augmenters:
            own_seed = getattr(augment, "seed", None)
            augmented = augment(augmented, generator=None if own_seed is not None else source)
        if self.p == 1.0:
            return augmented
        if augmented.shape != images.shape:
            raise ValueError(
                f"compose with p={self.p} needs augmenters that keep the batch shape {tuple(images.shape)}, "
                f"but the chain returned {tuple(augmented.shape)}. Use p=1."
            )
        return torch.where(selected.to(images.device).view(-1, 1, 1, 1), augmented, images)

    def apply(self, images: torch.Tensor, parameters: Parameters) -> torch.Tensor:
        """Raise NotImplementedError: each augmenter of the chain draws its parameters from the batch it receives."""
        raise NotImplementedError("compose draws the parameters of each augmenter while it runs, so call it instead of apply().")

    def arguments(self) -> dict[str, Any]:
        return {"augmenters": self.augmenters, **super().arguments()}
