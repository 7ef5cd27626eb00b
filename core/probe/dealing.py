"""Dealing one group's exemplar sets (``exemplars.draw_exemplar_sets`` decides the pool and the notes).

Each set holds ``shots + 1`` ids: ``shots`` shown exemplars and a spare for a question whose
exemplar must be replaced. The sets of a group are distinct as sets of shown exemplars whenever
the pool allows it, and use the pool's questions as evenly as it allows.

A large pool is dealt like cards (every question once before any twice), redealing a set already
drawn. A small pool cannot be dealt that way: with 6 to 8 questions the redeal swings between the
same few sets and gave 8-9 distinct sets of 10 on a third of the seeds. There the possible sets
are enumerated (``itertools.combinations``), shuffled with the seed, and taken least-used first, so
a group gets ``min(n_sets, C(pool, shots))`` distinct sets, always.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Sequence

ENUMERATE_UP_TO = 500  # at most this many possible sets: enumerate them (C(9, 4) = 126, C(12, 4) = 495)


def group_sets(ids: Sequence[str], shots: int, n_sets: int, rng: random.Random) -> list[list[str]]:
    """``n_sets`` exemplar sets of ``shots + 1`` ids each from ``ids`` (at least ``shots + 1`` of them)."""
    possible = math.comb(len(ids), shots)
    if len(ids) > shots and possible <= ENUMERATE_UP_TO:
        return enumerated_sets(ids, shots, n_sets, rng)
    return dealt_sets(ids, shots, n_sets, rng)


def enumerated_sets(ids: Sequence[str], shots: int, n_sets: int, rng: random.Random) -> list[list[str]]:
    """Distinct sets from the enumerated combinations (repeating only once all are used), each the
    least-used one in the seeded order; the spare is the least-used id outside the set."""
    combos = list(itertools.combinations(ids, shots))
    rng.shuffle(combos)
    order = {i: k for k, i in enumerate(rng.sample(list(ids), len(ids)))}
    uses = {i: 0 for i in ids}
    taken: set[int] = set()
    out: list[list[str]] = []
    for _ in range(n_sets):
        if len(taken) == len(combos):
            taken.clear()  # every possible set is used: the pool cannot give more distinct ones
        best = min((k for k in range(len(combos)) if k not in taken), key=lambda k: sum(uses[i] for i in combos[k]))
        taken.add(best)
        shown = rng.sample(list(combos[best]), shots)
        spare = min((i for i in ids if i not in combos[best]), key=lambda i: (uses[i], order[i]))
        for i in (*shown, spare):
            uses[i] += 1
        out.append([*shown, spare])
    return out


def dealt_sets(ids: Sequence[str], shots: int, n_sets: int, rng: random.Random) -> list[list[str]]:
    """Sets dealt off a shuffled deck, a set already drawn dealt again (up to 20 times)."""
    possible = math.comb(len(ids), shots)
    deck: list[str] = []
    seen: set[frozenset[str]] = set()
    out: list[list[str]] = []
    for _ in range(n_sets):
        chosen = _deal(ids, shots + 1, deck, rng)
        for _attempt in range(20):
            if frozenset(chosen[:shots]) not in seen or len(seen) >= possible:
                break
            deck[:0] = chosen  # back under the deck; deal again
            chosen = _deal(ids, shots + 1, deck, rng)
        seen.add(frozenset(chosen[:shots]))
        out.append(chosen)
    return out


def _deal(ids: Sequence[str], k: int, deck: list[str], rng: random.Random) -> list[str]:
    """``k`` different ids off the deck, refilled with a fresh shuffle of ``ids`` when it runs out,
    so every id is dealt once before any is dealt again (``len(ids) >= k``)."""
    got: list[str] = []
    while len(got) < k:
        for j in range(len(deck) - 1, -1, -1):
            if deck[j] not in got:
                got.append(deck.pop(j))
                break
        else:
            deck[:0] = rng.sample(list(ids), len(ids))
    return got
