"""Building a plan from a finished probe run: the test split first, the dev split, then the mix over the rest."""

from __future__ import annotations

from typing import Any, Iterable, Optional

from ..categories import CATEGORIES
from ..datasets.types import NOT_PROBED, PROBED, REASONS
from ..errors import ProjectError, SettingsError
from ..formats import percent
from ..probe import ProbeSettings
from ..store import results as _results
from ..store.records import PROBE_CANCELLED, PROBE_FAILED, PROBE_FINISHED, PROBE_RUNNING, ProbeRun
from .mixes import IDK_ANSWER
from .ood import check_ood
from .sampling import apportion, example_id, round_half_up, sample
from .settings import PlanSettings
from .splits import hold_out_dev, hold_out_test
from .types import MULTI_ANSWER_REASON, Plan, PlanExample


def build_plan(project: Any, probe_run_id: Optional[int] = None, settings: PlanSettings = PlanSettings()) -> Plan:
    """Build (not save) a plan from a finished probe run; the latest run when ``probe_run_id`` is None.

    Raises ``ProjectError`` when there is no probe, the run is not finished (with how far it got)
    or it has no questions, and ``SettingsError`` for bad settings, a mix that leaves no training
    example, a dev split that would be empty (no category with 2 examples and a fraction
    that rounds to none), or an out-of-distribution dataset (``settings.ood_dataset_id``) whose
    groups overlap the plan's. The test split is drawn first and is empty on tiny data
    (``Plan.test_skipped`` says why).
    """
    settings.validate()
    run, results = _finished_run(project, probe_run_id)
    rows = _plan_rows(project, run, results, settings)
    items = [e for e in rows if e.probed]
    if settings.multi_answer == "drop":  # 0. before the dev split: the paper removed them from its data
        for e in items:
            if e.multi_answer:
                e.split, e.reason = "dropped", MULTI_ANSWER_REASON
        items = [e for e in items if not e.multi_answer]
    # 1. the test split, from all probed examples (the natural distribution); empty on tiny data, with why
    test_skipped = hold_out_test(items, settings)
    hold_out_dev(items, settings)  # 2. the dev split, from what is left (a share of all probed examples)
    apply_mix(items, settings)  # 3. the mix, over what is left
    if not any(e.trainable for e in rows):  # kept not-probed rows train too
        raise SettingsError(
            "Nothing to train on: the plan has no training examples. The "
            f"{settings.mix} mix keeps none of the {sum(1 for e in items if e.split not in ('dev', 'test'))} questions outside the "
            "dev and test splits (probed: "
            + ", ".join(f"{c} {sum(1 for e in items if e.category == c)}" for c in CATEGORIES)
            + "). "
            "Choose the idk or natural mix, raise the WeaklyKnown cap or the custom shares, or probe more questions."
        )
    plan = Plan(
        id=None,
        probe_run_id=run.id,
        settings=settings,
        examples=rows,
        dataset_id=int(run.dataset_id or 0),
        model_name=run.model_name,
        probe_settings=probe_settings_of(run),
        test_skipped=test_skipped,
    )
    check_ood(project, plan)  # an out-of-distribution dataset already in the project: its groups must be others
    return plan


def probe_settings_of(run: ProbeRun) -> Optional[ProbeSettings]:
    """The probe run's settings, or None when they no longer parse (a plan still reads without them)."""
    try:
        return ProbeSettings.from_json(run.settings_json or None)
    except SettingsError:
        return None


def _finished_run(project: Any, probe_run_id: Optional[int]) -> tuple[ProbeRun, dict[str, tuple[str, str]]]:
    """The probe run and ``{example_id: (category, group)}``; ``ProjectError`` unless it finished with questions."""
    run = project.probe_run(probe_run_id)
    results = _results.categories(project, run.id)
    n_total = run.n_total
    if n_total == 0 and not results:
        raise ProjectError(
            f"Probe run {run.id} has no questions, so there is nothing to plan. Probe a dataset with questions first."
        )
    if run.status != PROBE_FINISHED or len(results) < n_total:
        state = {
            PROBE_CANCELLED: "was cancelled",
            PROBE_FAILED: "failed",
            PROBE_RUNNING: "is still running or was interrupted",
        }.get(run.status, f"is {run.status}")
        raise ProjectError(
            f"Probe run {run.id} is not finished: {len(results)} of {n_total} questions probed (the run {state}). "
            "Resume the probe (run the same probe again; finished questions are kept) and plan when it is done."
        )
    return run, results


def _plan_rows(project: Any, run: ProbeRun, results: dict[str, tuple[str, str]], settings: PlanSettings) -> list[PlanExample]:
    """Every row of the dataset in file order: the probed ones with a result, not yet placed in a
    split, and the not-probed ones already ``kept`` or ``left-out`` as the settings say."""
    items: list[PlanExample] = []
    n_probed = 0
    for ex in project.examples(run.dataset_id, status=None):
        if ex.status != PROBED:
            items.append(_not_probed(ex, settings))
            continue
        res = results.get(ex.id)
        if res is None:  # not probed (the dataset row changed?): it cannot be placed in a category
            continue
        items.append(
            PlanExample(
                example_id=ex.id,
                question=ex.question,
                answers=tuple(ex.answers),
                group=ex.group,
                category=res[0],
                split="",
                target=ex.answers[0] if ex.answers else "",
                reason="",
                raw=ex.raw,
                multi_answer=ex.multi_answer,
            )
        )
        n_probed += 1
    if not n_probed:
        raise ProjectError(
            f"Probe run {run.id} has results, but none matches a question of its dataset; the project may be "
            "damaged. Probe the dataset again."
        )
    return items


def _not_probed(ex: Any, settings: PlanSettings) -> PlanExample:
    """A row the probe could not check: kept as it is (its own answer) or left out, by the settings."""
    why = REASONS.get(ex.reason, ex.reason or "not probed")
    if settings.not_probed == "keep":
        split, reason = "kept", f"kept as it is, not probed: {why}"
    else:
        split, reason = "left-out", f"left out (your choice for rows not probed): {why}"
    return PlanExample(
        example_id=ex.id,
        question=ex.question,
        answers=tuple(ex.answers),
        group=ex.group,
        category="",
        split=split,
        target=ex.answers[0] if ex.answers else "",
        reason=reason,
        raw=ex.raw,
        status=NOT_PROBED,
        probe_reason=ex.reason,
    )


# -- the mix (its names, shares and words: ``mixes``) -------------------------------------------------
def mix_rule(settings: PlanSettings, cat: str, n_cat: int) -> tuple[int, str, str]:
    """How many of a category's (non-dev) examples the mix keeps, and the words for kept and dropped."""
    mix = settings.mix
    if mix == "natural":
        return n_cat, f"kept: natural mix ({cat})", f"dropped: {cat}"
    if mix == "custom":
        share = settings.share_of(cat)
        return (
            round_half_up(share * n_cat),
            f"kept: within your share of {percent(share, 0)} for {cat}",
            f"dropped: {cat} — outside your share of {percent(share, 0)}",
        )
    if cat == "HighlyKnown":
        return n_cat, "kept: the model knows it (HighlyKnown)", "dropped: HighlyKnown"
    if cat == "MaybeKnown":
        return n_cat, "kept: the model sometimes knows it (MaybeKnown); the paper found these needed", "dropped: MaybeKnown"
    if cat == "WeaklyKnown":
        cap = settings.weakly_known_cap
        return (
            min(cap, n_cat),
            f"kept: WeaklyKnown, within your cap of {cap}",
            f"dropped: WeaklyKnown — over your cap of {cap}; the model knows it only when sampling",
        )
    if mix == "idk":
        return n_cat, f'kept, answer relabelled "{IDK_ANSWER}": Unknown — new to the model', "dropped: Unknown"
    return 0, "kept: Unknown", "dropped: Unknown — new to the model; fitting it makes the model hallucinate more"


def apply_mix(items: Iterable[PlanExample], settings: PlanSettings) -> None:
    """Mark every example outside the test and dev splits ``train`` or ``dropped`` (with its reason), in place."""
    pool: dict[str, dict[str, list[PlanExample]]] = {c: {} for c in CATEGORIES}
    for e in items:
        if e.split not in ("dev", "test"):
            pool.setdefault(e.category, {}).setdefault(e.group, []).append(e)
    for cat, by_group in pool.items():
        n_cat = sum(len(v) for v in by_group.values())
        if n_cat:
            _apply_rule(settings, cat, by_group, mix_rule(settings, cat, n_cat))


def _apply_rule(settings: PlanSettings, cat: str, by_group: dict[str, list[PlanExample]], rule: tuple[int, str, str]) -> None:
    keep, kept_reason, drop_reason = rule
    group_quota = apportion({g: len(v) for g, v in by_group.items()}, keep, settings.seed)
    for group, members in by_group.items():
        chosen = {id(e) for e in sample(members, group_quota[group], settings.seed, f"keep|{cat}|{group}", example_id)}
        for e in members:
            if id(e) in chosen:
                e.split, e.reason = "train", kept_reason
                if settings.mix == "idk" and cat == "Unknown":
                    e.target = IDK_ANSWER
            else:
                e.split, e.reason = "dropped", drop_reason
