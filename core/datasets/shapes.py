"""Dataset shapes: which columns hold the question, the answer, the group and the id.

Users bring whatever their fine-tuning tool expects, so the shape is detected from the column
names of the first records (case-insensitively), and a user's column mapping can override it
role by role:

    ``question-answer``   ``question`` + ``answers`` or ``answer`` (EntityQuestions)
    ``alpaca``            ``instruction`` (+ optional ``input``) + ``output``
    ``prompt-completion`` ``prompt`` + ``completion`` or ``response``
    ``openai-messages``   ``messages``: [{"role", "content"}, ...]
    ``sharegpt``          ``conversations``: [{"from": "human"|"gpt"|"system", "value"}, ...]
    ``custom``            a user mapping (``question=a,answer=b``) replaced the question/answer

The chat role names live here once, for reading a conversation (``rows``) and for writing a
relabelled answer back into the user's own shape.
"""

from __future__ import annotations

from typing import Any, Optional

from ..errors import DatasetError
from .types import ROLES

USER_ROLES = frozenset({"user", "human"})
ASSISTANT_ROLES = frozenset({"assistant", "gpt", "model", "bot", "chatgpt"})
SYSTEM_ROLES = frozenset({"system", "developer"})

_GROUP_COLUMNS = ("relation", "group", "category", "topic")
_ID_COLUMNS = ("id", "_id", "uid")
_ROLE_ALIASES = {"answers": "answer"}


# --------------------------------------------------------------------------- mapping


def parse_mapping(text: str) -> dict[str, str]:
    """Parse ``"question=prompt,answer=output,group=topic"`` into ``{role: column}``.

    Roles: question, answer (``answers`` is accepted), group, id, input. Column names are kept
    as written (spaces inside are allowed; surrounding spaces are stripped). An empty string
    means no mapping.
    """
    mapping: dict[str, str] = {}
    if text is None or not text.strip():
        return mapping
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise DatasetError(
                f"Bad column mapping '{part}': write role=column pairs separated by commas, "
                f"e.g. question=prompt,answer=output. Roles: {', '.join(ROLES)}."
            )
        role, column = (s.strip() for s in part.split("=", 1))
        _add_mapping_entry(mapping, role, column)
    return mapping


def _add_mapping_entry(mapping: dict[str, str], role: str, column: Any) -> None:
    """Add one role=column pair, refusing unknown roles, empty columns and a role named twice."""
    key = _ROLE_ALIASES.get(str(role).strip().lower(), str(role).strip().lower())
    if key not in ROLES:
        raise DatasetError(
            f"Unknown role '{role}' in the column mapping. Roles: {', '.join(ROLES)} "
            f"(e.g. question=prompt,answer=output,group=topic)."
        )
    if not isinstance(column, str) or not column.strip():
        raise DatasetError(f"The column mapping gives no column for '{role}': write {key}=<column name>.")
    if key in mapping:
        raise DatasetError(f"The column mapping names the role '{key}' twice.")
    mapping[key] = column.strip()


def validate_mapping(mapping: Optional[dict[str, str]]) -> dict[str, str]:
    """A mapping given as a dict (GUI, API) checked by the same rules as ``parse_mapping``."""
    out: dict[str, str] = {}
    for role, column in (mapping or {}).items():
        _add_mapping_entry(out, role, column)
    return out


# --------------------------------------------------------------------------- detection


def find_column(columns: list[str], *names: str) -> Optional[str]:
    """First of ``names`` present in ``columns``; exact match first, then case-insensitive."""
    lower: dict[str, str] = {}
    for c in columns:
        lower.setdefault(c.strip().lower(), c)
    for n in names:
        if n in columns:
            return n
        if n in lower:
            return lower[n]
    return None


def detect_shape(columns: list[str]) -> Optional[tuple[str, dict[str, str]]]:
    """The shape and its role->column mapping from the column names, or None when none fits.

    Chat shapes come first: their single column holds both the question and the answer.
    """
    if (col := find_column(columns, "messages")) is not None:
        return "openai-messages", {"question": col, "answer": col}
    if (col := find_column(columns, "conversations")) is not None:
        return "sharegpt", {"question": col, "answer": col}
    q = find_column(columns, "question")
    a = find_column(columns, "answers", "answer")
    if q is not None and a is not None:
        return "question-answer", {"question": q, "answer": a}
    ins = find_column(columns, "instruction")
    out = find_column(columns, "output")
    if ins is not None and out is not None:
        m = {"question": ins, "answer": out}
        if (inp := find_column(columns, "input")) is not None:
            m["input"] = inp
        return "alpaca", m
    p = find_column(columns, "prompt")
    c = find_column(columns, "completion", "response")
    if p is not None and c is not None:
        return "prompt-completion", {"question": p, "answer": c}
    return None


def resolve_shape(columns: list[str], user: dict[str, str], name: str) -> tuple[str, dict[str, str], Optional[str]]:
    """Decide shape and role->column mapping; returns (shape, mapping, error-or-None).

    The user's mapping wins role by role; roles it leaves out keep what detection found, so
    ``group=topic`` alone is enough to change only the grouping.
    """
    for role, col in user.items():
        if col not in columns:
            actual = find_column(columns, col.lower())
            if actual is None:
                return (
                    "",
                    {},
                    (
                        f"{name}: the column mapping names '{col}' for {role}, but the file has no such "
                        f"column (columns: {', '.join(columns) or 'none'})."
                    ),
                )
            user[role] = actual
    detected = detect_shape(columns)
    shape, mapping = detected if detected else ("custom", {})
    mapping = dict(mapping)
    if any(user.get(r) is not None and user.get(r) != mapping.get(r) for r in ("question", "answer", "input")):
        if shape in ("openai-messages", "sharegpt") and not ("question" in user and "answer" in user):
            # Half a conversation mapping makes no sense: take both roles from the user.
            mapping = {}
        shape = "custom"
    mapping.update(user)
    if "question" not in mapping or "answer" not in mapping:
        cols = ", ".join(columns) or "none"
        a, b = columns[:2] if len(columns) >= 2 else ("a", "b")
        return (
            "",
            {},
            (
                f"{name}: cannot tell which column holds the question and which the answer "
                f"(columns: {cols}). Use a column mapping, e.g. --map question={a},answer={b}"
            ),
        )
    if "group" not in mapping and (g := find_column(columns, *_GROUP_COLUMNS)) is not None:
        mapping["group"] = g
    if "id" not in mapping and (i := find_column(columns, *_ID_COLUMNS)) is not None:
        mapping["id"] = i
    return shape, mapping, None
