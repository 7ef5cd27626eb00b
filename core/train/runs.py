"""A training run: its statuses, its folder, its rows in the project, and its outcome.

This module is the one home of the rules about a run's result that the training loop, the
worker, the report, the Train page and the CLI all need:

- which statuses can be resumed (``RESUMABLE``, ``is_resumable``);
- the run's folder, its frozen items and settings, its metrics in the shapes callers use.

Which adapter a run keeps (``TrainRun.kept_adapter``, ``keeps_final_adapter``: the best dev
evaluation's for EARLY_STOP runs and any run that did not finish, the last step's for a CONVERGENCE
run that finished) and where it stopped (``TrainRun.stopping_point``) are the typed row's, in
``core.store.records``. The SQL of ``train_runs`` and ``metrics`` is in ``core.store.runs``.

Run folder: ``<project folder>/<project stem>-runs/run-<id>/`` holding ``adapter/``,
``final-adapter/``, ``merged/`` (optional), ``checkpoints/last/``, ``metrics.jsonl`` (every event
of every session, a ``resume`` line between sessions), ``plan.json`` (the frozen train/dev
items), ``settings.json`` and ``worker.log`` (the worker's stderr).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from ..errors import ProjectError
from ..store import run_paths as _paths
from ..store import runs as _store

# The words a run's row holds (statuses, stop reasons, the two adapters' folders) and the rule of which
# adapter a run keeps live with the typed row in ``core.store.records``; named here too for training's callers.
from ..store.records import (  # noqa: F401
    BEST_ADAPTER,
    CANCELLED,
    CRASHED,
    CREATED,
    DONE,
    FAILED,
    FINAL_ADAPTER,
    RESUMABLE,
    RUNNING,
    STOP_CANCELLED,
    STOP_EARLY,
    STOP_MAX_EPOCHS,
    StoppingPoint,
    TrainRun,
    keeps_final_adapter,
)
from .data import TrainItem, items_from_json, items_to_json
from .settings import TrainSettings


def runs_root(project_path: str | Path) -> Path:
    return _paths.runs_root(project_path)


def run_folder(project_path: str | Path, run_id: int) -> Path:
    return runs_root(project_path) / f"run-{run_id}"


# The temp names a run's writers use (``checkpoints.save_adapter``/``write_checkpoint``, the merge,
# ``core.paths.atomic_file``): only these are ever removed, and only when their process has ended.
_RUN_TEMP_DIRS = re.compile(rf"^(?:{BEST_ADAPTER}|{FINAL_ADAPTER}|merged)\.tmp-\d+$")
_CHECKPOINT_TEMP = re.compile(r"^tmp-\d+$")
_ATOMIC_TEMP = re.compile(r"^\..+\.tmp-\d+$")


def clean_run_folder_temps(run_dir: Path) -> int:
    """Remove the temp files and folders a killed writer left in one run folder; returns how many went.
    A temp whose process still runs (a worker training now) is kept."""
    from ..paths import remove_if_stale

    found: list[Path] = []
    for folder, pattern in (
        (run_dir, _RUN_TEMP_DIRS),
        (run_dir, _ATOMIC_TEMP),
        (run_dir / "checkpoints", _CHECKPOINT_TEMP),
        (run_dir / "check", _ATOMIC_TEMP),
    ):
        try:
            found += [p for p in folder.iterdir() if pattern.match(p.name)]
        except OSError:  # no such folder (yet), or not readable: nothing of ours to clean
            continue
    return sum(remove_if_stale(p) for p in found)


def clean_run_temps(project_path: str | Path) -> int:
    """``clean_run_folder_temps`` for every run folder of the project (the app does it when it opens
    a project, the worker when it starts on a run); returns how many went."""
    root = runs_root(project_path)
    try:
        runs = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("run-")]
    except OSError:
        return 0
    return sum(clean_run_folder_temps(p) for p in runs)


@dataclass(frozen=True)
class RunModel:
    """The model a run trains, as its row records it: what the user named (``spec``: a path, a Hub-style
    folder or "default"), the name shown, the resolved file or folder, and its fingerprint."""

    spec: str
    name: str
    path: str
    fingerprint: str


def create_run(
    project: Any,
    *,
    plan_id: Optional[int],
    settings: TrainSettings,
    train: list[TrainItem],
    dev: list[TrainItem],
    model: RunModel,
    plan_info: Optional[dict] = None,
) -> tuple[int, Path]:
    """Insert the run's row and write its folder (plan.json, settings.json); returns ``(run_id, folder)``."""
    now = time.time()
    snapshot = items_to_json(train, dev, {"plan_id": plan_id, **(plan_info or {})})
    snapshot_text = json.dumps(snapshot, ensure_ascii=False)
    run_id = _store.insert_run(
        project,
        {
            "plan_id": plan_id,
            "status": CREATED,
            "settings": settings.to_json(),
            "model_spec": model.spec,
            "model_name": model.name,
            "model_path": model.path,
            "model_fingerprint": model.fingerprint,
            "n_train": len(train),
            "n_dev": len(dev),
            "step": 0,
            "epoch": 0.0,
            "created_at": now,
            "updated_at": now,
            "seconds": 0.0,
            "plan_snapshot": snapshot_text,
        },
        folder=lambda new_id: str(run_folder(project.path, new_id)),
    )
    folder = run_dir(get_run(project, run_id))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "plan.json").write_text(json.dumps(snapshot, ensure_ascii=False, indent=1), encoding="utf-8")
        (folder / "settings.json").write_text(json.dumps(settings.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
    except OSError as exc:
        raise ProjectError(
            f"Cannot create the run folder {folder}: {exc.strerror or exc}. Pick a project folder you can write to."
        ) from None
    return run_id, folder


def get_run(project: Any, run_id: int) -> TrainRun:
    """A run; ``ProjectError`` when the project has no such run."""
    row = _store.run_row(project, run_id)
    if row is None:
        raise ProjectError(f"{project.path} has no training run number {run_id}.")
    return row


def run_dir(run: TrainRun) -> Path:
    """The run's folder, always inside its project's runs folder; ProjectError (why, what to do) when the
    stored folder leads out of it (a copied or renamed project, ``..``, a symlink)."""
    if run.path_error and run.folder is None:
        raise ProjectError(run.path_error)
    if run.folder is None:
        raise ProjectError(f"Training run {run.id} has no folder recorded; start a new run.")
    return run.folder


def list_runs(project: Any) -> list[TrainRun]:
    return _store.run_rows(project)


def latest_run_id(project: Any, plan_id: int) -> Optional[int]:
    """The newest run trained on a plan, or None."""
    return _store.latest_run_id(project, plan_id)


def count_runs(project: Any) -> int:
    return _store.count_runs(project)


def update_run(project: Any, run_id: int, **fields: Any) -> None:
    _store.update_run(project, run_id, fields)


def run_items(run: TrainRun) -> tuple[list[TrainItem], list[TrainItem]]:
    data = json.loads(run.plan_snapshot or "{}")
    return items_from_json(data)


def run_settings(run: TrainRun) -> TrainSettings:
    return TrainSettings.from_json(run.settings_json)


def write_metrics(project: Any, run_id: int, rows: Iterable[dict]) -> None:
    _store.insert_metrics(project, run_id, rows)


def delete_metrics_after(project: Any, run_id: int, step: int) -> None:
    """A resumed run redoes the steps after its checkpoint: forget what the killed session logged for them."""
    _store.delete_metrics_after(project, run_id, step)


def metric_series(project: Any, run_id: int, name: str) -> list[tuple[int, float, float]]:
    """``[(step, epoch, value), ...]`` of one metric, by step."""
    return [(int(r[0]), float(r[1]), float(r[2])) for r in _store.metric_rows(project, run_id, name)]


def eval_history(project: Any, run_id: int) -> list[dict]:
    """Every evaluation of a run: ``{"step", "epoch", "dev_em", "fit": {category: share}, ...}`` by step."""
    out: dict[int, dict] = {}
    for step, epoch, name, value in _store.eval_metric_rows(project, run_id):
        rec = out.setdefault(int(step), {"step": int(step), "epoch": float(epoch), "fit": {}})
        if name.startswith("fit/"):
            rec["fit"][name[4:]] = value
        else:
            rec[name] = value
    return [out[k] for k in sorted(out)]


def is_resumable(run: TrainRun) -> bool:
    """Whether ``knowmix resume`` (or Resume on the Train page) can continue the run now.

    A run marked CREATED or RUNNING is resumable only when its worker process is gone (killed,
    crashed, the app closed): two workers on one run would write the same steps."""
    from ..store import pid_alive

    if run.status not in RESUMABLE:
        return False
    if run.status in (RUNNING, CREATED):
        return not pid_alive(run.worker_pid)
    return True
