"""LoRA fine-tuning of a plan's examples, stopped where the paper says (best dev exact match).

Importing this package is cheap: torch, transformers and peft load only inside the training
loop, which runs in a worker process (``core.train.worker``) started by ``start_training``.
"""

from .data import TrainItem, items_from_plan
from .runner import (
    TrainingCrashed,
    TrainingFailed,
    TrainOutcome,
    outcome,
    prepare_run,
    resume_training,
    run_worker,
    start_training,
)
from .settings import CONVERGENCE, EARLY_STOP, TrainSettings

__all__ = [
    "CONVERGENCE",
    "EARLY_STOP",
    "TrainItem",
    "TrainOutcome",
    "TrainSettings",
    "TrainingCrashed",
    "TrainingFailed",
    "items_from_plan",
    "outcome",
    "prepare_run",
    "resume_training",
    "run_worker",
    "start_training",
]
