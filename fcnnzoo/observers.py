"""Activation observers of static int8 quantization: they choose a uint8 range from calibration data.

:meth:`Observer.observe` receives every calibration batch of one
activation, and :meth:`Observer.quantization_parameters` then returns the
per-tensor affine parameters. Three observers exist:

- ``minmax`` takes the smallest and largest value seen.
- ``percentile`` clips both tails: the range runs from the ``100 - p``-th to
  the ``p``-th percentile of the values (linear interpolation, as in
  :func:`torch.quantile`).
- ``mse`` tries ranges that shrink the min/max range by the factors
  ``k / candidates`` for ``k = 1 .. candidates`` and keeps the one whose
  quantize-dequantize round trip has the smallest mean squared error on the
  values; a tie keeps the wider range.

Every range is widened to contain 0, so that the real value 0 (zero padding,
ReLU outputs) is exact. :func:`affine_parameters` turns a range into a scale
and a zero point.
"""

from __future__ import annotations

import math
from typing import Final

import torch

__all__ = [
    "DEFAULT_MSE_CANDIDATES",
    "DEFAULT_PERCENTILE",
    "MAX_MSE_VALUES",
    "MAX_SAMPLED_VALUES",
    "MIN_ACTIVATION_SCALE",
    "OBSERVERS",
    "MinMaxObserver",
    "MseObserver",
    "Observer",
    "PercentileObserver",
    "affine_parameters",
    "create_observer",
]

# The smallest activation scale: float32 machine epsilon, the default ``eps``
# of the observers in torch.ao.quantization (PyTorch 2.13). A range narrower
# than 255 of these (such as constant calibration data of 0) gets this scale,
# so 1 / scale stays finite.
MIN_ACTIVATION_SCALE: Final = float(torch.finfo(torch.float32).eps)
DEFAULT_PERCENTILE: Final = 99.99
DEFAULT_MSE_CANDIDATES: Final = 100
# The percentile and MSE observers keep at most this many values of each
# batch, drawn at random with a fixed seed, and at most this many in total.
MAX_SAMPLED_VALUES_PER_BATCH: Final = 2**16
MAX_SAMPLED_VALUES: Final = 2**22
# The MSE observer searches its range on at most this many of the kept values.
MAX_MSE_VALUES: Final = 2**16
_SAMPLING_SEED: Final = 0
_UINT8_LEVELS: Final = 255


def affine_parameters(low: float, high: float) -> tuple[float, int]:
    """Compute the uint8 scale and zero point that cover ``[min(low, 0), max(high, 0)]``.

    Args:
        low: the smallest value to represent.
        high: the largest value to represent.

    Returns:
        ``(scale, zero_point)``: a positive float32-representable scale of
        at least :data:`MIN_ACTIVATION_SCALE` and a zero point in ``[0, 255]``.

    Raises:
        ValueError: if ``low`` or ``high`` is not finite, or ``low > high``.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"An activation range must be finite, got [{low}, {high}]. Check the calibration data for NaN or infinity.")
    if low > high:
        raise ValueError(f"An activation range must have low <= high, got [{low}, {high}].")
    low = min(low, 0.0)
    high = max(high, 0.0)
    scale = max((high - low) / _UINT8_LEVELS, MIN_ACTIVATION_SCALE)
    # Store the scale as float32, the precision the quantized layers use.
    scale = float(torch.tensor(scale, dtype=torch.float32))
    if not math.isfinite(scale):
        raise ValueError(f"The activation range [{low}, {high}] is too wide for a float32 scale. Check the calibration data.")
    zero_point = min(max(round(-low / scale), 0), _UINT8_LEVELS)
    return scale, zero_point


class Observer:
    """Base class of the observers, which record the calibration values of one activation and choose its range."""

    name: str = "observer"

    def __init__(self) -> None:
        self.batches = 0
        self.minimum = math.inf
        self.maximum = -math.inf

    def observe(self, values: torch.Tensor) -> None:
        """Record one batch of activation values.

        Raises:
            ValueError: if ``values`` contains NaN or infinity.
        """
        flat = values.detach().reshape(-1).to(device="cpu", dtype=torch.float32)
        if flat.numel() == 0:
            return
        if not torch.isfinite(flat).all():
            raise ValueError(f"Calibration batch {self.batches} gives activations with NaN or infinity. Pass finite calibration data.")
        self.batches += 1
        self.minimum = min(self.minimum, float(flat.min()))
        self.maximum = max(self.maximum, float(flat.max()))
        self._record(flat)

    def _record(self, flat: torch.Tensor) -> None:
        """Keep what the subclass needs of a batch; the base class keeps only min and max."""

    def value_range(self) -> tuple[float, float]:
        """Return the chosen ``(low, high)`` range before it is widened to contain 0.

        Raises:
            ValueError: if no values were observed.
        """
        self._check_observed()
        return (self.minimum, self.maximum)

    def quantization_parameters(self) -> tuple[float, int]:
        """Return ``(scale, zero_point)`` for the chosen range, as :func:`affine_parameters` computes them."""
        low, high = self.value_range()
        return affine_parameters(low, high)

    def _check_observed(self) -> None:
        if self.batches == 0:
            raise ValueError(f"The {self.name} observer has seen no values. Calibrate with at least one non-empty batch.")


class MinMaxObserver(Observer):
    """Chooses the range from the smallest to the largest value observed."""

    name = "minmax"


class _SamplingObserver(Observer):
    """An observer that keeps a bounded random sample of the values."""

    def __init__(self) -> None:
        super().__init__()
        self._samples: list[torch.Tensor] = []
        self._sampled = 0
        self._generator = torch.Generator().manual_seed(_SAMPLING_SEED)

    def _record(self, flat: torch.Tensor) -> None:
        if flat.numel() > MAX_SAMPLED_VALUES_PER_BATCH:
            flat = flat[torch.randperm(flat.numel(), generator=self._generator)[:MAX_SAMPLED_VALUES_PER_BATCH]]
        self._samples.append(flat.clone())
        self._sampled += flat.numel()
        if self._sampled > MAX_SAMPLED_VALUES:
            # NOTE: this keeps a uniform subset of the kept values, which
            # weights later batches more than earlier ones once the cap is hit.
            values = torch.cat(self._samples)
            keep = torch.randperm(values.numel(), generator=self._generator)[:MAX_SAMPLED_VALUES]
            self._samples = [values[keep]]
            self._sampled = MAX_SAMPLED_VALUES

    def sampled_values(self) -> torch.Tensor:
        """Return the kept values as one float32 tensor."""
        self._check_observed()
        return torch.cat(self._samples)


class PercentileObserver(_SamplingObserver):
    """Chooses the range from the ``100 - percentile``-th to the ``percentile``-th percentile.

    Args:
        percentile: in ``(50, 100]``; 100 gives the min/max range of the kept values.

    Raises:
        ValueError: if ``percentile`` is out of range.
    """

    name = "percentile"

    def __init__(self, percentile: float = DEFAULT_PERCENTILE) -> None:
        super().__init__()
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 50 < percentile <= 100:
            raise ValueError(f"percentile must be a number in (50, 100], got {percentile!r}. Use for example 99.99.")
        self.percentile = float(percentile)

    def value_range(self) -> tuple[float, float]:
        values = self.sampled_values().to(torch.float64)
        quantiles = torch.tensor([1 - self.percentile / 100, self.percentile / 100], dtype=torch.float64)
        low, high = torch.quantile(values, quantiles).tolist()
        return (low, high)


class MseObserver(_SamplingObserver):
    """Chooses the shrunken min/max range with the smallest quantization mean squared error.

    Args:
        candidates: how many ranges to try, at least 1.

    Raises:
        ValueError: if ``candidates`` is not a positive int.
    """

    name = "mse"

    def __init__(self, candidates: int = DEFAULT_MSE_CANDIDATES) -> None:
        super().__init__()
        if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
            raise ValueError(f"candidates must be a positive int, got {candidates!r}.")
        self.candidates = candidates

    def value_range(self) -> tuple[float, float]:
        values = self.sampled_values()
        if values.numel() > MAX_MSE_VALUES:
            # The search costs candidates passes over the values, so it runs on a fixed random subset.
            values = values[torch.randperm(values.numel(), generator=self._generator)[:MAX_MSE_VALUES]]
        values = values.to(torch.float64)
        best_range = (self.minimum, self.maximum)
        best_error = math.inf
        # From the widest range down, so that a tie keeps the wider one.
        for step in range(self.candidates, 0, -1):
            factor = step / self.candidates
            low, high = self.minimum * factor, self.maximum * factor
            error = _round_trip_error(values, low, high)
            if error < best_error:
                best_error = error
                best_range = (low, high)
        return best_range


def _round_trip_error(values: torch.Tensor, low: float, high: float) -> float:
    """Return the mean squared error of quantizing ``values`` to the uint8 range ``[low, high]`` and back."""
    scale, zero_point = affine_parameters(low, high)
    quantized = (torch.round(values / scale) + zero_point).clamp(0, _UINT8_LEVELS)
    restored = (quantized - zero_point) * scale
    return float(torch.mean((restored - values) ** 2))


OBSERVERS: Final = {
    MinMaxObserver.name: MinMaxObserver,
    PercentileObserver.name: PercentileObserver,
    MseObserver.name: MseObserver,
}


def create_observer(name: str, percentile: float | None = None) -> Observer:
    """Build the observer called ``name``.

    Args:
        name: ``"minmax"``, ``"percentile"`` or ``"mse"``.
        percentile: the percentile of the ``percentile`` observer; None uses
            :data:`DEFAULT_PERCENTILE`.

    Raises:
        ValueError: if ``name`` is unknown or ``percentile`` is out of range.
    """
    if name == PercentileObserver.name:
        return PercentileObserver(DEFAULT_PERCENTILE if percentile is None else percentile)
    if name not in OBSERVERS:
        raise ValueError(f"Unknown observer {name!r}. Use one of {', '.join(OBSERVERS)}.")
    return OBSERVERS[name]()
