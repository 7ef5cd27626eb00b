"""One scorer for every verdict KnowMix gives: the probe, the sample pruner, early stopping's dev
score, the check, the results table and the app's ticks all call ``scorer_for``.

``SCORER_VERSION`` joins the identity of probe runs, checks and training runs, so results graded
by one version of the rules never mix with those of another.
"""

from __future__ import annotations

from typing import Any, Iterable

from .mentions import Mentions
from .pruners import UNFINISHED, KeyPruner, PrefixPruner
from .rules import Scorer, Verdict
from .text import normalize_answer, tokens

# grader-1: the grading rules of issue 18 (negation, hedges, longer names, numbers, dates,
# conjunctions, initials, Unicode punctuation); before it, runs had no scorer field.
# grader-2: a name made of common words must stand as that name (not a place, an interjection or
# a plain word beside another name), another name given as the answer beside the key is wrong,
# more refusals ("idk", "can't remember"), "Mount X" is not the person X (core/scoring/senses.py)
# grader-3: a country's other names ("USA", "the United States", "Britain", "Burma"; core/scoring/names.py)
SCORER_VERSION = "grader-3"
MATCH_MODES = ("auto", "exact", "key", "judge")


def mode_for(match: str, entity_shaped: bool) -> str:
    """The rules a matching mode means for one question: "auto" is exact for entity-shaped gold
    answers (the paper's data) and key for sentence answers; "judge" grades by the key rules and
    asks the judge only what they leave undecided."""
    if match == "auto":
        return "exact" if entity_shaped else "key"
    if match == "judge":
        return "key"
    return match


def scorer_for(example: Any, match: str) -> Scorer:
    """The scorer of ``example`` (anything with ``answers``, ``answer_keys``, ``question`` and
    ``entity_shaped``) under the matching mode ``match``."""
    mode = mode_for(match, bool(getattr(example, "entity_shaped", True)))
    golds = tuple(example.answers) if mode == "exact" else tuple(example.answer_keys)
    return Scorer(mode, golds, example.question)


def pruner_for(example: Any, match: str) -> Any:
    mode = mode_for(match, bool(getattr(example, "entity_shaped", True)))
    if mode == "exact":
        return PrefixPruner(example.answers)
    return KeyPruner(example.answer_keys, example.question)


def is_correct(answer: str, aliases: Iterable[str]) -> bool:
    """Exact match of ``answer`` against any alias (the paper's rule, with the grader's folding)."""
    return Scorer("exact", aliases).right(answer)


__all__ = [
    "MATCH_MODES",
    "SCORER_VERSION",
    "KeyPruner",
    "Mentions",
    "PrefixPruner",
    "Scorer",
    "UNFINISHED",
    "Verdict",
    "is_correct",
    "mode_for",
    "normalize_answer",
    "pruner_for",
    "scorer_for",
    "tokens",
]
