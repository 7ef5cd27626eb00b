"""The plan: from a finished probe, which examples train, which form the dev split, and why.

Gekhman et al. 2024 found that fine-tuning examples the model does not already know (SliCK
``Unknown``) are fitted slowly and, once fitted, make the model hallucinate more, while
``MaybeKnown`` examples are needed for the best accuracy. A plan turns a probe's categories into
a training set that follows that evidence, plus a dev split for early stopping, and says in plain
words what it kept, what it dropped and why.

Modules, one idea each
    ``settings``     ``PlanSettings``: the mix, the WeaklyKnown cap or shares, the dev and test splits' sizes
    ``mixes``        what each mix keeps of each category, spread over the groups
    ``splits``       the stratified test and dev splits (test first: never trained on, never used for stopping)
    ``ood``          the optional out-of-distribution file (other groups) for ``knowmix check``
    ``sampling``     seeded, order-free apportioning and sampling (used by both)
    ``types``        ``Plan`` and ``PlanExample``, and the counts before and after
    ``build``        ``build_plan``: a finished probe run into a plan
    ``explain``      the plan in words, with the paper's numbers, and its warnings
    ``persistence``  saving and loading plans (``core.store.plans``); which model a plan's probe used
    ``export``       the splits as JSON Lines for other trainers (``core.writeback`` keeps the user's shape)

    ``memory``       the memory a default run on the plan's model needs (the estimate itself: ``core.memory``)

The plan imports nothing from training (``core.train`` reads plans, a floor above; the contract in
pyproject.toml says so), and the memory estimate both use is ``core.memory``, re-exported here.
"""

from __future__ import annotations

from ..memory import MemoryEstimate, check_memory_fits, estimate_memory
from .build import build_plan
from .explain import CATEGORY_MEANING, EVIDENCE, PAPER
from .export import export_plan
from .memory import plan_memory
from .mixes import IDK_ANSWER, MIX_LABELS, MIXES, RECOMMENDED_SHARES
from .ood import OOD_ROLE, add_ood
from .persistence import (
    count_plans,
    latest_plan_id,
    list_plans,
    load_plan,
    plan_model,
    plan_row,
    plan_split_ids,
    probe_model_spec,
    save_plan,
)
from .settings import PlanSettings
from .types import SPLITS, Plan, PlanExample

__all__ = [
    "MIXES",
    "IDK_ANSWER",
    "MIX_LABELS",
    "RECOMMENDED_SHARES",
    "SPLITS",
    "CATEGORY_MEANING",
    "EVIDENCE",
    "PAPER",
    "PlanSettings",
    "PlanExample",
    "Plan",
    "MemoryEstimate",
    "build_plan",
    "save_plan",
    "load_plan",
    "plan_row",
    "list_plans",
    "count_plans",
    "latest_plan_id",
    "plan_model",
    "probe_model_spec",
    "estimate_memory",
    "check_memory_fits",
    "plan_memory",
    "export_plan",
    "plan_split_ids",
    "add_ood",
    "OOD_ROLE",
]
