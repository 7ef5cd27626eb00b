"""Plain words for a plan too small to show anything: the one home of that text.

A plan that trains on a handful of questions the model knows cannot change the model measurably:
the dev split's exact match moves by one question at a time, and the check after training sees
noise. The user should hear that before training, in the Plan step and the CLI's plan output
(``plan_warnings``) and again in the Train step (``gui.pages.train_text.plan_line``), with what to
do about it. The threshold is a rule of thumb, not a result of the paper (which trained on
thousands of examples per category).
"""

from __future__ import annotations

from typing import Any, Mapping

# Fewer known questions than this in the training set: the plan says it is too few to change the model.
MIN_KNOWN_TO_TRAIN = 20
KNOWN_CATEGORIES = ("HighlyKnown", "MaybeKnown", "WeaklyKnown")


def known_to_train(counts: Mapping[str, Any]) -> int:
    """How many questions the model knows (HighlyKnown, MaybeKnown, WeaklyKnown) the plan trains on,
    from ``Plan.counts()`` or a stored plan's ``counts``."""
    per_cat = (counts.get("train") or {}).get("counts") or {}
    return sum(int(per_cat.get(cat) or 0) for cat in KNOWN_CATEGORIES)


def too_few_note(counts: Mapping[str, Any]) -> str:
    """What a plan with fewer than ``MIN_KNOWN_TO_TRAIN`` known questions to train on means, and what
    to do; "" when it has enough (or no probe counts at all)."""
    if not counts or "train" not in counts:
        return ""
    n = known_to_train(counts)
    if n >= MIN_KNOWN_TO_TRAIN:
        return ""
    many = f"{n} known question{'s' if n != 1 else ''} to train on"
    return (
        f"{many[0].upper()}{many[1:]} {'is' if n == 1 else 'are'} too few to change the model (fewer than "
        f"{MIN_KNOWN_TO_TRAIN}): training on them shows mostly noise. Probe more questions, or a model that knows "
        "more of them."
    )
