"""What a check (``knowmix check``) says, ready for the report and the app: per split the sentences,
the transition matrix as rows of a stacked-bar chart, the new-error questions, and the side-by-side
comparison of the training runs that have a check (the paper's comparison: recommended mix + early
stop against natural mix + convergence, on the user's own data).

Plain data and words only (no Qt, no markup): the report's templates and the app's Check step show
the same numbers with the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

from ..categories import (
    CATEGORIES,
    CATEGORY_COLORS,
    CHECK_SPLITS,
    KNOWN,
    NOT_KNOWN,
    NOT_KNOWN_AFTER,
    NOT_KNOWN_LABEL,
    SPLIT_WORDS,
    TEXT_ON,
    split_title,
)
from ..formats import percent

if TYPE_CHECKING:  # pragma: no cover - typing only: importing the store loads SQLite
    from ..store.records import TrainRun

NOT_KNOWN_COLOR = "#9e9e9e"
AFTER_COLORS = {**CATEGORY_COLORS, NOT_KNOWN: NOT_KNOWN_COLOR}
AFTER_TEXT_ON = {**TEXT_ON, NOT_KNOWN: "#1b1b1b"}
SPLIT_ORDER = CHECK_SPLITS
# The check's words for each split (core.categories.SPLIT_WORDS), as headings.
SPLIT_TITLES = {split: split_title(split) for split in SPLIT_WORDS}
MAX_LISTED = 50  # new-error questions listed in the report; the rest are counted


def category_label(name: str) -> str:
    return NOT_KNOWN_LABEL if name == NOT_KNOWN else name


def ordered_splits(report: Any) -> list[Any]:
    """The report's splits, test first."""
    splits = dict(report.splits)
    return [splits[k] for k in SPLIT_ORDER if k in splits] + [s for k, s in splits.items() if k not in SPLIT_ORDER]


def after_columns(splits: Sequence[Any]) -> list[str]:
    """The after-training categories present, in order (``not known at T=0`` only for a greedy-only check)."""
    seen = {a for s in splits for row in s.transitions.values() for a, n in row.items() if n}
    order = (*CATEGORIES, NOT_KNOWN)
    return [c for c in order if c in seen] + sorted(c for c in seen if c not in order)


def transition_rows(split: Any) -> list[tuple[str, dict[str, int]]]:
    """``[(category before, {category after: count})]``, in the categories' order, empty rows left out."""
    order = (*CATEGORIES, NOT_KNOWN)
    names = [c for c in order if c in split.transitions] + sorted(c for c in split.transitions if c not in order)
    return [(b, dict(split.transitions[b])) for b in names if sum(split.transitions[b].values())]


def known_lost(split: Any) -> int:
    """Questions HighlyKnown or MaybeKnown before training and WeaklyKnown, Unknown or not known at T=0 after."""
    return sum(int(split.transitions.get(b, {}).get(a, 0) or 0) for b in KNOWN for a in NOT_KNOWN_AFTER)


def known_before(split: Any) -> int:
    return sum(sum(split.transitions.get(b, {}).values()) for b in KNOWN)


def lost_text(split: Any) -> str:
    k, of = known_lost(split), known_before(split)
    if not of:
        return ""
    return (
        f"Of the {of} questions HighlyKnown or MaybeKnown before training, {k} {'is' if k == 1 else 'are'} "
        "WeaklyKnown, Unknown or not known at T=0 after it."
    )


def split_sentences(split: Any) -> dict[str, str]:
    """The words of one split: the new errors by the answer (the headline) and by the probe, each
    its own count; exact match, fixed, abstention. A check stored before the two measures were split
    has no probe sentence; its known -> not known count comes from the transitions ("lost")."""
    em = split.em_text()
    probe = split.probe_new_errors_text()
    return {
        "headline": split.new_errors_text(),
        "probe": probe,
        "em": (em[0].upper() + em[1:] + ".") if em else "",
        "fixed": split.fixed_text(),
        "idk": (split.idk_text()[0].upper() + split.idk_text()[1:] + ".") if split.idk_text() else "",
        "lost": "" if probe else lost_text(split),
    }


def error_rows(split: Any, limit: Optional[int] = None) -> list[dict]:
    """The new-error questions as rows: question, gold answer, answer before, answer after, category before."""
    items = split.new_errors if limit is None else split.new_errors[:limit]
    return [
        {
            "question": e.get("question", ""),
            "gold": " | ".join(str(a) for a in (e.get("answers") or [])),
            "before": e.get("answer_before") or "",
            "after": e.get("answer_after") or "",
            "category": category_label(str(e.get("category_before") or "")),
        }
        for e in items
    ]


# --------------------------------------------------------------------------- several runs


def stopping_words(run: Optional["TrainRun"]) -> str:
    from ..store.records import CONVERGENCE

    if run is None:
        return "-"
    return "convergence (every epoch, final step kept)" if run.stopping == CONVERGENCE else "early stop (best dev step kept)"


def run_title(run: Optional["TrainRun"], report: Any) -> str:
    return f"Training run {report.train_run_id}"


@dataclass
class Comparison:
    columns: list[str]  # "Run 3", "Run 5"
    rows: list[tuple[str, list[str]]]  # (what, one cell per run)


def comparison_split(report: Any) -> Optional[Any]:
    return report.splits.get("test") or report.splits.get("dev")


def compare(items: Sequence[tuple[Optional["TrainRun"], Any]]) -> Comparison:
    """Side by side, one column per training run: its mix, stopping rule, adapter, exact match on the test
    split before and after, new errors (count and share), fixed, and the Known -> not known transitions.
    ``items``: ``(train run row or None, CheckReport)``. A check without a test split uses its dev split
    and says so."""
    columns = [run_title(run, rep) for run, rep in items]
    rows: list[tuple[str, list[str]]] = [
        ("Mix", [rep.mix or "-" for _run, rep in items]),
        ("Stopping rule", [stopping_words(run) for run, _rep in items]),
        ("Adapter checked", [rep.adapter or "-" for _run, rep in items]),
    ]
    splits = [comparison_split(rep) for _run, rep in items]

    def cell(i: int, text: str) -> str:
        s = splits[i]
        if s is None:
            return "-"
        return text if s.split == "test" else f"{text} (dev: no test split)"

    rows.append(("Test questions compared", [cell(i, str(s.n)) if s else "-" for i, s in enumerate(splits)]))
    rows.append(("Exact match before", [percent(s.em_before) if s else "-" for s in splits]))
    rows.append(("Exact match after", [percent(s.em_after) if s else "-" for s in splits]))
    rows.append(("New errors by the answer (right before, wrong after)", [answer_errors_cell(s) for s in splits]))
    rows.append(
        (
            "Fixed by the answer (wrong before, right after)",
            [f"{len(s.fixed)} of {s.n - right_before(s)}" if s else "-" for s in splits],
        )
    )
    rows.append(
        (
            "New errors by the probe (known before -> not known after)",
            [f"{known_lost(s)} of {known_before(s)}" if s else "-" for s in splits],
        )
    )
    idk = [s for s in splits if s is not None and s.idk]
    if idk:
        rows.append(
            (
                '"I don\'t know" answers',
                [percent(s.abstained) if s is not None and s.idk else "-" for s in splits],
            )
        )
    return Comparison(columns=columns, rows=rows)


def right_before(split: Any) -> int:
    """Questions answered right before training by the answer (a check stored the old way: known by the probe)."""
    n = getattr(split, "n_right_before", None)
    return int(n) if n is not None else int(split.n_known_before)


def answer_errors_cell(split: Any) -> str:
    """'2 of 12 (16.7%)': new errors by the answer among the questions answered right before."""
    if split is None:
        return "-"
    k, of = len(split.new_errors), right_before(split)
    text = f"{k} of {of} ({percent(k / of)})" if of else "0 of 0"
    return text + (" (counted the old way: redo the check)" if getattr(split, "n_right_before", 0) is None else "")


def latest_per_run(checks: Sequence[Any]) -> list[Any]:
    """The latest finished check of each training run, oldest run first."""
    best: dict[int, Any] = {}
    for c in checks:
        if c.status != "finished":
            continue
        if c.train_run_id not in best or c.id > best[c.train_run_id].id:
            best[c.train_run_id] = c
    return [best[k] for k in sorted(best)]


def matrix_rows(split: Any, columns: Sequence[str]) -> list[dict]:
    """The transition matrix as table rows, with each row's exact match before and after training."""
    out = []
    for before, counts in transition_rows(split):
        em = split.em_by_category.get(before) or {}
        out.append(
            {
                "before": category_label(before),
                "cells": [int(counts.get(c, 0) or 0) for c in columns],
                "total": sum(int(v or 0) for v in counts.values()),
                "em_before": percent(em.get("before")),
                "em_after": percent(em.get("after")),
            }
        )
    return out


def split_view(split: Any, limit: Optional[int] = MAX_LISTED) -> dict:
    """One split of a check for the report: words, the transition chart and table, the new errors."""
    from . import charts

    columns = after_columns([split])
    names = {NOT_KNOWN: NOT_KNOWN_LABEL}
    return {
        "name": split.split,
        "title": SPLIT_TITLES.get(split.split, split.split),
        "n": split.n,
        "words": split_sentences(split),
        "columns": [category_label(c) for c in columns],
        "legend": [(category_label(c), AFTER_COLORS.get(c, NOT_KNOWN_COLOR)) for c in columns],
        "chart": charts.transition_bars(transition_rows(split), columns, AFTER_COLORS, AFTER_TEXT_ON, names=names),
        "matrix": matrix_rows(split, columns),
        "errors": error_rows(split, limit),
        "n_errors": len(split.new_errors),
        "more": max(0, len(split.new_errors) - limit) if limit is not None else 0,
    }


def check_view(checks: Sequence[Any], runs: dict, train_run_id: Optional[int], project_path: Any) -> dict:
    """The report's "What training did to the model's knowledge" section: the check of the report's
    training run (or the latest check), and the comparison when several runs have one."""
    shown = next((c for c in checks if c.train_run_id == train_run_id), None)
    note = ""
    if shown is None and checks:
        shown = max(checks, key=lambda c: c.id)
        if train_run_id is not None:
            note = f"Training run {train_run_id} has no check yet; this is the check of training run {shown.train_run_id}."
    view: dict[str, Any] = {"check": None, "missing": no_check_text(project_path, train_run_id), "note": note, "compare": None}
    stale = str(getattr(shown, "stale", "") or "")
    other = str(getattr(shown, "other_model", "") or "")
    if shown is not None and (stale or other):
        extra = [f"Check {shown.id} is {stale}." if stale else "", f"{other[:1].upper()}{other[1:]}." if other else ""]
        view["note"] = " ".join(t for t in (note, *extra) if t)
    if shown is not None:
        greedy_only = any(NOT_KNOWN in after_columns([s]) for s in shown.splits.values())
        view["check"] = {
            "run": shown.train_run_id,
            "id": shown.id,
            "mix": shown.mix or "-",
            "adapter": shown.adapter,
            "backend": shown.backend,
            "stopping": stopping_words(runs.get(shown.train_run_id)),
            "greedy_only": greedy_only,
            "splits": [split_view(s) for s in ordered_splits(shown)],
        }
    if len(checks) >= 2:
        view["compare"] = compare([(runs.get(c.train_run_id), c) for c in checks])
    return view


def no_check_text(project_path: Any, train_run_id: Optional[int] = None) -> str:
    run = f" --run {train_run_id}" if train_run_id is not None else ""
    return (
        "No check of a training run yet, so this report cannot say what training did to the model's knowledge. "
        f"Run one: knowmix check --project {project_path}{run} (or the Check step in the app); it asks the base model "
        "and the trained one the held-out test questions, the dev questions and a sample of the training questions."
    )


__all__ = [
    "AFTER_COLORS",
    "AFTER_TEXT_ON",
    "Comparison",
    "MAX_LISTED",
    "NOT_KNOWN_COLOR",
    "SPLIT_TITLES",
    "after_columns",
    "category_label",
    "check_view",
    "compare",
    "error_rows",
    "known_before",
    "known_lost",
    "latest_per_run",
    "no_check_text",
    "ordered_splits",
    "split_sentences",
    "stopping_words",
    "transition_rows",
]
