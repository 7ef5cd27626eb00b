"""Questions with several distinct true answers: the one rule that calls a question multi-answer.

Gekhman et al. removed questions with more than one correct answer (4.2% of EntityQuestions).
EntityQuestions lists *distinct true answers* in one row ("Who is Martin Landau's child?":
"Juliet Landau", "Susan Landau Finch"), while other teams' data lists *aliases* of one answer
("United States", "United States of America", "USA"). A probe scores a question right when the
model says any listed answer, so a question with two different true answers is easier than one
with a single answer, and the paper left such questions out. KnowMix keeps probing them by
default, flags them (``Example.multi_answer``, the ``multi_answer`` column of ``knowmix
results``) and lets the plan leave them out (``--multi-answer drop``).
"""

from __future__ import annotations

from typing import Iterable

from ..scoring.text import normalize_answer

__all__ = ["answer_groups", "is_multi_answer", "are_aliases"]

# Words skipped when forming initials ("United States of America" -> "usa").
_INITIALS_SKIP = frozenset("of and for de la le du da del di van von der den y et in on at to".split())


def _initials(words: list[str]) -> set[str]:
    """The acronyms a name may be written as: the first letters of all its words, and of its words
    without connectors ("united states of america" -> "usoa", "usa")."""
    out = {"".join(w[0] for w in words)}
    content = [w for w in words if w not in _INITIALS_SKIP]
    if content:
        out.add("".join(w[0] for w in content))
    return {i for i in out if len(i) >= 2}


def _contains_words(longer: list[str], shorter: list[str]) -> bool:
    """True when ``shorter`` occurs in ``longer`` as a run of whole words."""
    n = len(shorter)
    return any(longer[i : i + n] == shorter for i in range(len(longer) - n + 1))


def are_aliases(a: str, b: str) -> bool:
    """Whether two answers name the same thing by the multi-answer rule (see ``is_multi_answer``)."""
    return _aliases(normalize_answer(a).split(), normalize_answer(b).split())


def _aliases(wa: list[str], wb: list[str]) -> bool:
    if not wa or not wb:
        return True  # an empty answer names nothing new
    if wa == wb:
        return True
    short, long_ = (wa, wb) if len(wa) <= len(wb) else (wb, wa)
    if _contains_words(long_, short):
        return True
    # an acronym or initials of the other: "usa", "u s a" (from "U. S. A.") or "jfk" ~ "john f kennedy"
    for one, other in ((wa, wb), (wb, wa)):
        if len(other) >= 2 and ("".join(one) in _initials(other)):
            return True
    return False


def answer_groups(answers: Iterable[str]) -> list[list[str]]:
    """The answers grouped into aliases of one answer each, in the order first listed.

    Two answers are in one group when they are aliases (``are_aliases``), or both aliases of a
    third ("USA", "United States", "United States of America" form one group). Answers that
    normalise to nothing are left out.
    """
    groups: list[list[tuple[str, list[str]]]] = []
    for answer in answers:
        words = normalize_answer(answer).split()
        if not words:
            continue
        hits = [g for g in groups if any(_aliases(words, w) for _, w in g)]
        if not hits:
            groups.append([(answer, words)])
            continue
        merged = hits[0]
        for g in hits[1:]:
            merged.extend(g)
            groups.remove(g)
        merged.append((answer, words))
    return [[a for a, _ in g] for g in groups]


def is_multi_answer(answers: Iterable[str]) -> bool:
    """True when the answers hold two or more *different* true answers, not aliases of one answer.

    The rule: normalise each answer as the probe's matching does (``core.scoring.normalize_answer``:
    case, NFKC, punctuation, articles, spaces). Two answers are aliases of one answer when, after
    that,

    - they are equal, or
    - one contains the other as whole words ("United States" in "United States of America",
      "Landau" in "Juliet Landau"), or
    - one is the initials or acronym of the other ("USA", "U.S.A." and "US" for "United States
      (of America)", "JFK" for "John F. Kennedy"; connectors such as "of" may be skipped).

    Aliases of aliases are one answer too. A question is multi-answer when its answers form two or
    more such groups: "Juliet Landau" and "Susan Landau Finch" are two people, so "Who is Martin
    Landau's child?" is multi-answer; "United States", "United States of America", "USA" is not.

    The rule is a string heuristic and errs on the side of calling answers aliases when one name
    is part of another ("Paris" and "Paris, Texas" count as one answer).
    """
    answers = list(answers)
    if len(answers) < 2:
        return False
    return len(answer_groups(answers)) >= 2
