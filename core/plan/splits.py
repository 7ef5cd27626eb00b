"""The dev split: which probed questions are held out to pick the stopping point.

Drawn from *all* probed examples before the mix is applied: the paper's dev set had the natural
distribution of categories, so dev exact match then measures what the paper measured (and what
early stopping selects on). It is stratified by (category, group): the dev size
``floor(dev_fraction * N)``, at most ``dev_max``, is shared out over the strata in proportion to
their sizes (largest remainder, ties broken by a seeded hash), and each stratum's dev examples
are a seeded random sample.

Every category with at least 2 probed examples gets at least one dev example, taken from its
largest stratum; room for it is made by taking one from the stratum with the most dev examples
of a category that has more than one, so the size limits hold, except on tiny data where the
fraction cannot hold one example of each category (then the dev split is one example per
category). A category with a single example cannot be in both splits; it stays wherever the
apportioning puts it and the plan warns that dev accuracy says nothing about it. The dev split
is empty, and the plan refused, only when no category has 2 examples and the fraction of N
rounds down to 0. A dev example never trains. In the idk mix dev examples keep their real
answers: dev exact match is measured against the gold answers, as in the paper.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

from ..categories import CATEGORIES
from ..errors import SettingsError
from .sampling import apportion, sample, tiebreak

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .settings import PlanSettings
    from .types import PlanExample

Stratum = tuple[str, str]  # (category, group)


def hold_out_dev(items: Sequence["PlanExample"], settings: "PlanSettings") -> None:
    """Mark the dev examples (``split = "dev"`` with its reason) in place; ``SettingsError`` when none can be."""
    strata: dict[Stratum, list["PlanExample"]] = {}
    for e in items:
        strata.setdefault((e.category, e.group), []).append(e)
    quotas = dev_quotas(strata, settings)
    for (cat, group), members in strata.items():
        for e in sample(members, quotas[(cat, group)], settings.seed, f"dev|{cat}|{group}"):
            e.split = "dev"
            e.reason = f"held out for dev ({cat}, group {group}): dev exact match decides when training stops"
    if not any(e.split == "dev" for e in items):
        raise SettingsError(
            f"Too few questions: the dev split is empty ({len(items)} probed question{'s' if len(items) != 1 else ''} "
            "and no category with at least 2), so none can be held out to decide when training stops. Probe more questions "
            "(at least 2 in one category) or raise the dev fraction."
        )


def dev_quotas(strata: dict[Stratum, list], settings: "PlanSettings") -> dict[Stratum, int]:
    """How many dev examples each stratum gives (see the module's docstring)."""
    n = sum(len(v) for v in strata.values())
    # Rounded down, so the dev split never exceeds the fraction (except to give every category one example).
    target = min(int(math.floor(settings.dev_fraction * n + 1e-9)), settings.dev_max)
    quotas = apportion({s: len(v) for s, v in strata.items()}, target, settings.seed)
    by_cat: dict[str, list[Stratum]] = {}
    for s in strata:
        by_cat.setdefault(s[0], []).append(s)
    for cat in CATEGORIES:
        if cat in by_cat and sum(len(strata[s]) for s in by_cat[cat]) >= 2 and not _cat_dev(quotas, by_cat[cat]):
            _give_one(cat, strata, quotas, by_cat, target, settings.seed)
    return quotas


def _cat_dev(quotas: dict[Stratum, int], strata: list[Stratum]) -> int:
    return sum(quotas[s] for s in strata)


def _give_one(
    cat: str, strata: dict[Stratum, list], quotas: dict[Stratum, int], by_cat: dict[str, list[Stratum]], target: int, seed: int
) -> None:
    """Give a category without a dev example one, from its largest stratum (ties: seeded hash)."""
    biggest = min(by_cat[cat], key=lambda s: (-len(strata[s]), tiebreak(seed, s)))
    quotas[biggest] = 1
    if sum(quotas.values()) > target:
        # Make room: one fewer from the stratum with the most dev examples of a category that keeps another.
        donors = [s for s in quotas if quotas[s] > 0 and _cat_dev(quotas, by_cat[s[0]]) > 1]
        if donors:
            donor = min(donors, key=lambda s: (-quotas[s], -len(strata[s]), tiebreak(seed, s)))
            quotas[donor] -= 1
