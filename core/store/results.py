"""Read-only views of a probe run's results, for the plan, the breakdown page and the report.

The probe writes results through ``Project.save_probe_results``; everything here only reads. The
views are computed in SQL (joins with ``examples``, counts per bin) so they stay fast on runs of
100k questions and never load a whole run into Python to throw most of it away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .project import Project

# The columns ``example_rows`` returns, in order.
EXAMPLE_COLUMNS = ("example_id", "group_name", "category", "question", "answers", "p_greedy", "p_sampled")
# The columns ``example_detail`` returns, in order.
DETAIL_COLUMNS = (
    "category",
    "p_greedy",
    "p_sampled",
    "greedy_correct",
    "greedy_total",
    "sampled_correct",
    "sampled_total",
    "greedy_answers",
    "sampled_answers",
    "exemplar_ids",
    "question",
    "answers",
    "group_name",
    "keys",
    "key_source",
    "exemplar_swaps",
    "greedy_reasons",
)


def categories(project: "Project", run_id: int) -> dict[str, tuple[str, str]]:
    """``{example_id: (category, group)}`` of every result of the run."""
    rows = project.db.execute("SELECT example_id, category, group_name FROM probe_results WHERE run_id = ?", [run_id]).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def has_results(project: "Project", run_id: int) -> bool:
    """Whether the run has at least one result (cheap: stops at the first row)."""
    return project.db.execute("SELECT 1 FROM probe_results WHERE run_id = ? LIMIT 1", [run_id]).fetchone() is not None


def example_rows(project: "Project", run_id: int, dataset_id: int) -> list[tuple[Any, ...]]:
    """Every result with its question and answers (JSON), in the dataset's file order; see ``EXAMPLE_COLUMNS``."""
    return project.db.execute(
        "SELECT r.example_id, r.group_name, r.category, e.question, e.answers, r.p_greedy, r.p_sampled "
        "FROM probe_results r LEFT JOIN examples e ON e.dataset_id = ? AND e.example_id = r.example_id "
        "WHERE r.run_id = ? ORDER BY e.idx, r.rowid",
        [dataset_id, run_id],
    ).fetchall()


def example_detail(project: "Project", run_id: int, dataset_id: int, example_id: str) -> Optional[tuple[Any, ...]]:
    """One result with every answer the model gave and its question (``DETAIL_COLUMNS``); None when the run
    has no such result."""
    row = project.db.execute(
        "SELECT r.category, r.p_greedy, r.p_sampled, r.greedy_correct, r.greedy_total, r.sampled_correct, "
        "r.sampled_total, r.greedy_answers, r.sampled_answers, r.exemplar_ids, e.question, e.answers, r.group_name, "
        "e.keys, e.key_source, r.exemplar_swaps, r.greedy_reasons "
        "FROM probe_results r LEFT JOIN examples e ON e.dataset_id = ? AND e.example_id = r.example_id "
        "WHERE r.run_id = ? AND r.example_id = ?",
        [dataset_id, run_id, example_id],
    ).fetchone()
    return tuple(row) if row is not None else None


def p_greedy_bins(project: "Project", run_id: int, n_bins: int = 10) -> tuple[list[int], int]:
    """Counts of P(T=0) in ``n_bins`` equal bins over [0, 1] (the last one closed), and how many are NULL."""
    bins = [0] * n_bins
    rows = project.db.execute(
        "SELECT MIN(?, MAX(0, CAST(p_greedy * ? + 1e-9 AS INTEGER))) AS b, COUNT(*) FROM probe_results "
        "WHERE run_id = ? AND p_greedy IS NOT NULL GROUP BY b",
        [n_bins - 1, n_bins, run_id],
    ).fetchall()
    for b, n in rows:
        bins[int(b)] += int(n)
    null = project.db.execute("SELECT COUNT(*) FROM probe_results WHERE run_id = ? AND p_greedy IS NULL", [run_id]).fetchone()[0]
    return bins, int(null)


# The columns ``every_row`` returns, in order.
ROW_COLUMNS = (
    "example_id",
    "group_name",
    "question",
    "answers",
    "keys",
    "probe_status",
    "reason",
    "category",
    "p_greedy",
    "p_sampled",
    "exemplar_ids",
    "greedy_answers",
    "sampled_answers",
    "exemplar_swaps",
    "greedy_reasons",
)


def every_row(project: "Project", run_id: int, dataset_id: int) -> list[tuple[Any, ...]]:
    """Every row of the dataset in file order, probed or not, with the run's result where it has one
    (``ROW_COLUMNS``; the result's columns are None for a row without one)."""
    return project.db.execute(
        "SELECT e.example_id, e.group_name, e.question, e.answers, e.keys, e.probe_status, e.reason, r.category, "
        "r.p_greedy, r.p_sampled, r.exemplar_ids, r.greedy_answers, r.sampled_answers, r.exemplar_swaps, "
        "r.greedy_reasons FROM examples e LEFT JOIN probe_results r ON r.run_id = ? AND r.example_id = e.example_id "
        "WHERE e.dataset_id = ? ORDER BY e.idx",
        [run_id, dataset_id],
    ).fetchall()


def swap_counts(project: "Project", run_id: int) -> dict[str, int]:
    """How many exemplars the run replaced, by reason (``core.probe.SWAP_REASONS``)."""
    rows = project.db.execute(
        "SELECT json_extract(j.value, '$.why'), COUNT(*) FROM probe_results r, json_each(r.exemplar_swaps) j "
        "WHERE r.run_id = ? GROUP BY 1",
        [run_id],
    ).fetchall()
    return {str(why): int(n) for why, n in rows}


def p_sampled_means(project: "Project", run_id: int) -> dict[str, tuple[float, int]]:
    """{category: (mean P(T>0), how many examples have one)} over the results that measured it."""
    rows = project.db.execute(
        "SELECT category, AVG(p_sampled), COUNT(p_sampled) FROM probe_results "
        "WHERE run_id = ? AND p_sampled IS NOT NULL GROUP BY category",
        [run_id],
    ).fetchall()
    return {str(cat): (float(mean), int(n)) for cat, mean, n in rows}
