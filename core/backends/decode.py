"""Answer decoding over a cached token trie, shared by backends that evaluate one sequence at a time.

Answers to the same prompt share their first tokens far more often than not (the greedy answer
and most T=0.5 samples start alike). ``PromptTrie`` remembers the candidate tokens after every
prefix it has seen, so each distinct prefix is evaluated by the model once, however many
answers pass through it. Because token choice depends only on those candidates and the
answer's own seed (``sampling.py``), the cache never changes an answer, only its cost.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Optional

import numpy as np

from .base import GenRequest
from .sampling import choose_token, sample_rng

PRUNED = "…"  # marks an answer whose generation stopped once it could no longer be correct
Candidates = tuple[np.ndarray, np.ndarray]  # token ids and their logits, best first


class PromptTrie:
    """Candidates after each generated prefix of one prompt; ``keep`` is how many are stored."""

    __slots__ = ("nodes", "keep")

    def __init__(self, keep: int) -> None:
        self.nodes: dict[tuple[int, ...], Candidates] = {}
        self.keep = keep


class TrieCache:
    """An LRU of prompt tries, so the sampling pass reuses what the greedy pass computed."""

    def __init__(self, max_prompts: int = 1024) -> None:
        self.max_prompts = max_prompts
        self._tries: OrderedDict[tuple[int, ...], PromptTrie] = OrderedDict()

    def get(self, prompt: tuple[int, ...], keep: int) -> PromptTrie:
        trie = self._tries.get(prompt)
        if trie is None or trie.keep < keep:
            trie = PromptTrie(keep)
            self._tries[prompt] = trie
            while len(self._tries) > self.max_prompts:
                self._tries.popitem(last=False)
        else:
            self._tries.move_to_end(prompt)
        return trie

    def clear(self) -> None:
        self._tries.clear()


def decode_answers(
    req: GenRequest,
    trie: PromptTrie,
    evaluate: Callable[[tuple[int, ...]], Candidates],
    detokenize: Callable[[list[int]], str],
    is_end: Callable[[int], bool],
    max_new: Optional[int] = None,
) -> list[str]:
    """Decode ``req.n`` answers; ``evaluate(prefix)`` gives the candidates after a generated prefix."""
    limit = min(req.max_tokens, max_new) if max_new is not None else req.max_tokens
    answers: list[str] = []
    for i in range(req.n):
        rng = None if req.greedy else sample_rng(req.seeds[i])
        gen: tuple[int, ...] = ()
        text = ""
        while len(gen) < limit:
            cand = trie.nodes.get(gen)
            if cand is None:
                cand = evaluate(gen)
                trie.nodes[gen] = cand
            ids, logits = cand
            if rng is not None and req.top_k and req.top_k < len(ids):
                ids, logits = ids[: req.top_k], logits[: req.top_k]
            tok = choose_token(ids, logits, req.temperature, rng.random() if rng is not None else 0.0)
            if is_end(tok):
                break
            gen = gen + (tok,)
            text = detokenize(list(gen))
            cut = min((text.find(s) for s in req.stop if s and s in text), default=-1)
            if cut >= 0:
                text = text[:cut]
                break
            if req.prune is not None and req.prune(text):
                text = text.strip() + PRUNED
                break
        answers.append(text.strip())
    return answers
