"""Training runs in the project store and on disk: rows of ``train_runs`` and ``metrics``, run folders.

Kept here (not in ``core/store.py``) so the training code owns its tables' reads and writes; every
write is one short transaction through ``Project.transaction()``.

Run folder: ``<project folder>/<project stem>-runs/run-<id>/`` holding ``adapter/``,
``final-adapter/``, ``merged/`` (optional), ``checkpoints/last/``, ``metrics.jsonl`` (every event
of every session, a ``resume`` line between sessions), ``plan.json`` (the frozen train/dev
items), ``settings.json`` and ``worker.log`` (the worker's stderr).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable, Optional

from ..errors import ProjectError
from .data import TrainItem, items_from_json, items_to_json
from .settings import TrainSettings

# Run status values.
CREATED, RUNNING, DONE, CANCELLED, FAILED, CRASHED = "created", "running", "done", "cancelled", "failed", "crashed"
RESUMABLE = (CREATED, RUNNING, CANCELLED, FAILED, CRASHED)


def runs_root(project_path: str | Path) -> Path:
    p = Path(project_path).expanduser().resolve()
    return p.parent / f"{p.stem}-runs"


def run_folder(project_path: str | Path, run_id: int) -> Path:
    return runs_root(project_path) / f"run-{run_id}"


def create_run(
    project: Any,
    *,
    plan_id: Optional[int],
    settings: TrainSettings,
    train: list[TrainItem],
    dev: list[TrainItem],
    model_spec: str,
    model_name: str,
    model_path: str,
    model_fingerprint: str,
    plan_info: Optional[dict] = None,
) -> tuple[int, Path]:
    """Insert the run's row and write its folder (plan.json, settings.json); returns ``(run_id, folder)``."""
    now = time.time()
    snapshot = items_to_json(train, dev, {"plan_id": plan_id, **(plan_info or {})})
    snapshot_text = json.dumps(snapshot, ensure_ascii=False)
    with project.transaction():
        run_id = int(project.db["train_runs"].insert({
            "plan_id": plan_id, "status": CREATED, "settings": settings.to_json(), "model_spec": model_spec,
            "model_name": model_name, "model_path": model_path, "model_fingerprint": model_fingerprint,
            "n_train": len(train), "n_dev": len(dev), "step": 0, "epoch": 0.0, "created_at": now, "updated_at": now,
            "seconds": 0.0, "plan_snapshot": snapshot_text,
        }).last_pk)
        folder = run_folder(project.path, run_id)
        project.db["train_runs"].update(run_id, {"folder": str(folder)})
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "plan.json").write_text(json.dumps(snapshot, ensure_ascii=False, indent=1), encoding="utf-8")
        (folder / "settings.json").write_text(json.dumps(settings.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
    except OSError as exc:
        raise ProjectError(f"Cannot create the run folder {folder}: {exc.strerror or exc}. Pick a project folder you can write to.") from None
    return run_id, folder


def get_run(project: Any, run_id: int) -> dict:
    row = project.db.execute("SELECT * FROM train_runs WHERE id = ?", [run_id]).fetchone()
    if row is None:
        raise ProjectError(f"{project.path} has no training run number {run_id}.")
    cols = [c[0] for c in project.db.execute("SELECT * FROM train_runs LIMIT 0").description]
    return dict(zip(cols, row))


def list_runs(project: Any) -> list[dict]:
    cursor = project.db.execute("SELECT * FROM train_runs ORDER BY id")
    cols = [c[0] for c in cursor.description]
    return [dict(zip(cols, r)) for r in cursor.fetchall()]


def update_run(project: Any, run_id: int, **fields: Any) -> None:
    with project.transaction():
        project.db["train_runs"].update(run_id, {**fields, "updated_at": time.time()})


def run_items(row: dict) -> tuple[list[TrainItem], list[TrainItem]]:
    data = json.loads(row["plan_snapshot"] or "{}")
    return items_from_json(data)


def run_settings(row: dict) -> TrainSettings:
    return TrainSettings.from_json(row["settings"])


def write_metrics(project: Any, run_id: int, rows: Iterable[dict]) -> None:
    rows = list(rows)
    if not rows:
        return
    with project.transaction():
        project.db["metrics"].insert_all(
            ({"run_id": run_id, **r} for r in rows), pk=("run_id", "name", "step"), replace=True
        )


def delete_metrics_after(project: Any, run_id: int, step: int) -> None:
    """A resumed run redoes the steps after its checkpoint: forget what the killed session logged for them."""
    with project.transaction():
        project.db.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", [run_id, step])


def metric_series(project: Any, run_id: int, name: str) -> list[tuple[int, float, float]]:
    """``[(step, epoch, value), ...]`` of one metric, by step."""
    return [
        (int(r[0]), float(r[1]), float(r[2]))
        for r in project.db.execute(
            "SELECT step, epoch, value FROM metrics WHERE run_id = ? AND name = ? ORDER BY step", [run_id, name]
        ).fetchall()
    ]


def eval_history(project: Any, run_id: int) -> list[dict]:
    """Every evaluation of a run: ``{"step", "epoch", "dev_em", "fit": {category: share}, ...}`` by step."""
    out: dict[int, dict] = {}
    for step, epoch, name, value in project.db.execute(
        "SELECT step, epoch, name, value FROM metrics WHERE run_id = ? AND (name = 'dev_em' OR name LIKE 'fit/%' "
        "OR name = 'fit_all') ORDER BY step", [run_id]
    ).fetchall():
        rec = out.setdefault(int(step), {"step": int(step), "epoch": float(epoch), "fit": {}})
        if name.startswith("fit/"):
            rec["fit"][name[4:]] = value
        else:
            rec[name] = value
    return [out[k] for k in sorted(out)]
