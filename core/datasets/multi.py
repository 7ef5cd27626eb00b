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

import re
from itertools import product
from typing import Iterable

from ..scoring.text import normalize_answer

__all__ = ["answer_groups", "is_multi_answer", "are_aliases"]

# Words skipped when forming initials ("United States of America" -> "usa").
_INITIALS_SKIP = frozenset("of and for de la le du da del di van von der den y et in on at to".split())
# Titles a name may carry or drop ("Dr. John Smith" ~ "John Smith", "Saint Kenelm" ~ "Kenelm").
_TITLES = frozenset(
    (
        "mr mrs ms miss dr doctor sir dame lord lady saint st king queen prince princess emperor empress pope "
        "president gen general capt captain prof professor rev reverend fr father sister brother rabbi sheikh imam"
    ).split()
)
_PAREN = re.compile(r"\s*\([^()]*\)\s*$")  # "Alien (film)": a qualifier in brackets at the end
_DOTTED_INITIALS = re.compile(r"(?<!\w)(?:[^\W\d_]\.\s*)+")  # "J. R. R. ", "J.R.R. " (normalising makes them "jrr")
_OF_TAIL = re.compile(r"^(?P<head>.+?)\s+of\s+(?P<tail>.+)$", re.IGNORECASE)  # "United States of America"


def _initials(words: list[str]) -> set[str]:
    """The acronyms a name may be written as: the first letters of all its words, and of its words
    without connectors ("united states of america" -> "usoa", "usa")."""
    out = {"".join(w[0] for w in words)}
    content = [w for w in words if w not in _INITIALS_SKIP]
    if content:
        out.add("".join(w[0] for w in content))
    return {i for i in out if len(i) >= 2}


def _unqualified(answer: str) -> list[str]:
    """The answer, and the answer with one qualifier dropped: a bracketed one at the end ("Alien
    (film)"), what follows the first comma ("Springfield, Illinois") or a closing "of ..." phrase
    ("United States of America")."""
    out = [answer]
    if _PAREN.search(answer):
        out.append(_PAREN.sub("", answer))
    if "," in answer:
        out.append(answer.split(",", 1)[0])
    m = _OF_TAIL.match(answer.strip())
    if m and len(m.group("head").split()) >= 2:  # "Bank of America" keeps its "of": "Bank" alone is no name
        out.append(m.group("head"))
    return [a for a in out if a.strip()]


def _shortened(words: list[str]) -> set[tuple[str, ...]]:
    """The word forms of a normalised name with its leading titles and/or its single-letter initials
    dropped ("dr john f kennedy" -> "john f kennedy", "dr john kennedy", "john kennedy")."""
    out = set()
    lead = 0
    while lead < len(words) - 1 and words[lead] in _TITLES:
        lead += 1
    for drop_titles, drop_initials in product((False, True), repeat=2):
        w = words[lead:] if drop_titles else words
        if drop_initials:
            w = [x for x in w if len(x) > 1] or w
        if w:
            out.add(tuple(w))
    return out


def _forms(answer: str) -> set[tuple[str, ...]]:
    """Every form the answer takes with a title, initials or a qualifier dropped (itself included)."""
    out: set[tuple[str, ...]] = set()
    for text in _unqualified(answer):
        for variant in (text, _DOTTED_INITIALS.sub(" ", text)):
            words = normalize_answer(variant).split()
            if words:
                out |= _shortened(words)
    return out


def are_aliases(a: str, b: str) -> bool:
    """Whether two answers name the same thing by the multi-answer rule (see ``is_multi_answer``):
    equal, one the initials of the other, or one the other with a title, initials or a qualifier
    dropped. Symmetric; never through a third answer."""
    wa, wb = normalize_answer(a).split(), normalize_answer(b).split()
    if not wa or not wb:
        return True  # an empty answer names nothing new
    if wa == wb:
        return True
    if tuple(wa) in _forms(b) or tuple(wb) in _forms(a):
        return True
    # an acronym or initials of the other: "usa", "u s a" (from "U. S. A.") or "jfk" ~ "john f kennedy"
    for one, other in ((wa, wb), (wb, wa)):
        if len(other) >= 2 and ("".join(one) in _initials(other)):
            return True
    return False


def _size(answer: str) -> tuple[int, int]:
    words = normalize_answer(answer).split()
    return len(words), len(" ".join(words))


def answer_groups(answers: Iterable[str]) -> list[list[str]]:
    """The answers grouped into aliases of one answer each, groups and members in the order first listed.

    Each group is one full name (the longest of its answers) and the answers that are aliases of
    *it* (``are_aliases``): "United States" and "USA" both shorten "United States of America". An
    answer never joins a group through another short answer, so "Landau" does not join "Juliet
    Landau" and "Susan Landau Finch" into one person, nor one shared word several works. Answers
    that normalise to nothing are left out.
    """
    listed = [a for a in dict.fromkeys(answers) if normalize_answer(a).split()]
    order = {a: i for i, a in enumerate(listed)}
    groups: list[list[str]] = []  # each: [head, members...]
    for answer in sorted(listed, key=lambda a: (-_size(a)[0], -_size(a)[1], order[a])):
        home = next((g for g in groups if are_aliases(g[0], answer)), None)
        if home is None:
            groups.append([answer])
        else:
            home.append(answer)
    ordered = [sorted(g, key=order.__getitem__) for g in groups]
    return sorted(ordered, key=lambda g: order[g[0]])


def is_multi_answer(answers: Iterable[str]) -> bool:
    """True when the answers hold two or more *different* true answers, not aliases of one answer.

    The rule: normalise each answer as the probe's matching does (``core.scoring.normalize_answer``:
    case, NFKC, punctuation, articles, spaces). Two answers are aliases of one answer when, after
    that,

    - they are equal ("The Beatles", "Beatles"), or
    - one is the initials or acronym of the other ("USA", "U.S.A." for "United States of America",
      "JFK" for "John F. Kennedy"; connectors such as "of" may be skipped), or
    - one is the other with a title ("Dr.", "Saint", "King"), single-letter initials ("John F.
      Kennedy" -> "John Kennedy") or a qualifier dropped: one in brackets at the end ("Alien
      (film)"), one after a comma ("Springfield, Illinois") or a closing "of ..." ("United States
      of America" -> "United States").

    Nothing else joins: "Virginia" is not "West Virginia", "Landau" not "Juliet Landau", "The
    Godfather" not "The Godfather Part II". A group is one full name and its shortenings; an answer
    never joins through a third one (``answer_groups``). A question is multi-answer when its answers
    form two or more groups: "Juliet Landau" and "Susan Landau Finch" are two people, so "Who is
    Martin Landau's child?" is multi-answer; "United States", "United States of America", "USA" is
    not.

    Known misses (listed in the tests): a comma qualifier joins two places that share a name
    ("Paris" and "Paris, Texas" count as one answer); an expanded initial is not seen ("J. Smith"
    and "John Smith" count as two); an acronym of the short form is not seen ("United States" and
    "USA" alone count as two).
    """
    answers = list(answers)
    if len(answers) < 2:
        return False
    return len(answer_groups(answers)) >= 2
