"""A plan: every row of the dataset with its split, its training target and why.

Probed rows are ``train``, ``dev``, ``test`` or ``dropped``; rows the probe could not
check (probe status "not-probed": multi-turn chats, long-form answers, tasks, rows without an
answer) are ``kept`` as they are by default, or ``left-out`` when the user chose so
(``PlanSettings.not_probed``). So a plan accounts for every row:
train + dev + test + dropped + kept + left-out == rows of the dataset. ``test`` rows (held out
before dev, ``splits.hold_out_test``) are never trained on and never used for stopping.

A plan is built from one finished probe run (``build.build_plan``), saved in the project
(``persistence``), explained in words (``explain``) and exported for other trainers (``export``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from ..categories import CATEGORIES
from ..probe import ProbeSettings
from .explain import explain_plan, plan_warnings
from .settings import PlanSettings

SPLITS = ("train", "dev", "test", "dropped", "kept", "left-out")
# The splits of rows that were not probed (they have no category).
NOT_PROBED_SPLITS = ("kept", "left-out")
# Not-probed rows KnowMix's own trainer cannot use: its prompt is one question and one answer, so a
# multi-turn conversation (later turns need the earlier ones) and a row without an answer are
# only written to the export, for trainers that take them as they are.
NOT_TRAINABLE_REASONS = ("multi-turn", "no-answer")
# Why a question with several different true answers is dropped (``PlanSettings.multi_answer == "drop"``).
MULTI_ANSWER_REASON = "dropped: several different true answers (your choice, as the paper removed such questions)"


@dataclass
class PlanExample:
    """One row of the dataset and what the plan does with it (a not-probed row has no category)."""

    example_id: str
    question: str
    answers: tuple[str, ...]
    group: str
    category: str
    split: str  # "train" | "dev" | "test" | "dropped" for probed rows; "kept" | "left-out" for not-probed ones
    target: str  # the answer the model is trained on ("I don't know" for relabelled Unknown), first alias otherwise
    reason: str  # short words, e.g. "kept: the model knows it (HighlyKnown)"
    raw: dict = field(default_factory=dict, repr=False)
    status: str = "probed"  # the row's probe status: "probed" or "not-probed"
    probe_reason: str = ""  # why a not-probed row was not probed (a key of core.datasets.REASONS)
    multi_answer: bool = False  # a probed question with several different true answers (core.datasets.multi)

    @property
    def probed(self) -> bool:
        return self.status == "probed"

    @property
    def trainable(self) -> bool:
        """Whether KnowMix's own trainer trains on it: a training example, or a kept not-probed row
        with a question and an answer that is not a multi-turn conversation."""
        if self.split == "train":
            return True
        return (
            self.split == "kept"
            and self.probe_reason not in NOT_TRAINABLE_REASONS
            and bool(self.question.strip())
            and bool(self.target.strip())
        )

    @property
    def relabelled(self) -> bool:
        """True when the training target is not one of the gold answers (the IDK relabelling)."""
        return self.split == "train" and self.target not in self.answers


@dataclass
class Plan:
    """A training mix, a dev split and a test split built from one probe run."""

    id: Optional[int]
    probe_run_id: int
    settings: PlanSettings
    examples: list[PlanExample]
    dataset_id: Optional[int] = None
    name: str = ""
    model_name: str = ""
    probe_settings: Optional[ProbeSettings] = None
    created_at: Optional[float] = None
    test_skipped: str = ""  # why the test split is empty on this data ("" when it is not, or was turned off)

    # -- splits ------------------------------------------------------------------------------------
    def train(self) -> list[PlanExample]:
        return [e for e in self.examples if e.split == "train"]

    def dev(self) -> list[PlanExample]:
        return [e for e in self.examples if e.split == "dev"]

    def test(self) -> list[PlanExample]:
        """The held-out test split: never trained on, never used for stopping (``knowmix check`` uses it)."""
        return [e for e in self.examples if e.split == "test"]

    def dropped(self) -> list[PlanExample]:
        return [e for e in self.examples if e.split == "dropped"]

    def probed(self) -> list[PlanExample]:
        """The probed rows (those with a category), in file order."""
        return [e for e in self.examples if e.probed]

    def kept(self) -> list[PlanExample]:
        """Not-probed rows the plan keeps as they are (they go into the training file)."""
        return [e for e in self.examples if e.split == "kept"]

    def left_out(self) -> list[PlanExample]:
        """Not-probed rows the user chose to leave out (``--not-probed drop``)."""
        return [e for e in self.examples if e.split == "left-out"]

    def training_file(self) -> list[PlanExample]:
        """What the exported training file holds, in file order: the training examples and the
        not-probed rows the plan keeps."""
        return [e for e in self.examples if e.split in ("train", "kept")]

    def training_examples(self) -> list[PlanExample]:
        """What KnowMix's own trainer trains on, in file order: the training examples and the kept
        not-probed rows it can use (``PlanExample.trainable``)."""
        return [e for e in self.examples if e.trainable]

    # -- numbers -----------------------------------------------------------------------------------
    def counts(self) -> dict:
        """Counts and shares per category: all probed (``before``), ``train``, ``dev``, ``test``, ``dropped``.

        Each part is ``{"total": n, "counts": {category: n}, "shares": {category: share of that part}}``;
        ``relabelled`` counts training examples whose answer became "I don't know"; ``groups`` gives
        each probed group's count and share before and in the training set. ``not_probed`` counts
        the rows that were not probed: ``total``, ``kept``, ``left_out``, ``trained`` (kept rows
        KnowMix's own trainer uses) and ``reasons`` ``{reason: n}``; ``rows`` is every row, so
        ``train + dev + test + dropped + not_probed.total == rows``. ``test_skipped`` says why the
        test split is empty on this data ("" when it is not, or was turned off). ``multi_answer`` counts the probed
        questions with several different true answers (``total``) and those the plan dropped for it
        (``left_out``, in ``dropped`` too; ``left_out_counts`` by category).
        """

        def part(items: list[PlanExample]) -> dict:
            n = len(items)
            by_cat = {c: 0 for c in CATEGORIES}
            for e in items:
                by_cat[e.category] = by_cat.get(e.category, 0) + 1
            return {"total": n, "counts": by_cat, "shares": {c: (k / n if n else 0.0) for c, k in by_cat.items()}}

        train, dev, probed = self.train(), self.dev(), self.probed()
        groups: dict[str, dict[str, float]] = {}
        for e in probed:
            g = groups.setdefault(e.group, {"before": 0, "train": 0, "dev": 0, "test": 0})
            g["before"] += 1
            if e.split in ("train", "dev", "test"):
                g[e.split] += 1
        n_all, n_train = len(probed), len(train)
        for g in groups.values():
            g["before_share"] = g["before"] / n_all if n_all else 0.0
            g["train_share"] = g["train"] / n_train if n_train else 0.0
        reasons: dict[str, int] = {}
        kept_reasons: dict[str, int] = {}
        for e in self.examples:
            if not e.probed:
                reasons[e.probe_reason] = reasons.get(e.probe_reason, 0) + 1
                if e.split == "kept":
                    kept_reasons[e.probe_reason] = kept_reasons.get(e.probe_reason, 0) + 1
        kept = self.kept()
        multi = [e for e in probed if e.multi_answer]
        return {
            "rows": len(self.examples),
            "before": part(probed),
            "train": part(train),
            "dev": part(dev),
            "test": part(self.test()),
            "test_skipped": self.test_skipped,
            "dropped": part(self.dropped()),
            "relabelled": sum(1 for e in train if e.relabelled),
            "groups": dict(sorted(groups.items())),
            "multi_answer": {
                "total": len(multi),
                "left_out": sum(1 for e in multi if e.split == "dropped" and e.reason == MULTI_ANSWER_REASON),
                "left_out_counts": {
                    c: sum(1 for e in multi if e.category == c and e.reason == MULTI_ANSWER_REASON) for c in CATEGORIES
                },
            },
            "not_probed": {
                "total": sum(reasons.values()),
                "kept": len(kept),
                "left_out": len(self.left_out()),
                "trained": sum(1 for e in kept if e.trainable),
                "reasons": _in_reason_order(reasons),
                "kept_reasons": _in_reason_order(kept_reasons),
            },
        }

    def warnings(self) -> list[str]:
        """Things the user should know before training on this plan, in plain words."""
        return plan_warnings(self)

    # -- words -------------------------------------------------------------------------------------
    def explain(self) -> str:
        """The plan in plain words: counts and shares before and after, what was dropped and why, and
        the paper's evidence for this mix."""
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


def _in_reason_order(counts: dict[str, int]) -> dict[str, int]:
    """``counts`` in the order of ``core.datasets.REASONS`` (unknown reasons last)."""
    from ..datasets.types import REASONS

    order = {r: i for i, r in enumerate(REASONS)}
    return dict(sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
