"""What each section of the report says: the gathered data (``data.py``) turned into words, table
rows and charts, ready for the templates.

Values here are plain text; the templates escape them. The one rule about a training run's
result (where it stopped, which adapter it keeps) comes from ``core.train.runs``, so the report
says what the training loop did: a finished convergence run stopped at its last step.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from ..categories import CATEGORIES, ordered_categories
from ..formats import duration_words as duration  # the report's words ("3 min 05 s")
from . import charts
from .charts import CATEGORY_COLORS, pct
from .data import ProbeData

if TYPE_CHECKING:  # pragma: no cover - typing only: importing the store loads SQLite (see data.py)
    from ..store.records import TrainRun

MAX_GROUP_BARS = 80  # more groups than this: the chart shows the largest, the table lists all


@dataclass(frozen=True)
class Cell:
    """One value of a key-value table: text, shown as code, or after the red "Not the paper's budget." flag."""

    text: str
    code: bool = False
    not_paper_budget: bool = False


Row = tuple[str, Cell]


def kv(key: str, value: Any, *, code: bool = False, not_paper_budget: bool = False) -> Row:
    return key, Cell("" if value is None else str(value), code=code, not_paper_budget=not_paper_budget)


# --------------------------------------------------------------------------- small formats


def when(ts: Optional[float]) -> str:
    if not ts:
        return "-"
    try:
        return _dt.datetime.fromtimestamp(float(ts)).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError, TypeError):
        return "-"


def natural(name: str) -> list:
    """Sort key that puts g2 before g10."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", name) if t] + [(2, 0, name)]


def settings_view(text: Any) -> dict:
    """Stored settings (JSON) as ``{"rows": [(key, shown)] or None, "text": raw text or None}``."""
    data = text
    if isinstance(text, str):
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = text
    if data is None:
        return {"rows": None, "text": None}
    if not isinstance(data, dict):
        return {"rows": None, "text": str(text)}
    rows = [(key, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)) for key, v in sorted(data.items())]
    return {"rows": rows, "text": None}


def legend(categories: Any = CATEGORIES) -> list[tuple[str, str]]:
    return [(c, CATEGORY_COLORS[c]) for c in categories]


# --------------------------------------------------------------------------- probe


def _unfinished_words(status: str) -> str:
    """Why an unfinished probe run is not finished, by its status."""
    from ..store.records import PROBE_CANCELLED, PROBE_FAILED, PROBE_FINISHED, PROBE_RUNNING

    return {
        PROBE_RUNNING: "is still running, or was stopped before it finished",
        PROBE_CANCELLED: "was cancelled",
        PROBE_FAILED: "failed",
        PROBE_FINISHED: "is marked finished but has fewer results than questions",
    }.get(status, f"is {status}")


def probe_view(probe: ProbeData) -> dict:
    run = probe.run
    rows = [
        kv("Probe run", run.id),
        kv("Model", run.model_name or run.model_spec or "-"),
        kv("Model path", run.model_path or "-"),
        kv("Backend", run.backend or "-"),
        kv("Model fingerprint", run.model_fingerprint or "-", code=True),
    ]
    rows += _dataset_rows(probe) + [_budget_row(probe.settings)]
    rows += [
        kv("Status", probe.status),
        kv("Questions probed", f"{probe.n_probed} of {probe.n_total}"),
        kv("Time", duration(run.seconds)),
        kv("Started", when(run.created_at)),
        kv("Finished", when(run.finished_at)),
    ]
    if run.note:
        rows.append(kv("Note", run.note))
    return {
        "unfinished": probe.unfinished,
        "n_probed": probe.n_probed,
        "n_total": probe.n_total,
        "why_unfinished": _unfinished_words(probe.status),
        "rows": rows,
        "settings": settings_view(run.settings_json),
    }


def _dataset_rows(probe: ProbeData) -> list[Row]:
    ds, pool = probe.dataset, probe.pool
    if ds is not None:
        rows = [
            kv("Dataset", f"{ds.get('name')} ({ds.get('n_examples')} questions)"),
            kv("Probe status", probe_status_text(int(ds.get("n_examples") or 0), probe.unprobed)),
            kv("Several true answers", multi_answer_text(probe.n_probed, probe.multi_answer)),
            kv("Dataset path", ds.get("path") or "-"),
            kv("Dataset file sha256", ds.get("file_sha256") or "-", code=True),
            kv("Dataset content sha256", ds.get("content_sha256") or "-", code=True),
        ]
    else:
        rows = [kv("Dataset", f"dataset {probe.run.dataset_id} (not found in the project)")]
    if pool is not None:
        rows += [
            kv("Exemplar pool", f"{pool.get('name')} ({pool.get('n_examples')} questions) at {pool.get('path')}"),
            kv("Pool content sha256", pool.get("content_sha256") or "-", code=True),
        ]
    else:
        rows.append(
            kv(
                "Exemplar pool",
                "the dataset itself (a question never sees itself, nor an exemplar that gives its answer away)",
            )
        )
    rows += _exemplar_rows(probe)
    return rows


def _exemplar_rows(probe: ProbeData) -> list[Row]:
    """The exemplar draw's notes (a held-out pool, too few distinct sets), the swaps, and P(T>0)."""
    from ..summary import exemplar_swaps_text, p_sampled_text

    rows = [kv(f"Exemplars of {group}", note) for group, note in sorted(probe.exemplar_notes.items())]
    swaps = exemplar_swaps_text(probe.exemplar_swaps)
    if swaps:
        rows.append(kv("Exemplars replaced", swaps))
    mean = p_sampled_text(probe.p_sampled)
    if mean:
        rows.append(kv("P(T>0)", f"{mean} Measured over all samples for every question without a right greedy answer."))
    return rows


def probe_status_text(n_probed: int, unprobed: dict[str, int]) -> str:
    """ "30 rows: 25 probed, 5 not probed (1 multi-turn, 2 task ...)", or "every row probed"."""
    from ..datasets.types import REASONS

    n_not = sum(unprobed.values())
    if not n_not:
        return f"every row probed ({n_probed})"
    why = "; ".join(f"{n} {reason}: {REASONS.get(reason, 'not probed')}" for reason, n in unprobed.items())
    return (
        f"{n_probed + n_not} rows: {n_probed} probed, {n_not} not probed and kept out of the categories ({why}). "
        "A plan keeps them in the training file as they are unless told to drop them."
    )


def multi_answer_text(n_probed: int, multi: dict[str, int]) -> str:
    """How many probed questions list two or more different true answers, and what that means."""
    from ..categories import CATEGORIES

    n = sum(multi.values())
    if not n:
        return f"none of the {n_probed} probed questions lists two or more different true answers"
    by_cat = ", ".join(f"{multi[c]} {c}" for c in CATEGORIES if multi.get(c))
    return (
        f"{n} of {n_probed} probed questions list two or more different true answers ({by_cat}); any of them "
        "counts as right. The paper removed such questions (4.2% of its data); a plan can leave them out "
        "(--multi-answer drop)."
    )


def _budget_row(settings: Any) -> Row:
    if settings is None:
        return kv("Budget", "unknown: the stored settings could not be read")
    return kv("Budget", settings.describe(), not_paper_budget=not settings.is_paper_budget)


# --------------------------------------------------------------------------- breakdown


def _count_row(name: str, counts: dict[str, int]) -> dict:
    n = sum(counts.get(c, 0) for c in CATEGORIES)
    return {"name": name, "total": n, "cells": [(counts.get(c, 0), pct(counts.get(c, 0) / n if n else 0.0)) for c in CATEGORIES]}


def breakdown_view(probe: ProbeData) -> dict:
    ordered = sorted(probe.groups.items(), key=lambda kv_: natural(str(kv_[0])))
    shown = ordered
    if len(ordered) > MAX_GROUP_BARS:
        shown = sorted(ordered, key=lambda kv_: (-sum(kv_[1].values()), natural(str(kv_[0]))))[:MAX_GROUP_BARS]
        shown.sort(key=lambda kv_: natural(str(kv_[0])))
    bins = probe.p_greedy_bins
    return {
        "total": probe.n_probed,
        "n_groups": len(ordered),
        "legend": legend(),
        "categories": CATEGORIES,
        "overall_chart": charts.stacked_bar(probe.overall),
        "rows": [_count_row(str(g), counts) for g, counts in ordered] if len(ordered) > 1 else [],
        "all": _count_row("all", probe.overall),
        "n_charted": len(shown),
        "group_chart": charts.group_bars([(str(g), counts) for g, counts in shown]),
        "histogram": charts.histogram(bins) if sum(bins) else None,
        "p_missing": probe.p_greedy_missing,
    }


def no_plan_text(probe: ProbeData) -> str:
    """Why there is no plan section, and which step makes one."""
    run_id = probe.run.id
    if probe.unfinished:
        why = (
            f"the probe is not finished ({probe.n_probed} of {probe.n_total} questions probed). Resume the "
            "probe, then make a plan with knowmix plan (or the Plan page in the app)."
        )
    else:
        why = "make one from this probe with knowmix plan (or the Plan page in the app)."
    return f"No plan for probe run {run_id} yet: {why}"


# --------------------------------------------------------------------------- plan


def plan_view(plan: Any, note: str) -> dict:
    from ..plan import MIX_LABELS

    c = plan.counts()
    relabelled = f' ({c["relabelled"]} Unknown relabelled "I don\'t know")' if c["relabelled"] else ""
    rows = [
        kv("Plan", f"{plan.id}: {plan.name}" if plan.name else plan.id),
        kv("Mix", MIX_LABELS.get(plan.settings.mix, plan.settings.mix)),
        kv("From probe run", plan.probe_run_id),
        kv("Created", when(plan.created_at)),
        kv("Training set", f"{c['train']['total']} questions{relabelled}"),
        kv("Dev split", f"{c['dev']['total']} questions"),
        kv("Dropped", f"{c['dropped']['total']} questions"),
    ]
    np = c.get("not_probed") or {}
    if np.get("total"):
        from ..plan.explain import not_probed_line

        rows.append(kv("Not probed", not_probed_line(c)))
    parts = [("All probed", c["before"]), ("Dev split", c["dev"]), ("Training set", c["train"]), ("Dropped", c["dropped"])]
    return {
        "note": note,
        "rows": rows,
        "settings": settings_view(plan.settings.to_dict()),
        "legend": legend(),
        "chart": charts.group_bars([(label, p["counts"]) for label, p in parts], row_height=22),
        "parts": parts,
        "categories": CATEGORIES,
        "warnings": plan.warnings(),
        "explain": plan.explain(),
    }


def no_training_text(plan: Any) -> str:
    if plan is not None:
        return f"No training run for plan {plan.id} yet: knowmix train --plan {plan.id} (or the Train page in the app) runs one."
    return "No training run yet: training needs a plan first (knowmix plan, then knowmix train)."


# --------------------------------------------------------------------------- training


LOSS_COLOR, DEV_COLOR = "#37474f", "#1565c0"
MAX_LINE_POINTS = 400  # longer series are averaged into this many points


@dataclass(frozen=True)
class _Kept:
    """Which adapter the run keeps and how the report words its dashed line, from the one rule
    (``TrainRun.keeps_final``, ``core.store.records.keeps_final_adapter``, which the training loop follows too).

    ``case``: "early" (an EARLY_STOP run: the best dev step is the stopping point), "final" (a finished
    CONVERGENCE run: it keeps its last step), "to-final" (a CONVERGENCE run still on its way to its last
    step, or one that finished without a recorded last step: the best dev step is *not* what it keeps)
    or "stopped" (a CONVERGENCE run cancelled or failed before its last step: it keeps the best so far).
    """

    case: str

    @classmethod
    def of(cls, row: "TrainRun", point: Optional[dict]) -> "_Kept":
        from ..store.records import CANCELLED, CONVERGENCE, CRASHED, FAILED

        if row.stopping != CONVERGENCE:
            return cls("early")
        if row.keeps_final:
            return cls("final" if point is not None and point["final"] else "to-final")
        return cls("stopped" if row.status in (CANCELLED, FAILED, CRASHED) else "to-final")  # else created or running

    def label(self) -> str:
        """The dashed line's label above each chart."""
        return {"early": "stopping point", "final": "last step (kept)", "to-final": "best dev step"}.get(
            self.case, "best dev step (kept)"
        )

    def tooltip(self, point: dict) -> str:
        where = f"step {point['step']}" + (f" (epoch {float(point['epoch']):g})" if point.get("epoch") is not None else "")
        em = f"dev exact match {pct(point['dev_em'])}" if point.get("dev_em") is not None else ""
        if self.case == "early":
            return f"Stopping point: {where}" + (f", best {em}" if em else "")
        if self.case == "final":
            return f"Stopping point: {where}, the last step (trained to convergence)" + (f"; {em}" if em else "")
        if self.case == "to-final":
            return (
                f"Best dev step so far: {where}" + (f", {em}" if em else "") + "; this run trains to convergence and keeps "
                "the final adapter, not this one"
            )
        return (
            f"Best dev step: {where}" + (f", {em}" if em else "") + "; kept because this convergence run stopped before "
            "its last step (resume it to train to the end and keep the final adapter)"
        )

    def point_words(self, point: Optional[dict]) -> str:
        """The loss chart's caption: what the dashed line marks."""
        step = f" (step {point['step']})" if point else ""
        return {
            "early": "the stopping point (best dev exact match)",
            "final": "the stopping point (the last step: a convergence run keeps its final adapter)",
            "to-final": f"the best dev step so far{step}; this run trains to convergence and keeps the final adapter",
        }.get(
            self.case,
            f"the best dev step{step}; this convergence run stopped before its last step and keeps the best adapter so far",
        )

    def kept_words(self) -> str:
        """The dev chart's caption: which adapter the run keeps."""
        return {
            "early": "training keeps the adapter of the best one",
            "final": "this run trained to convergence and keeps the adapter of its last step",
            "to-final": "this run trains to convergence and keeps the final adapter, not the best one",
        }.get(self.case, "this convergence run stopped before its last step, so it keeps the adapter of the best one so far")


def _point_text(point: Optional[dict]) -> str:
    if point is None:
        return "none yet"
    epoch = f"epoch {float(point['epoch']):g}, " if point.get("epoch") is not None else ""
    return f"{epoch}step {point['step']}, dev exact match {pct(point.get('dev_em'))} ({point['why']})"


def _fit_text(fit: Any) -> str:
    if not isinstance(fit, dict) or not fit:
        return "-"
    cats = ordered_categories(fit)
    return ", ".join(f"{cat} {pct(fit[cat], 0)}" for cat in cats)


def _stopping_rows(row: "TrainRun", point: Optional[dict], kept: _Kept) -> list[Row]:
    if kept.case == "to-final":
        last = f"step {row.total_steps}" if row.total_steps else "its last step"
        rows = [kv("Stopping point", f"not reached yet: this run trains to convergence and stops at {last}")]
        if point is not None:
            so_far = dict(point, why="best so far; not kept: a convergence run keeps its final adapter")
            rows.append(kv("Best dev evaluation", _point_text(so_far)))
        rows.append(kv("Train fit at the best dev step", _fit_text(point["fit"] if point else None)))
        rows.append(
            kv(
                "Adapter",
                f"{row.adapter_dir} (best so far; the finished run keeps its final adapter)" if row.adapter_dir else "-",
            )
        )
        return rows
    shown = point
    if kept.case == "stopped" and point is not None:
        shown = dict(point, why="the best dev exact match so far: this convergence run stopped before its last step")
    rows = [kv("Stopping point", _point_text(shown))]
    best_step = row.best_step
    if point is not None and point["final"] and best_step is not None and best_step != point["step"]:
        best = {
            "step": best_step,
            "epoch": row.best_epoch,
            "dev_em": row.best_dev_em,
            "why": "not kept: a convergence run keeps its last step",
        }
        rows.append(kv("Best dev evaluation", _point_text(best)))
    rows.append(kv("Train fit at the stopping point", _fit_text(point["fit"] if point else None)))
    which = "" if point is None else " (from the last step)" if point["final"] else " (from the best evaluation)"
    rows.append(kv("Adapter", f"{row.adapter_dir}{which}" if row.adapter_dir else "-"))
    return rows


def _training_rows(row: "TrainRun", point: Optional[dict], kept: _Kept) -> list[Row]:
    from ..store.records import stop_reason_words

    final = bool(point and point["final"])
    rows = [
        kv("Training run", row.id),
        kv("Plan", row.plan_id if row.plan_id is not None else "none (items given directly)"),
        kv("Model", row.model_name or row.model_spec or "-"),
        kv("Model path", row.model_path or "-"),
        kv("Status", row.status or "unknown"),
        kv("Stop reason", stop_reason_words(row.stop_reason, final)),
        kv("Examples", f"{row.n_train} train, {row.n_dev} dev"),
        kv("Progress", f"step {row.step} of {row.total_steps or '?'}, epoch {row.epoch:g}"),
    ]
    rows += _stopping_rows(row, point, kept)
    if row.merged_dir:
        rows.append(kv("Merged model", row.merged_dir))
    rows += [
        kv("Run folder", row.folder or "-"),
        kv("Time", duration(row.seconds)),
        kv("Started", when(row.started_at or row.created_at)),
        kv("Finished", when(row.finished_at)),
    ]
    if row.error:
        rows.append(kv("Error", row.error))
    return rows


def _before_training_rows(history: list[dict]) -> list[Row]:
    """The step-0 evaluation (the base model, before any optimizer step), when the run recorded one."""
    step0 = next((h for h in history if h.get("step") == 0 and h.get("dev_em") is not None), None)
    if step0 is None:
        return []
    return [kv("Before training", f"dev exact match before training: {pct(step0['dev_em'])} (step 0, the base model)")]


def _stopping_line(point: Optional[dict], kept: _Kept) -> Optional[tuple[float, str, str]]:
    """The dashed line on every training chart: the stopping point, or the best dev step of a run
    that keeps another adapter, with its tooltip and label."""
    if point is None:
        return None
    return float(point["step"]), kept.tooltip(point), kept.label()


def _eval_series(history: list[dict]) -> tuple[list, dict[str, list], list]:
    """Dev exact match, train fit per category and overall, as ``(step, value)`` points (finite values only)."""

    def finite(v: Any) -> bool:
        return isinstance(v, (int, float)) and math.isfinite(v)

    dev: list[tuple[float, float]] = []
    fit: dict[str, list[tuple[float, float]]] = {}
    fit_all: list[tuple[float, float]] = []
    for rec in history:
        step = float(rec["step"])
        if finite(rec.get("dev_em")):
            dev.append((step, float(rec["dev_em"])))
        for cat, share in (rec.get("fit") or {}).items():
            if finite(share):
                fit.setdefault(cat, []).append((step, float(share)))
        if finite(rec.get("fit_all")):
            fit_all.append((step, float(rec["fit_all"])))
    return dev, fit, fit_all


def _loss_chart(loss: list[tuple[float, float]], best: Optional[tuple[float, str, str]]) -> tuple[Optional[charts.Chart], int]:
    if not loss:
        return None, 1
    pts, size = charts.downsample(loss, MAX_LINE_POINTS)
    title = (
        f"training loss over {len(loss)} steps: {loss[0][1]:.4g} at step {int(loss[0][0])}, "
        f"{loss[-1][1]:.4g} at step {int(loss[-1][0])}"
    )
    series = [{"name": "training loss", "color": LOSS_COLOR, "points": pts, "title": title}]
    return charts.line_chart(series, y_label="loss", best=best), size


def _fit_chart(
    fit: dict[str, list], fit_all: list, best: Optional[tuple[float, str, str]]
) -> tuple[Optional[charts.Chart], list]:
    if not fit:
        return None, []
    cats = ordered_categories(fit)
    series = [
        {"name": f"{c} fitted", "color": CATEGORY_COLORS.get(c, charts.NEUTRAL), "points": fit[c], "markers": True} for c in cats
    ]
    if fit_all:
        series.append({"name": "all categories fitted", "color": "#757575", "points": fit_all, "dash": True})
    chart = charts.line_chart(series, y_label="share of training examples fitted", percent=True, y_range=(0.0, 1.0), best=best)
    return chart, legend([c for c in cats if c in CATEGORY_COLORS])


def training_view(training: Any) -> dict:
    point = training.point
    kept = _Kept.of(training.row, point)
    best = _stopping_line(point, kept)
    dev, fit, fit_all = _eval_series(training.history)
    loss_chart, bucket = _loss_chart(training.loss, best)
    fit_chart, fit_legend = _fit_chart(fit, fit_all, best)
    dev_chart = None
    if dev:
        series = [{"name": "dev exact match", "color": DEV_COLOR, "points": dev, "markers": True}]
        dev_chart = charts.line_chart(series, y_label="dev exact match", percent=True, y_range=(0.0, 1.0), best=best)
    return {
        "note": training.note,
        "rows": _training_rows(training.row, point, kept) + _before_training_rows(training.history),
        "settings": settings_view(training.row.settings_json),
        "has_metrics": bool(training.loss or training.history),
        "loss_chart": loss_chart,
        "loss_bucket": bucket,
        "dev_chart": dev_chart,
        "fit_chart": fit_chart,
        "fit_legend": fit_legend,
        "point_words": kept.point_words(point),
        "kept_words": kept.kept_words(),
    }
