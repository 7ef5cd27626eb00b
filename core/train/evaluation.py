"""Measuring a run while it trains: dev exact match and train fit per category.

Dev exact match (greedy answers to held-out questions, scored against their gold aliases) decides
the stopping point; train fit (greedy answers to a fixed sample of the training items, per SliCK
category, scored against what the item trains towards) shows how fast each category is learned,
the paper's Figure 1. Both decode greedily through the same backend interface the probe uses, so
"correct" means the same thing in the probe, the evaluation and the report.
"""

from __future__ import annotations

from typing import Any, Sequence

from .data import PromptFormat, TrainItem, dev_matcher, fit_matcher

DEV_EXAMPLES_KEPT = 5  # dev answers kept per evaluation, to show what the model says


def greedy_answers(decoder: Any, fmt: PromptFormat, items: Sequence[TrainItem], max_new_tokens: int) -> list[str]:
    """One greedy answer per item, cut at the first newline as the probe's answers are."""
    from ..backends.base import GenRequest

    reqs = [GenRequest(fmt.prompt(it.question), max_tokens=max_new_tokens, stop=("\n",)) for it in items]
    return [a[0] for a in decoder.generate(reqs)]


def measure(
    decoder: Any, fmt: PromptFormat, dev_items: Sequence[TrainItem], fit_items: dict[str, list[TrainItem]], max_new_tokens: int
) -> dict:
    """The evaluation record's scores: ``dev_em``, ``dev_correct``, ``dev_total``, ``fit`` and ``fit_n``
    per category, ``fit_all`` and the first ``dev_examples``. The caller puts the model in eval mode."""
    dev_answers = greedy_answers(decoder, fmt, dev_items, max_new_tokens)
    dev_ok = [dev_matcher(it)(a) for it, a in zip(dev_items, dev_answers)]
    fit: dict[str, float] = {}
    fit_n: dict[str, int] = {}
    fit_ok_all = 0
    for cat, items in fit_items.items():
        answers = greedy_answers(decoder, fmt, items, max_new_tokens)
        ok = sum(fit_matcher(it)(a) for it, a in zip(items, answers))
        fit[cat], fit_n[cat] = ok / len(items), len(items)
        fit_ok_all += ok
    n_fit = sum(fit_n.values())
    return {
        "dev_em": sum(dev_ok) / len(dev_ok),
        "dev_correct": int(sum(dev_ok)),
        "dev_total": len(dev_ok),
        "fit": fit,
        "fit_n": fit_n,
        "fit_all": fit_ok_all / n_fit if n_fit else None,
        "dev_examples": [
            {"example_id": it.example_id, "answer": a, "correct": bool(c)}
            for it, a, c in list(zip(dev_items, dev_answers, dev_ok))[:DEV_EXAMPLES_KEPT]
        ],
    }
