"""Does a text name an answer? The exemplar check: an exemplar whose answer or question names a
question's own answer would give that answer away in the prompt ("Who is B married to? A: A"
shown before "Who is A married to?")."""

from __future__ import annotations

from typing import Iterable, Sequence

from .text import strip_articles, words


def _contains(ws: Sequence[str], target: Sequence[str]) -> bool:
    n = len(target)
    return any(list(ws[i : i + n]) == list(target) for i in range(len(ws) - n + 1))


class Mentions:
    """True when a text holds one of ``answers`` as whole words, folded as the scorer folds them."""

    def __init__(self, answers: Iterable[str]) -> None:
        self.targets = [t for t in {tuple(strip_articles(words(a))) for a in answers} if t]

    def __call__(self, text: str) -> bool:
        ws = words(text)
        return any(_contains(ws, t) for t in self.targets)
