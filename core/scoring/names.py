"""Other names a careful grader accepts for a gold answer: "the United States" or "USA" for
"United States of America", "Britain" for "United Kingdom", "Burma" for "Myanmar".

A fixed table of countries' common and official names, because country answers are the most common
answers of factual datasets (EntityQuestions' country relations; "United States of America" is 71% of
P495) and models answer with the short name far more often than the official one. A rule that shortens
names in general ("United States" from "United States of America") would also make "Virginia" of
"West Virginia" or "Bank" of "Bank of America"; a table cannot. Names in capitals (acronyms) must be
written in capitals in the answer: "US" is the country, "us" the pronoun.

Each group is one country; a name in two groups would join them, so none is (checked on import).
Names that graders disagree on (a historical state for its successor, "Korea" for either Korea) are
left out.
"""

from __future__ import annotations

from typing import Iterable

from .text import ARTICLES, tokens

_GROUPS: tuple[tuple[str, ...], ...] = (
    ("United States of America", "United States", "USA", "US", "America"),
    ("United Kingdom", "United Kingdom of Great Britain and Northern Ireland", "UK", "Great Britain", "Britain"),
    ("People's Republic of China", "China", "PRC"),
    ("Republic of China", "Taiwan", "ROC"),
    ("Russia", "Russian Federation"),
    ("Soviet Union", "USSR", "Union of Soviet Socialist Republics"),
    ("Czech Republic", "Czechia"),
    ("Republic of Ireland", "Ireland"),
    ("Netherlands", "Kingdom of the Netherlands", "Holland"),
    ("South Korea", "Republic of Korea"),
    ("North Korea", "Democratic People's Republic of Korea", "DPRK"),
    ("United Arab Emirates", "UAE"),
    ("Democratic Republic of the Congo", "DR Congo", "DRC", "Congo-Kinshasa"),
    ("Republic of the Congo", "Congo-Brazzaville"),
    ("Ivory Coast", "Côte d'Ivoire"),
    ("East Timor", "Timor-Leste"),
    ("Myanmar", "Burma"),
    ("Eswatini", "Swaziland"),
    ("North Macedonia", "Republic of Macedonia", "Macedonia"),
    ("Cape Verde", "Cabo Verde"),
    ("Vatican City", "Vatican"),
    ("State of Palestine", "Palestine"),
)


def _fold(name: str) -> tuple[str, ...]:
    toks = [t.norm for t in tokens(name)]
    while len(toks) > 1 and toks[0] in ARTICLES:
        toks = toks[1:]
    return tuple(toks)


_BY_NAME: dict[tuple[str, ...], tuple[str, ...]] = {}
for _group in _GROUPS:
    for _name in _group:
        assert _fold(_name) not in _BY_NAME, f"{_name} is in two groups"
        _BY_NAME[_fold(_name)] = _group


def is_acronym(name: str) -> bool:
    """A name written in capitals ("USA", "U.S.", "DRC"): it must stay in capitals in an answer."""
    letters = name.replace(".", "")
    return letters.isalpha() and letters.isupper() and len(letters) >= 2


def other_names(golds: Iterable[str]) -> list[str]:
    """The table's other names of each gold answer, not already among the golds, in table order."""
    golds = list(golds)
    have = {_fold(g) for g in golds}
    out: list[str] = []
    for gold in golds:
        for name in _BY_NAME.get(_fold(gold), ()):
            key = _fold(name)
            if key not in have:
                have.add(key)
                out.append(name)
    return out
