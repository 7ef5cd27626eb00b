"""LoRA fine-tuning of a plan's examples, stopped where the paper says (best dev exact match).

Importing this package is cheap: torch, transformers and peft load only inside the training
loop, which runs in a worker process (``core.train.worker``) started by ``start_training``.

This module is the package's public face: the app (``gui/``) imports only from here, never from
``core.train.runs`` and the other modules (an import-linter contract in pyproject.toml says so).
"""

from .claims import live_claim, stop_worker
from .data import TrainItem, items_from_plan
from .events import Checkpoint, Done, Eval, Merged, Restored, Resume, Start, Step, TrainEvent, WorkerError
from .gguf_lora import export_gguf
from .runner import (
    TrainingCrashed,
    TrainingFailed,
    TrainOutcome,
    missing_training_packages,
    outcome,
    prepare_run,
    resume_training,
    run_worker,
    start_training,
)
from .runs import (
    CREATED,
    RESUMABLE,
    RUNNING,
    clean_run_temps,
    count_runs,
    eval_history,
    get_run,
    is_resumable,
    list_runs,
    metric_series,
    runs_root,
)
from .settings import CONVERGENCE, EARLY_STOP, TrainSettings, physical_cores

__all__ = [
    "CONVERGENCE",
    "CREATED",
    "Checkpoint",
    "Done",
    "EARLY_STOP",
    "Eval",
    "Merged",
    "RESUMABLE",
    "RUNNING",
    "Restored",
    "Resume",
    "Start",
    "Step",
    "TrainEvent",
    "TrainItem",
    "TrainOutcome",
    "TrainSettings",
    "TrainingCrashed",
    "TrainingFailed",
    "WorkerError",
    "clean_run_temps",
    "count_runs",
    "eval_history",
    "export_gguf",
    "get_run",
    "is_resumable",
    "items_from_plan",
    "list_runs",
    "live_claim",
    "metric_series",
    "missing_training_packages",
    "outcome",
    "physical_cores",
    "prepare_run",
    "resume_training",
    "run_worker",
    "runs_root",
    "start_training",
    "stop_worker",
]
