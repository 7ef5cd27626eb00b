"""Plans in the project: saving, loading and finding them, through ``core.store.plans``.

Also the one home of "which model a plan's probe used" (``plan_model``): training defaults to
it, the memory estimate measures it, and the Train page shows it.
"""

from __future__ import annotations

import json
import time
from typing import Any, Optional

from ..datasets.types import NOT_PROBED, PROBED
from ..errors import ProjectError
from ..store import plans as _store
from ..store.records import ProbeRun
from .build import probe_settings_of
from .settings import PlanSettings
from .types import NOT_PROBED_SPLITS, Plan, PlanExample


def save_plan(project: Any, plan: Plan, name: str = "") -> int:
    """Write the plan and all its examples in one transaction; sets and returns ``plan.id``."""
    if name:
        plan.name = name
    if not plan.name:
        plan.name = f"{plan.settings.mix} mix, probe run {plan.probe_run_id}"
    plan.created_at = time.time()
    c = plan.counts()
    row = {
        "probe_run_id": plan.probe_run_id,
        "dataset_id": plan.dataset_id,
        "name": plan.name,
        "mix": plan.settings.mix,
        "settings": json.dumps(plan.settings.to_dict(), sort_keys=True),
        "counts": json.dumps(c),
        "summary": plan.explain(),
        "n_train": c["train"]["total"],
        "n_dev": c["dev"]["total"],
        "n_dropped": c["dropped"]["total"],
        "created_at": plan.created_at,
    }
    examples = (
        (
            e.example_id,
            i,
            e.split,
            e.category,
            e.group,
            e.question,
            json.dumps(list(e.answers), ensure_ascii=False),
            e.target,
            e.reason,
        )
        for i, e in enumerate(plan.examples)
    )
    plan.id = _store.insert_plan(project, row, examples)
    return plan.id


def plan_row(project: Any, plan_id: Optional[int] = None) -> dict:
    """A plan's stored row (id, name, counts, ``probe_run_id``, ...), the latest when ``plan_id`` is None;
    ``ProjectError`` when there is none."""
    row = _store.plan_row(project, plan_id)
    if row is not None:
        return row
    if plan_id is None:
        raise ProjectError(f"{project.path} has no plan yet. Make one from a finished probe first (knowmix plan).")
    raise ProjectError(f"{project.path} has no plan number {plan_id}.")


def load_plan(project: Any, plan_id: Optional[int] = None) -> Plan:
    """A saved plan, the latest when ``plan_id`` is None, with each example's original record."""
    p = plan_row(project, plan_id)
    multi = _multi_answer_ids(project, p)
    examples = [
        PlanExample(
            example_id=r["example_id"],
            question=r["question"],
            answers=tuple(json.loads(r["answers"])),
            group=r["group_name"],
            category=r["category"],
            split=r["split"],
            target=r["target"],
            reason=r["reason"],
            raw=json.loads(r["raw"]) if r["raw"] else {},
            status=r["probe_status"] or (NOT_PROBED if r["split"] in NOT_PROBED_SPLITS else PROBED),
            probe_reason=r["probe_reason"] or "",
            multi_answer=r["example_id"] in multi,
        )
        for r in _store.plan_example_rows(project, int(p["id"]), p["dataset_id"])
    ]
    run: Optional[ProbeRun]
    try:
        run = project.probe_run(p["probe_run_id"])
    except ProjectError:
        run = None
    return Plan(
        id=int(p["id"]),
        probe_run_id=int(p["probe_run_id"]),
        settings=PlanSettings.from_dict(json.loads(p["settings"])),
        examples=examples,
        dataset_id=p["dataset_id"],
        name=p["name"] or "",
        model_name=run.model_name if run is not None else "",
        probe_settings=probe_settings_of(run) if run is not None else None,
        created_at=p["created_at"],
        test_skipped=str(_json(p.get("counts")).get("test_skipped") or ""),
    )


def _json(text: Any) -> dict:
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def plan_split_ids(project: Any, plan_id: Optional[int] = None) -> dict[str, list[str]]:
    """The example ids of a saved plan's ``train``, ``dev`` and ``test`` splits, each in file order
    (the latest plan when ``plan_id`` is None). ``train`` is what KnowMix's own trainer trains on
    (``Plan.training_examples``: the training examples and the kept not-probed rows it can use)."""
    plan = load_plan(project, plan_id)
    return {
        "train": [e.example_id for e in plan.training_examples()],
        "dev": [e.example_id for e in plan.dev()],
        "test": [e.example_id for e in plan.test()],
    }


def _multi_answer_ids(project: Any, row: dict) -> set[str]:
    """The plan's questions with several different true answers (the plan rows keep no answer keys,
    so this reads them from the dataset, by the one rule in ``core.datasets.multi``)."""
    from ..summary import multi_answer_ids

    if row.get("dataset_id") is None or row.get("probe_run_id") is None:
        return set()
    return set(multi_answer_ids(project, int(row["probe_run_id"]), int(row["dataset_id"])))


def list_plans(project: Any) -> list[dict]:
    """Every plan's stored row, oldest first."""
    return _store.plan_rows(project)


def count_plans(project: Any) -> int:
    return _store.count_plans(project)


def latest_plan_id(project: Any, probe_run_id: int) -> Optional[int]:
    """The newest plan made from a probe run, or None."""
    return _store.latest_plan_id(project, probe_run_id)


# --------------------------------------------------------------------------- which model


def probe_model_spec(probe_run: ProbeRun) -> Optional[str]:
    """The model a probe run used, as ``resolve_model`` takes it: "default" for the built-in model,
    else its file or folder (its spec when no path was recorded); None when the run says nothing."""
    spec = probe_run.model_spec.strip()
    if spec.lower() == "default":
        return "default"
    return probe_run.model_path or spec or None


def plan_model(project: Any, plan_id: Optional[int]) -> Optional[str]:
    """The model the plan's probe used (see ``probe_model_spec``); None when there is no such plan,
    or its probe run is gone, so the caller asks for a model instead."""
    if plan_id is None:
        return None
    row = _store.plan_row(project, plan_id)
    if row is None or row.get("probe_run_id") is None:
        return None
    try:
        return probe_model_spec(project.probe_run(row["probe_run_id"]))
    except ProjectError:
        return None
