"""Training and evaluation of image classifiers."""

from __future__ import annotations

from fcnnzoo.training.engine import DEFAULT_BATCH_SIZE
from fcnnzoo.training.engine import DEFAULT_LABEL_SMOOTHING
from fcnnzoo.training.engine import DEFAULT_LR
from fcnnzoo.training.engine import DEFAULT_SCHEDULE
from fcnnzoo.training.engine import EVAL_BATCH_SIZE
from fcnnzoo.training.engine import EpochRecord
from fcnnzoo.training.engine import EvaluationResult
from fcnnzoo.training.engine import SCHEDULES
from fcnnzoo.training.engine import TrainingResult
from fcnnzoo.training.engine import check_hyperparameters
from fcnnzoo.training.engine import evaluate
from fcnnzoo.training.engine import train

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LABEL_SMOOTHING",
    "DEFAULT_LR",
    "DEFAULT_SCHEDULE",
    "EVAL_BATCH_SIZE",
    "EpochRecord",
    "EvaluationResult",
    "SCHEDULES",
    "TrainingResult",
    "check_hyperparameters",
    "evaluate",
    "train",
]
