"""The held-out splits: the test split (never trained on, never used for stopping) and the dev split
(which picks the stopping point).

Both are drawn from *all* probed examples before the mix is applied: the paper's dev and test sets
had the natural distribution of categories, so exact match on them measures what the paper
measured (and what early stopping selects on). The test split is drawn first, with its own salt,
and the dev split from what is left. Each is stratified by (category, group): its size
``floor(fraction * N)`` (N: every probed example the plan places, test included), at most its
maximum, is shared out over the strata in proportion to their sizes (largest remainder, ties broken
by a seeded hash), and each stratum's examples are a seeded random sample (``hold_out``).

Dev: every category with at least 2 probed examples gets at least one dev example, taken from its
largest stratum; room for it is made by taking one from the stratum with the most dev examples
of a category that has more than one, so the size limits hold, except on tiny data where the
fraction cannot hold one example of each category (then the dev split is one example per
category). A category with a single example cannot be in both splits; it stays wherever the
apportioning puts it and the plan warns that dev accuracy says nothing about it. The dev split
is empty, and the plan refused, only when no category has 2 examples and the fraction of N
rounds down to 0. A dev example never trains. In the idk mix dev examples keep their real
answers: dev exact match is measured against the gold answers, as in the paper.

Test: the same apportioning, a category with at least 3 examples gets one test example. On tiny
data the test split is empty rather than starve the dev split (``test_skip_reason``): with fewer
than ``MIN_PROBED_FOR_TEST`` probed questions, or when it would leave a category that can have a
dev example (2 or more) with fewer than 2 outside the test split. The plan says why.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional, Sequence

from ..categories import CATEGORIES
from ..errors import SettingsError
from .sampling import apportion, example_id, sample, tiebreak

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .settings import PlanSettings
    from .types import PlanExample

Stratum = tuple[str, str]  # (category, group)

# Fewer probed questions than this: no test split (every question is needed for training and dev).
MIN_PROBED_FOR_TEST = 20
DEV_REASON = "held out for dev ({cat}, group {group}): dev exact match decides when training stops"
TEST_REASON = (
    "held out for test ({cat}, group {group}): never trained on, never used for stopping; "
    "`knowmix check` measures what training did on it"
)


def _strata(items: Sequence["PlanExample"]) -> dict[Stratum, list["PlanExample"]]:
    strata: dict[Stratum, list["PlanExample"]] = {}
    for e in items:
        if not e.split:  # not yet placed (the test split is drawn before dev)
            strata.setdefault((e.category, e.group), []).append(e)
    return strata


def hold_out(
    items: Sequence["PlanExample"],
    split: str,
    quotas: dict[Stratum, int],
    seed: int,
    reason: str,
) -> int:
    """Mark ``quotas[stratum]`` seeded examples of each stratum of the unplaced ``items`` as ``split``
    (with ``reason`` formatted with ``cat`` and ``group``), in place; returns how many."""
    n = 0
    for (cat, group), members in _strata(items).items():
        for e in sample(members, quotas.get((cat, group), 0), seed, f"{split}|{cat}|{group}", example_id):
            e.split = split
            e.reason = reason.format(cat=cat, group=group)
            n += 1
    return n


def split_quotas(
    strata: dict[Stratum, list], fraction: float, maximum: int, seed: int, n_base: int, one_from: int
) -> dict[Stratum, int]:
    """How many examples each stratum gives to a split of ``floor(fraction * n_base)``, at most
    ``maximum``; every category with at least ``one_from`` examples in ``strata`` gets one (see the
    module's docstring)."""
    # Rounded down, so the split never exceeds the fraction (except to give every category one example).
    target = min(int(math.floor(fraction * n_base + 1e-9)), maximum)
    quotas = apportion({s: len(v) for s, v in strata.items()}, target, seed)
    by_cat: dict[str, list[Stratum]] = {}
    for s in strata:
        by_cat.setdefault(s[0], []).append(s)
    for cat in CATEGORIES:
        if cat in by_cat and sum(len(strata[s]) for s in by_cat[cat]) >= one_from and not _cat_n(quotas, by_cat[cat]):
            _give_one(cat, strata, quotas, by_cat, target, seed)
    return quotas


def hold_out_test(items: Sequence["PlanExample"], settings: "PlanSettings") -> str:
    """Mark the test examples in place (before the dev split); returns why the test split is empty
    ("" when it is not, or when the user turned it off)."""
    if not settings.test_fraction or not settings.test_max:
        return ""
    why = test_skip_reason(items, settings)
    if why:
        return why
    strata = _strata(items)
    quotas = split_quotas(strata, settings.test_fraction, settings.test_max, settings.seed, len(items), one_from=3)
    hold_out(items, "test", quotas, settings.seed, TEST_REASON)
    return ""


def test_skip_reason(items: Sequence["PlanExample"], settings: "PlanSettings") -> str:
    """Why a test split would starve the dev split on this data ("" when it would not)."""
    n = len(items)
    if n < MIN_PROBED_FOR_TEST:
        return (
            f"No test split: only {n} probed question{'s' if n != 1 else ''} (fewer than {MIN_PROBED_FOR_TEST}), so "
            "every one is needed for training and the dev split. Probe more questions to hold some out for test."
        )
    strata = _strata(items)
    quotas = split_quotas(strata, settings.test_fraction, settings.test_max, settings.seed, n, one_from=3)
    for cat in CATEGORIES:
        n_cat = sum(len(v) for s, v in strata.items() if s[0] == cat)
        n_test = sum(q for s, q in quotas.items() if s[0] == cat)
        if n_cat >= 2 and n_cat - n_test < 2:
            return (
                f"No test split: {cat} has only {n_cat} probed questions, and holding {n_test} out for test would "
                f"leave the dev split without a {cat} example. Probe more questions to hold some out for test."
            )
    return ""


def hold_out_dev(items: Sequence["PlanExample"], settings: "PlanSettings") -> None:
    """Mark the dev examples (``split = "dev"`` with its reason) among the examples not yet placed, in
    place; ``SettingsError`` when none can be."""
    strata = _strata(items)
    hold_out(items, "dev", dev_quotas(strata, settings, n_base=len(items)), settings.seed, DEV_REASON)
    if not any(e.split == "dev" for e in items):
        n = sum(len(v) for v in strata.values())
        raise SettingsError(
            f"Too few questions: the dev split is empty ({n} probed question{'s' if n != 1 else ''} "
            "and no category with at least 2), so none can be held out to decide when training stops. Probe more questions "
            "(at least 2 in one category) or raise the dev fraction."
        )


def dev_quotas(strata: dict[Stratum, list], settings: "PlanSettings", n_base: Optional[int] = None) -> dict[Stratum, int]:
    """How many dev examples each stratum gives (see the module's docstring); the size is a share of
    ``n_base`` (all probed examples placed, the test split included), else of the strata."""
    n = sum(len(v) for v in strata.values()) if n_base is None else n_base
    return split_quotas(strata, settings.dev_fraction, settings.dev_max, settings.seed, n, one_from=2)


def _cat_n(quotas: dict[Stratum, int], strata: list[Stratum]) -> int:
    return sum(quotas[s] for s in strata)


def _give_one(
    cat: str, strata: dict[Stratum, list], quotas: dict[Stratum, int], by_cat: dict[str, list[Stratum]], target: int, seed: int
) -> None:
    """Give a category without an example in the split one, from its largest stratum (ties: seeded hash)."""
    biggest = min(by_cat[cat], key=lambda s: (-len(strata[s]), tiebreak(seed, s)))
    quotas[biggest] = 1
    if sum(quotas.values()) > target:
        # Make room: one fewer from the stratum with the most examples of a category that keeps another.
        donors = [s for s in quotas if quotas[s] > 0 and _cat_n(quotas, by_cat[s[0]]) > 1]
        if donors:
            donor = min(donors, key=lambda s: (-quotas[s], -len(strata[s]), tiebreak(seed, s)))
            quotas[donor] -= 1
