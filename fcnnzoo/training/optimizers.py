"""Optimizer and learning-rate schedule choices of the training loop.

:class:`OptimizerSettings` is a validated recipe, and
:func:`build_optimizer` and :func:`build_scheduler` turn it into torch
objects. Unset values resolve to each optimizer's usual default, so the
recipe written to ``metrics.json`` states every number that was used.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any
from typing import Final

import torch
from torch import nn

__all__ = [
    "DEFAULT_GAMMA",
    "DEFAULT_OPTIMIZER",
    "OPTIMIZERS",
    "OptimizerSettings",
    "SCHEDULES",
    "build_optimizer",
    "build_scheduler",
    "check_choice",
    "resolve_optimizer_settings",
]

OPTIMIZERS: Final = ("adam", "adamw", "sgd")
DEFAULT_OPTIMIZER: Final = "adam"
# "constant" keeps lr, "cosine" anneals it to zero over all steps of the run,
# and "step" multiplies it by gamma every step_size epochs.
SCHEDULES: Final = ("constant", "cosine", "step")
# SGD without an explicit momentum uses this classical heavy-ball value.
DEFAULT_SGD_MOMENTUM: Final = 0.9
# torch.optim.AdamW's own default decoupled weight decay (torch 2.x).
DEFAULT_ADAMW_WEIGHT_DECAY: Final = 0.01
DEFAULT_GAMMA: Final = 0.1


@dataclass(frozen=True)
class OptimizerSettings:
    """A resolved optimizer and schedule recipe.

    Attributes:
        optimizer: one of :data:`OPTIMIZERS`.
        lr: the peak learning rate.
        momentum: SGD momentum, or ``None`` for Adam and AdamW.
        weight_decay: L2 penalty for Adam and SGD, decoupled decay for AdamW.
        schedule: one of :data:`SCHEDULES`.
        step_size: epochs between two decays of the ``"step"`` schedule, else ``None``.
        gamma: decay factor of the ``"step"`` schedule, else ``None``.
    """

    optimizer: str
    lr: float
    momentum: float | None
    weight_decay: float
    schedule: str
    step_size: int | None
    gamma: float | None

    def to_dict(self) -> dict[str, Any]:
        """Convert the settings to a JSON-friendly dict."""
        return asdict(self)


def resolve_optimizer_settings(
    *,
    optimizer: str,
    lr: float,
    momentum: float | None,
    weight_decay: float | None,
    schedule: str,
    step_size: int | None,
    gamma: float | None,
    epochs: int,
) -> OptimizerSettings:
    """Check an optimizer and schedule recipe and fill in the defaults.

    Defaults: SGD momentum 0.9; weight decay 0.01 for AdamW and 0 otherwise;
    for the ``"step"`` schedule, ``step_size`` is a third of ``epochs`` (at
    least 1) and ``gamma`` is 0.1.

    Raises:
        TypeError: if a value has the wrong type.
        ValueError: if a name is unknown, ``momentum`` is given to Adam or
            AdamW or is outside ``[0, 1)``, ``weight_decay`` is negative,
            or ``step_size`` or ``gamma`` is invalid or given to another schedule.
    """
    check_choice("optimizer", optimizer, OPTIMIZERS, "--optimizer")
    check_choice("learning-rate schedule", schedule, SCHEDULES, "--schedule")

    if momentum is not None:
        _check_number("momentum", momentum)
        if optimizer != "sgd":
            raise ValueError(
                f"momentum={momentum:g} applies only to the sgd optimizer, not {optimizer!r} (Adam and AdamW use "
                "their own moment estimates). Drop --momentum or use --optimizer sgd."
            )
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum:g}.")
    elif optimizer == "sgd":
        momentum = DEFAULT_SGD_MOMENTUM

    if weight_decay is None:
        weight_decay = DEFAULT_ADAMW_WEIGHT_DECAY if optimizer == "adamw" else 0.0
    _check_number("weight_decay", weight_decay)
    if not math.isfinite(weight_decay) or weight_decay < 0:
        raise ValueError(f"weight_decay must be a non-negative finite number, got {weight_decay:g}. Use 0 to turn it off.")

    if schedule == "step":
        step_size, gamma = _resolve_step(step_size, gamma, epochs)
    elif step_size is not None or gamma is not None:
        given = "step_size" if step_size is not None else "gamma"
        raise ValueError(f"{given} applies only to the 'step' schedule, not {schedule!r}. Add --schedule step or drop it.")

    return OptimizerSettings(
        optimizer=optimizer,
        lr=float(lr),
        momentum=None if momentum is None else float(momentum),
        weight_decay=float(weight_decay),
        schedule=schedule,
        step_size=step_size,
        gamma=gamma,
    )


def build_optimizer(model: nn.Module, settings: OptimizerSettings) -> torch.optim.Optimizer:
    """Create the torch optimizer over ``model``'s parameters."""
    parameters = model.parameters()
    if settings.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.SGD(parameters, lr=settings.lr, momentum=settings.momentum or 0.0, weight_decay=settings.weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, settings: OptimizerSettings, *, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Create the schedule, or ``None`` for a constant learning rate.

    The cosine schedule is stepped after every batch and spans
    ``total_steps`` batches. The step schedule is stepped once per epoch.
    """
    if settings.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if settings.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=settings.step_size, gamma=settings.gamma)
    return None


def _resolve_step(step_size: int | None, gamma: float | None, epochs: int) -> tuple[int, float]:
    if step_size is None:
        step_size = max(1, epochs // 3)
    if not isinstance(step_size, int) or isinstance(step_size, bool):
        raise TypeError(f"step_size must be a positive int (epochs), got {step_size!r}.")
    if step_size <= 0:
        raise ValueError(f"step_size must be a positive number of epochs, got {step_size}.")
    if gamma is None:
        gamma = DEFAULT_GAMMA
    _check_number("gamma", gamma)
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma:g}.")
    return step_size, float(gamma)


def check_choice(kind: str, name: object, choices: tuple[str, ...], option: str) -> None:
    """Check that ``name`` is one of ``choices``, suggesting the closest one if it is not.

    Raises:
        TypeError: if ``name`` is not a string.
        ValueError: if ``name`` is not in ``choices``; the message names ``option``.
    """
    if not isinstance(name, str):
        raise TypeError(f"The {kind} must be a name such as {choices[0]!r}, got {name!r}.")
    if name in choices:
        return
    suggestion = difflib.get_close_matches(name, choices, n=1)
    hint = f" Did you mean {suggestion[0]!r}?" if suggestion else ""
    raise ValueError(f"Unknown {kind} {name!r} in {option}.{hint} Use one of {', '.join(choices)}.")


def _check_number(name: str, value: object) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}.")
