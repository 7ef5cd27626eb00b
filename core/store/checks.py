"""Checks in the project file: the ``checks`` and ``check_results`` tables (``core/check`` decides
what a check is; this module only stores and finds it)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Iterable, Optional

from .tables import inserted_id

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .project import Project


def find_check(project: "Project", train_run_id: int, settings: str) -> Optional[dict]:
    """The latest check of a training run with these settings (JSON text), or None."""
    return _one(
        project, "SELECT * FROM checks WHERE train_run_id = ? AND settings = ? ORDER BY id DESC LIMIT 1", [train_run_id, settings]
    )


def insert_check(project: "Project", row: dict) -> int:
    now = time.time()
    with project.transaction():
        return inserted_id(project.db.table("checks").insert({**row, "created_at": now, "updated_at": now}))


def update_check(project: "Project", check_id: int, **fields: Any) -> None:
    with project.transaction():
        project.db.table("checks").update(check_id, {**fields, "updated_at": time.time()})


def check_row(project: "Project", check_id: Optional[int] = None, train_run_id: Optional[int] = None) -> Optional[dict]:
    """A check's row: ``check_id``'s, else the latest of ``train_run_id``, else the latest of all."""
    if check_id is not None:
        return _one(project, "SELECT * FROM checks WHERE id = ?", [check_id])
    if train_run_id is not None:
        return _one(project, "SELECT * FROM checks WHERE train_run_id = ? ORDER BY id DESC LIMIT 1", [train_run_id])
    return _one(project, "SELECT * FROM checks ORDER BY id DESC LIMIT 1", [])


def check_rows(project: "Project") -> list[dict]:
    """Every check, oldest first."""
    cursor = project.db.execute("SELECT * FROM checks ORDER BY id")
    cols = [c[0] for c in cursor.description]
    return [dict(zip(cols, r)) for r in cursor.fetchall()]


def save_results(project: "Project", rows: Iterable[dict], *, check_id: int, n_done: Optional[int] = None) -> None:
    """Insert or update result rows (keyed by check, split and example) and the check's progress, in one transaction."""
    with project.transaction():
        project.db.table("check_results").upsert_all(list(rows), pk=("check_id", "split", "example_id"))
        fields: dict[str, Any] = {"updated_at": time.time()}
        if n_done is not None:
            fields["n_done"] = n_done
        project.db.table("checks").update(check_id, fields)


def result_rows(project: "Project", check_id: int) -> list[dict]:
    """Every result row of a check, by split then in the order written."""
    cursor = project.db.execute("SELECT * FROM check_results WHERE check_id = ? ORDER BY split, rowid", [check_id])
    cols = [c[0] for c in cursor.description]
    return [dict(zip(cols, r)) for r in cursor.fetchall()]


def delete_check(project: "Project", check_id: int) -> None:
    with project.transaction():
        project.db.execute("DELETE FROM check_results WHERE check_id = ?", [check_id])
        project.db.execute("DELETE FROM checks WHERE id = ?", [check_id])


def _one(project: "Project", sql: str, params: list) -> Optional[dict]:
    cursor = project.db.execute(sql, params)
    row = cursor.fetchone()
    return dict(zip([c[0] for c in cursor.description], row)) if row is not None else None


def probe_seconds_per_prompt(project: "Project", probe_run_id: int) -> Optional[float]:
    """Seconds per prompt of a probe run (its time over the exemplar sets it asked: one greedy answer
    each, with its samples), or None.

    Per prompt, not per answer: a prompt's evaluation is most of its cost, and the samples share it
    (a trie of sampled tokens), so the probe's seconds per answer (about 0.03 s on the built-in model)
    made a check of 900 greedy answers look like 43 s when it took 210."""
    row = project.db.execute(
        "SELECT p.seconds, SUM(r.greedy_total) FROM probe_runs p "
        "JOIN probe_results r ON r.run_id = p.id WHERE p.id = ? GROUP BY p.id",
        [probe_run_id],
    ).fetchone()
    if not row or not row[0] or not row[1]:
        return None
    return float(row[0]) / float(row[1])
