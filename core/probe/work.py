"""One question's state while its batch is in flight, its prompts, and the scoring calls: the
question's scorer, then in judge mode the judge for what the rules leave undecided."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from ..backends.base import Backend
from ..datasets import Example
from ..scoring import Verdict, pruner_for
from ..scoring.judge import ask_judge
from .exemplars import LeakCheck, _choose_exemplars
from .prompts import answer_token_limit, build_prompt
from .settings import ProbeSettings, categorize


@dataclass
class _Work:
    """One example's state while a batch is in flight."""

    example: Example
    matcher: Callable[[str], Verdict]
    pruner: Callable[[str], bool]
    prompts: list[str]
    exemplar_ids: list[list[str]]
    swaps: list[dict] = field(default_factory=list)  # exemplars replaced for this question, and why
    max_tokens: int = 24
    mode: str = "exact"
    chat: bool = False  # the prompts are rendered with the model's chat template
    judged: dict[str, Verdict] = field(default_factory=dict)  # judge mode: the judge's verdict per answer text
    greedy: list[str] = field(default_factory=list)
    greedy_reasons: list[str] = field(default_factory=list)  # why each greedy answer is right or wrong
    greedy_ok: int = 0
    samples: list[list[str]] = field(default_factory=list)
    sampled_ok: int = 0
    sampled_n: int = 0
    seconds: float = 0.0

    def result(self, run_id: int, settings: ProbeSettings) -> dict:
        n_g = len(self.greedy)
        category = categorize(self.greedy_ok, n_g, self.sampled_ok)
        full_samples = settings.n_sets * settings.samples_per_set
        measured = self.sampled_n == full_samples and full_samples > 0
        return {
            "run_id": run_id,
            "example_id": self.example.id,
            "group_name": self.example.group,
            "category": category,
            "p_greedy": self.greedy_ok / n_g if n_g else 0.0,
            "p_sampled": (self.sampled_ok / self.sampled_n) if measured else None,
            "greedy_correct": self.greedy_ok,
            "greedy_total": n_g,
            "sampled_correct": self.sampled_ok,
            "sampled_total": self.sampled_n,
            "greedy_answers": json.dumps(self.greedy, ensure_ascii=False),
            "greedy_reasons": json.dumps(self.greedy_reasons, ensure_ascii=False),
            "sampled_answers": json.dumps(self.samples, ensure_ascii=False),
            "exemplar_ids": json.dumps(self.exemplar_ids),
            "exemplar_swaps": json.dumps(self.swaps),
            "seconds": self.seconds,
        }


def _prepare(
    example: Example,
    group_sets: list[list[str]],
    pool_by_id: dict[str, Example],
    settings: ProbeSettings,
    render: Optional[Callable[[Sequence[Example], Example], str]] = None,
    candidates: Sequence[Example] = (),
    common: frozenset[str] = frozenset(),
) -> _Work:
    prompts, used, swaps = [], [], []
    longest = list(example.answers)
    check = LeakCheck(example, common)
    for k, ids in enumerate(group_sets):
        chosen, set_swaps = _choose_exemplars(example, ids, k, pool_by_id, candidates, settings.seed, check)
        swaps.extend(set_swaps)
        exemplars = [pool_by_id[i] for i in chosen]
        longest.extend(ex.answers[0] for ex in exemplars)
        if render is not None:
            prompts.append(render(exemplars, example))
        else:
            prompts.append(build_prompt(exemplars, example.question, example.system))
        used.append(chosen)
    mode = settings.match_for(example)
    return _Work(
        example=example,
        matcher=settings.scorer(example),
        pruner=pruner_for(example, settings.match),
        prompts=prompts,
        exemplar_ids=used,
        swaps=swaps,
        max_tokens=answer_token_limit(longest, settings.max_tokens),
        mode=mode,
        chat=render is not None,
    )


def score_answers(judge: Optional[Backend], items: Sequence[tuple["_Work", str]]) -> list[Verdict]:
    """The verdict on each answer. The work's scorer decides; in judge mode the answers it leaves
    undecided (no trace of the key, nothing that rules them out) go to ``judge``, each distinct
    (question, answer) once, the verdicts cached on the work."""
    verdicts = [w.matcher(a) for w, a in items]
    ask: dict[tuple[int, str], tuple[_Work, str]] = {}
    for (w, a), v in zip(items, verdicts):
        if not v.decided and w.mode == "judge" and judge is not None and a not in w.judged:
            ask.setdefault((id(w), a), (w, a))
    if ask and judge is not None:
        todo = list(ask.values())
        for (w, a), v in zip(todo, ask_judge(judge, [(w.example, a) for w, a in todo])):
            w.judged[a] = v
    return [w.judged.get(a, v) if w.mode == "judge" and not v.decided else v for (w, a), v in zip(items, verdicts)]
