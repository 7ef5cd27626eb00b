"""Seeded, order-free sampling shared by the dev split and the mixes.

A plan must not depend on the order of the user's file: the same data in another order, with the
same seed, gives the same plan. So shares are apportioned by size with ties broken by a seeded
hash (never by position), and a sample takes the items whose seeded hash of the sample's key and
the item's own identity (its example id) ranks lowest: the same items whatever order they come in.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Callable, Hashable, Mapping, Sequence, TypeVar

T = TypeVar("T")


def tiebreak(seed: int, key: Hashable) -> int:
    """A seeded pseudo-random rank for ``key``: breaks ties the same way for the same seed, whatever the order."""
    return int.from_bytes(hashlib.sha256(f"{seed}|{key!r}".encode()).digest()[:8], "little")


def apportion(sizes: Mapping[Any, int], k: int, seed: int) -> dict[Any, int]:
    """Share ``k`` items over buckets in proportion to their sizes (largest remainder).

    Ties in the remainder go to the larger bucket, then to a seeded hash, never to file order.
    Every quota is at most its bucket's size.
    """
    total = sum(sizes.values())
    if k <= 0 or total <= 0:
        return {b: 0 for b in sizes}
    k = min(k, total)
    quotas: dict[Any, int] = {}
    rema: list[tuple[float, int, int, Any]] = []
    for b, n in sizes.items():
        exact = k * n / total
        q = int(math.floor(exact))
        quotas[b] = q
        rema.append((exact - q, n, tiebreak(seed, b), b))
    left = k - sum(quotas.values())
    rema.sort(key=lambda r: (-r[0], -r[1], r[2]))
    for _frac, n, _h, b in rema:
        if left <= 0:
            break
        if quotas[b] < n:
            quotas[b] += 1
            left -= 1
    return quotas


def round_half_up(x: float) -> int:
    """Round half up (Python's round() rounds half to even, which surprises people reading counts)."""
    return int(math.floor(x + 0.5))


def sample(items: Sequence[T], k: int, seed: int, key: str, ident: Callable[[T], Hashable]) -> list[T]:
    """A seeded random choice of ``k`` of ``items``, the same for a seed and key whatever the items'
    order: each item is ranked by a seeded hash of ``key`` and ``ident(item)`` (unique per item, e.g.
    the example id), and the ``k`` lowest are taken, in the order given."""
    if k >= len(items):
        return list(items)
    if k <= 0:
        return []
    chosen = set(sorted(range(len(items)), key=lambda i: tiebreak(seed, f"{key}|{ident(items[i])!r}"))[:k])
    return [x for i, x in enumerate(items) if i in chosen]


def example_id(item: Any) -> str:
    """A plan example's identity for ``sample`` (its example id, which the file's order does not change)."""
    return str(item.example_id)
