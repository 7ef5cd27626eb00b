"""A plan: every probed example with its split (train, dev or dropped), its training target and why.

A plan is built from one finished probe run (``build.build_plan``), saved in the project
(``persistence``), explained in words (``explain``) and exported for other trainers (``export``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from ..categories import CATEGORIES
from ..probe import ProbeSettings
from .settings import PlanSettings

SPLITS = ("train", "dev", "dropped")


@dataclass
class PlanExample:
    """One probed example and what the plan does with it."""

    example_id: str
    question: str
    answers: tuple[str, ...]
    group: str
    category: str
    split: str  # "train" | "dev" | "dropped"
    target: str  # the answer the model is trained on ("I don't know" for relabelled Unknown), first alias otherwise
    reason: str  # short words, e.g. "kept: the model knows it (HighlyKnown)"
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def relabelled(self) -> bool:
        """True when the training target is not one of the gold answers (the IDK relabelling)."""
        return self.split == "train" and self.target not in self.answers


@dataclass
class Plan:
    """A training mix and dev split built from one probe run."""

    id: Optional[int]
    probe_run_id: int
    settings: PlanSettings
    examples: list[PlanExample]
    dataset_id: Optional[int] = None
    name: str = ""
    model_name: str = ""
    probe_settings: Optional[ProbeSettings] = None
    created_at: Optional[float] = None

    # -- splits ------------------------------------------------------------------------------------
    def train(self) -> list[PlanExample]:
        return [e for e in self.examples if e.split == "train"]

    def dev(self) -> list[PlanExample]:
        return [e for e in self.examples if e.split == "dev"]

    def dropped(self) -> list[PlanExample]:
        return [e for e in self.examples if e.split == "dropped"]

    # -- numbers -----------------------------------------------------------------------------------
    def counts(self) -> dict:
        """Counts and shares per category: all probed (``before``), ``train``, ``dev``, ``dropped``.

        Each part is ``{"total": n, "counts": {category: n}, "shares": {category: share of that part}}``;
        ``relabelled`` counts training examples whose answer became "I don't know"; ``groups`` gives
        each group's count and share before and in the training set.
        """

        def part(items: list[PlanExample]) -> dict:
            n = len(items)
            by_cat = {c: 0 for c in CATEGORIES}
            for e in items:
                by_cat[e.category] = by_cat.get(e.category, 0) + 1
            return {"total": n, "counts": by_cat, "shares": {c: (k / n if n else 0.0) for c, k in by_cat.items()}}

        train, dev = self.train(), self.dev()
        groups: dict[str, dict[str, float]] = {}
        for e in self.examples:
            g = groups.setdefault(e.group, {"before": 0, "train": 0, "dev": 0})
            g["before"] += 1
            if e.split in ("train", "dev"):
                g[e.split] += 1
        n_all, n_train = len(self.examples), len(train)
        for g in groups.values():
            g["before_share"] = g["before"] / n_all if n_all else 0.0
            g["train_share"] = g["train"] / n_train if n_train else 0.0
        return {
            "before": part(self.examples),
            "train": part(train),
            "dev": part(dev),
            "dropped": part(self.dropped()),
            "relabelled": sum(1 for e in train if e.relabelled),
            "groups": dict(sorted(groups.items())),
        }

    def warnings(self) -> list[str]:
        """Things the user should know before training on this plan, in plain words."""
        from .explain import plan_warnings

        return plan_warnings(self)

    # -- words -------------------------------------------------------------------------------------
    def explain(self) -> str:
        """The plan in plain words: counts and shares before and after, what was dropped and why, and
        the paper's evidence for this mix."""
        from .explain import explain_plan

        return explain_plan(self)

    def to_dict(self, *, include_examples: bool = False) -> dict:
        """JSON-ready summary (examples only on request: a plan can hold 100k of them)."""
        ps = self.probe_settings
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "probe_run_id": self.probe_run_id,
            "dataset_id": self.dataset_id,
            "model": self.model_name,
            "created_at": self.created_at,
            "settings": self.settings.to_dict(),
            "probe_budget": ps.describe() if ps is not None else None,
            "paper_budget": ps.is_paper_budget if ps is not None else None,
            "counts": self.counts(),
            "warnings": self.warnings(),
        }
        if include_examples:
            data["examples"] = [
                {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(e).items() if k != "raw"} for e in self.examples
            ]
        return data
