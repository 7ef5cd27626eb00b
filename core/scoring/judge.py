"""The judge: a model asked only what the grading rules cannot decide, and only once it has shown,
on the user's own data, that it rarely says yes to a wrong answer.

Why calibrate: the probe asks up to 160 answers a question, and a single false "yes" turns an
Unknown question into WeaklyKnown. So before a probe the judge grades each calibration row's own
gold answer (it should say yes) and the gold answers of other questions of the same group given
as answers to it (it should say no). Its false-yes rate is stored with the run and shown; above
``MAX_FALSE_YES`` the judge is refused with that figure.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from ..errors import SettingsError
from .rules import Verdict
from .text import normalize_answer

MAX_FALSE_YES = 0.05
CALIBRATION_ROWS = 40  # questions; each gives one should-be-yes and one should-be-no item

RUBRIC = (
    "You grade short answers to quiz questions.\n"
    "The answer is RIGHT only if it states the same fact as the gold answer (other wording, spelling, "
    "order, or a title or initials left out are fine) and does not deny it, hedge, or offer several candidates.\n"
    "The answer is WRONG if it names anything else, even something related.\n\n"
    "Question: {question}\nGold answer: {gold}\nAnswer to grade: {answer}\n"
    "Is the answer right? Reply yes or no.\nReply:"
)


def judge_prompt(example: Any, answer: str) -> str:
    gold = example.answers[0] if example.answers else ""
    return RUBRIC.format(question=example.question, gold=gold, answer=answer.rstrip("…").strip())


def _yes(reply: str) -> bool:
    return normalize_answer(reply).startswith("yes")


def ask_judge(backend: Any, items: Sequence[tuple[Any, str]]) -> list[Verdict]:
    """The judge's verdicts on (example, answer) pairs: greedy, a few tokens, yes or no."""
    from ..backends.base import GenRequest

    if not items:
        return []
    replies = backend.generate([GenRequest(judge_prompt(ex, a), max_tokens=3) for ex, a in items])
    return [Verdict(True, "the judge said yes") if _yes(r[0]) else Verdict(False, "the judge said no") for r in replies]


@dataclass(frozen=True)
class Calibration:
    """How the judge graded answers whose verdict is known: gold answers (should be yes) and other
    questions' gold answers (should be no)."""

    n_right: int
    yes_right: int
    n_wrong: int
    yes_wrong: int

    @property
    def false_yes(self) -> float:
        return self.yes_wrong / self.n_wrong if self.n_wrong else 0.0

    @property
    def true_yes(self) -> float:
        return self.yes_right / self.n_right if self.n_right else 0.0

    def words(self) -> str:
        return (
            f"the judge said yes to {self.yes_wrong} of {self.n_wrong} wrong answers (false-yes {self.false_yes:.0%}) "
            f"and to {self.yes_right} of {self.n_right} right ones"
        )

    def to_dict(self) -> dict:
        return asdict(self) | {"false_yes": self.false_yes}

    def check(self) -> None:
        """Refuse a judge that would inflate the known categories."""
        if self.n_wrong and self.false_yes > MAX_FALSE_YES:
            raise SettingsError(
                f"The judge cannot be trusted on this data: {self.words()}; at most {MAX_FALSE_YES:.0%} false-yes is "
                "allowed, because one false yes among a question's samples changes its category. Probe with "
                "--match key (the grading rules alone), or name a stronger judge model with --judge-model."
            )


def calibration_items(examples: Sequence[Any], seed: int, rows: int = CALIBRATION_ROWS) -> list[tuple[Any, str, bool]]:
    """(example, answer, should be right) pairs from the data: each chosen row's own gold answer,
    and the gold answer of another question of its group whose answer differs."""
    by_group: dict[str, list[Any]] = {}
    for ex in examples:
        if ex.answers:
            by_group.setdefault(ex.group, []).append(ex)
    rng = random.Random(f"judge-calibration|{seed}")
    chosen = [ex for ex in examples if ex.answers]
    rng.shuffle(chosen)
    out: list[tuple[Any, str, bool]] = []
    for ex in chosen[:rows]:
        out.append((ex, ex.answers[0], True))
        mine = {normalize_answer(a) for a in ex.answers}
        others = [o for o in by_group.get(ex.group, []) if o.id != ex.id and normalize_answer(o.answers[0]) not in mine]
        if others:
            out.append((ex, rng.choice(others).answers[0], False))
    return out


def calibrate(backend: Any, examples: Sequence[Any], seed: int = 0) -> Calibration:
    items = calibration_items(examples, seed)
    verdicts = ask_judge(backend, [(ex, a) for ex, a, _ in items])
    right = [v.right for (_, _, should), v in zip(items, verdicts) if should]
    wrong = [v.right for (_, _, should), v in zip(items, verdicts) if not should]
    return Calibration(len(right), sum(right), len(wrong), sum(wrong))
