"""Row validation: one parsed record into (question, answers, group, id), or a precise reason why not.

Every check raises ``RowProblem`` with the user's column name and a message worded for them
("the answer is an empty list"), because the loader collects these per row and a user has to
find and fix the cell. The value rules (numbers become text, None/NaN are missing, ``|`` splits
aliases in CSV cells, SQuAD/TriviaQA answer objects) are the same for every shape.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal
from typing import Any, Optional

from .shapes import ASSISTANT_ROLES, SYSTEM_ROLES, USER_ROLES
from .types import type_name


class RowProblem(Exception):
    """One row cannot be used: ``field`` is the user's column, ``message`` is worded for them."""

    def __init__(self, field_name: Optional[str], message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


_MISSING = object()  # None/NaN: "missing" in messages, unlike an empty string ("empty")


def _text(value: Any) -> Any:
    """Text for a scalar: stripped str, or _MISSING for None/NaN; raises TypeError otherwise."""
    if value is None:
        return _MISSING
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return _MISSING
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, Decimal):
        return _MISSING if value.is_nan() else str(value)
    if isinstance(value, (datetime, date, dtime)):
        return value.isoformat()
    raise TypeError(type_name(value))


def _question_text(value: Any, col: str, what: str = "question") -> str:
    """Non-empty question text; says whether the cell was missing, empty or of the wrong kind."""
    if type(value) is str:  # fast path: almost every cell
        text = value.strip()
        if text:
            return text
        raise RowProblem(col, f"the {what} is empty")
    try:
        text = _text(value)
    except TypeError as exc:
        raise RowProblem(col, f"the {what} is {exc}, expected text") from None
    if text is _MISSING:
        raise RowProblem(col, f"the {what} is missing")
    if not text:
        raise RowProblem(col, f"the {what} is empty")
    return text


def _split_cell(text: str) -> list[str]:
    """Aliases from one CSV/TSV cell: a JSON list literal, or values separated by '|'."""
    if text.startswith("[") and text.endswith("]"):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list):
            return value
    return text.split("|") if "|" in text else [text]


def _answer_values(value: Any, col: str, split_cells: bool) -> tuple[str, ...]:
    """The accepted answers (aliases), deduplicated in order, from a list, a string or an answer
    object; ``split_cells`` lets a CSV/TSV cell hold several, as those formats have no lists."""
    if isinstance(value, dict):
        # SQuAD {"text": [...]} / TriviaQA {"value": ..., "aliases": [...]}.
        if "text" in value:
            value = value["text"]
        elif "aliases" in value or "value" in value:
            aliases = value.get("aliases") or []
            value = [value.get("value"), *(aliases if isinstance(aliases, list) else [aliases])]
        else:
            raise RowProblem(col, "the answer is an object without a 'text' or 'value' field, expected text or a list of texts")
    if isinstance(value, str) and split_cells:
        if not value.strip():
            raise RowProblem(col, "the answer is empty")
        value = _split_cell(value.strip())
    if isinstance(value, (list, tuple)):
        if not value:
            raise RowProblem(col, "the answer is empty (an empty list)")
        if len(value) == 1 and type(value[0]) is str:  # fast path: one text alias
            t = value[0].strip()
            if t:
                return (t,)
        out: dict[str, None] = {}
        for item in value:
            try:
                t = _text(item)
            except TypeError as exc:
                raise RowProblem(col, f"an answer in the list is {exc}, expected text") from None
            if t is not _MISSING and t:
                out.setdefault(t, None)
        if not out:
            raise RowProblem(col, "the answer is empty (the list holds no text)")
        return tuple(out)
    try:
        t = _text(value)
    except TypeError as exc:
        raise RowProblem(col, f"the answer is {exc}, expected text or a list of texts") from None
    if t is _MISSING:
        raise RowProblem(col, "the answer is missing")
    if not t:
        raise RowProblem(col, "the answer is empty")
    return (t,)


def _turn_text(content: Any) -> Any:
    """Text of a chat turn; OpenAI content may be a list of {"type": "text", "text": ...} parts."""
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
            else:
                raise TypeError("a list with non-text parts (images or tools?)")
        return "\n".join(parts).strip()
    return _text(content)


def _conversation(value: Any, col: str) -> tuple[str, tuple[str, ...]]:
    """Single-turn question and answer from an OpenAI ``messages`` or ShareGPT list."""
    turns = _turns(value, col)
    users = sum(1 for r, _ in turns if r == "user")
    if users > 1:
        raise RowProblem(col, f"multi-turn conversation ({users} user turns); KnowMix probes single questions")
    if not turns or turns[-1][0] != "assistant":
        raise RowProblem(col, "the conversation does not end with an assistant reply, so there is no answer")
    if users == 0:
        raise RowProblem(col, "the conversation has no user turn, so there is no question")
    question_content = next(c for r, c in reversed(turns) if r == "user")
    q = _turn_content(question_content, col, "user", "question")
    a = _turn_content(turns[-1][1], col, "assistant", "answer")
    return q, (a,)


def _turns(value: Any, col: str) -> list[tuple[str, Any]]:
    """The ``("user"|"assistant", content)`` turns, system turns left out, whichever role names
    the file uses (OpenAI ``role``/``content`` or ShareGPT ``from``/``value``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise RowProblem(col, "the conversation is missing")
    if isinstance(value, str):
        try:
            value = json.loads(value)  # CSV/Parquet may store the list as a JSON string
        except ValueError:
            raise RowProblem(col, "expected a list of turns, found a string") from None
    if not isinstance(value, (list, tuple)):
        raise RowProblem(col, f"expected a list of turns, found {type_name(value)}")
    turns: list[tuple[str, Any]] = []
    for n, turn in enumerate(value, start=1):
        if not isinstance(turn, dict):
            raise RowProblem(col, f"turn {n} is {type_name(turn)}, expected an object with a role and content")
        role = turn.get("role", turn.get("from"))
        content = turn.get("content", turn.get("value"))
        role = str(role).strip().lower() if role is not None else ""
        if role in SYSTEM_ROLES:
            continue
        if role in USER_ROLES:
            turns.append(("user", content))
        elif role in ASSISTANT_ROLES:
            turns.append(("assistant", content))
        else:
            raise RowProblem(col, f"turn {n} has an unknown role '{role or '(none)'}'; expected user/human or assistant/gpt")
    return turns


def _turn_content(content: Any, col: str, role: str, what: str) -> str:
    """A turn's text, or a problem naming the turn (``role``) and what it should hold (``what``)."""
    try:
        text = _turn_text(content)
    except TypeError as exc:
        raise RowProblem(col, f"the {role} turn is {exc}, expected text") from None
    if text is _MISSING or not text:
        raise RowProblem(col, f"the {what} ({role} turn) is empty")
    return text


class Extractor:
    """Turns one record into (question, answers, group, explicit id or None)."""

    def __init__(self, shape: str, mapping: dict[str, str], fmt: str) -> None:
        self.shape = shape
        self.q = mapping["question"]
        self.a = mapping["answer"]
        self.inp = mapping.get("input")
        self.g = mapping.get("group")
        self.i = mapping.get("id")
        self.chat = shape in ("openai-messages", "sharegpt") and self.q == self.a
        self.split_cells = fmt in ("csv", "tsv") and shape in ("question-answer", "custom")

    def __call__(self, rec: dict) -> tuple[str, tuple[str, ...], str, Optional[str]]:
        """Raises ``RowProblem`` for the first unusable cell; the group defaults to ``"all"``."""
        if self.chat:
            question, answers = _conversation(rec.get(self.q), self.q)
        else:
            question = _question_text(rec.get(self.q), self.q)
            if self.inp is not None:
                extra = rec.get(self.inp)
                try:
                    extra_text = _text(extra)
                except TypeError as exc:
                    raise RowProblem(self.inp, f"the input is {exc}, expected text") from None
                if extra_text is not _MISSING and extra_text:
                    question = f"{question}\n\n{extra_text}"
            answers = _answer_values(rec.get(self.a), self.a, self.split_cells)
        group = "all"
        if self.g is not None:
            try:
                g = _text(rec.get(self.g))
            except TypeError as exc:
                raise RowProblem(self.g, f"the group is {exc}, expected text") from None
            if g is not _MISSING and g:
                group = g
        ident: Optional[str] = None
        if self.i is not None:
            try:
                v = _text(rec.get(self.i))
            except TypeError as exc:
                raise RowProblem(self.i, f"the id is {exc}, expected text or a number") from None
            if v is not _MISSING and v:
                ident = v
        return question, answers, group, ident
