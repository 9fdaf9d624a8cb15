"""Base class and random sampling helpers for batched data augmenters.

An augmenter transforms a float ``(N, C, H, W)`` batch in two steps:
:meth:`Augmenter.sample` draws every random value the batch needs (which
samples to change and each one's own parameters), and :meth:`Augmenter.apply`
applies given parameters without drawing anything. Calling the augmenter runs
both. Keeping the steps apart lets a test or a composed pipeline apply
known parameters, and makes the values drawn depend only on the batch shape,
not on the pixel values.
"""

from __future__ import annotations

from typing import Any
from typing import ClassVar
from typing import Final

import torch
from torch.utils.data import get_worker_info

__all__ = [
    "Augmenter",
    "Parameters",
    "broadcast_apply_mask",
    "check_image_batch",
    "check_probability",
    "check_seed",
    "sample_apply_mask",
    "sample_integers",
    "sample_normal",
    "sample_uniform",
    "worker_seed",
]

# A seed must fit the 64 bits that torch.Generator.manual_seed accepts.
MAX_SEED: Final = 2**64 - 1

Parameters = dict[str, torch.Tensor]


def check_probability(owner: str, name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a probability in ``[0, 1]``.

    Raises:
        TypeError: if ``value`` is not a real number (``bool`` is rejected).
        ValueError: if ``value`` is NaN or outside ``[0, 1]``.
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{owner} {name} must be a number in [0, 1], got {value!r} of type {type(value).__name__}.")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{owner} {name} must be in [0, 1], got {value!r}.")
    return float(value)


def check_seed(owner: str, seed: Any) -> int | None:
    """Return ``seed`` if it is ``None`` or an int in ``[0, 2**64 - 1]``.

    Raises:
        TypeError: if ``seed`` is neither ``None`` nor an int.
        ValueError: if ``seed`` is negative or does not fit in 64 bits.
    """
    if seed is None:
        return None
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"{owner} seed must be an int or None, got {seed!r} of type {type(seed).__name__}.")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{owner} seed must be in [0, 2**64 - 1], got {seed}.")
    return seed


def check_image_batch(owner: str, images: Any) -> torch.Tensor:
    """Return ``images`` if it is a floating-point ``(N, C, H, W)`` tensor.

    Raises:
        TypeError: if ``images`` is not a tensor or not floating point.
        ValueError: if ``images`` does not have 4 dimensions.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{owner} expects a torch.Tensor batch, got {type(images).__name__}.")
    if images.dim() != 4:
        raise ValueError(
            f"{owner} expects a 4-D (N, C, H, W) batch, got shape {tuple(images.shape)}. "
            "Add a batch dimension with images.unsqueeze(0) for a single image."
        )
    if not images.is_floating_point():
        raise TypeError(f"{owner} expects a floating-point batch, got dtype {images.dtype}. Convert it with images.float().")
    return images


def sample_apply_mask(count: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """Draw ``count`` independent decisions, each ``True`` with probability ``p``.

    Returns:
        A bool tensor of shape ``(count,)`` on the generator's device. It
        consumes ``count`` uniform draws whatever ``p`` is, so ``p`` does not
        shift the values drawn after it.
    """
    return torch.rand(count, generator=generator, device=generator.device) < p


def sample_integers(count: int, low: int, high: int, generator: torch.Generator) -> torch.Tensor:
    """Draw ``count`` integers uniformly from ``[low, high]``, both ends included.

    Returns:
        An int64 tensor of shape ``(count,)`` on the generator's device.
    """
    return torch.randint(low, high + 1, (count,), generator=generator, device=generator.device)


def sample_normal(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Draw a float32 tensor of standard normal values on the generator's device."""
    return torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32)


def sample_uniform(count: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """Draw ``count`` float64 values uniformly from ``[low, high)`` on the generator's device."""
    unit = torch.rand(count, generator=generator, device=generator.device, dtype=torch.float64)
    return low + (high - low) * unit


def worker_seed(seed: int | None, loader_seed: int) -> int:
    """Derive the seed of an augmenter's generator inside one DataLoader worker.

    ``loader_seed`` is ``torch.utils.data.get_worker_info().seed``: the
    DataLoader draws a new base seed for every epoch (from its ``generator``
    when it has one) and adds the worker id. Mixing it with the augmenter's
    own ``seed`` gives every worker and every epoch its own stream, and the
    same streams again for a DataLoader with the same seed.
    """
    import numpy as np

    entropy = [loader_seed % 2**64] if seed is None else [seed, loader_seed % 2**64]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0])


class Augmenter:
    """Base class of the batched augmenters.

    Each sample of a batch is changed with probability ``p``, and each
    changed sample gets its own random parameters. Randomness comes from the
    ``generator`` passed to a call, or else from the augmenter's own
    ``torch.Generator``, seeded with ``seed``, so two augmenters built with
    the same arguments produce the same outputs call after call. With
    ``seed=None`` the own generator starts from a nondeterministic seed.
    Inside a DataLoader worker the own generator is reseeded once per worker
    and epoch with :func:`worker_seed`, so that the copies in the workers
    do not repeat each other's values.

    Subclasses set :attr:`name`, draw their parameters in :meth:`sample`
    (starting with the ``"apply"`` mask from :meth:`sample_apply_mask`) and
    transform the batch in :meth:`apply`; :meth:`arguments` lists the
    constructor arguments that the ``repr`` shows.

    Args:
        p: probability that a sample is changed, in ``[0, 1]``.
        seed: seed of the own generator, or ``None``.

    Raises:
        TypeError: if ``p`` or ``seed`` has the wrong type.
        ValueError: if ``p`` is outside ``[0, 1]`` or ``seed`` does not fit in 64 bits.
    """

    name: ClassVar[str] = "augmenter"

    def __init__(self, *, p: float, seed: int | None = None) -> None:
        self.p = check_probability(self.name, "p", p)
        self.seed = check_seed(self.name, seed)
        self.generator = torch.Generator()
        # The DataLoader worker seed the own generator was last derived from, or None.
        self._loader_seed: int | None = None
        self.manual_seed(seed)

    def manual_seed(self, seed: int | None) -> Augmenter:
        """Reseed the own generator and return ``self``; ``None`` picks a nondeterministic seed.

        The ``seed`` attribute keeps the constructor's value.

        Raises:
            TypeError: if ``seed`` is neither ``None`` nor an int.
            ValueError: if ``seed`` does not fit in 64 bits.
        """
        seed = check_seed(self.name, seed)
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
        return self

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch.

        Args:
            images: a floating-point ``(N, C, H, W)`` batch, on any device.
            generator: the source of randomness; ``None`` uses the
                augmenter's own generator.

        Returns:
            A new tensor of the same shape, dtype and device as ``images``.

        Raises:
            TypeError: if ``images`` is not a floating-point tensor.
            ValueError: if ``images`` is not 4-D or does not fit the augmenter's arguments.
        """
        images = check_image_batch(self.name, images)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"{self.name} generator must be a torch.Generator or None, got {type(generator).__name__}.")
        parameters = self.sample(images, self.own_generator() if generator is None else generator)
        return self.apply(images, parameters)

    def own_generator(self) -> torch.Generator:
        """Return the own generator, first reseeding it if this is a new DataLoader worker or epoch.

        DataLoader workers each start from a copy of the augmenter, so
        without the reseed every worker would draw the same values, and
        with non-persistent workers every epoch would too.
        """
        info = get_worker_info()
        if info is not None and info.seed != self._loader_seed:
            self.generator.manual_seed(worker_seed(self.seed, info.seed))
            self._loader_seed = info.seed
        return self.generator

    def sample_apply_mask(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """Draw which of ``count`` samples to change, each with probability ``p``."""
        return sample_apply_mask(count, self.p, generator)

    def sample(self, images: torch.Tensor, generator: torch.Generator) -> Parameters:
        """Draw the random parameters for ``images``, on the generator's device.

        Returns:
            At least ``"apply"``, a bool tensor of shape ``(N,)``, plus the
            subclass's per-sample parameters.
        """
        return {"apply": self.sample_apply_mask(images.shape[0], generator)}

    def apply(self, images: torch.Tensor, parameters: Parameters) -> torch.Tensor:
        """Transform ``images`` with given ``parameters``, drawing nothing at random.

        Returns:
            A new tensor of the same shape, dtype and device as ``images``.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement apply().")

    def arguments(self) -> dict[str, Any]:
        """Return the constructor arguments, as the ``repr`` shows them."""
        return {"p": self.p, "seed": self.seed}

    def __repr__(self) -> str:
        listed = ", ".join(f"{key}={value!r}" for key, value in self.arguments().items())
        return f"{type(self).__name__}({listed})"


def broadcast_apply_mask(parameters: Parameters, images: torch.Tensor) -> torch.Tensor:
    """Return the ``"apply"`` mask on the images' device, shaped ``(N, 1, 1, 1)`` to broadcast over a batch."""
    return parameters["apply"].to(images.device).view(-1, 1, 1, 1)
