"""What the probe asks of the model (``ProbeSettings``, ``PRESETS``), which grading rules a matching
mode means for a question, and the category rule (Gekhman et al. 2024)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping, Optional

from ..datasets import Example
from ..errors import SettingsError
from ..scoring import MATCH_MODES, SCORER_VERSION, Scorer, mode_for, scorer_for
from .prompts import PROMPT_FORMAT

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

    def scorer(self, example: Example) -> Scorer:
        """The grading rules this matching mode means for ``example``: the one rule the probe and the
        check both use (``core.scoring.scorer_for``; judge mode's rules decide what they can)."""
        return scorer_for(example, self.match)


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
