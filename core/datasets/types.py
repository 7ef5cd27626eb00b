"""The data types a loaded dataset is made of, and the names of formats, shapes and roles.

Kept apart from the readers and the loader so that code which only passes examples around (the
probe, the store, the plan) depends on these small frozen types and nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet")
SHAPES = ("question-answer", "alpaca", "prompt-completion", "openai-messages", "sharegpt", "custom")
ROLES = ("question", "answer", "group", "id", "input")

FORMAT_LABEL = {"jsonl": "JSONL", "json": "JSON", "csv": "CSV", "tsv": "TSV", "parquet": "Parquet"}


@dataclass(frozen=True)
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
    raw: dict = field(compare=False, hash=False, repr=False)


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
        if self.duplicates:
            d = len(self.duplicates)
            text += f"; {d} duplicate{'s' if d != 1 else ''} skipped"
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
