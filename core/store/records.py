"""Typed run records: a probe run's and a training run's row, as the store hands them out.

The store's read functions (``Project.probe_run``/``probe_runs``/``find_probe_run``,
``runs.run_row``/``run_rows``) return these instead of bare dicts, so a caller writes
``run.status`` and a typo is a type error, not a ``KeyError`` (or a silent ``None`` from
``row.get``) at run time. Each record is frozen: a change goes through the store
(``update_probe_run``, ``runs.update_run``), never through the object.

This module is also the one home of the words a run's row holds: the probe-run and training-run
statuses, the stopping rules (``EARLY_STOP``, ``CONVERGENCE``), the stop reasons and how they read,
and the rule that says which adapter a training run keeps (``keeps_final_adapter``). The training
loop, the report, the app and the CLI all read them from here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, TypedDict

# -- probe runs ----------------------------------------------------------------------------------
# A probe run's ``status``: RUNNING while a probe works on it (or was killed while it did), then one
# of the other three. Only a FINISHED run with every question's result can be planned from.
PROBE_RUNNING, PROBE_FINISHED, PROBE_CANCELLED, PROBE_FAILED = "running", "finished", "cancelled", "failed"

# -- training runs -------------------------------------------------------------------------------
# A training run's ``status``.
CREATED, RUNNING, DONE, CANCELLED, FAILED, CRASHED = "created", "running", "done", "cancelled", "failed", "crashed"
# Statuses a run can be resumed from; CREATED and RUNNING only once its worker process is gone.
RESUMABLE = (CREATED, RUNNING, CANCELLED, FAILED, CRASHED)
# The stopping rules (``TrainSettings.stopping``): the paper's EARLY_STOP (keep the best dev
# evaluation's adapter) and CONVERGENCE (train every epoch, keep the last step's).
EARLY_STOP, CONVERGENCE = "early_stop", "convergence"
STOPPING_RULES = (EARLY_STOP, CONVERGENCE)
# Why a run stopped (its row's ``stop_reason``): the loop writes these, ``stop_reason_words`` words them.
STOP_EARLY, STOP_MAX_EPOCHS, STOP_CANCELLED = "early_stop", "max_epochs", "cancelled"
# A run folder's two adapters: the best dev evaluation's and the last step's.
BEST_ADAPTER, FINAL_ADAPTER = "adapter", "final-adapter"


def keeps_final_adapter(stopping: str, status: str) -> bool:
    """Whether a run keeps its last step's adapter instead of its best dev evaluation's.

    Only a CONVERGENCE run that finished does: the paper's convergence setting measures the model
    after every epoch. A convergence run that was cancelled or crashed never reached its last
    step, so like an EARLY_STOP run it keeps the best adapter so far."""
    return stopping == CONVERGENCE and status == DONE


def stop_reason_words(reason: Any, final: bool) -> str:
    """A run's stop reason in words, the same in the report and the app; "max_epochs" depends on
    whether the run keeps its last step (``final``), since that decides the adapter kept."""
    if not reason:
        return "-"
    if reason == STOP_MAX_EPOCHS:
        if final:
            return "trained every epoch (convergence); the adapter of the last step is kept"
        return "trained every epoch (dev exact match never stopped improving for long); the best dev evaluation is kept"
    return {
        STOP_EARLY: "stopped early: dev exact match stopped improving (the paper's EARLY_STOP)",
        STOP_CANCELLED: "cancelled by the user; the best adapter so far is kept",
    }.get(str(reason), str(reason))


class StoppingPoint(TypedDict):
    """Where a run stopped: the evaluation whose adapter the run keeps."""

    step: int
    epoch: Optional[float]
    dev_em: Optional[float]
    fit: dict  # {category: share of the fixed train sample answered correctly} at that step
    why: str  # in words, e.g. "the best dev exact match"
    final: bool  # True: the last step (a finished convergence run); False: the best dev evaluation


def _json_dict(text: Any) -> dict:
    """Stored JSON text as a dict; {} when empty or unreadable (a row must always load)."""
    if isinstance(text, dict):
        return dict(text)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _opt_int(value: Any) -> Optional[int]:
    return None if value is None else int(value)


def _opt_float(value: Any) -> Optional[float]:
    return None if value is None else float(value)


def _str(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class ProbeRun:
    """One ``probe_runs`` row. ``settings`` is the stored JSON parsed (``settings_json`` as stored:
    ``ProbeSettings.from_json`` reads it, and finding a run to resume compares it)."""

    id: int
    status: str
    dataset_id: Optional[int] = None
    pool_dataset_id: Optional[int] = None
    model_spec: str = ""
    model_name: str = ""
    model_path: str = ""
    model_fingerprint: str = ""
    backend: str = ""
    preset: str = ""
    settings_json: str = ""
    n_total: int = 0
    n_done: int = 0
    created_at: Optional[float] = None
    updated_at: Optional[float] = None
    finished_at: Optional[float] = None
    seconds: float = 0.0
    note: str = ""
    judge_calibration: str = ""  # JSON: the judge's measured false-yes rate on this run's data ("" without a judge)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "ProbeRun":
        return cls(
            id=int(row["id"]),
            status=_str(row.get("status")),
            dataset_id=_opt_int(row.get("dataset_id")),
            pool_dataset_id=_opt_int(row.get("pool_dataset_id")),
            model_spec=_str(row.get("model_spec")),
            model_name=_str(row.get("model_name")),
            model_path=_str(row.get("model_path")),
            model_fingerprint=_str(row.get("model_fingerprint")),
            backend=_str(row.get("backend")),
            preset=_str(row.get("preset")),
            settings_json=_str(row.get("settings")),
            n_total=int(row.get("n_total") or 0),
            n_done=int(row.get("n_done") or 0),
            created_at=_opt_float(row.get("created_at")),
            updated_at=_opt_float(row.get("updated_at")),
            finished_at=_opt_float(row.get("finished_at")),
            seconds=float(row.get("seconds") or 0.0),
            note=_str(row.get("note")),
            judge_calibration=_str(row.get("judge_calibration")),
        )

    @property
    def settings(self) -> dict:
        return _json_dict(self.settings_json)

    @property
    def finished(self) -> bool:
        return self.status == PROBE_FINISHED


@dataclass(frozen=True)
class TrainRun:
    """One ``train_runs`` row. Its paths (``folder``, ``adapter_dir``, ``merged_dir``) are absolute in
    this project (``run_paths.resolve_row``); one that led out of the project's runs folder is None and
    ``path_error`` says why. ``claim`` is the live worker's claim when a caller added it (the app's
    runs list), else None."""

    id: int
    status: str
    plan_id: Optional[int] = None
    stop_reason: str = ""
    settings_json: str = ""
    model_spec: str = ""
    model_name: str = ""
    model_path: str = ""
    model_fingerprint: str = ""
    folder: Optional[Path] = None
    n_train: int = 0
    n_dev: int = 0
    steps_per_epoch: Optional[int] = None
    total_steps: Optional[int] = None
    step: int = 0
    epoch: float = 0.0
    created_at: Optional[float] = None
    updated_at: Optional[float] = None
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    seconds: float = 0.0
    best_epoch: Optional[float] = None
    best_step: Optional[int] = None
    best_dev_em: Optional[float] = None
    fit_at_best: dict = dataclasses.field(default_factory=dict)
    final_epoch: Optional[float] = None
    final_step: Optional[int] = None
    adapter_dir: Optional[Path] = None
    merged_dir: Optional[Path] = None
    plan_snapshot: str = ""
    worker_pid: Optional[int] = None
    error: str = ""
    note: str = ""
    path_error: str = ""
    claim: Optional[dict] = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "TrainRun":
        def path(name: str) -> Optional[Path]:
            value = row.get(name)
            return Path(str(value)) if value else None

        return cls(
            id=int(row["id"]),
            status=_str(row.get("status")),
            plan_id=_opt_int(row.get("plan_id")),
            stop_reason=_str(row.get("stop_reason")),
            settings_json=_str(row.get("settings")),
            model_spec=_str(row.get("model_spec")),
            model_name=_str(row.get("model_name")),
            model_path=_str(row.get("model_path")),
            model_fingerprint=_str(row.get("model_fingerprint")),
            folder=path("folder"),
            n_train=int(row.get("n_train") or 0),
            n_dev=int(row.get("n_dev") or 0),
            steps_per_epoch=_opt_int(row.get("steps_per_epoch")),
            total_steps=_opt_int(row.get("total_steps")),
            step=int(row.get("step") or 0),
            epoch=float(row.get("epoch") or 0.0),
            created_at=_opt_float(row.get("created_at")),
            updated_at=_opt_float(row.get("updated_at")),
            started_at=_opt_float(row.get("started_at")),
            finished_at=_opt_float(row.get("finished_at")),
            seconds=float(row.get("seconds") or 0.0),
            best_epoch=_opt_float(row.get("best_epoch")),
            best_step=_opt_int(row.get("best_step")),
            best_dev_em=_opt_float(row.get("best_dev_em")),
            fit_at_best=_json_dict(row.get("fit_at_best")),
            final_epoch=_opt_float(row.get("final_epoch")),
            final_step=_opt_int(row.get("final_step")),
            adapter_dir=path("adapter_dir"),
            merged_dir=path("merged_dir"),
            plan_snapshot=_str(row.get("plan_snapshot")),
            worker_pid=_opt_int(row.get("worker_pid")),
            error=_str(row.get("error")),
            note=_str(row.get("note")),
            path_error=_str(row.get("path_error")),
        )

    def replace(self, **fields: Any) -> "TrainRun":
        """A copy with some fields changed (the record itself is frozen)."""
        return dataclasses.replace(self, **fields)

    @property
    def settings(self) -> dict:
        return _json_dict(self.settings_json)

    @property
    def stopping(self) -> str:
        """The run's stopping rule, from its stored settings (EARLY_STOP when they do not say or cannot be read)."""
        rule = self.settings.get("stopping")
        return rule if rule in STOPPING_RULES else EARLY_STOP

    @property
    def keeps_final(self) -> bool:
        """Whether the run keeps its last step's adapter (``keeps_final_adapter``)."""
        return keeps_final_adapter(self.stopping, self.status)

    @property
    def kept_adapter(self) -> str:
        """The folder, inside the run's folder, of the adapter the run keeps."""
        return FINAL_ADAPTER if self.keeps_final else BEST_ADAPTER

    @property
    def model_ref(self) -> str:
        """What to load as the run's base model: the resolved path, else what the user named."""
        return self.model_path or self.model_spec

    def stopping_point(self, history: list[dict]) -> Optional[StoppingPoint]:
        """Where the run stopped (the adapter it keeps), or None before its first evaluation.

        ``history`` is the run's ``eval_history``; the final step of a convergence run takes its
        dev exact match and fit from the evaluation at that step, if any."""
        if self.keeps_final and self.final_step:
            rec = next((h for h in history if h["step"] == self.final_step), None) or {}
            return StoppingPoint(
                step=self.final_step,
                epoch=self.final_epoch,
                dev_em=rec.get("dev_em"),
                fit=rec.get("fit") or {},
                why="the last step (trained to convergence)",
                final=True,
            )
        if self.best_step is None:
            return None
        return StoppingPoint(
            step=self.best_step,
            epoch=self.best_epoch,
            dev_em=self.best_dev_em,
            fit=dict(self.fit_at_best),
            why="the best dev exact match",
            final=False,
        )
