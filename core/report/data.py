"""What the report shows, read from the project: the probe run, its breakdown, the plan, the training run.

Everything here is read through ``core.store``, ``core.plan`` and ``core.train.runs``; the
rendering (``render.py`` and the templates) never touches the project. The store is imported
inside the functions, so ``import core.report`` stays cheap (no SQLite libraries) for callers
that only want ``CATEGORY_COLORS``.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..errors import ProjectError, SettingsError

if TYPE_CHECKING:  # pragma: no cover - typing only (the store is imported inside the functions)
    from ..store.records import ProbeRun, TrainRun


@dataclass
class ProbeData:
    """One probe run with its dataset, pool and category counts."""

    run: ProbeRun
    overall: dict[str, int]  # {category: count} over every probed question
    groups: dict[str, dict[str, int]]  # {group: {category: count}}
    settings: Any  # ProbeSettings, or None when the stored settings no longer parse
    dataset: Optional[dict]  # the ``datasets`` row, None when it is gone
    pool: Optional[dict]
    p_greedy_bins: list[int]  # P(T=0) counts in 10 bins over [0, 1]
    p_greedy_missing: int  # results without a P(T=0)
    unprobed: dict[str, int] = field(default_factory=dict)  # rows of the dataset not probed, by reason
    # probed questions with several different true answers, by category (core.summary.multi_answer_counts)
    multi_answer: dict[str, int] = field(default_factory=dict)
    exemplar_notes: dict[str, str] = field(default_factory=dict)  # per group: held-out pool, too few distinct sets
    exemplar_swaps: dict[str, int] = field(default_factory=dict)  # exemplars replaced, by reason
    p_sampled: dict[str, tuple[float, int]] = field(default_factory=dict)  # {category: (mean P(T>0), n)}

    @property
    def n_probed(self) -> int:
        return sum(self.overall.values())

    @property
    def n_total(self) -> int:
        return self.run.n_total

    @property
    def status(self) -> str:
        return self.run.status or "unknown"

    @property
    def unfinished(self) -> bool:
        from ..store.records import PROBE_FINISHED

        return self.status != PROBE_FINISHED or self.n_probed < self.n_total


@dataclass
class TrainingData:
    """One training run with its curves and where it stopped (``TrainRun.stopping_point``)."""

    row: TrainRun
    loss: list[tuple[float, float]]  # (step, loss), finite values only
    history: list[dict]  # every evaluation: step, epoch, dev_em, fit {...}, fit_all
    point: Optional[dict]  # a core.store.records.StoppingPoint, None before the first evaluation
    note: str = ""  # set when the run is not from the plan shown


@dataclass
class ReportData:
    project_name: str
    generated: _dt.datetime
    probe: ProbeData
    plan: Any = None  # a core.plan.Plan, or None
    plan_note: str = ""  # set when the plan is not from the probe run shown
    training: Optional[TrainingData] = None
    ids: dict[str, Optional[int]] = field(default_factory=dict)  # probe, plan, train: what the report covers
    checks: list = field(default_factory=list)  # the latest finished check of each training run (core.check.CheckReport)
    check_runs: dict = field(default_factory=dict)  # {training run id: its TrainRun}, for the checks' runs
    project_path: str = ""


def gather(
    project: Any, *, probe_run_id: Optional[int] = None, plan_id: Optional[int] = None, train_run_id: Optional[int] = None
) -> ReportData:
    """Read what the report shows. Defaults: the latest probe run, its latest plan, that plan's latest
    training run. A run or plan number that does not exist raises ``ProjectError``; so does a project
    with no probe at all."""
    from ..plan import load_plan, plan_row
    from ..train.runs import get_run

    train_row = get_run(project, train_run_id) if train_run_id is not None else None
    if plan_id is None and train_row is not None and train_row.plan_id is not None:
        plan_id = train_row.plan_id
    if probe_run_id is None and plan_id is not None:
        probe_run_id = plan_row(project, plan_id).get("probe_run_id")
    probe = _probe(project, project.probe_run(probe_run_id))
    run_id = probe.run.id
    data = ReportData(project_name=Path(project.path).name, generated=_dt.datetime.now(), probe=probe)
    plan_id = plan_id if plan_id is not None else _latest_plan_id(project, run_id)
    if plan_id is not None:
        data.plan = load_plan(project, plan_id)
        if data.plan.probe_run_id != run_id:
            data.plan_note = (
                f"Plan {data.plan.id} was made from probe run {data.plan.probe_run_id}, not from probe run {run_id} shown above."
            )
    if train_row is None and data.plan is not None:
        tid = _latest_train_run_id(project, int(data.plan.id))
        train_row = get_run(project, tid) if tid is not None else None
    if train_row is not None:
        data.training = _training(project, train_row, data.plan)
    _checks(project, data, train_row)
    data.ids = {
        "probe": run_id,
        "plan": data.plan.id if data.plan is not None else None,
        "train": train_row.id if train_row is not None else None,
    }
    return data


def _latest_plan_id(project: Any, probe_run_id: int) -> Optional[int]:
    from ..plan import latest_plan_id

    return latest_plan_id(project, probe_run_id)


def _latest_train_run_id(project: Any, plan_id: int) -> Optional[int]:
    from ..train.runs import latest_run_id

    return latest_run_id(project, plan_id)


def _probe(project: Any, run: ProbeRun) -> ProbeData:
    from ..store import results

    overall, groups, settings = _breakdown(project, run)
    bins, missing = results.p_greedy_bins(project, run.id)
    return ProbeData(
        run=run,
        overall=overall,
        groups=groups,
        settings=settings,
        dataset=_dataset_row(project, run.dataset_id),
        pool=_dataset_row(project, run.pool_dataset_id),
        p_greedy_bins=bins,
        p_greedy_missing=missing,
        unprobed=_unprobed(project, run.dataset_id),
        multi_answer=_multi_answer(project, run),
        exemplar_notes=project.exemplar_sets(run.id)[1],
        exemplar_swaps=results.swap_counts(project, run.id),
        p_sampled=results.p_sampled_means(project, run.id),
    )


def _multi_answer(project: Any, run: ProbeRun) -> dict[str, int]:
    from ..summary import multi_answer_counts

    return multi_answer_counts(project, run)


def _unprobed(project: Any, dataset_id: Optional[int]) -> dict[str, int]:
    """The dataset's rows kept without a probe, by reason, in ``REASONS``' order."""
    from ..datasets.types import REASONS

    if dataset_id is None:
        return {}
    counts = project.unprobed_counts(int(dataset_id))
    order = {r: i for i, r in enumerate(REASONS)}
    return dict(sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def _breakdown(project: Any, run: ProbeRun) -> tuple[dict[str, int], dict[str, dict[str, int]], Any]:
    """``(overall, groups, settings or None)``; settings that no longer parse do not break the report."""
    from ..summary import breakdown

    try:
        b = breakdown(project, run.id)
        return b.overall, b.groups, b.settings
    except (SettingsError, TypeError, ValueError):
        groups = project.category_counts(run.id)
        overall: dict[str, int] = {}
        for counts in groups.values():
            for c, n in counts.items():
                overall[c] = overall.get(c, 0) + n
        return overall, groups, None


def _dataset_row(project: Any, dataset_id: Optional[int]) -> Optional[dict]:
    if dataset_id is None:
        return None
    try:
        return project.dataset(dataset_id)
    except ProjectError:
        return None


def _training(project: Any, row: TrainRun, plan: Any) -> TrainingData:
    from ..train.runs import eval_history, metric_series

    run_id = row.id
    history = eval_history(project, run_id)
    loss = [(float(step), value) for step, _epoch, value in metric_series(project, run_id, "loss") if math.isfinite(value)]
    note = ""
    if plan is not None and row.plan_id != plan.id:
        made_from = f"plan {row.plan_id}" if row.plan_id is not None else "items given directly"
        note = f"Training run {row.id} was made from {made_from}, not from plan {plan.id} shown above."
    point = row.stopping_point(history)
    return TrainingData(row=row, loss=loss, history=history, point=dict(point) if point is not None else None, note=note)


def _checks(project: Any, data: ReportData, train_row: Optional[TrainRun]) -> None:
    """The latest finished check of every training run (the report shows the one of its training run,
    or the latest, and compares them when there are several), with their runs' rows."""
    from ..check import list_checks
    from ..train.runs import get_run
    from .checks import latest_per_run

    data.project_path = str(project.path)
    data.checks = latest_per_run(list_checks(project))
    for c in data.checks:
        try:
            data.check_runs[c.train_run_id] = get_run(project, c.train_run_id)
        except ProjectError:
            data.check_runs[c.train_run_id] = None
