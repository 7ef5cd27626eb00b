"""What a check measured, split by split, and the words that tell a non-engineer.

A check asks the model the same questions before training (the base model) and after (with the
adapter) in two ways:

* **the answer**: one greedy answer to the question alone, in the prompt format the run trained
  on, as the fine-tuned model will be used. It is *right* when the probe's matching accepts it
  (exact match for entity answers, the answer key for sentence answers). Exact match before and
  after come from it; before training on the dev split it is the run's step-0 dev exact match.
* **the category**: the probe again, with the first probe's exemplar sets and settings, greedy
  answers only by default (so after training P(T=0) = 0 reads "not known at T=0": WeaklyKnown or
  Unknown) and with samples as well with ``full``. The transition matrix counts before -> after.

**New errors** are questions answered right before training and wrongly after it, **by the same
measure** (what the paper warns fine-tuning on unknown facts costs). There are two measures, each
with its own count, never mixed:

* by **the answer**: right before (the base model) and wrong after (the adapter), the question
  alone in the training format; **fixed** is the reverse;
* by **the probe**: HighlyKnown or MaybeKnown before (a right greedy answer in at least one
  exemplar set) and no right greedy answer in any exemplar set after (not known at T=0,
  WeaklyKnown or Unknown), the same exemplar sets both times.

Mixing them (the probe before, one zero-shot answer after) counted a MaybeKnown question the base
model already answered wrongly alone as "lost" although nothing changed. A check stored before the
two were split (``n_right_before`` is None) is shown as stale, with the command that redoes it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Optional, Sequence

from ..categories import CATEGORIES, CHECK_SPLITS, NOT_KNOWN, SPLIT_WORDS
from ..errors import SettingsError
from ..formats import percent

# The splits, their words, KNOWN and NOT_KNOWN live in core.categories: the report reads them too.
SPLIT_NOUN = {"test": "test", "dev": "dev", "train": "training", "ood": "out-of-distribution"}
AFTER_CATEGORIES = (*CATEGORIES, NOT_KNOWN)
TRAIN_PER_CATEGORY = 200  # the fixed sample of training questions re-asked, per category
# 2: new errors by one measure at a time (the answer; the probe). In the check's identity, so a check
# that counted the old way (probe before, answer after) is not resumed nor passed off as current.
MEASURES = 2


@dataclass(frozen=True)
class CheckSettings:
    """What a check asks. ``full``: samples too, so WeaklyKnown and Unknown after training are told
    apart (costs up to 160 more answers per question). ``backend``: "auto" runs a GGUF base model on
    llama.cpp with the adapter converted to a GGUF LoRA, other models on torch with peft."""

    full: bool = False
    train_per_category: int = TRAIN_PER_CATEGORY
    backend: str = "auto"
    # seconds to time the loaded model before its first batch, for the estimate the progress line
    # shows until the first batch is measured (``core.check.estimate``); not part of the identity
    calibrate_s: float = 0.0

    def validate(self) -> None:
        if self.train_per_category < 0:
            raise SettingsError(f"Training questions per category must be 0 or more (got {self.train_per_category}).")
        if self.backend not in ("auto", "llama.cpp", "torch"):
            raise SettingsError(f"Check backend must be auto, llama.cpp or torch (got {self.backend!r}).")

    def identity(self) -> str:
        """The settings that change results, as canonical JSON (a rerun with the same resumes); the
        grading rules' version too, so a check graded by other rules is not resumed."""
        from ..scoring import SCORER_VERSION

        data = {k: v for k, v in asdict(self).items() if k != "calibrate_s"}  # how long to time it changes no result
        return json.dumps({**data, "scorer": SCORER_VERSION, "measures": MEASURES}, sort_keys=True)

    @classmethod
    def from_json(cls, text: Optional[str]) -> "CheckSettings":
        try:
            data = json.loads(text or "{}")
        except ValueError:
            data = {}
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class SplitCheck:
    """One split's before -> after."""

    split: str
    n: int
    transitions: dict[str, dict[str, int]]  # {category before: {category after: count}}
    em_before: Optional[float]
    em_after: Optional[float]
    em_by_category: dict[str, dict[str, Any]]  # {category before: {"n", "before", "after"}}
    n_known_before: int  # HighlyKnown or MaybeKnown before training (the probe)
    new_errors: list[
        dict
    ]  # right before, wrong after, by the answer: {example_id, question, answers, category_before, answer_before, answer_after}
    fixed: list[dict]  # wrong before, right after, by the answer
    idk: bool = False  # the run trained the "I don't know" mix
    abstained: Optional[float] = None  # share answered "I don't know" after training (idk mix)
    answered_accuracy: Optional[float] = None  # right among the answered ones after training (idk mix)
    n_right_before: Optional[int] = None  # answered right before training, by the answer; None: stored the old way
    probe_new_errors: list[dict] = field(default_factory=list)  # known before, not known after, by the probe

    @property
    def old_measures(self) -> bool:
        """Stored before the two measures were split: its new errors mix them (see the module)."""
        return self.n_right_before is None

    @property
    def noun(self) -> str:
        return SPLIT_NOUN.get(self.split, self.split)

    def new_errors_text(self) -> str:
        """By the answer: '2 of 12 test questions answered right before training are answered wrongly
        now.' in plain words."""
        k = len(self.new_errors)
        if self.old_measures:  # the old count: known by the probe before, wrong by the answer after
            of = self.n_known_before
            if not of:
                return f"The model knew none of the {self.n} {self.noun} questions before training."
            return f"{k} of {of} {self.noun} questions the model knew are now answered wrongly (counted the old way)."
        of = self.n_right_before or 0
        how = "the question alone, in the training format"
        if not of:
            return (
                f"By the answer ({how}): the model answered none of the {self.n} {self.noun} questions right before "
                "training, so none can be lost."
            )
        if not k:
            return f"By the answer ({how}): none of the {of} {self.noun} questions answered right before training is wrong now."
        return (
            f"By the answer ({how}): {k} of {of} {self.noun} questions answered right before training "
            f"{'is' if k == 1 else 'are'} answered wrongly now ({percent(k / of)})."
        )

    def probe_new_errors_text(self) -> str:
        """By the probe: known before (HighlyKnown or MaybeKnown), not known at T=0 after, with the
        same exemplar sets ('' for a check stored the old way)."""
        if self.old_measures:
            return ""
        k, of = len(self.probe_new_errors), self.n_known_before
        how = "few-shot, the first probe's exemplar sets"
        if not of:
            return (
                f"By the probe ({how}): the model knew none of the {self.n} {self.noun} questions before training "
                "(none HighlyKnown or MaybeKnown), so none can be lost."
            )
        if not k:
            return f"By the probe ({how}): all {of} {self.noun} questions known before training are still known."
        return (
            f"By the probe ({how}): {k} of {of} {self.noun} questions known before training (HighlyKnown or "
            f"MaybeKnown) {'is' if k == 1 else 'are'} not known now (no right greedy answer in any set; {percent(k / of)})."
        )

    def fixed_text(self) -> str:
        k = len(self.fixed)
        right = self.n_known_before if self.old_measures else (self.n_right_before or 0)
        wrong = self.n - right
        if not wrong:
            return f"It answered every {self.noun} question right before training."
        return f"{k} of {wrong} {self.noun} questions answered wrongly before training are now answered right."

    def em_text(self) -> str:
        if self.em_before is None or self.em_after is None:
            return ""
        return f"exact match {percent(self.em_before)} before, {percent(self.em_after)} after training"

    def idk_text(self) -> str:
        if not self.idk or self.abstained is None:
            return ""
        acc = "" if self.answered_accuracy is None else f", {percent(self.answered_accuracy)} right among the answered ones"
        return f'"I don\'t know" on {percent(self.abstained)} of them{acc} (the paper: 61.8% right with 58.7% answered)'


@dataclass
class CheckReport:
    """A finished (or partial) check of one training run."""

    id: int
    train_run_id: int
    plan_id: Optional[int]
    probe_run_id: Optional[int]
    status: str
    backend: str
    adapter: str  # e.g. "best dev step 40" / "final step 120"
    settings: CheckSettings
    seconds: float
    mix: str
    splits: dict[str, SplitCheck] = field(default_factory=dict)
    note: str = ""
    stale: str = ""  # why this check is not of the run's current adapter, with the command to redo it ('' if it is)
    other_model: str = ""  # "the model trained is not the model probed: …" for a run trained with --other-model

    def headline(self) -> str:
        test = self.splits.get("test") or next(iter(self.splits.values()), None)
        what = f"Check {self.id} of training run {self.train_run_id} ({self.adapter}, {self.backend})"
        if self.stale:
            return f"{what} is {self.stale}."
        if self.status != "finished":
            return f"{what}: {self.status}; run the same command again to finish it."
        if test is None:
            return f"{what}: no questions to check."
        em = test.em_text()
        errors = " ".join(t for t in (test.new_errors_text(), test.probe_new_errors_text()) if t)
        return f"{what}: {errors} {test.noun.capitalize()} {em}." if em else f"{what}: {errors}"

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "train_run_id": self.train_run_id,
            "plan_id": self.plan_id,
            "probe_run_id": self.probe_run_id,
            "status": self.status,
            "backend": self.backend,
            "adapter": self.adapter,
            "settings": asdict(self.settings),
            "seconds": self.seconds,
            "mix": self.mix,
            "note": self.note,
            "stale": self.stale,
            "other_model": self.other_model,
            "splits": {name: asdict(s) for name, s in self.splits.items()},
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "CheckReport":
        """A stored check (``checks`` row); its splits come from the row's ``summary`` JSON."""
        try:
            summary = json.loads(row.get("summary") or "{}")
        except ValueError:
            summary = {}
        splits = {name: SplitCheck(**data) for name, data in (summary.get("splits") or {}).items()}
        return cls(
            id=int(row["id"]),
            train_run_id=int(row["train_run_id"]),
            plan_id=row.get("plan_id"),
            probe_run_id=row.get("probe_run_id"),
            status=str(row.get("status") or ""),
            backend=str(row.get("backend") or ""),
            adapter=str(row.get("adapter") or ""),
            settings=CheckSettings.from_json(row.get("settings")),
            seconds=float(row.get("seconds") or 0.0),
            mix=str(summary.get("mix") or ""),
            splits=splits,
            note=str(row.get("note") or ""),
        )

    def to_text(self) -> str:
        """The report as the terminal shows it: per split, the words, then the transition table."""
        lines = [self.headline()]
        if self.other_model:
            lines.append(f"Note: {self.other_model[0].upper()}{self.other_model[1:]}.")
        for name in CHECK_SPLITS:
            s = self.splits.get(name)
            if s is None:
                continue
            lines += ["", f"{SPLIT_WORDS.get(name, name).capitalize()}: {s.n}"]
            for text in (s.em_text(), s.new_errors_text(), s.probe_new_errors_text(), s.fixed_text(), s.idk_text()):
                if text:
                    lines.append(f"  {text[0].upper()}{text[1:]}")
            lines.append(transition_table(s))
            for e in s.new_errors[:10]:
                lines.append(
                    f"  new error: {e['question']}  gold {e['answers'][0]!r}: {e['answer_before']!r} -> {e['answer_after']!r}"
                )
            if len(s.new_errors) > 10:
                lines.append(f"  ... and {len(s.new_errors) - 10} more (--json lists them all)")
            for e in s.probe_new_errors[:10]:
                lines.append(
                    f"  not known now (probe): {e['question']}  gold {e['answers'][0]!r}: "
                    f"{e['category_before']} -> {e['category_after']}"
                )
            if len(s.probe_new_errors) > 10:
                lines.append(f"  ... and {len(s.probe_new_errors) - 10} more (--json lists them all)")
        return "\n".join(lines)


def after_columns(splits: Sequence[SplitCheck]) -> list[str]:
    """The after-training categories present, in order (NotKnown only when greedy-only)."""
    seen = {a for s in splits for row in s.transitions.values() for a, n in row.items() if n}
    return [c for c in AFTER_CATEGORIES if c in seen] or list(CATEGORIES)


def transition_table(s: SplitCheck) -> str:
    cols = after_columns([s])
    names = {NOT_KNOWN: "NotKnown@T0"}
    corner = "before \\ after"
    head = f"  {corner:<16}" + "".join(f"{names.get(c, c):>13}" for c in cols)
    out = [head]
    for before in AFTER_CATEGORIES:
        row = s.transitions.get(before)
        if not row or not sum(row.values()):
            continue
        out.append(f"  {names.get(before, before):<16}" + "".join(f"{row.get(c, 0):>13}" for c in cols))
    return "\n".join(out)
