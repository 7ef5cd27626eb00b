"""The SliCK probe: which examples does the model already know?

For every question, the model answers N_ex random few-shot prompts (exemplars drawn once per
group from a pool), once greedily and several times at T=0.5 with top-k 40. P(T=0) is the
share of correct greedy answers, P(T>0) the share of correct samples, and the category follows
Gekhman et al. 2024 (see docs/ARCHITECTURE.md):

    HighlyKnown  P(T=0) = 1            MaybeKnown  0 < P(T=0) < 1
    WeaklyKnown  P(T=0) = 0, P(T>0) > 0  Unknown    P(T=0) = 0, P(T>0) = 0

The *lazy* schedule (the default) skips what cannot change the category: no samples once a
greedy answer is correct (the example is HighlyKnown or MaybeKnown whatever the samples say).
Examples with no correct greedy answer get every sample, so P(T>0) is measured to the end for
WeaklyKnown and Unknown ones. Each sample is seeded by (example, exemplar set, sample index), so
the lazy schedule gives exactly the categories of the full one on a deterministic backend (on a
GPU, equal in distribution); P(T>0) of Known examples is then not measured (stored as NULL).

Exemplars (``draw_exemplar_sets``): each group gets ``n_sets`` distinct sets, with the pool's
questions spread over them as evenly as it allows; when the dataset is its own pool, a large
group sets aside a small seeded pool (``HOLDOUT_SIZE`` rows), as the paper drew exemplars from
held-out data. For each question, an exemplar that is the question itself, whose question names
the question's answer, or whose answer names it while that answer is rare in the group, is replaced
(``LeakCheck``, ``_prepare``), and the swap is recorded; a question left with fewer than ``shots``
exemplars is named in the run's notes (``short_prompt_notes``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from .backends.base import Backend, GenRequest
from .backends.chat import few_shot_messages
from .backends.chat_sandbox import SandboxedTemplate
from .categories import CATEGORIES  # noqa: F401  (the order lives in core.categories; re-exported)
from .datasets import Example
from .errors import Cancelled, ModelCrashed, SettingsError
from .exemplar_sets import group_sets as deal_group_sets
from .jobs import CancelToken, ProgressCallback, RateMeter, no_progress
from .scoring import MATCH_MODES, SCORER_VERSION, Verdict, mode_for, pruner_for, scorer_for
from .scoring.judge import ask_judge
from .scoring.text import ARTICLES, strip_articles, words
from .scoring.words import STOP
from .server_sessions import session_note, with_sessions

# qa-v4: qa-v3 with fewer exemplars replaced (``LeakCheck``): an exemplar with the same answer is shown
# when that answer is common in the group (at least COMMON_SHARE of its rows), and an answer made of
# function words ("The Who") no longer rejects every exemplar whose question holds them.
# qa-v3: qa-v2 with distinct exemplar sets, a held-out exemplar pool in large groups, no exemplar
# that gives the answer away, and every sample of examples without a correct greedy answer.
# qa-v2: a chat row's own system turn, then four "Q: <q>\nA: <a>" pairs separated by a blank line,
# then "Q: <q>\nA:"; the answer-length limit follows the answers (``answer_token_limit``) and the
# matching mode is part of the settings. (qa-v1: no system turn, 24 tokens, exact match.)
PROMPT_FORMAT = "qa-v4"
ANSWER_TOKENS_CAP = 96  # the longest answer-length limit the gold answers can ask for
# When the dataset is its own exemplar pool, a group of at least HOLDOUT_MIN_ROWS rows sets aside
# HOLDOUT_SIZE of them (seeded) as its pool: enough for 10 distinct 4-shot sets with room to replace
# exemplars that give an answer away, and at most a tenth of the group.
HOLDOUT_SIZE = 20
HOLDOUT_MIN_ROWS = 200
# An answer on at least this share of a group's pool rows is common there: an exemplar may show it
# (the paper's random draw would); a rarer one would give the answer away and is replaced.
COMMON_SHARE = 0.10
SWAP_REASONS = {
    "self": "the question itself",
    "same-answer": "its answer names this question's answer (rare in the group)",
    "names-answer": "its question names this question's answer",
}
MATCH_LABEL = {
    "auto": "exact match for entity answers, the grading rules on the answer key for sentence answers",
    "exact": "exact match with the whole gold answer (the paper's), numbers, dates and names folded as a grader reads them",
    "key": "the answer states the answer key without negating it, hedging or naming another thing",
    "judge": "the grading rules, and a calibrated judge model for the answers they cannot decide",
}


@dataclass(frozen=True)
class ProbeSettings:
    """What the probe asks of the model. Defaults are the paper's budget."""

    n_sets: int = 10  # exemplar sets per question (N_ex)
    shots: int = 4
    samples_per_set: int = 16
    temperature: float = 0.5
    top_k: int = 40
    max_tokens: int = 24
    seed: int = 0
    schedule: str = "lazy"  # "lazy" | "full"
    preset: str = "paper"
    chunk_size: int = 16  # examples per batch written to the project; does not change results
    match: str = "auto"  # "auto" | "exact" | "key" | "judge" (see MATCH_LABEL)
    chat_template: bool = False  # prompt with the model's chat template (exemplars as turns)
    # judge mode: another local model (a GGUF or a folder) answers the yes/no questions instead of
    # the probed one; "" = the probed model. Its fingerprint, not its path, joins the run's identity.
    judge_model: str = ""

    def validate(self) -> None:
        problems = []
        if self.n_sets < 1:
            problems.append(f"exemplar sets must be at least 1 (got {self.n_sets})")
        if self.shots < 0:
            problems.append(f"shots must be 0 or more (got {self.shots})")
        if self.samples_per_set < 0:
            problems.append(f"samples per set must be 0 or more (got {self.samples_per_set})")
        if self.temperature <= 0 and self.samples_per_set:
            problems.append("sampling needs a temperature above 0")
        if self.top_k < 0:
            problems.append(f"top-k must be 0 (off) or more (got {self.top_k})")
        if self.max_tokens < 1:
            problems.append(f"max tokens must be at least 1 (got {self.max_tokens})")
        if self.schedule not in ("lazy", "full"):
            problems.append(f"schedule must be 'lazy' or 'full' (got {self.schedule!r})")
        if self.judge_model and self.match != "judge":
            problems.append("a judge model is used only with match 'judge'")
        if self.match not in MATCH_MODES:
            problems.append(f"match must be one of {', '.join(MATCH_MODES)} (got {self.match!r})")
        if self.chunk_size < 1:
            problems.append(f"batch size must be at least 1 (got {self.chunk_size})")
        if problems:
            raise SettingsError("Probe settings: " + "; ".join(problems) + ".")

    @property
    def is_paper_budget(self) -> bool:
        """At least the paper's budget: 10 sets of 4 shots, 16 samples per set at T=0.5, top-k 40."""
        return (
            self.n_sets >= 10 and self.shots == 4 and self.samples_per_set >= 16 and self.temperature == 0.5 and self.top_k == 40
        )

    @classmethod
    def from_dict(cls, data: Any) -> "ProbeSettings":
        """Settings as stored (``identity()``'s JSON, parsed): the one reader for the summary, the
        plan, the report and the app. Keys it does not know (``prompt_format``) are skipped."""
        if not isinstance(data, Mapping):
            raise SettingsError(f"Stored probe settings are not a JSON object (got {type(data).__name__}).")
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if data.get("prompt_format", "qa-v1") == "qa-v1":
            values.setdefault("match", "exact")  # runs before qa-v2 matched exactly
        return cls(**values)

    @classmethod
    def from_json(cls, text: Optional[str]) -> "ProbeSettings":
        """``from_dict`` of a stored JSON text; ``SettingsError`` when it does not parse."""
        try:
            return cls.from_dict(json.loads(text or "{}"))
        except ValueError as exc:
            raise SettingsError(f"Stored probe settings cannot be read ({exc}).") from None

    def identity(self, judge_fingerprint: str = "") -> str:
        """The settings that change results, as canonical JSON (chunk size does not; the judge
        model counts by its fingerprint, so a moved file is the same judge)."""
        data = asdict(self)
        data.pop("chunk_size")
        judge = data.pop("judge_model")
        if judge and self.match == "judge":
            data["judge_fingerprint"] = judge_fingerprint or judge
        data["prompt_format"] = PROMPT_FORMAT
        data["scorer"] = SCORER_VERSION  # results graded by other rules never mix with these
        return json.dumps(data, sort_keys=True)

    def describe(self) -> str:
        budget = (
            f"{self.n_sets} exemplar sets x {self.shots} shots, 1 greedy + {self.samples_per_set} samples per set "
            f"at T={self.temperature:g}, top-k {self.top_k}"
        )
        how = f" Answers are scored by {self.match} match ({MATCH_LABEL.get(self.match, self.match)})."
        if self.match == "judge" and self.judge_model:
            how += f" The judge is another model: {os.path.basename(self.judge_model.rstrip('/')) or self.judge_model}."
        if self.chat_template:
            how += " Prompts use the model's chat template (exemplars as turns)."
        if self.is_paper_budget:
            return f"{self.preset} preset: the paper's full budget ({budget}).{how}"
        return (
            f"{self.preset} preset: CHEAPER than the paper ({budget}; the paper uses 10 sets and 16 samples). "
            f"With fewer exemplar sets the Unknown category is less reliable.{how}"
        )

    def match_for(self, example: Example) -> str:
        """The matching mode used for ``example``: "auto" is exact for entity answers, key otherwise
        (``core.scoring.mode_for``); "judge" stays "judge" (the key rules, then the judge)."""
        if self.match == "judge":
            return "judge"
        return mode_for(self.match, example.entity_shaped)


PRESETS: dict[str, ProbeSettings] = {
    "paper": ProbeSettings(),
    "quick": ProbeSettings(n_sets=4, samples_per_set=8, preset="quick"),
    "smoke": ProbeSettings(n_sets=2, samples_per_set=2, preset="smoke"),
}


def preset(name: str, **overrides: object) -> ProbeSettings:
    try:
        base = PRESETS[name]
    except KeyError:
        raise SettingsError(f"Unknown probe preset '{name}'. Choose one of: {', '.join(PRESETS)}.") from None
    changes: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}  # field values, checked by validate()
    settings = replace(base, **changes)
    # the matching mode and the chat template are not part of the budget: they keep the preset's name
    budget_changed = replace(settings, match=base.match, chat_template=base.chat_template, judge_model=base.judge_model) != base
    if overrides and any(v is not None for v in overrides.values()) and budget_changed:
        settings = replace(settings, preset=f"{name}+custom")
    settings.validate()
    return settings


def categorize(greedy_correct: int, greedy_total: int, sampled_correct: int) -> str:
    if greedy_total and greedy_correct == greedy_total:
        return "HighlyKnown"
    if greedy_correct > 0:
        return "MaybeKnown"
    if sampled_correct > 0:
        return "WeaklyKnown"
    return "Unknown"


def sample_seed(base_seed: int, example_id: str, set_idx: int, sample_idx: int) -> int:
    digest = hashlib.sha256(f"{base_seed}|{example_id}|{set_idx}|{sample_idx}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def build_prompt(exemplars: Sequence[Example], question: str, system: str = "") -> str:
    """The few-shot prompt; each exemplar is shown with its own answer (the data's own style) and a
    chat row's system turn comes first."""
    head = f"{system.strip()}\n\n" if system and system.strip() else ""
    shots = "".join(f"Q: {ex.question}\nA: {ex.answers[0]}\n\n" for ex in exemplars)
    return f"{head}{shots}Q: {question}\nA:"


def answer_token_limit(answers: Iterable[str], floor: int, cap: int = ANSWER_TOKENS_CAP) -> int:
    """Tokens to allow for an answer: what the longest gold answer needs (about 3.5 characters a
    token, with half again as much room and 8 tokens to spare), at least ``floor`` (the settings'
    max_tokens) and at most ``cap`` unless ``floor`` is higher."""
    longest = max((len(a) for a in answers), default=0)
    need = int(longest / 3.5 * 1.5 + 8 + 0.999)
    return max(floor, min(need, cap))


def check_pool_size(n: int, settings: ProbeSettings) -> None:
    """Refuse a pool too small for the prompts, before any work is written."""
    need = settings.shots + 1
    if settings.shots and n < need:
        noun = "question" if n == 1 else "questions"
        raise SettingsError(
            f"The exemplar pool has only {n} usable {noun}; {settings.shots}-shot prompts need at least {need}. "
            "Add questions to the pool file (--pool) or use a larger dataset."
        )


def exemplar_pools(
    pool: Sequence[Example], groups: Iterable[str], settings: ProbeSettings, hold_out: bool = False
) -> tuple[dict[str, list[Example]], dict[str, str]]:
    """The questions each group's exemplars come from, and a note per group that needs one.

    A group's own pool questions, or, with ``hold_out`` (the dataset is its own pool) and at
    least ``HOLDOUT_MIN_ROWS`` of them, ``HOLDOUT_SIZE`` drawn with the seed. A group with too
    few pool questions borrows from the whole pool. Deterministic, so a resumed run finds the
    same pools without storing them.
    """
    need = settings.shots + 1
    by_group: dict[str, list[Example]] = {}
    for ex in pool:
        by_group.setdefault(ex.group, []).append(ex)
    check_pool_size(len(pool), settings)
    pools: dict[str, list[Example]] = {}
    notes: dict[str, str] = {}
    for group in sorted(set(groups)):
        candidates = by_group.get(group, [])
        if len(candidates) < need:
            notes[group] = (
                f"the pool has {len(candidates)} questions of group '{group}' (fewer than {need}); "
                "its exemplars are drawn from all groups"
            )
            candidates = list(pool)
        elif hold_out and settings.shots and len(candidates) >= HOLDOUT_MIN_ROWS:
            chosen = set(random.Random(f"{settings.seed}|pool|{group}").sample(range(len(candidates)), HOLDOUT_SIZE))
            notes[group] = (
                f"exemplars of group '{group}' come from {HOLDOUT_SIZE} of its {len(candidates)} rows, set aside "
                "with the seed (the paper drew exemplars from held-out data); those rows are probed too, each "
                "with the other pool rows as exemplars, because the plan needs a category for every row"
            )
            candidates = [ex for i, ex in enumerate(candidates) if i in chosen]
        pools[group] = candidates
    return pools, notes


def draw_exemplar_sets(
    pool: Sequence[Example], groups: Iterable[str], settings: ProbeSettings, hold_out: bool = False
) -> tuple[dict[str, list[list[str]]], dict[str, str]]:
    """Draw each group's exemplar sets once, with a seed, from its pool (``exemplar_pools``).

    Each set holds ``shots + 1`` ids: the last is a spare for a question whose exemplar must be
    replaced (``_prepare``). The sets of a group are distinct (as sets of shown exemplars) and
    use the pool's questions as evenly as it allows (``core.exemplar_sets``). A group whose pool
    cannot give ``n_sets`` distinct sets gets a note naming how many it gives.
    """
    pools, notes = exemplar_pools(pool, groups, settings, hold_out)
    sets: dict[str, list[list[str]]] = {}
    for group, candidates in pools.items():
        if not settings.shots:
            sets[group] = [[] for _ in range(settings.n_sets)]
            continue
        ids = [ex.id for ex in candidates]
        rng = random.Random(f"{settings.seed}|exemplars|{group}")
        group_sets = deal_group_sets(ids, settings.shots, settings.n_sets, rng)
        seen = {frozenset(x[: settings.shots]) for x in group_sets}
        sets[group] = group_sets
        if len(seen) < settings.n_sets:
            warn = (
                f"group '{group}' can give only {len(seen)} distinct exemplar sets from its {len(ids)} pool questions "
                f"(asked for {settings.n_sets}); some prompts repeat, so P(T=0) and P(T>0) rest on fewer distinct "
                "prompts. A larger pool (--pool) fixes it"
            )
            notes[group] = f"{notes[group]}; {warn}" if group in notes else warn
    return sets, notes


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


class LeakCheck:
    """Which exemplars may not be shown with one question (the paper drew them at random; these are
    KnowMix's rules, docs/ARCHITECTURE.md "Departures from the paper"):

    - ``self``: the question itself;
    - ``names-answer``: an exemplar whose question names this question's answer ("Who is B married
      to? A: A" before "Who is A married to?");
    - ``same-answer``: an exemplar whose answer names this question's answer, only when that answer
      is *rare* in the group (``common`` holds the group's answers on at least ``COMMON_SHARE`` of
      its rows). A dominant answer (P495: 71% "United States of America") is shown as often as the
      paper's random draw would show it; forbidding it would probe those questions on prompts that
      never hold their answer, unlike the others.

    An answer made only of common words ("The Who" folds to "who") names nothing: every question
    holds those words, so it is compared whole with exemplar answers and never searched for in
    exemplar questions (before, it rejected every exemplar of its group).
    """

    def __init__(self, example: Example, common: frozenset[str] = frozenset()) -> None:
        self.example_id = example.id
        texts = [t for t in dict.fromkeys((*example.answers, *example.answer_keys)) if _folded(t)]
        named = {_folded(t) for t in texts if _has_name_word(t)}
        rare = not any(" ".join(_folded(t)) in common for t in texts)
        self.names = named
        self.answer_in = named if rare else set()
        self.answer_is = {_folded(t) for t in texts if rare and not _has_name_word(t)}

    def reason(self, ex: Example) -> str:
        """Why ``ex`` may not be an exemplar here ("" = it may): a key of ``SWAP_REASONS``."""
        if ex.id == self.example_id:
            return "self"
        if any(_folded(a) in self.answer_is or _holds(_words(a), self.answer_in) for a in ex.answers):
            return "same-answer"
        if _holds(_words(ex.question), self.names):
            return "names-answer"
        return ""


# Folding a text is the slow part of the check and the same exemplar texts come back for every
# question of a group: each text is folded once (``core.scoring``'s rules, as ``Mentions`` folds).
@functools.lru_cache(maxsize=1 << 16)
def _words(text: str) -> tuple[str, ...]:
    return tuple(words(text))


@functools.lru_cache(maxsize=1 << 16)
def _folded(text: str) -> tuple[str, ...]:
    """The answer as exact match compares it (``normalize_answer``'s words)."""
    return tuple(strip_articles(list(_words(text))))


def _holds(ws: tuple[str, ...], targets: set[tuple[str, ...]]) -> bool:
    """True when ``ws`` holds one of ``targets`` as whole words."""
    for t in targets:
        n = len(t)
        if any(ws[i : i + n] == t for i in range(len(ws) - n + 1)):
            return True
    return False


def _has_name_word(text: str) -> bool:
    """True when ``text`` has a word that is not a function word ("The Who" has none)."""
    return any(w not in STOP and w not in ARTICLES for w in _words(text))


def common_answers(pool: Sequence[Example], groups: Iterable[str], settings: ProbeSettings) -> dict[str, frozenset[str]]:
    """Per group, the folded answers on at least ``COMMON_SHARE`` of the group's pool rows (all of
    them, before a hold-out; the whole pool for a group that borrows, as ``exemplar_pools``)."""
    by_group: dict[str, list[Example]] = {}
    for ex in pool:
        by_group.setdefault(ex.group, []).append(ex)
    out: dict[str, frozenset[str]] = {}
    for group in set(groups):
        rows = by_group.get(group, [])
        if len(rows) < settings.shots + 1:
            rows = list(pool)
        counts: dict[str, int] = {}
        for ex in rows:
            for norm in {" ".join(_folded(a)) for a in ex.answers}:
                counts[norm] = counts.get(norm, 0) + 1
        out[group] = frozenset(a for a, n in counts.items() if a and n >= COMMON_SHARE * len(rows))
    return out


def short_prompt_notes(
    examples: Sequence[Example],
    pool: Sequence[Example],
    sets: dict[str, list[list[str]]],
    settings: ProbeSettings,
    hold_out: bool,
) -> dict[str, str]:
    """Per group, a warning when some question gets fewer than ``shots`` exemplars in a set (the
    pool has none left that keeps its answer hidden): such prompts are never shorter silently."""
    if not settings.shots:
        return {}
    groups = {ex.group for ex in examples}
    pools, _ = exemplar_pools(pool, groups, settings, hold_out)
    common = common_answers(pool, groups, settings)
    pool_by_id = {ex.id: ex for ex in pool}
    short: dict[str, list[int]] = {}
    for ex in examples:
        check = LeakCheck(ex, common[ex.group])
        fewest = min(
            len(_choose_exemplars(ex, ids, k, pool_by_id, pools[ex.group], settings.seed, check)[0])
            for k, ids in enumerate(sets[ex.group])
        )
        if fewest < settings.shots:
            short.setdefault(ex.group, []).append(fewest)
    return {
        group: (
            f"{len(f)} question{'s' if len(f) != 1 else ''} of group '{group}' {'get' if len(f) != 1 else 'gets'} fewer than {settings.shots} exemplars "
            f"in some set (as few as {min(f)}): the pool has no other exemplar that keeps the answer hidden. "
            "A larger pool (--pool) fixes it"
        )
        for group, f in sorted(short.items())
    }


def _choose_exemplars(
    example: Example,
    ids: Sequence[str],
    k: int,
    pool_by_id: dict[str, Example],
    candidates: Sequence[Example],
    seed: int,
    check: Optional[LeakCheck] = None,
) -> tuple[list[str], list[dict]]:
    """The ``shots`` exemplars of set ``k`` for ``example``: the set's own, with any that ``check``
    forbids replaced by the spare, or else by one drawn (seeded by example and set) from the
    group's pool. Returns the ids and the swaps made."""
    shots = max(0, len(ids) - 1)
    check = check or LeakCheck(example)
    chosen: list[str] = []
    swaps: list[dict] = []
    for i in ids[:shots]:
        why = check.reason(pool_by_id[i])
        if why:
            swaps.append({"set": k, "dropped": i, "why": why})
        else:
            chosen.append(i)
    spares: list[str] = []
    if len(chosen) < shots and len(ids) > shots and not check.reason(pool_by_id[ids[shots]]):
        spares.append(ids[shots])
    if len(chosen) + len(spares) < shots:
        rng = random.Random(f"{seed}|redraw|{example.id}|{k}")
        taken = set(ids)
        for ex in rng.sample(list(candidates), len(candidates)):
            if len(chosen) + len(spares) >= shots:
                break
            if ex.id not in taken and not check.reason(ex):
                spares.append(ex.id)
                taken.add(ex.id)
    for swap, by in zip(swaps, spares + [None] * len(swaps)):
        swap["by"] = by  # None: the pool had no exemplar left that keeps the answer hidden
    chosen.extend(spares)
    return chosen, swaps


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
        matcher=scorer_for(example, settings.match),
        pruner=pruner_for(example, settings.match),
        prompts=prompts,
        exemplar_ids=used,
        swaps=swaps,
        max_tokens=answer_token_limit(longest, settings.max_tokens),
        mode=mode,
        chat=render is not None,
    )


def chat_renderer(backend: Backend) -> Callable[[Sequence[Example], Example], str]:
    """Prompts in the model's chat template: the row's system turn, the exemplars as user/assistant
    turns (each with its own answer), the question as the last user turn.

    The template comes with the model and may loop or build gigabytes: it is rendered in its own
    child process with a time and a size limit (``SandboxedTemplate``), never in this one; that
    process ends when the returned function is dropped."""
    template = SandboxedTemplate.of(backend.info)

    def render(exemplars: Sequence[Example], example: Example) -> str:
        shots = [(ex.question, ex.answers[0]) for ex in exemplars]
        return template.render(few_shot_messages(example.system, shots, example.question))

    return render


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


def probe_batch(
    backend: Backend,
    works: list[_Work],
    settings: ProbeSettings,
    cancel: CancelToken,
    on_step: Callable[[str], None] = lambda _m: None,
    judge: Optional[Backend] = None,
) -> None:
    """Fill greedy and sampled answers for a batch, set-major so that prompts share their prefix.
    ``judge`` answers judge mode's yes/no questions (default: the probed model)."""
    judge = judge or backend
    t0 = time.monotonic()
    for k in range(settings.n_sets):
        cancel.raise_if_cancelled("The probe")
        reqs = [
            # key mode stops a greedy answer once it holds the key; exact mode keeps it whole
            GenRequest(w.prompts[k], max_tokens=w.max_tokens, prune=w.pruner if w.mode != "exact" else None, chat=w.chat)
            for w in works
        ]
        got = backend.generate(reqs)
        verdicts = score_answers(judge, [(w, answers[0]) for w, answers in zip(works, got)])
        for w, answers, v in zip(works, got, verdicts):
            w.greedy.append(answers[0])
            w.greedy_reasons.append(("✓ " if v.right else "✗ ") + v.reason)
            w.greedy_ok += v.right
        on_step(f"greedy answers, exemplar set {k + 1}/{settings.n_sets}")
    for w in works:
        w.samples = [[] for _ in range(settings.n_sets)]
    if settings.samples_per_set:
        for k in range(settings.n_sets):
            if settings.schedule == "full":
                pending = works
            else:  # examples with no correct greedy answer: every sample, so P(T>0) is measured to the end
                pending = [w for w in works if w.greedy_ok == 0]
            if not pending:
                break
            cancel.raise_if_cancelled("The probe")
            reqs = [
                GenRequest(
                    w.prompts[k],
                    n=settings.samples_per_set,
                    temperature=settings.temperature,
                    top_k=settings.top_k,
                    seeds=tuple(sample_seed(settings.seed, w.example.id, k, j) for j in range(settings.samples_per_set)),
                    max_tokens=w.max_tokens,
                    prune=w.pruner,
                    chat=w.chat,
                )
                for w in pending
            ]
            got = backend.generate(reqs)
            verdicts = score_answers(judge, [(w, a) for w, answers in zip(pending, got) for a in answers])
            at = 0
            for w, answers in zip(pending, got):
                w.samples[k] = answers
                w.sampled_n += len(answers)
                w.sampled_ok += sum(v.right for v in verdicts[at : at + len(answers)])
                at += len(answers)
            on_step(f"samples, exemplar set {k + 1}/{settings.n_sets}")
    per_example = (time.monotonic() - t0) / max(1, len(works))
    for w in works:
        w.seconds = per_example


def probe_examples(
    backend: Backend,
    examples: Sequence[Example],
    pool: Sequence[Example],
    settings: ProbeSettings,
    exemplar_sets: dict[str, list[list[str]]],
    *,
    run_id: int = 0,
    on_results: Callable[[list[dict]], None] = lambda _rows: None,
    progress: ProgressCallback = no_progress,
    cancel: Optional[CancelToken] = None,
    already_done: int = 0,
    total: Optional[int] = None,
    judge: Optional[Backend] = None,
    hold_out: bool = False,
) -> list[dict]:
    """Probe ``examples`` batch by batch; ``on_results`` gets each finished batch (to save it).
    ``hold_out``: the pool is the dataset itself, as ``draw_exemplar_sets`` was told."""
    settings.validate()
    cancel = cancel or CancelToken()
    pool_by_id = {ex.id: ex for ex in pool}
    pools, _ = exemplar_pools(pool, {ex.group for ex in examples}, settings, hold_out)
    common = common_answers(pool, pools, settings)
    render = chat_renderer(backend) if settings.chat_template else None
    ordered = sorted(examples, key=lambda ex: ex.group)  # stable: file order within a group
    total = total if total is not None else already_done + len(ordered)
    meter = RateMeter(total, already_done)
    done = already_done
    progress(meter.update(done, "starting"))
    out: list[dict] = []
    i = n_batch = 0
    while i < len(ordered):
        group = ordered[i].group
        batch = [ordered[i]]
        i += 1
        while i < len(ordered) and len(batch) < settings.chunk_size and ordered[i].group == group:
            batch.append(ordered[i])
            i += 1
        n_batch += 1
        works = [
            _prepare(ex, exemplar_sets[ex.group], pool_by_id, settings, render, pools[ex.group], common[ex.group]) for ex in batch
        ]
        try:
            on_step = lambda m, d=done, g=group: progress(meter.update(d, f"{g}: {m}"))  # bound now, called now
            probe_batch(backend, works, settings, cancel, on_step, judge)
        except ModelCrashed as exc:  # say where, in the words of the probe, not of the backend
            which = f"question {done + 1}" if len(batch) == 1 else f"questions {done + 1}-{done + len(batch)}"
            raise exc.retold(doing=f"probing group '{group}' (batch {n_batch}, {which} of {total})") from None
        rows = [w.result(run_id, settings) for w in works]
        on_results(rows)
        out.extend(rows)
        done += len(rows)
        progress(meter.update(done, f"{group}: batch saved"))
    return out


# -- the job: a probe tied to a project ------------------------------------------------------------


@dataclass
class ProbeOutcome:
    run_id: int
    status: str  # "finished" | "cancelled" | "already finished"
    n_total: int
    n_done: int
    resumed_from: int
    seconds: float
    settings: ProbeSettings
    model_name: str
    notes: dict[str, str]


def run_probe(
    project,
    *,
    dataset_id: int,
    pool_dataset_id: Optional[int],
    model_spec: str,
    settings: ProbeSettings,
    backend_name: str = "auto",
    allow_pickle: bool = False,
    backend: Optional[Backend] = None,
    progress: ProgressCallback = no_progress,
    cancel: Optional[CancelToken] = None,
    on_status: Callable[[str], None] = lambda _m: None,
    backend_options: Optional[dict] = None,
    isolate: bool = True,
    judge_backend: Optional[Backend] = None,
) -> ProbeOutcome:
    """Start, or resume, the probe of a stored dataset with a model; results go to ``project``.

    With ``settings.judge_model`` the judge questions go to that model, loaded here like the probed
    one (or ``judge_backend``, already loaded, e.g. by a test).

    A run is identified by (dataset content, pool content, model fingerprint, settings): the same
    command after a crash, a kill or a cancel continues that run and skips finished examples.

    Without ``backend`` the model is loaded here, in a child process unless ``isolate`` is False:
    a native crash of llama.cpp or torch then ends only the child and arrives as ``ModelCrashed``
    (the run is marked failed and resumes like after a kill). A ``backend`` passed in is used as
    it is (the app passes its own process backend; tests and the benchmark an in-process one).
    """
    from .backends import backend_for
    from .models import model_fingerprint, resolve_model

    settings.validate()
    cancel = cancel or CancelToken()
    examples = project.examples(dataset_id)
    pool = project.examples(pool_dataset_id) if pool_dataset_id is not None else examples
    if backend is not None:
        fingerprint, model_name, model_path, bname = backend.info.fingerprint, backend.info.name, backend.info.path, backend.name
    else:
        ref = resolve_model(model_spec, allow_pickle=allow_pickle)
        on_status(f"Checking {ref.display_name} ...")
        fingerprint = model_fingerprint(ref)
        model_name, model_path, bname = ref.display_name, str(ref.path), backend_for(ref, backend_name)
    judge_ref = None
    judge_fp = ""
    if settings.judge_model:
        if judge_backend is not None:
            judge_fp = judge_backend.info.fingerprint
        else:
            judge_ref = resolve_model(settings.judge_model, allow_pickle=allow_pickle)
            judge_fp = model_fingerprint(judge_ref)
    ident = settings.identity(judge_fp)
    # a server's seed check is recorded per session in the run's note, not in its identity (it can flip);
    # runs made when it was in the identity are still found
    legacy = backend.info.extra.get("run_identity") if backend is not None else None
    # Find or create the run and claim it in one transaction: a second process probing the same
    # project then either waits for this to commit and finds the run claimed (a ProjectError that
    # says the project is in use), or claims a run whose owner was killed and resumes it.
    with project.transaction():
        run = project.find_probe_run(
            dataset_id=dataset_id, pool_dataset_id=pool_dataset_id, model_fingerprint=fingerprint, settings=ident
        )
        if run is None and legacy:
            run = project.find_probe_run(
                dataset_id=dataset_id,
                pool_dataset_id=pool_dataset_id,
                model_fingerprint=fingerprint,
                settings=_with(ident, legacy),
            )
        if run is None:
            groups = {ex.group for ex in examples}
            sets, notes = draw_exemplar_sets(pool, groups, settings, hold_out=pool_dataset_id is None)
            for group, warn in short_prompt_notes(examples, pool, sets, settings, pool_dataset_id is None).items():
                notes[group] = f"{notes[group]}; {warn}" if group in notes else warn
            run_id = project.create_probe_run(
                dataset_id=dataset_id,
                pool_dataset_id=pool_dataset_id,
                model_spec=str(model_spec),
                model_name=model_name,
                model_path=model_path,
                model_fingerprint=fingerprint,
                backend=bname,
                preset=settings.preset,
                settings=ident,
                n_total=len(examples),
            )
            project.save_exemplar_sets(run_id, sets, notes)
        else:
            run_id = run["id"]
            sets, notes = project.exemplar_sets(run_id)
        project.claim_probe_run(run_id)
    try:
        return _probe_claimed_run(
            project,
            run,
            run_id,
            sets,
            notes,
            examples,
            pool,
            settings,
            model_name,
            bname,
            backend,
            ref if backend is None else None,
            fingerprint,
            allow_pickle,
            backend_options,
            progress,
            cancel,
            on_status,
            isolate,
            judge_backend,
            judge_ref,
            judge_fp,
        )
    finally:
        project.release_probe_run(run_id)


def _calibrate_judge(project, run_id: int, run, judge: Backend, examples, settings: ProbeSettings, on_status) -> None:
    """Measure the judge on the data before it grades anything (``core.scoring.judge``): stored with
    the run and shown; a judge above the false-yes limit is refused with its figure."""
    from .scoring.judge import Calibration, calibrate

    stored = (run or {}).get("judge_calibration") or ""
    if stored:
        data = json.loads(stored)
        cal = Calibration(int(data["n_right"]), int(data["yes_right"]), int(data["n_wrong"]), int(data["yes_wrong"]))
    else:
        on_status("Calibrating the judge on this dataset's own answers ...")
        cal = calibrate(judge, examples, settings.seed)
        project.update_probe_run(run_id, judge_calibration=json.dumps(cal.to_dict()))
    on_status(f"Judge calibration: {cal.words()}.")
    cal.check()


def _crash_told(exc: ModelCrashed, done: int, total: int) -> ModelCrashed:
    """The crash as the CLI tells it: what is saved and how to go on (the app re-tells the last part)."""
    return exc.retold(
        saved=f"Finished work is saved in the project ({done} of {total} questions).",
        resume="Run the same command again to resume.",
    )


def _load_own_backend(
    ref, bname: str, fingerprint: str, allow_pickle: bool, backend_options: Optional[dict], isolate: bool
) -> Backend:
    from .backends import load_backend

    options = dict(backend_options or {})
    if bname == "llama.cpp":
        options["fingerprint"] = fingerprint
    else:
        options.pop("n_threads", None)
    return load_backend(ref, bname, allow_pickle=allow_pickle, isolate=isolate, **options)


def _with(ident: str, extra: dict) -> str:
    return json.dumps({**json.loads(ident), **extra}, sort_keys=True)


def _probe_claimed_run(
    project,
    run,
    run_id,
    sets,
    notes,
    examples,
    pool,
    settings,
    model_name,
    bname,
    backend,
    ref,
    fingerprint,
    allow_pickle,
    backend_options,
    progress,
    cancel,
    on_status,
    isolate,
    judge_backend=None,
    judge_ref=None,
    judge_fp="",
) -> ProbeOutcome:
    done_ids = project.done_example_ids(run_id)
    todo = [ex for ex in examples if ex.id not in done_ids]
    resumed_from = len(done_ids)
    prior_seconds = float((run or {}).get("seconds") or 0.0)
    if not todo:
        if (run or {}).get("status") != "finished":
            project.update_probe_run(run_id, status="finished", n_done=len(done_ids), finished_at=time.time())
        return ProbeOutcome(
            run_id, "already finished", len(examples), len(done_ids), resumed_from, prior_seconds, settings, model_name, notes
        )
    if resumed_from:
        on_status(f"Resuming probe run {run_id}: {resumed_from} of {len(examples)} examples already done.")
    own_backend = backend is None
    if own_backend:
        on_status(f"Loading {model_name} ({bname}) ...")
        try:
            backend = _load_own_backend(ref, bname, fingerprint, allow_pickle, backend_options, isolate)
        except ModelCrashed as exc:
            raise _crash_told(exc, resumed_from, len(examples)) from None
    own_judge = judge_backend is None and judge_ref is not None
    if own_judge:
        from .backends import backend_for

        on_status(f"Loading the judge model {judge_ref.display_name} ...")
        try:
            judge_name = backend_for(judge_ref, "auto")
            judge_backend = _load_own_backend(judge_ref, judge_name, judge_fp, allow_pickle, backend_options, isolate)
        except BaseException as exc:
            if own_backend and backend is not None:
                backend.close()
            if isinstance(exc, ModelCrashed):
                raise _crash_told(exc, resumed_from, len(examples)) from None
            raise
    note = session_note(str((run or {}).get("note") or ""), backend.info.extra)
    project.update_probe_run(run_id, status="running", note=note)
    t0 = time.monotonic()
    state = {"done": resumed_from}

    def save(rows: list[dict]) -> None:
        state["done"] += len(rows)
        project.save_probe_results(run_id, rows, n_done=state["done"], seconds=prior_seconds + time.monotonic() - t0)

    try:
        if settings.match == "judge":
            _calibrate_judge(project, run_id, run, judge_backend or backend, examples, settings, on_status)
        probe_examples(
            backend,
            todo,
            pool,
            settings,
            sets,
            run_id=run_id,
            on_results=save,
            progress=progress,
            cancel=cancel,
            already_done=resumed_from,
            total=len(examples),
            judge=judge_backend,
            hold_out=pool is examples,
        )
    except Cancelled:
        project.update_probe_run(run_id, status="cancelled")
        return ProbeOutcome(
            run_id,
            "cancelled",
            len(examples),
            state["done"],
            resumed_from,
            prior_seconds + time.monotonic() - t0,
            settings,
            model_name,
            notes,
        )
    except BaseException as exc:
        told = _crash_told(exc, state["done"], len(examples)) if isinstance(exc, ModelCrashed) else exc
        try:
            project.update_probe_run(run_id, status="failed", note=with_sessions(note, str(told)[:500]))
        except Exception:
            pass
        if told is not exc:
            raise told from None
        raise
    finally:
        if own_backend and backend is not None:
            backend.close()
        if own_judge and judge_backend is not None:
            judge_backend.close()
    seconds = prior_seconds + time.monotonic() - t0
    project.update_probe_run(run_id, status="finished", finished_at=time.time(), seconds=seconds, n_done=state["done"])
    return ProbeOutcome(run_id, "finished", len(examples), state["done"], resumed_from, seconds, settings, model_name, notes)
