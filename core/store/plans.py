"""Plans in the project file: the ``plans`` and ``plan_examples`` tables.

``core.plan`` decides what a plan is; this module only stores and finds it. A plan and all its
examples are written in one transaction, so a kill or a full disk leaves the whole plan or
nothing. ``plan_examples`` copies question, answers, group and training target, so a plan stays
readable (and trainable) on its own; the original record, and the row's probe status and
reason, are joined from ``examples`` on reading. Rows that were not probed are stored with an
empty category and the split ``kept`` or ``left-out``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Optional

from .tables import inserted_id

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .project import Project

# The columns of a ``plan_examples`` row as ``insert_plan`` takes them (after ``plan_id``), and the keys
# of the dicts ``plan_example_rows`` returns (the plan's columns, then the dataset's record and status).
EXAMPLE_COLUMNS = ("example_id", "idx", "split", "category", "group_name", "question", "answers", "target", "reason")
READ_COLUMNS = (
    "example_id",
    "question",
    "answers",
    "group_name",
    "category",
    "split",
    "target",
    "reason",
    "raw",
    "probe_status",
    "probe_reason",
)


def insert_plan(project: "Project", row: dict, examples: Iterable[tuple[Any, ...]]) -> int:
    """Write a plan's row and its examples (tuples in ``EXAMPLE_COLUMNS`` order) in one transaction."""
    with project.transaction():
        plan_id = inserted_id(project.db.table("plans").insert(row))
        # Plain executemany: sqlite-utils' insert_all spends most of its time inspecting each value.
        project.db.conn.executemany(
            f"INSERT INTO plan_examples (plan_id, {', '.join(EXAMPLE_COLUMNS)}) VALUES (?, {', '.join('?' * len(EXAMPLE_COLUMNS))})",
            ((plan_id, *values) for values in examples),
        )
    return plan_id


def _row(project: "Project", sql: str, params: list) -> Optional[dict]:
    cursor = project.db.execute(sql, params)
    row = cursor.fetchone()
    return dict(zip([d[0] for d in cursor.description], row)) if row is not None else None


def plan_row(project: "Project", plan_id: Optional[int] = None) -> Optional[dict]:
    """The ``plans`` row of a plan, the latest when ``plan_id`` is None; None when there is none."""
    if plan_id is None:
        return _row(project, "SELECT * FROM plans ORDER BY id DESC LIMIT 1", [])
    return _row(project, "SELECT * FROM plans WHERE id = ?", [plan_id])


def plan_rows(project: "Project") -> list[dict]:
    """Every plan's row, oldest first."""
    return list(project.db.table("plans").rows_where(order_by="id"))


def count_plans(project: "Project") -> int:
    return int(project.db.execute("SELECT COUNT(*) FROM plans").fetchone()[0])


def plan_example_rows(project: "Project", plan_id: int, dataset_id: Optional[int]) -> list[dict[str, Any]]:
    """A plan's rows in plan order, each a dict keyed by ``READ_COLUMNS``: the plan's columns, the
    dataset record (``raw``, JSON or None) and the row's probe status and its reason (None when the
    dataset row is gone). Keyed by name, so a reader never depends on the SELECT's column order."""
    cursor = project.db.execute(
        "SELECT pe.example_id AS example_id, pe.question AS question, pe.answers AS answers, "
        "pe.group_name AS group_name, pe.category AS category, pe.split AS split, pe.target AS target, "
        "pe.reason AS reason, e.raw AS raw, e.probe_status AS probe_status, e.reason AS probe_reason "
        "FROM plan_examples pe LEFT JOIN examples e ON e.dataset_id = ? AND e.example_id = pe.example_id "
        "WHERE pe.plan_id = ? ORDER BY pe.idx",
        [dataset_id, plan_id],
    )
    names = [d[0] for d in cursor.description]
    assert tuple(names) == READ_COLUMNS, names  # the names the readers use are the ones selected
    return [dict(zip(names, r)) for r in cursor.fetchall()]


def latest_plan_id(project: "Project", probe_run_id: int) -> Optional[int]:
    """The newest plan made from a probe run, or None."""
    row = project.db.execute("SELECT id FROM plans WHERE probe_run_id = ? ORDER BY id DESC LIMIT 1", [probe_run_id]).fetchone()
    return int(row[0]) if row else None
