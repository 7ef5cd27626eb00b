"""Stopping an answer early, by the same rules that grade it.

The probe samples up to 160 answers a question; most are wrong after a word or two. A pruner is
asked about the partial answer as tokens arrive and says when the answer's verdict can no longer
change, so generation stops. Both pruners only stop when the rules say so for *every* possible
continuation: a pruned answer is graded exactly as the whole answer would have been.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable

from .rules import Scorer
from .text import ARTICLES, fold_word, tokens

UNFINISHED = "\ufffd"  # what a decoder shows for the first bytes of a character still being generated
_ARTICLE_PREFIXES = frozenset({"a", "an", "t", "th", "the"})
# a sentence that ended: ". " "! " "? " (the next one may start; the scorer reads the first line)
_SENTENCE_END = re.compile(r"[.!?](?=\s+\S)")


def _bare(word: str) -> str:
    """``word`` without combining marks, so a word still waiting for its accent compares as a prefix."""
    return "".join(ch for ch in unicodedata.normalize("NFD", word) if not unicodedata.combining(ch))


class PrefixPruner:
    """Exact mode: stops once the words so far differ from every alias's words.

    Conservative: a partial last word that could still grow into an article or into the alias's
    next word keeps the answer alive; aliases that are numbers, dates or conjunctions (which match
    in other orders and formats) never prune; nor does an answer whose words so far end in an
    initial or a number (initials merge, number words combine)."""

    def __init__(self, aliases: Iterable[str]) -> None:
        keys = Scorer("exact", aliases).keys  # the gold answers and their other names ("USA")
        self.off = any(k.number is not None or k.date is not None or k.parts for k in keys)
        self.targets = [[t.norm for t in k.toks] for k in keys]

    def __call__(self, partial: str) -> bool:
        """True when no continuation of ``partial`` can match an alias (so generation may stop)."""
        if self.off or not self.targets or "\n" in partial:
            return False  # a finished answer is scored by the caller
        text = partial.rstrip(UNFINISHED)
        complete = bool(text) and (text[-1].isspace() or text[-1] in ",;:!?")
        toks = tokens(text)
        tail = None if complete or not toks else toks.pop()
        if toks and (toks[-1].number is not None or len(toks[-1].norm) <= 1 or toks[-1].raw.isupper()):
            return False
        if tail is not None and tail.number is not None:
            return False
        done = [t.norm for t in toks]
        while done and done[0] in ARTICLES:
            done = done[1:]
        for target in self.targets:
            if len(done) > len(target) or target[: len(done)] != done:
                continue
            if tail is None:
                return False
            low = fold_word(tail.raw)
            if not done and low in _ARTICLE_PREFIXES:
                return False
            if len(done) < len(target) and _bare(target[len(done)]).startswith(_bare(low)):
                return False
        return True


class KeyPruner:
    """Key mode: stops once a finished sentence of the answer already states a key (and says
    nothing that would take it back). Later sentences rarely retract, and the first is graded
    exactly as it stands, so the stored answer's verdict is the one the rules give it."""

    def __init__(self, keys: Iterable[str], question: str = "") -> None:
        self.scorer = Scorer("key", keys, question)

    def __call__(self, partial: str) -> bool:
        if "\n" in partial:
            return False  # the answer is complete; the caller scores it
        ends = [m.end() for m in _SENTENCE_END.finditer(partial)]
        if not ends:
            return False
        return self.scorer(partial[: ends[-1]]).right
