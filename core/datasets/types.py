"""The data types a loaded dataset is made of, and the names of formats, shapes and roles.

Kept apart from the readers and the loader so that code which only passes examples around (the
probe, the store, the plan) depends on these small frozen types and nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet")
SHAPES = ("question-answer", "alpaca", "prompt-completion", "openai-messages", "sharegpt", "custom")
ROLES = ("question", "answer", "group", "id", "input", "key")

# Probe status of a row (issue 11): every row of the user's file loads; those the probe cannot
# check are kept, with one of these reasons, and go into the training file as they are.
PROBED = "probed"
NOT_PROBED = "not-probed"
REASONS = {
    "multi-turn": "a multi-turn conversation (its later turns depend on earlier ones)",
    "long-form": "a long-form or open-ended answer (no short fact to check)",
    "task": "a task rather than a fact (rewrite, summarise, classify, translate, code ...)",
    "no-answer": "no answer to check",
    "no-key": "no short answer found in the sentence (give the key in the dataset preview to probe it)",
}

# Where an example's answer key came from: a column the user named, the (entity-shaped) answer
# itself, extracted by KnowMix from a sentence answer and the question, or edited by the user
# in the dataset preview (``load_dataset(key_overrides=...)``).
KEY_SOURCES = ("column", "answer", "extracted", "edited")  # edited: in the dataset preview

FORMAT_LABEL = {"jsonl": "JSONL", "json": "JSON", "csv": "CSV", "tsv": "TSV", "parquet": "Parquet"}


def reasons_text(counts: dict[str, int]) -> str:
    """'12 multi-turn, 4 task': not-probed counts by reason, as every summary words them."""
    return ", ".join(f"{n} {reason or 'unknown'}" for reason, n in counts.items())


@dataclass(frozen=True, slots=True)  # slots: a million examples, 60 bytes each fewer (issue 19)
class Example:
    """One probe-able question.

    ``raw`` is the record exactly as parsed, so the planned training mix can later be written
    back in the user's own shape; it is left out of equality, hashing and repr because it can be
    large and is not part of the example's identity.
    """

    id: str
    question: str
    answers: tuple[str, ...]
    group: str
    line: int
    raw: Mapping[str, Any] = field(compare=False, hash=False, repr=False)
    # The short spans a correct answer must contain (the answer key and its aliases); for an
    # entity-shaped answer they are the answers themselves. Empty means "same as answers".
    keys: tuple[str, ...] = ()
    key_source: str = "answer"
    system: str = ""  # a chat row's own system turn, used in its probe prompt
    status: str = PROBED  # PROBED or NOT_PROBED
    reason: str = ""  # for NOT_PROBED: a key of REASONS

    @property
    def answer_keys(self) -> tuple[str, ...]:
        """What the ``key`` matching mode looks for: the keys, else the answers."""
        return self.keys or self.answers

    @property
    def multi_answer(self) -> bool:
        """True for a probed question whose answer keys hold two or more different true answers,
        not aliases of one answer (the rule: ``core.datasets.multi.is_multi_answer``)."""
        if self.status != PROBED:
            return False
        from .multi import is_multi_answer

        return is_multi_answer(self.answer_keys)

    @property
    def entity_shaped(self) -> bool:
        """True when the gold answer is itself the key (the paper's data): exact match applies."""
        return self.key_source == "answer"


@dataclass(frozen=True)
class Problem:
    """Why one row could not be used. ``field`` is the user's column name, not our role name,
    because the user has to find it in their file. ``unit`` is ``"line"`` for line-based files
    and ``"record"`` for JSON arrays and Parquet, where ``line`` is a 1-based record index."""

    line: int
    field: Optional[str]
    message: str
    unit: str = "line"

    def describe(self, path: PathLike) -> str:
        """ "file line N, field 'x': message": what a user needs to find the row and fix it."""
        where = f"{os.path.basename(os.fspath(path))} {self.unit} {self.line}"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


@dataclass
class Dataset:
    """A loaded dataset: the usable examples plus what was skipped and why."""

    path: str
    format: str
    shape: str
    mapping: dict[str, str]
    examples: list[Example]
    file_sha256: str
    content_sha256: str
    duplicates: list[tuple[int, int]]
    problems: list[Problem]
    problem_count: int = 0  # all skipped invalid rows; ``problems`` keeps at most max_problems
    # Rows that load but are not probed (status NOT_PROBED, with a reason); the plan keeps them
    # and the export writes them back. ``examples`` holds only the probed rows.
    unprobed: list[Example] = field(default_factory=list)
    # Duplicates (duplicate line, first line) whose answers differ from the first occurrence's: both
    # rows state true answers, so the new ones were merged into the first occurrence's answers.
    merged_duplicates: list[tuple[int, int]] = field(default_factory=list)

    def multi_answer_count(self) -> int:
        """How many probed questions list two or more different true answers (``Example.multi_answer``)."""
        return sum(1 for ex in self.examples if ex.multi_answer)

    def merged_duplicates_text(self, limit: int = 3) -> str:
        """'2 questions appear twice with different answers, merged: line 12 and line 40, line 13 and
        line 41': which duplicates added answers to an earlier row; '' when none did."""
        if not self.merged_duplicates:
            return ""
        unit = "record" if self.format in ("json", "parquet") else "line"
        firsts = {first for _, first in self.merged_duplicates}
        n = len(firsts)
        pairs = sorted(self.merged_duplicates, key=lambda d: (d[1], d[0]))
        shown = ", ".join(f"{unit} {first} and {unit} {dup}" for dup, first in pairs[:limit])
        more = len(pairs) - limit
        shown += f" and {more} more pair{'s' if more != 1 else ''}" if more > 0 else ""
        verb = "appears" if n == 1 else "appear"
        return (
            f"{n} question{'s' if n != 1 else ''} {verb} more than once with different answers, merged "
            f"(both rows' answers count as true): {shown}"
        )

    def reason_counts(self) -> dict[str, int]:
        """How many rows are not probed, by reason (keys of REASONS), in REASONS' order."""
        counts = {r: 0 for r in REASONS}
        for ex in self.unprobed:
            counts[ex.reason] = counts.get(ex.reason, 0) + 1
        return {r: n for r, n in counts.items() if n}

    def __len__(self) -> int:
        return len(self.examples)

    def groups(self) -> dict[str, list[Example]]:
        """Examples by group, groups in order of first appearance (stable for reports)."""
        out: dict[str, list[Example]] = {}
        for ex in self.examples:
            out.setdefault(ex.group, []).append(ex)
        return out

    def summary_line(self) -> str:
        """One line for the CLI and the GUI: counts, file, format, shape and what was skipped."""
        n = len(self.examples)
        g = len({ex.group for ex in self.examples})
        text = (
            f"{n} question{'s' if n != 1 else ''} in {g} group{'s' if g != 1 else ''} "
            f"from {os.path.basename(self.path)} ({FORMAT_LABEL.get(self.format, self.format)}, "
            f"{self.shape})"
        )
        if self.unprobed:
            u = len(self.unprobed)
            why = reasons_text(self.reason_counts())
            text += f"; {u} row{'s' if u != 1 else ''} kept but not probed ({why})"
        if self.duplicates:
            d = len(self.duplicates)
            text += f"; {d} duplicate{'s' if d != 1 else ''} skipped"
            merged = self.merged_duplicates_text()
            if merged:
                text += f"; {merged}"
        multi = self.multi_answer_count()
        if multi:
            text += f"; {multi} question{'s' if multi != 1 else ''} with several different true answers (probed; the plan can leave them out)"
        count = max(self.problem_count, len(self.problems))
        if count:
            text += f"; {count} invalid row{'s' if count != 1 else ''} skipped"
        return text


@dataclass
class Preview:
    """The first records of a file and what KnowMix would make of them, for the GUI's import
    dialog. ``shape`` is None when no shape could be detected; ``message`` then says why, and the
    dialog should ask for a column mapping."""

    path: str
    format: str
    columns: list[str]
    records: list[dict]
    shape: Optional[str]
    mapping: dict[str, str]
    message: Optional[str] = None
    # Per record (same order as ``records``), what loading would make of it: ``line``,
    # ``status`` (PROBED, NOT_PROBED or "problem"), ``reason`` (a key of REASONS, or the
    # problem's message), ``key`` (the answer key shown to the user, " | " between aliases) and
    # ``key_source`` (KEY_SOURCES or "edited"). Empty when no shape was resolved.
    rows: list[dict] = field(default_factory=list)


def type_name(value: Any) -> str:
    """A JSON value's kind in the words a user's message needs ("a list", "null"), not Python's."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
