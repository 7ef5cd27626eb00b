"""Token choice shared by every backend.

A sampled answer draws one uniform number per generated token from ``random.Random(seed)``
and picks the token by inverse CDF over the top-k candidates at the given temperature. Ties in
the logits are broken by the lower token id. Because the choice depends only on the
candidates' logits and the seed, the same seed gives the same answer however requests are
batched or ordered, which is what lets the probe skip work without changing its results.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

import numpy as np


def top_candidates(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids and logits of the ``k`` best tokens, best first (lower id wins a tie)."""
    logits = np.asarray(logits, dtype=np.float32).reshape(-1)
    vocab = logits.shape[0]
    if k <= 0 or k >= vocab:
        ids = np.arange(vocab)
    else:
        kth = logits[np.argpartition(-logits, k - 1)[k - 1]]
        ids = np.flatnonzero(logits >= kth)  # every token tied with the k-th, so the lower id wins
    order = np.lexsort((ids, -logits[ids]))
    ids = ids[order][: k if 0 < k < vocab else vocab]
    return ids.astype(np.int64), logits[ids]


def choose_token(ids: Sequence[int] | np.ndarray, logits: Sequence[float] | np.ndarray, temperature: float, u: float) -> int:
    """Greedy when ``temperature <= 0``, else inverse-CDF sampling with the uniform ``u``."""
    if temperature <= 0:
        return int(ids[0])
    top = float(logits[0])
    weights = [math.exp((float(x) - top) / temperature) for x in logits]
    target = u * sum(weights)
    acc = 0.0
    for tok, w in zip(ids, weights):
        acc += w
        if target < acc:
            return int(tok)
    return int(ids[len(weights) - 1])


def candidates_needed(temperature: float, top_k: int, vocab: int) -> int:
    """How many candidates a request needs at each step (1 for greedy)."""
    if temperature <= 0:
        return 1
    return top_k if 0 < top_k < vocab else vocab


def sample_rng(seed: int) -> random.Random:
    return random.Random(seed)
