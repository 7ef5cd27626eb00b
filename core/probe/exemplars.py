"""Exemplars: each group's pool, its sets (dealt by ``dealing``), and which exemplars a question may
not see (``LeakCheck``), with a warning when a question is left with fewer than ``shots``."""

from __future__ import annotations

import functools
import random
from typing import Iterable, Optional, Sequence

from ..datasets import Example
from ..errors import SettingsError
from ..scoring.text import ARTICLES, strip_articles, words
from ..scoring.words import STOP
from .dealing import group_sets as deal_group_sets
from .settings import ProbeSettings

# When the dataset is its own exemplar pool, a group of at least HOLDOUT_MIN_ROWS rows sets aside
# HOLDOUT_SIZE of them (seeded) as its pool: enough for 10 distinct 4-shot sets with room to replace
# exemplars that give an answer away, and at most a tenth of the group.
HOLDOUT_SIZE = 20
HOLDOUT_MIN_ROWS = 200
# An answer on at least this share of a group's pool rows is common there: an exemplar may show it
# (the paper's random draw would); a rarer one would give the answer away and is replaced.
COMMON_SHARE = 0.10
SWAP_REASONS = {
    "self": "the question itself",
    "same-answer": "its answer names this question's answer (rare in the group)",
    "names-answer": "its question names this question's answer",
}


def check_pool_size(n: int, settings: ProbeSettings) -> None:
    """Refuse a pool too small for the prompts, before any work is written."""
    need = settings.shots + 1
    if settings.shots and n < need:
        noun = "question" if n == 1 else "questions"
        raise SettingsError(
            f"The exemplar pool has only {n} usable {noun}; {settings.shots}-shot prompts need at least {need}. "
            "Add questions to the pool file (--pool) or use a larger dataset."
        )


def exemplar_pools(
    pool: Sequence[Example], groups: Iterable[str], settings: ProbeSettings, hold_out: bool = False
) -> tuple[dict[str, list[Example]], dict[str, str]]:
    """The questions each group's exemplars come from, and a note per group that needs one.

    A group's own pool questions, or, with ``hold_out`` (the dataset is its own pool) and at
    least ``HOLDOUT_MIN_ROWS`` of them, ``HOLDOUT_SIZE`` drawn with the seed. A group with too
    few pool questions borrows from the whole pool. Deterministic, so a resumed run finds the
    same pools without storing them.
    """
    need = settings.shots + 1
    by_group: dict[str, list[Example]] = {}
    for ex in pool:
        by_group.setdefault(ex.group, []).append(ex)
    check_pool_size(len(pool), settings)
    pools: dict[str, list[Example]] = {}
    notes: dict[str, str] = {}
    for group in sorted(set(groups)):
        candidates = by_group.get(group, [])
        if len(candidates) < need:
            notes[group] = (
                f"the pool has {len(candidates)} questions of group '{group}' (fewer than {need}); "
                "its exemplars are drawn from all groups"
            )
            candidates = list(pool)
        elif hold_out and settings.shots and len(candidates) >= HOLDOUT_MIN_ROWS:
            chosen = set(random.Random(f"{settings.seed}|pool|{group}").sample(range(len(candidates)), HOLDOUT_SIZE))
            notes[group] = (
                f"exemplars of group '{group}' come from {HOLDOUT_SIZE} of its {len(candidates)} rows, set aside "
                "with the seed (the paper drew exemplars from held-out data); those rows are probed too, each "
                "with the other pool rows as exemplars, because the plan needs a category for every row"
            )
            candidates = [ex for i, ex in enumerate(candidates) if i in chosen]
        pools[group] = candidates
    return pools, notes


def draw_exemplar_sets(
    pool: Sequence[Example], groups: Iterable[str], settings: ProbeSettings, hold_out: bool = False
) -> tuple[dict[str, list[list[str]]], dict[str, str]]:
    """Draw each group's exemplar sets once, with a seed, from its pool (``exemplar_pools``).

    Each set holds ``shots + 1`` ids: the last is a spare for a question whose exemplar must be
    replaced (``_prepare``). The sets of a group are distinct (as sets of shown exemplars) and
    use the pool's questions as evenly as it allows (``dealing``). A group whose pool
    cannot give ``n_sets`` distinct sets gets a note naming how many it gives.
    """
    pools, notes = exemplar_pools(pool, groups, settings, hold_out)
    sets: dict[str, list[list[str]]] = {}
    for group, candidates in pools.items():
        if not settings.shots:
            sets[group] = [[] for _ in range(settings.n_sets)]
            continue
        ids = [ex.id for ex in candidates]
        rng = random.Random(f"{settings.seed}|exemplars|{group}")
        group_sets = deal_group_sets(ids, settings.shots, settings.n_sets, rng)
        seen = {frozenset(x[: settings.shots]) for x in group_sets}
        sets[group] = group_sets
        if len(seen) < settings.n_sets:
            warn = (
                f"group '{group}' can give only {len(seen)} distinct exemplar sets from its {len(ids)} pool questions "
                f"(asked for {settings.n_sets}); some prompts repeat, so P(T=0) and P(T>0) rest on fewer distinct "
                "prompts. A larger pool (--pool) fixes it"
            )
            notes[group] = f"{notes[group]}; {warn}" if group in notes else warn
    return sets, notes


class LeakCheck:
    """Which exemplars may not be shown with one question (the paper drew them at random; these are
    KnowMix's rules, docs/ARCHITECTURE.md "Departures from the paper"):

    - ``self``: the question itself;
    - ``names-answer``: an exemplar whose question names this question's answer ("Who is B married
      to? A: A" before "Who is A married to?");
    - ``same-answer``: an exemplar whose answer names this question's answer, only when that answer
      is *rare* in the group (``common`` holds the group's answers on at least ``COMMON_SHARE`` of
      its rows). A dominant answer (P495: 71% "United States of America") is shown as often as the
      paper's random draw would show it; forbidding it would probe those questions on prompts that
      never hold their answer, unlike the others.

    An answer made only of common words ("The Who" folds to "who") names nothing: every question
    holds those words, so it is compared whole with exemplar answers and never searched for in
    exemplar questions (before, it rejected every exemplar of its group).
    """

    def __init__(self, example: Example, common: frozenset[str] = frozenset()) -> None:
        self.example_id = example.id
        texts = [t for t in dict.fromkeys((*example.answers, *example.answer_keys)) if _folded(t)]
        named = {_folded(t) for t in texts if _has_name_word(t)}
        rare = not any(" ".join(_folded(t)) in common for t in texts)
        self.names = named
        self.answer_in = named if rare else set()
        self.answer_is = {_folded(t) for t in texts if rare and not _has_name_word(t)}

    def reason(self, ex: Example) -> str:
        """Why ``ex`` may not be an exemplar here ("" = it may): a key of ``SWAP_REASONS``."""
        if ex.id == self.example_id:
            return "self"
        if any(_folded(a) in self.answer_is or _holds(_words(a), self.answer_in) for a in ex.answers):
            return "same-answer"
        if _holds(_words(ex.question), self.names):
            return "names-answer"
        return ""


# Folding a text is the slow part of the check and the same exemplar texts come back for every
# question of a group: each text is folded once (``core.scoring``'s rules, as ``Mentions`` folds).
@functools.lru_cache(maxsize=1 << 16)
def _words(text: str) -> tuple[str, ...]:
    return tuple(words(text))


@functools.lru_cache(maxsize=1 << 16)
def _folded(text: str) -> tuple[str, ...]:
    """The answer as exact match compares it (``normalize_answer``'s words)."""
    return tuple(strip_articles(list(_words(text))))


def _holds(ws: tuple[str, ...], targets: set[tuple[str, ...]]) -> bool:
    """True when ``ws`` holds one of ``targets`` as whole words."""
    for t in targets:
        n = len(t)
        if any(ws[i : i + n] == t for i in range(len(ws) - n + 1)):
            return True
    return False


def _has_name_word(text: str) -> bool:
    """True when ``text`` has a word that is not a function word ("The Who" has none)."""
    return any(w not in STOP and w not in ARTICLES for w in _words(text))


def common_answers(pool: Sequence[Example], groups: Iterable[str], settings: ProbeSettings) -> dict[str, frozenset[str]]:
    """Per group, the folded answers on at least ``COMMON_SHARE`` of the group's pool rows (all of
    them, before a hold-out; the whole pool for a group that borrows, as ``exemplar_pools``)."""
    by_group: dict[str, list[Example]] = {}
    for ex in pool:
        by_group.setdefault(ex.group, []).append(ex)
    out: dict[str, frozenset[str]] = {}
    for group in set(groups):
        rows = by_group.get(group, [])
        if len(rows) < settings.shots + 1:
            rows = list(pool)
        counts: dict[str, int] = {}
        for ex in rows:
            for norm in {" ".join(_folded(a)) for a in ex.answers}:
                counts[norm] = counts.get(norm, 0) + 1
        out[group] = frozenset(a for a, n in counts.items() if a and n >= COMMON_SHARE * len(rows))
    return out


def short_prompt_notes(
    examples: Sequence[Example],
    pool: Sequence[Example],
    sets: dict[str, list[list[str]]],
    settings: ProbeSettings,
    hold_out: bool,
) -> dict[str, str]:
    """Per group, a warning when some question gets fewer than ``shots`` exemplars in a set (the
    pool has none left that keeps its answer hidden): such prompts are never shorter silently."""
    if not settings.shots:
        return {}
    groups = {ex.group for ex in examples}
    pools, _ = exemplar_pools(pool, groups, settings, hold_out)
    common = common_answers(pool, groups, settings)
    pool_by_id = {ex.id: ex for ex in pool}
    short: dict[str, list[int]] = {}
    for ex in examples:
        check = LeakCheck(ex, common[ex.group])
        fewest = min(
            len(_choose_exemplars(ex, ids, k, pool_by_id, pools[ex.group], settings.seed, check)[0])
            for k, ids in enumerate(sets[ex.group])
        )
        if fewest < settings.shots:
            short.setdefault(ex.group, []).append(fewest)
    return {
        group: (
            f"{len(f)} question{'s' if len(f) != 1 else ''} of group '{group}' {'get' if len(f) != 1 else 'gets'} fewer than {settings.shots} exemplars "
            f"in some set (as few as {min(f)}): the pool has no other exemplar that keeps the answer hidden. "
            "A larger pool (--pool) fixes it"
        )
        for group, f in sorted(short.items())
    }


def _choose_exemplars(
    example: Example,
    ids: Sequence[str],
    k: int,
    pool_by_id: dict[str, Example],
    candidates: Sequence[Example],
    seed: int,
    check: Optional[LeakCheck] = None,
) -> tuple[list[str], list[dict]]:
    """The ``shots`` exemplars of set ``k`` for ``example``: the set's own, with any that ``check``
    forbids replaced by the spare, or else by one drawn (seeded by example and set) from the
    group's pool. Returns the ids and the swaps made."""
    shots = max(0, len(ids) - 1)
    check = check or LeakCheck(example)
    chosen: list[str] = []
    swaps: list[dict] = []
    for i in ids[:shots]:
        why = check.reason(pool_by_id[i])
        if why:
            swaps.append({"set": k, "dropped": i, "why": why})
        else:
            chosen.append(i)
    spares: list[str] = []
    if len(chosen) < shots and len(ids) > shots and not check.reason(pool_by_id[ids[shots]]):
        spares.append(ids[shots])
    if len(chosen) + len(spares) < shots:
        rng = random.Random(f"{seed}|redraw|{example.id}|{k}")
        taken = set(ids)
        for ex in rng.sample(list(candidates), len(candidates)):
            if len(chosen) + len(spares) >= shots:
                break
            if ex.id not in taken and not check.reason(ex):
                spares.append(ex.id)
                taken.add(ex.id)
    for swap, by in zip(swaps, spares + [None] * len(swaps)):
        swap["by"] = by  # None: the pool had no exemplar left that keeps the answer hidden
    chosen.extend(spares)
    return chosen, swaps
