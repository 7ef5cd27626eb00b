"""The plan: from a finished probe, which examples train, which form the dev split, and why.

Gekhman et al. 2024 (DESIGN.md) found that fine-tuning examples the model does not already know
(SliCK ``Unknown``) are fitted slowly and, once fitted, make the model hallucinate more, while
``MaybeKnown`` examples are needed for the best accuracy. A plan turns a probe's categories into
a training set that follows that evidence, plus a dev split for early stopping, and says in plain
words what it kept, what it dropped and why.

Mixes (``PlanSettings.mix``)
    ``recommended``  keep HighlyKnown and MaybeKnown, drop Unknown, keep WeaklyKnown only up to
                     ``weakly_known_cap`` examples (default 0).
    ``idk``          as recommended, but Unknown examples stay in with the answer "I don't know"
                     (the paper's IDK variant).
    ``natural``      keep everything (the data's own mix; ``weakly_known_cap`` is not used).
    ``custom``       keep ``shares[category]`` (0..1) of each category's examples; a category the
                     shares leave out follows the recommended mix (HighlyKnown and MaybeKnown 1,
                     WeaklyKnown and Unknown 0).

The dev split
    Drawn from *all* probed examples before the mix is applied: the paper's dev set had the
    natural distribution of categories, so dev exact match then measures what the paper measured
    (and what early stopping selects on). It is stratified by (category, group): the dev size
    ``floor(dev_fraction * N)``, at most ``dev_max``, is shared out over the strata in proportion
    to their sizes (largest remainder, ties broken by a seeded hash), and each stratum's dev
    examples are a seeded random sample. Every category with at least 2 probed examples gets at
    least one dev example, taken from its largest stratum; room for it is made by taking one
    from the stratum with the most dev examples of a category that has more than one, so the
    size limits hold, except on tiny data where the fraction cannot hold one example of each
    category (then the dev split is one example per category). A category with a single example
    cannot be in both splits; it stays wherever the apportioning puts it and the plan warns that
    dev accuracy says nothing about it. The dev split is empty, and the plan refused, only when
    no category has 2 examples and the fraction of N rounds down to 0. A dev example never
    trains. In the idk mix dev examples keep their real answers: dev exact match is measured
    against the gold answers, as in the paper.

Group shares
    When a mix keeps only part of a category (a WeaklyKnown cap, a custom share), the kept
    examples are shared out over the groups in proportion to the group sizes (largest remainder)
    and sampled with the seed within each group, so no group is favoured by file order, as the
    paper sampled per relation.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Hashable, Iterable, Mapping, Optional

from .errors import ProjectError, SettingsError
from .paths import write_text_atomic
from .probe import CATEGORIES, ProbeSettings

__all__ = [
    "MIXES",
    "IDK_ANSWER",
    "PlanSettings",
    "PlanExample",
    "Plan",
    "MemoryEstimate",
    "build_plan",
    "save_plan",
    "load_plan",
    "estimate_memory",
    "check_memory_fits",
    "plan_memory",
    "export_plan",
]

MIXES = ("recommended", "idk", "natural", "custom")
IDK_ANSWER = "I don't know"
SPLITS = ("train", "dev", "dropped")

MIX_LABELS = {
    "recommended": "recommended mix (keep what the model knows, drop Unknown)",
    "idk": "\"I don't know\" mix (Unknown answers relabelled \"I don't know\")",
    "natural": "natural mix (everything, as in the data)",
    "custom": "custom mix (your share per category)",
}
CATEGORY_MEANING = {
    "HighlyKnown": "the model always answers it right",
    "MaybeKnown": "the model sometimes answers it right",
    "WeaklyKnown": "the model gets it right only when sampling",
    "Unknown": "the model never got it right: new knowledge",
}
_RECOMMENDED_SHARES = {"HighlyKnown": 1.0, "MaybeKnown": 1.0, "WeaklyKnown": 0.0, "Unknown": 0.0}

# The paper's evidence (Gekhman et al. 2024, DESIGN.md), as sentences a non-engineer can read.
PAPER = "Gekhman et al. 2024, who fine-tuned PaLM 2-M on EntityQuestions (12 relations)"
EVIDENCE = {
    "unknown_harm": (
        "Unknown examples teach the model new facts. The paper found the model fits them much more slowly than "
        "known ones, and once fitted they lower test accuracy: accuracy = 36.9 + 7.3 x (share of Known examples "
        "fitted) - 8.3 x (share of Unknown examples fitted) (a linear fit, R^2 0.86)."
    ),
    "single": (
        "Test accuracy when training on one category only (at the best dev epoch / at convergence): HighlyKnown "
        "40.5/40.0, MaybeKnown 43.6/43.2, WeaklyKnown 39.2/35.4, Unknown 37.5/25.8; the natural mix 43.5/41.8."
    ),
    "filter": (
        "Dropping the Unknown examples was as good as keeping them with early stopping, and better when training "
        "runs to convergence."
    ),
    "maybe": (
        "MaybeKnown examples are needed: trained on HighlyKnown alone, the model answered MaybeKnown test "
        "questions 60.1% right versus 69.9% with MaybeKnown examples in the mix."
    ),
    "weak_dropped": (
        "WeaklyKnown examples are left out (cap 0): alone they gave 39.2 at the best dev epoch and fell to 35.4 at "
        "convergence, the largest drop after Unknown."
    ),
    "weak_capped": (
        "WeaklyKnown examples are kept up to your cap of {cap} ({kept} kept): alone they gave 39.2 at the best dev "
        "epoch but fell to 35.4 at convergence, so keep the cap small and rely on early stopping."
    ),
    "idk": (
        "Unknown answers are relabelled \"I don't know\" (the paper's IDK variant): the model learns to abstain "
        "instead of guessing. In the paper this raised accuracy on the questions the model chose to answer from "
        "43.0 to 61.8, at the cost of answering fewer questions."
    ),
    "natural": (
        "The natural mix keeps everything, Unknown included: it reached 43.5 with early stopping but fell to 41.8 "
        "at convergence, as the fitted Unknown examples pulled accuracy down. Early stopping matters most here."
    ),
    "stop": (
        "Training stops at the best dev exact match (the paper's EARLY_STOP, which came after 5-10 of 50 epochs); "
        "training to convergence lets the Unknown examples' harm in."
    ),
    "dev": (
        "The dev split is drawn from all probed questions before the mix is applied, so it keeps the natural share "
        "of each category and group, as the paper's dev set did: dev exact match measures what the paper measured."
    ),
}


# --------------------------------------------------------------------------- settings and data


@dataclass(frozen=True)
class PlanSettings:
    """How to turn a probe into a training mix and a dev split. Defaults follow the paper."""

    mix: str = "recommended"
    weakly_known_cap: int = 0  # max WeaklyKnown examples in the training set (recommended/idk mixes)
    shares: Optional[dict[str, float]] = None  # custom mix: share (0..1) of each category's examples to keep
    dev_fraction: float = 0.10
    dev_max: int = 500
    seed: int = 0

    def validate(self) -> None:
        """Raise ``SettingsError`` naming every setting that is out of range or contradicts another."""
        problems: list[str] = []
        if self.mix not in MIXES:
            problems.append(f"the mix must be one of {', '.join(MIXES)} (got {self.mix!r})")
        if not _is_int(self.weakly_known_cap) or self.weakly_known_cap < 0:
            problems.append(f"the WeaklyKnown cap must be a whole number, 0 or more (got {self.weakly_known_cap!r})")
        if self.mix == "custom":
            if not self.shares:
                problems.append(
                    "the custom mix needs a share per category, e.g. HighlyKnown=1, MaybeKnown=1, WeaklyKnown=0.5, Unknown=0"
                )
            else:
                for cat, share in self.shares.items():
                    if cat not in CATEGORIES:
                        problems.append(f"'{cat}' is not a category (categories: {', '.join(CATEGORIES)})")
                    elif isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1 or math.isnan(share):
                        problems.append(f"the share of {cat} must be a number from 0 to 1 (got {share!r})")
        elif self.shares:
            problems.append(f"shares per category are only used by the custom mix (the mix is {self.mix!r}); choose mix 'custom' or leave the shares out")
        if isinstance(self.dev_fraction, bool) or not isinstance(self.dev_fraction, (int, float)) or not 0 < self.dev_fraction <= 0.5:
            problems.append(f"the dev fraction must be above 0 and at most 0.5 (got {self.dev_fraction!r})")
        if not _is_int(self.dev_max) or self.dev_max < len(CATEGORIES):
            problems.append(
                f"the dev split's maximum size must be at least {len(CATEGORIES)}, so every category can have a dev example "
                f"(got {self.dev_max!r})"
            )
        if not _is_int(self.seed):
            problems.append(f"the seed must be a whole number (got {self.seed!r})")
        if problems:
            raise SettingsError("Plan settings: " + "; ".join(problems) + ".")

    def share_of(self, category: str) -> float:
        """The custom mix's share for a category (a category left out follows the recommended mix)."""
        if self.shares and category in self.shares:
            return float(self.shares[category])
        return _RECOMMENDED_SHARES[category]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PlanSettings":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
        out: list[str] = []
        ps = self.probe_settings
        if ps is not None and not ps.is_paper_budget:
            out.append(
                f"Probe budget: {ps.describe()} Re-probe with the paper preset before trusting this mix."
            )
        c = self.counts()
        for cat in CATEGORIES:
            n = c["before"]["counts"][cat]
            if n and not c["dev"]["counts"][cat]:
                out.append(
                    f"{cat} has only {n} probed question{'s' if n != 1 else ''}: too few for a dev example, so dev "
                    f"accuracy says nothing about {cat} questions."
                )
        if c["before"]["counts"]["MaybeKnown"] > c["dev"]["counts"]["MaybeKnown"] and not c["train"]["counts"]["MaybeKnown"]:
            out.append(
                "The training set has no MaybeKnown examples: the paper found that training without them under-serves "
                "MaybeKnown questions (60.1% versus 69.9% right)."
            )
        n_unknown = c["train"]["counts"]["Unknown"]
        if self.settings.mix == "custom" and n_unknown:
            out.append(
                f"The training set keeps {n_unknown} Unknown example{'s' if n_unknown != 1 else ''} with the real "
                "answer: the paper found these make the model hallucinate more once fitted; rely on early stopping."
            )
        return out

    # -- words -------------------------------------------------------------------------------------
    def explain(self) -> str:
        """The plan in plain words: counts and shares before and after, what was dropped and why, and
        the paper's evidence for this mix (numbers from DESIGN.md)."""
        s = self.settings
        c = self.counts()
        before, train, dev, dropped = c["before"], c["train"], c["dev"], c["dropped"]
        n_all = before["total"]
        lines: list[str] = []
        title = f"Plan '{self.name}'" if self.name else "Plan"
        model = f" ({self.model_name})" if self.model_name else ""
        lines.append(f"{title}: the {MIX_LABELS.get(s.mix, s.mix)}, from probe run {self.probe_run_id}{model}.")
        lines.append("")
        lines.append(f"Before: {n_all} probed question{'s' if n_all != 1 else ''}.")
        for cat in CATEGORIES:
            lines.append(f"  {cat:<12} {before['counts'][cat]:>7}  {_pct(before['shares'][cat]):>6}   {CATEGORY_MEANING[cat]}")
        lines.append("")
        lines.append(
            f"Dev split: {dev['total']} question{'s' if dev['total'] != 1 else ''} held out "
            f"({_pct(dev['total'] / n_all if n_all else 0)} of the data; your limit is {s.dev_fraction:.0%}, at most "
            f"{s.dev_max}), stratified by category and group. They are never trained on."
        )
        for cat in CATEGORIES:
            lines.append(f"  {cat:<12} {dev['counts'][cat]:>7}  {_pct(dev['shares'][cat]):>6}")
        lines.append("")
        relabel_note = ""
        if c["relabelled"]:
            relabel_note = f", of which {c['relabelled']} Unknown with the answer \"{IDK_ANSWER}\""
        lines.append(f"Training set: {train['total']} question{'s' if train['total'] != 1 else ''}{relabel_note}.")
        for cat in CATEGORIES:
            eligible = before["counts"][cat] - dev["counts"][cat]
            kept = train["counts"][cat]
            of = f"{kept} of {eligible} kept" if eligible else "none to keep"
            lines.append(f"  {cat:<12} {kept:>7}  {_pct(train['shares'][cat]):>6}   ({of})")
        lines.append("")
        if dropped["total"]:
            lines.append(f"Dropped: {dropped['total']} question{'s' if dropped['total'] != 1 else ''}.")
            for cat in CATEGORIES:
                n = dropped["counts"][cat]
                if n:
                    lines.append(f"  {cat:<12} {n:>7}   {self._drop_reason(cat)}")
        else:
            lines.append("Dropped: nothing; every question not held out for dev trains.")
        groups = c["groups"]
        if len(groups) > 1:
            lines.append("")
            lines.append(
                f"Groups: {len(groups)}. Where a category is kept only in part, the kept examples are spread over the "
                "groups in proportion to their size (the paper sampled per relation)."
            )
            if len(groups) <= 20:
                for g, v in groups.items():
                    lines.append(f"  {g[:24]:<24} before {v['before']:>6} {_pct(v['before_share']):>6}   training {v['train']:>6} {_pct(v['train_share']):>6}")
        lines.append("")
        lines.append(f"Why this mix: the evidence from {PAPER}.")
        for sentence in self._evidence(c):
            lines.append(f"  - {sentence}")
        warnings = self.warnings()
        if warnings:
            lines.append("")
            lines.append("Warnings:")
            for w in warnings:
                lines.append(f"  ! {w}")
        return "\n".join(lines)

    def _drop_reason(self, cat: str) -> str:
        s = self.settings
        if s.mix in ("recommended", "idk") and cat == "WeaklyKnown":
            return f"over your WeaklyKnown cap of {s.weakly_known_cap}: the model knows these only when sampling."
        if s.mix == "recommended" and cat == "Unknown":
            return "new to the model: fitting them makes it hallucinate more."
        if s.mix == "custom":
            return f"outside your share of {s.share_of(cat):.0%} for {cat}."
        return "dropped."

    def _evidence(self, c: dict) -> list[str]:
        s = self.settings
        before, train = c["before"]["counts"], c["train"]["counts"]
        out = [EVIDENCE["unknown_harm"]]
        if s.mix == "recommended":
            out.append(EVIDENCE["filter"])
            out.append(EVIDENCE["maybe"])
            out.append(EVIDENCE["weak_dropped"] if s.weakly_known_cap == 0 else EVIDENCE["weak_capped"].format(cap=s.weakly_known_cap, kept=train["WeaklyKnown"]))
        elif s.mix == "idk":
            out.append(EVIDENCE["idk"])
            out.append(EVIDENCE["maybe"])
            out.append(EVIDENCE["weak_dropped"] if s.weakly_known_cap == 0 else EVIDENCE["weak_capped"].format(cap=s.weakly_known_cap, kept=train["WeaklyKnown"]))
        elif s.mix == "natural":
            out.append(EVIDENCE["natural"])
            out.append(EVIDENCE["filter"] + " Consider the recommended mix.")
        else:  # custom
            kept = [f"{cat} {s.share_of(cat):.0%}" for cat in CATEGORIES]
            out.append(f"Your shares kept: {', '.join(kept)}.")
            if s.share_of("Unknown") > 0 and before["Unknown"]:
                out.append(EVIDENCE["filter"] + " You keep Unknown examples, so early stopping matters.")
            if s.share_of("MaybeKnown") < 1 and before["MaybeKnown"]:
                out.append(EVIDENCE["maybe"])
            if s.share_of("WeaklyKnown") > 0 and before["WeaklyKnown"]:
                out.append(EVIDENCE["weak_capped"].format(cap=f"{s.share_of('WeaklyKnown'):.0%}", kept=train["WeaklyKnown"]))
        out.append(EVIDENCE["single"])
        out.append(EVIDENCE["dev"])
        out.append(EVIDENCE["stop"])
        return out

    def to_dict(self, *, include_examples: bool = False) -> dict:
        """JSON-ready summary (examples only on request: a plan can hold 100k of them)."""
        ps = self.probe_settings
        data = {
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


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


# --------------------------------------------------------------------------- building


def _tiebreak(seed: int, key: Hashable) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}|{key!r}".encode()).digest()[:8], "little")


def _apportion(sizes: Mapping[Any, int], k: int, seed: int) -> dict[Any, int]:
    """Share ``k`` items over buckets in proportion to their sizes (largest remainder).

    Ties in the remainder go to the larger bucket, then to a seeded hash, never to file order.
    Every quota is at most its bucket's size.
    """
    total = sum(sizes.values())
    if k <= 0 or total <= 0:
        return {b: 0 for b in sizes}
    k = min(k, total)
    quotas: dict[Any, int] = {}
    rema: list[tuple[float, int, int, Any]] = []
    for b, n in sizes.items():
        exact = k * n / total
        q = int(math.floor(exact))
        quotas[b] = q
        rema.append((exact - q, n, _tiebreak(seed, b), b))
    left = k - sum(quotas.values())
    rema.sort(key=lambda r: (-r[0], -r[1], r[2]))
    for _frac, n, _h, b in rema:
        if left <= 0:
            break
        if quotas[b] < n:
            quotas[b] += 1
            left -= 1
    return quotas


def _round(x: float) -> int:
    """Round half up (Python's round() rounds half to even, which surprises people reading counts)."""
    return int(math.floor(x + 0.5))


def _sample(items: list, k: int, seed: int, key: str) -> list:
    """A seeded random choice of ``k`` of ``items`` (deterministic for a seed and key)."""
    if k >= len(items):
        return list(items)
    return random.Random(f"{seed}|{key}").sample(items, k)


def _dev_quotas(strata: dict[tuple[str, str], list], settings: PlanSettings) -> dict[tuple[str, str], int]:
    n = sum(len(v) for v in strata.values())
    # Rounded down, so the dev split never exceeds the fraction (except to give every category one example).
    target = min(int(math.floor(settings.dev_fraction * n + 1e-9)), settings.dev_max)
    quotas = _apportion({s: len(v) for s, v in strata.items()}, target, settings.seed)
    by_cat: dict[str, list[tuple[str, str]]] = {}
    for s in strata:
        by_cat.setdefault(s[0], []).append(s)

    def cat_dev(cat: str) -> int:
        return sum(quotas[s] for s in by_cat[cat])

    for cat in CATEGORIES:
        if cat not in by_cat or sum(len(strata[s]) for s in by_cat[cat]) < 2 or cat_dev(cat):
            continue
        # The largest stratum of the category gives one dev example (ties: seeded hash).
        biggest = min(by_cat[cat], key=lambda s: (-len(strata[s]), _tiebreak(settings.seed, s)))
        quotas[biggest] = 1
        if sum(quotas.values()) > target:
            # Make room: one fewer from the stratum with the most dev examples of a category that keeps another.
            donors = [s for s in quotas if quotas[s] > 0 and cat_dev(s[0]) > 1]
            if donors:
                donor = min(donors, key=lambda s: (-quotas[s], -len(strata[s]), _tiebreak(settings.seed, s)))
                quotas[donor] -= 1
    return quotas


def _load_run(project, probe_run_id: Optional[int]) -> tuple[dict, dict[str, dict]]:
    run = project.probe_run(probe_run_id)
    results = {r[0]: {"category": r[1], "group": r[2]} for r in project.db.execute(
        "SELECT example_id, category, group_name FROM probe_results WHERE run_id = ?", [run["id"]]
    ).fetchall()}
    n_total = int(run.get("n_total") or 0)
    if n_total == 0 and not results:
        raise ProjectError(f"Probe run {run['id']} has no questions, so there is nothing to plan. Probe a dataset with questions first.")
    if run.get("status") != "finished" or len(results) < n_total:
        state = {"cancelled": "was cancelled", "failed": "failed", "running": "is still running or was interrupted"}.get(
            str(run.get("status")), f"is {run.get('status')}"
        )
        raise ProjectError(
            f"Probe run {run['id']} is not finished: {len(results)} of {n_total} questions probed (the run {state}). "
            "Resume the probe (run the same probe again; finished questions are kept) and plan when it is done."
        )
    return run, results


def _probe_settings(run: dict) -> Optional[ProbeSettings]:
    try:
        data = json.loads(run.get("settings") or "{}")
    except ValueError:
        return None
    names = {f.name for f in fields(ProbeSettings)}
    try:
        return ProbeSettings(**{k: v for k, v in data.items() if k in names})
    except TypeError:
        return None


def build_plan(project, probe_run_id: Optional[int] = None, settings: PlanSettings = PlanSettings()) -> Plan:
    """Build (not save) a plan from a finished probe run; the latest run when ``probe_run_id`` is None.

    Raises ``ProjectError`` when there is no probe, the run is not finished (with how far it got)
    or it has no questions, and ``SettingsError`` for bad settings, a mix that leaves no training
    example, or a dev split that would be empty (no category with 2 examples and a fraction
    that rounds to none).
    """
    settings.validate()
    run, results = _load_run(project, probe_run_id)
    dataset_examples = project.examples(run["dataset_id"])
    items: list[PlanExample] = []
    for ex in dataset_examples:
        res = results.get(ex.id)
        if res is None:  # not probed (the dataset row changed?): it cannot be placed in a category
            continue
        items.append(
            PlanExample(
                example_id=ex.id, question=ex.question, answers=tuple(ex.answers), group=ex.group,
                category=res["category"], split="", target=ex.answers[0] if ex.answers else "", reason="", raw=ex.raw,
            )
        )
    if not items:
        raise ProjectError(
            f"Probe run {run['id']} has results, but none matches a question of its dataset; the project may be "
            "damaged. Probe the dataset again."
        )

    # 1. The dev split, from all probed examples (the natural distribution), stratified.
    strata: dict[tuple[str, str], list[PlanExample]] = {}
    for e in items:
        strata.setdefault((e.category, e.group), []).append(e)
    quotas = _dev_quotas(strata, settings)
    for (cat, group), members in strata.items():
        for e in _sample(members, quotas[(cat, group)], settings.seed, f"dev|{cat}|{group}"):
            e.split = "dev"
            e.reason = f"held out for dev ({cat}, group {group}): dev exact match decides when training stops"
    if not any(e.split == "dev" for e in items):
        raise SettingsError(
            f"Too few questions: the dev split is empty ({len(items)} probed question{'s' if len(items) != 1 else ''} "
            "and no category with at least 2), so none can be held out to decide when training stops. Probe more questions "
            "(at least 2 in one category) or raise the dev fraction."
        )

    # 2. The mix, over what is left.
    pool: dict[str, dict[str, list[PlanExample]]] = {c: {} for c in CATEGORIES}
    for e in items:
        if e.split != "dev":
            pool.setdefault(e.category, {}).setdefault(e.group, []).append(e)
    for cat, by_group in pool.items():
        n_cat = sum(len(v) for v in by_group.values())
        if not n_cat:
            continue
        keep, kept_reason, drop_reason = _rule(settings, cat, n_cat)
        group_quota = _apportion({g: len(v) for g, v in by_group.items()}, keep, settings.seed)
        for group, members in by_group.items():
            chosen = {id(e) for e in _sample(members, group_quota[group], settings.seed, f"keep|{cat}|{group}")}
            for e in members:
                if id(e) in chosen:
                    e.split = "train"
                    e.reason = kept_reason
                    if settings.mix == "idk" and cat == "Unknown":
                        e.target = IDK_ANSWER
                else:
                    e.split = "dropped"
                    e.reason = drop_reason
    if not any(e.split == "train" for e in items):
        raise SettingsError(
            "Nothing to train on: the plan has no training examples. The "
            f"{settings.mix} mix keeps none of the {sum(1 for e in items if e.split != 'dev')} questions outside the dev "
            "split (probed: " + ", ".join(f"{c} {sum(1 for e in items if e.category == c)}" for c in CATEGORIES) + "). "
            "Choose the idk or natural mix, raise the WeaklyKnown cap or the custom shares, or probe more questions."
        )
    return Plan(
        id=None, probe_run_id=int(run["id"]), settings=settings, examples=items, dataset_id=int(run["dataset_id"]),
        model_name=str(run.get("model_name") or ""), probe_settings=_probe_settings(run),
    )


def _rule(settings: PlanSettings, cat: str, n_cat: int) -> tuple[int, str, str]:
    """How many of a category's (non-dev) examples the mix keeps, and the words for kept and dropped."""
    mix = settings.mix
    if mix == "natural":
        return n_cat, f"kept: natural mix ({cat})", f"dropped: {cat}"
    if mix == "custom":
        share = settings.share_of(cat)
        return (
            _round(share * n_cat),
            f"kept: within your share of {share:.0%} for {cat}",
            f"dropped: {cat} — outside your share of {share:.0%}",
        )
    if cat == "HighlyKnown":
        return n_cat, "kept: the model knows it (HighlyKnown)", "dropped: HighlyKnown"
    if cat == "MaybeKnown":
        return n_cat, "kept: the model sometimes knows it (MaybeKnown); the paper found these needed", "dropped: MaybeKnown"
    if cat == "WeaklyKnown":
        cap = settings.weakly_known_cap
        return (
            min(cap, n_cat),
            f"kept: WeaklyKnown, within your cap of {cap}",
            f"dropped: WeaklyKnown — over your cap of {cap}; the model knows it only when sampling",
        )
    if mix == "idk":
        return n_cat, f"kept, answer relabelled \"{IDK_ANSWER}\": Unknown — new to the model", "dropped: Unknown"
    return 0, "kept: Unknown", "dropped: Unknown — new to the model; fitting it makes the model hallucinate more"


# --------------------------------------------------------------------------- store


def save_plan(project, plan: Plan, name: str = "") -> int:
    """Write the plan and all its examples in one transaction; sets and returns ``plan.id``."""
    if name:
        plan.name = name
    if not plan.name:
        plan.name = f"{plan.settings.mix} mix, probe run {plan.probe_run_id}"
    plan.created_at = time.time()
    c = plan.counts()
    with project.transaction():
        plan_id = project.db["plans"].insert(
            {
                "probe_run_id": plan.probe_run_id, "dataset_id": plan.dataset_id, "name": plan.name,
                "mix": plan.settings.mix, "settings": json.dumps(plan.settings.to_dict(), sort_keys=True),
                "counts": json.dumps(c), "summary": plan.explain(), "n_train": c["train"]["total"],
                "n_dev": c["dev"]["total"], "n_dropped": c["dropped"]["total"], "created_at": plan.created_at,
            }
        ).last_pk
        # Plain executemany: sqlite-utils' insert_all spends most of its time inspecting each value.
        project.db.conn.executemany(
            "INSERT INTO plan_examples (plan_id, example_id, idx, split, category, group_name, question, answers, target, reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (plan_id, e.example_id, i, e.split, e.category, e.group, e.question,
                 json.dumps(list(e.answers), ensure_ascii=False), e.target, e.reason)
                for i, e in enumerate(plan.examples)
            ),
        )
    plan.id = int(plan_id)
    return plan.id


def load_plan(project, plan_id: Optional[int] = None) -> Plan:
    """A saved plan, the latest when ``plan_id`` is None, with each example's original record."""
    if plan_id is None:
        row = project.db.execute("SELECT * FROM plans ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            raise ProjectError(f"{project.path} has no plan yet. Make one from a finished probe first (knowmix plan).")
    else:
        row = project.db.execute("SELECT * FROM plans WHERE id = ?", [plan_id]).fetchone()
        if row is None:
            raise ProjectError(f"{project.path} has no plan number {plan_id}.")
    cols = [d[0] for d in project.db.execute("SELECT * FROM plans LIMIT 0").description]
    p = dict(zip(cols, row))
    cur = project.db.execute(
        "SELECT pe.example_id, pe.question, pe.answers, pe.group_name, pe.category, pe.split, pe.target, pe.reason, e.raw "
        "FROM plan_examples pe LEFT JOIN examples e ON e.dataset_id = ? AND e.example_id = pe.example_id "
        "WHERE pe.plan_id = ? ORDER BY pe.idx",
        [p["dataset_id"], p["id"]],
    )
    examples = [
        PlanExample(
            example_id=r[0], question=r[1], answers=tuple(json.loads(r[2])), group=r[3], category=r[4], split=r[5],
            target=r[6], reason=r[7], raw=json.loads(r[8]) if r[8] else {},
        )
        for r in cur.fetchall()
    ]
    try:
        run = project.probe_run(p["probe_run_id"])
    except ProjectError:
        run = {}
    return Plan(
        id=int(p["id"]), probe_run_id=int(p["probe_run_id"]), settings=PlanSettings.from_dict(json.loads(p["settings"])),
        examples=examples, dataset_id=p["dataset_id"], name=p["name"] or "", model_name=str(run.get("model_name") or ""),
        probe_settings=_probe_settings(run) if run else None, created_at=p["created_at"],
    )


# --------------------------------------------------------------------------- memory


_DTYPE_BYTES = {
    "float32": 4.0, "fp32": 4.0, "float16": 2.0, "fp16": 2.0, "bfloat16": 2.0, "bf16": 2.0,
    "int8": 1.0, "8bit": 1.0, "int4": 0.5, "nf4": 0.5, "4bit": 0.5,
}
_GIB = 1024**3
_MIB = 1024**2


@dataclass(frozen=True)
class MemoryEstimate:
    """A rough byte count for one LoRA training run; see ``estimate_memory``."""

    n_params: int
    lora_rank: int
    dtype: str
    batch_size: int
    seq_len: int
    n_layers: int
    hidden: int
    target_modules: int
    lora_params: int
    weights_bytes: int
    lora_bytes: int  # adapter weights + gradients + AdamW's two states, all fp32
    activation_bytes: int
    overhead_bytes: int  # allocator slack and framework buffers (10%)

    @property
    def total(self) -> int:
        return self.weights_bytes + self.lora_bytes + self.activation_bytes + self.overhead_bytes

    def describe(self) -> str:
        return (
            f"Training needs about {_size(self.total)} of memory: the model's weights {_size(self.weights_bytes)} "
            f"({_count(self.n_params)} parameters in {self.dtype}), the LoRA adapter with its gradients and optimizer "
            f"state {_size(self.lora_bytes)} (rank {self.lora_rank}, {_count(self.lora_params)} trainable parameters), "
            f"working memory for batches of {self.batch_size} x {self.seq_len} tokens {_size(self.activation_bytes)}, "
            f"and {_size(self.overhead_bytes)} of headroom. This is a rough estimate."
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def _size(n: float) -> str:
    return f"{n / _GIB:.1f} GiB" if n >= _GIB / 10 else f"{n / _MIB:.0f} MiB"


def _count(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    if n >= 1e6:
        return f"{n / 1e6:.0f}M"
    if n >= 1e3:
        return f"{n / 1e3:.0f}K"
    return str(n)


def _guess_layers(n_params: int) -> int:
    """Typical depth for a decoder of this size (SmolLM2-135M: 30, 7B: 32, 70B: 80)."""
    for limit, layers in ((5e8, 30), (4e9, 28), (1.5e10, 32), (4e10, 48)):
        if n_params < limit:
            return layers
    return 80


def estimate_memory(
    n_params: int,
    *,
    lora_rank: int = 16,
    dtype: str = "float32",
    batch_size: int = 8,
    seq_len: int = 64,
    n_layers: Optional[int] = None,
    hidden: Optional[int] = None,
    target_modules: int = 7,
    vocab_size: Optional[int] = None,
) -> MemoryEstimate:
    """Rough memory of a LoRA run, to warn before training rather than crash during it.

    - weights: ``n_params`` x bytes of ``dtype`` (frozen; no gradients or optimizer state);
    - LoRA: per layer and target module about ``rank x 2.7 x hidden`` parameters (the average
      in+out width of q/k/v/o/gate/up/down), each with an fp32 weight, gradient and AdamW's two
      states: 16 bytes;
    - activations: ``batch x seq x hidden x layers x 34`` bytes in fp32 (half in 16-bit or
      quantised models, which compute in 16-bit), no gradient checkpointing, plus the logits
      ``batch x seq x vocab`` in fp32, twice (values and gradient);
    - 10% headroom.

    ``n_layers`` and ``hidden`` are guessed from ``n_params`` (params ~ 12 x layers x hidden^2)
    when not given; ``vocab_size`` defaults to 32000.
    """
    problems = []
    if not _is_int(n_params) or n_params <= 0:
        problems.append(f"the number of parameters must be above 0 (got {n_params!r})")
    for label, value in (("LoRA rank", lora_rank), ("batch size", batch_size), ("sequence length", seq_len), ("target modules", target_modules)):
        if not _is_int(value) or value < 1:
            problems.append(f"the {label} must be a whole number of 1 or more (got {value!r})")
    key = str(dtype).strip().lower().replace("torch.", "")
    if key not in _DTYPE_BYTES:
        problems.append(f"unknown dtype {dtype!r} (use float32, float16, bfloat16, int8 or int4)")
    for label, value in (("layers", n_layers), ("hidden size", hidden), ("vocabulary size", vocab_size)):
        if value is not None and (not _is_int(value) or value < 1):
            problems.append(f"the {label} must be a whole number of 1 or more (got {value!r})")
    if problems:
        raise SettingsError("Memory estimate: " + "; ".join(problems) + ".")
    layers = n_layers or _guess_layers(n_params)
    width = hidden or max(64, int(round(math.sqrt(n_params / (12 * layers)) / 64)) * 64)
    vocab = vocab_size or 32000
    per_weight = _DTYPE_BYTES[key]
    weights = int(n_params * per_weight)
    lora_params = int(layers * target_modules * lora_rank * 2.7 * width)
    lora = lora_params * 16
    act_scale = 1.0 if per_weight >= 4 else 0.5
    activations = int(batch_size * seq_len * width * layers * 34 * act_scale) + batch_size * seq_len * vocab * 4 * 2
    overhead = int(0.10 * (weights + lora + activations))
    return MemoryEstimate(
        n_params=n_params, lora_rank=lora_rank, dtype=key, batch_size=batch_size, seq_len=seq_len, n_layers=layers,
        hidden=width, target_modules=target_modules, lora_params=lora_params, weights_bytes=weights, lora_bytes=lora,
        activation_bytes=activations, overhead_bytes=overhead,
    )


def check_memory_fits(estimate: MemoryEstimate, device: str = "cpu") -> Optional[str]:
    """A warning when the run needs more than the device's free memory now, else None (also when
    the free memory cannot be told)."""
    from . import models

    free = models.available_memory(device)
    if free is None or estimate.total <= free:
        return None
    where = "GPU memory" if str(device).startswith("cuda") else "RAM"
    return (
        f"This run needs about {_size(estimate.total)} of {where} but only {_size(free)} is free. Lower the batch "
        "size or the sequence length, train in 16-bit, lower the LoRA rank, or close other programs."
    )


def plan_memory(project, plan: Plan, device: str = "cpu", *, lora_rank: int = 16, batch_size: int = 8) -> tuple[Optional[MemoryEstimate], Optional[str], str]:
    """The memory a default LoRA run on the plan's probed model needs, against the device's free
    memory now: (estimate or None, warning or None, model name or why there is no estimate)."""
    from .errors import ModelError
    from .models import model_shape, resolve_model

    run = project.probe_run(plan.probe_run_id)
    try:
        ref = resolve_model(run["model_path"] if run["model_spec"] != "default" else "default")
    except ModelError as exc:
        return None, None, f"Memory estimate skipped: {exc}"
    shape = model_shape(ref)
    est = estimate_memory(shape.n_params, n_layers=shape.n_layers, hidden=shape.hidden, vocab_size=shape.vocab_size,
                          lora_rank=lora_rank, batch_size=batch_size)
    return est, check_memory_fits(est, device), ref.display_name


# --------------------------------------------------------------------------- export


_ASSISTANT_ROLES = {"assistant", "gpt", "model", "bot", "chatgpt"}


def export_plan(plan: Plan, folder: str | os.PathLike, *, dataset_row: dict) -> dict[str, Path]:
    """Write the planned splits for training elsewhere (Axolotl, LLaMA-Factory, Unsloth).

    ``train.jsonl`` and ``dev.jsonl`` hold the original records in the input's own shape and
    fields, with the answer replaced by the training target where the plan relabelled it;
    ``train_qa.jsonl`` and ``dev_qa.jsonl`` hold plain ``{"question", "answer"}`` rows; ``plan.json``
    the plan's summary and its explanation. The input is always written as JSON Lines, whatever
    its file format was. ``dataset_row`` is the project's ``datasets`` row (shape and mapping).
    Returns ``{"train", "dev", "train_qa", "dev_qa", "plan"}`` -> path.
    """
    shape = dataset_row.get("shape") or "question-answer"
    mapping = dataset_row.get("mapping") or {}
    if isinstance(mapping, str):
        mapping = json.loads(mapping) if mapping.strip() else {}
    out = Path(folder).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProjectError(f"Cannot create the export folder {out}: {exc.strerror or exc}. Pick a folder you can write to.") from None
    train, dev = plan.train(), plan.dev()
    paths = {
        "train": out / "train.jsonl",
        "dev": out / "dev.jsonl",
        "train_qa": out / "train_qa.jsonl",
        "dev_qa": out / "dev_qa.jsonl",
        "plan": out / "plan.json",
    }
    _write_jsonl(paths["train"], (_record(e, shape, mapping) for e in train))
    _write_jsonl(paths["dev"], (_record(e, shape, mapping) for e in dev))
    _write_jsonl(paths["train_qa"], ({"question": e.question, "answer": e.target} for e in train))
    _write_jsonl(paths["dev_qa"], ({"question": e.question, "answer": e.answers[0] if e.answers else e.target} for e in dev))
    summary = {**plan.to_dict(), "explain": plan.explain(), "shape": shape, "files": {k: p.name for k, p in paths.items()}}
    _write_text(paths["plan"], json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    return paths


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    _write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))


def _write_text(path: Path, text: str) -> None:
    write_text_atomic(path, text, advice="Check the folder and the free disk space.")


def _record(e: PlanExample, shape: str, mapping: dict) -> dict:
    """The example's original record, with the answer replaced by the target when they differ."""
    if not e.raw:  # no original record kept: write the plain question-answer shape
        return {"question": e.question, "answers": [e.target] if e.relabelled else list(e.answers)}
    rec = json.loads(json.dumps(e.raw, default=str))  # a deep copy that never shares lists with the plan
    if not e.relabelled:
        return rec
    answer_col = mapping.get("answer")
    question_col = mapping.get("question")
    if shape in ("openai-messages", "sharegpt") or (answer_col and answer_col == question_col and isinstance(rec.get(answer_col), list)):
        col = answer_col or ("messages" if shape == "openai-messages" else "conversations")
        _set_last_assistant(rec, col, e.target)
        return rec
    if answer_col is None:
        answer_col = {"alpaca": "output", "prompt-completion": "completion"}.get(shape, "answers")
    rec[answer_col] = _replace_value(rec.get(answer_col), e.target)
    return rec


def _replace_value(old: Any, target: str) -> Any:
    """``target`` in the old value's type: a list stays a list, SQuAD/TriviaQA objects keep their keys,
    and a completion's leading space (prompt-completion data often has one) is kept."""
    if isinstance(old, list):
        return [target]
    if isinstance(old, dict):
        new = dict(old)
        if "text" in new:
            new["text"] = [target] if isinstance(new["text"], list) else target
        else:
            new["value"] = target
            if "aliases" in new:
                new["aliases"] = []
        return new
    if isinstance(old, str) and old[:1].isspace():
        return old[: len(old) - len(old.lstrip())] + target
    return target


def _set_last_assistant(rec: dict, col: str, target: str) -> None:
    turns = rec.get(col)
    as_text = isinstance(turns, str)
    if as_text:  # CSV/Parquet may store the turns as a JSON string
        try:
            turns = json.loads(turns)
        except ValueError:
            return
    if not isinstance(turns, list):
        return
    for turn in reversed(turns):
        if not isinstance(turn, dict):
            continue
        role = str(turn.get("role", turn.get("from", ""))).strip().lower()
        if role in _ASSISTANT_ROLES:
            key = "content" if "content" in turn else "value" if "value" in turn else ("content" if "role" in turn else "value")
            if isinstance(turn.get(key), list):
                turn[key] = [{"type": "text", "text": target}]
            else:
                turn[key] = target
            break
    rec[col] = json.dumps(turns, ensure_ascii=False) if as_text else turns

