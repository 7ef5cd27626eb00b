"""Training runs in the project file: the ``train_runs`` and ``metrics`` tables.

``core.train.runs`` decides what a run is (its folder, its outcome); this module only stores
and finds it. Every write is one short transaction through ``Project.transaction()``, so the
worker, writing while it trains, never holds the file long enough to block a reader.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

from .records import TrainRun
from .run_paths import PATH_COLUMNS, resolve_row, to_stored
from .tables import inserted_id

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .project import Project

# The metrics an evaluation writes (``eval_metric_rows``): dev exact match and the train fit.
EVAL_METRICS_SQL = "(name = 'dev_em' OR name LIKE 'fit/%' OR name = 'fit_all')"


def insert_run(project: "Project", row: dict, folder: Callable[[int], str]) -> int:
    """Insert a run's row and set its ``folder`` (which needs the new id) in one transaction; the
    folder is stored relative to the project's runs folder (``run_paths``)."""
    with project.transaction():
        run_id = inserted_id(project.db.table("train_runs").insert(row))
        project.db.table("train_runs").update(run_id, {"folder": to_stored(project.path, folder(run_id))})
    return run_id


def run_row(project: "Project", run_id: int) -> Optional[TrainRun]:
    """One run (its paths absolute, see ``run_paths.resolve_row``), or None."""
    cursor = project.db.execute("SELECT * FROM train_runs WHERE id = ?", [run_id])
    row = cursor.fetchone()
    if row is None:
        return None
    return TrainRun.from_row(resolve_row(project.path, dict(zip([c[0] for c in cursor.description], row))))


def run_rows(project: "Project") -> list[TrainRun]:
    """Every run, oldest first."""
    cursor = project.db.execute("SELECT * FROM train_runs ORDER BY id")
    cols = [c[0] for c in cursor.description]
    return [TrainRun.from_row(resolve_row(project.path, dict(zip(cols, r)))) for r in cursor.fetchall()]


def count_runs(project: "Project") -> int:
    return int(project.db.execute("SELECT COUNT(*) FROM train_runs").fetchone()[0])


def latest_run_id(project: "Project", plan_id: int) -> Optional[int]:
    """The newest run trained on a plan, or None."""
    row = project.db.execute("SELECT id FROM train_runs WHERE plan_id = ? ORDER BY id DESC LIMIT 1", [plan_id]).fetchone()
    return int(row[0]) if row else None


def update_run(project: "Project", run_id: int, fields: dict[str, Any]) -> None:
    """Change some columns of a run (and its ``updated_at``)."""
    fields = {k: (to_stored(project.path, v) if k in PATH_COLUMNS else v) for k, v in fields.items()}
    with project.transaction():
        project.db.table("train_runs").update(run_id, {**fields, "updated_at": time.time()})


def insert_metrics(project: "Project", run_id: int, rows: Iterable[dict]) -> None:
    """Write metric values (``name``, ``step``, ``epoch``, ``value``, ``at``); a value already there is replaced."""
    rows = list(rows)
    if not rows:
        return
    with project.transaction():
        project.db.table("metrics").insert_all(
            ({"run_id": run_id, **r} for r in rows), pk=("run_id", "name", "step"), replace=True
        )


def delete_metrics_after(project: "Project", run_id: int, step: int) -> None:
    with project.transaction():
        project.db.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", [run_id, step])


def metric_rows(project: "Project", run_id: int, name: str) -> list[tuple[Any, Any, Any]]:
    """``(step, epoch, value)`` of one metric, by step."""
    return project.db.execute(
        "SELECT step, epoch, value FROM metrics WHERE run_id = ? AND name = ? ORDER BY step", [run_id, name]
    ).fetchall()


def eval_metric_rows(project: "Project", run_id: int) -> list[tuple[Any, Any, str, Any]]:
    """``(step, epoch, name, value)`` of every evaluation metric, by step."""
    return project.db.execute(
        f"SELECT step, epoch, name, value FROM metrics WHERE run_id = ? AND {EVAL_METRICS_SQL} ORDER BY step", [run_id]
    ).fetchall()


# A training run is trained by one worker at a time. The claim is a ``meta`` row (key
# ``train_run_owner:<id>``, JSON: the KnowMix process that started the worker, the worker's process
# group, the host, a token), found and written in one transaction, as probe runs are claimed.


def _claim_key(run_id: int) -> str:
    return f"train_run_owner:{int(run_id)}"


def read_train_claim(project: "Project", run_id: int) -> Optional[dict]:
    """The run's claim as written, or None."""
    import json

    row = project.db.execute("SELECT value FROM meta WHERE key = ?", [_claim_key(run_id)]).fetchone()
    if not row:
        return None
    try:
        value = json.loads(row[0])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def claim_train_run(project: "Project", run_id: int, owner: dict, is_live: Callable[[dict], bool]) -> Optional[dict]:
    """Write ``owner`` as the run's claim unless a live one (``is_live``) holds it; in one transaction.
    Returns the live claim that blocked it (nothing written), or None when the run is now ``owner``'s."""
    import json

    with project.transaction():
        current = read_train_claim(project, run_id)
        if current and current.get("token") != owner.get("token") and is_live(current):
            return current
        project.db.table("meta").upsert({"key": _claim_key(run_id), "value": json.dumps(owner)}, pk="key")
    return None


def update_train_claim(project: "Project", run_id: int, token: str, **fields: Any) -> None:
    """Add to this token's claim (e.g. the worker's process group); nothing when the claim is another's."""
    import json

    with project.transaction():
        current = read_train_claim(project, run_id)
        if current and current.get("token") == token:
            project.db.table("meta").upsert({"key": _claim_key(run_id), "value": json.dumps({**current, **fields})}, pk="key")


def release_train_claim(project: "Project", run_id: int, token: str) -> None:
    """Drop this token's claim (another's stays)."""
    with project.transaction():
        current = read_train_claim(project, run_id)
        if current and current.get("token") == token:
            project.db.execute("DELETE FROM meta WHERE key = ?", [_claim_key(run_id)])
