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
from typing import Any, Mapping, NamedTuple, Optional

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


class Conversation:
    """A chat row: its system turn(s), first question, that question's answer (``""`` when
    there is none) and why it cannot be probed (``""`` when it can)."""

    __slots__ = ("system", "question", "answer", "reason")

    def __init__(self, system: str, question: str, answer: str, reason: str) -> None:
        self.system, self.question, self.answer, self.reason = system, question, answer, reason


def _conversation(value: Any, col: str) -> Conversation:
    """Question and answer from an OpenAI ``messages`` or ShareGPT list, with the system turn.

    A conversation with more than one user turn is kept as ``multi-turn`` (its first question and
    that question's reply, so it can be shown and written back); one without a final assistant
    reply, or with an empty one, as ``no-answer``. No user turn, an empty question or a malformed
    turn stay problems.
    """
    turns, system = _turns(value, col)
    users = [i for i, (r, _) in enumerate(turns) if r == "user"]
    if not users:
        raise RowProblem(col, "the conversation has no user turn, so there is no question")
    first = users[0]
    question = _turn_content(turns[first][1], col, "user", "question")
    if len(users) > 1:
        reply = next((c for r, c in turns[first + 1 : users[1]] if r == "assistant"), None)
        return Conversation(system, question, _optional_text(reply, col), "multi-turn")
    if turns[-1][0] != "assistant":
        return Conversation(system, question, "", "no-answer")
    answer = _optional_text(turns[-1][1], col)
    return Conversation(system, question, answer, "" if answer else "no-answer")


def _optional_text(content: Any, col: str) -> str:
    """A turn's text, ``""`` when it is missing or empty; a problem when it is not text."""
    if content is None:
        return ""
    try:
        text = _turn_text(content)
    except TypeError as exc:
        raise RowProblem(col, f"the assistant turn is {exc}, expected text") from None
    return "" if text is _MISSING else text


def _turns(value: Any, col: str) -> tuple[list[tuple[str, Any]], str]:
    """The ``("user"|"assistant", content)`` turns and the system turns' text, whichever role
    names the file uses (OpenAI ``role``/``content`` or ShareGPT ``from``/``value``)."""
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
    system: list[str] = []
    for n, turn in enumerate(value, start=1):
        if not isinstance(turn, dict):
            raise RowProblem(col, f"turn {n} is {type_name(turn)}, expected an object with a role and content")
        role = turn.get("role", turn.get("from"))
        content = turn.get("content", turn.get("value"))
        role = str(role).strip().lower() if role is not None else ""
        if role in SYSTEM_ROLES:
            try:
                text = _turn_text(content)
            except TypeError as exc:
                raise RowProblem(col, f"the system turn is {exc}, expected text") from None
            if text is not _MISSING and text:
                system.append(text)
        elif role in USER_ROLES:
            turns.append(("user", content))
        elif role in ASSISTANT_ROLES:
            turns.append(("assistant", content))
        else:
            raise RowProblem(col, f"turn {n} has an unknown role '{role or '(none)'}'; expected user/human or assistant/gpt")
    return turns, "\n\n".join(system)


def _turn_content(content: Any, col: str, role: str, what: str) -> str:
    """A turn's text, or a problem naming the turn (``role``) and what it should hold (``what``)."""
    try:
        text = _turn_text(content)
    except TypeError as exc:
        raise RowProblem(col, f"the {role} turn is {exc}, expected text") from None
    if text is _MISSING or not text:
        raise RowProblem(col, f"the {what} ({role} turn) is empty")
    return text


class Row(NamedTuple):
    """One record, validated: what the loader makes an ``Example`` of. ``reason`` is set when the
    row is well-formed but cannot be probed (``multi-turn``, ``no-answer``); ``keys`` holds the
    user's key column (empty when there is none); ``extra`` is an Alpaca row's input text."""

    question: str
    answers: tuple[str, ...]
    group: str
    ident: Optional[str]
    system: str = ""
    reason: str = ""
    keys: tuple[str, ...] = ()
    extra: str = ""


class Extractor:
    """Turns one record into a ``Row`` (question, answers, group, explicit id or None, ...)."""

    def __init__(self, shape: str, mapping: dict[str, str], fmt: str) -> None:
        self.shape = shape
        self.q = mapping["question"]
        self.a = mapping["answer"]
        self.inp = mapping.get("input")
        self.g = mapping.get("group")
        self.i = mapping.get("id")
        self.k = mapping.get("key")
        self.chat = shape in ("openai-messages", "sharegpt") and self.q == self.a
        self.split_cells = fmt in ("csv", "tsv") and shape in ("question-answer", "custom")
        self.split_keys = fmt in ("csv", "tsv")

    def __call__(self, rec: Mapping[str, Any]) -> Row:
        """Raises ``RowProblem`` for the first unusable cell; the group defaults to ``"all"``.

        A missing or empty answer is not a problem: the row is kept, not probed (``no-answer``).
        """
        system = reason = extra_text = ""
        if self.chat:
            conv = _conversation(rec.get(self.q), self.q)
            question, system, reason = conv.question, conv.system, conv.reason
            answers: tuple[str, ...] = (conv.answer,) if conv.answer else ()
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
                else:
                    extra_text = ""
            answers = _answers_or_none(rec.get(self.a), self.a, self.split_cells)
            if not answers:
                reason = "no-answer"
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
        keys: tuple[str, ...] = ()
        if self.k is not None:
            keys = _answers_or_none(rec.get(self.k), self.k, self.split_keys, what="key")
        return Row(question, answers, group, ident, system, reason, keys, extra_text)


def _answers_or_none(value: Any, col: str, split_cells: bool, what: str = "answer") -> tuple[str, ...]:
    """``_answer_values``, but a missing or empty cell gives ``()`` (the row is kept without a
    probe) instead of a problem; a cell of the wrong kind is still a problem."""
    if type(value) is list and len(value) < 8 and all(type(v) is str and v.strip() == v and v for v in value):
        return tuple(dict.fromkeys(value))  # fast path: a clean list of texts
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ()
    if isinstance(value, str) and not value.strip():
        return ()
    if isinstance(value, (list, tuple)) and not value:
        return ()
    try:
        return _answer_values(value, col, split_cells)
    except RowProblem as rp:
        if "empty" in rp.message or "missing" in rp.message:
            return ()
        if what != "answer":
            raise RowProblem(col, rp.message.replace("answer", what)) from None
        raise
