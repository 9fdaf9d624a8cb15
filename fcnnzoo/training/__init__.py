"""Training and evaluation of image classifiers."""

from __future__ import annotations

from fcnnzoo.training.engine import DEFAULT_BATCH_SIZE
from fcnnzoo.training.engine import DEFAULT_LABEL_SMOOTHING
from fcnnzoo.training.engine import DEFAULT_LR
from fcnnzoo.training.engine import DEFAULT_SCHEDULE
from fcnnzoo.training.engine import EVAL_BATCH_SIZE
from fcnnzoo.training.engine import EpochRecord
from fcnnzoo.training.engine import EvaluationResult
from fcnnzoo.training.engine import TrainingResult
from fcnnzoo.training.engine import TrainingState
from fcnnzoo.training.engine import check_early_stopping
from fcnnzoo.training.engine import check_hyperparameters
from fcnnzoo.training.engine import evaluate
from fcnnzoo.training.engine import train
from fcnnzoo.training.optimizers import DEFAULT_OPTIMIZER
from fcnnzoo.training.optimizers import OPTIMIZERS
from fcnnzoo.training.optimizers import SCHEDULES
from fcnnzoo.training.optimizers import OptimizerSettings
from fcnnzoo.training.optimizers import resolve_optimizer_settings

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LABEL_SMOOTHING",
    "DEFAULT_LR",
    "DEFAULT_OPTIMIZER",
    "DEFAULT_SCHEDULE",
    "EVAL_BATCH_SIZE",
    "EpochRecord",
    "EvaluationResult",
    "OPTIMIZERS",
    "OptimizerSettings",
    "SCHEDULES",
    "TrainingResult",
    "TrainingState",
    "check_early_stopping",
    "check_hyperparameters",
    "evaluate",
    "resolve_optimizer_settings",
    "train",
]
