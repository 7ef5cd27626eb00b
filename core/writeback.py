"""Writing a planned answer back into the user's own record, in the shape the dataset came in.

The plan's export (``core.plan.export``) gives other trainers the user's records unchanged,
except where the plan changed the answer (the idk mix's "I don't know"): then the answer is
replaced where that shape keeps it, in the type it had (a list stays a list, a completion keeps
its leading space, a chat keeps its turns and gets a new last assistant turn's text). Which
columns a shape uses, and which chat roles are the assistant's, are ``core.datasets``' business.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from .datasets import ASSISTANT_ROLES

_CHAT_SHAPES = ("openai-messages", "sharegpt")
_ANSWER_COLUMN = {"alpaca": "output", "prompt-completion": "completion"}  # else "answers"


def record_in_shape(raw: dict, shape: str, mapping: dict, target: str, *, relabelled: bool) -> dict:
    """A copy of the original record ``raw``, with its answer replaced by ``target`` when ``relabelled``.

    ``shape`` and ``mapping`` are the dataset's (``datasets.shape``/``mapping`` in the project):
    the mapping's ``answer`` column wins over the shape's usual one."""
    rec = json.loads(json.dumps(raw, default=str))  # a deep copy that never shares lists with the plan
    if not relabelled:
        return rec
    answer_col = mapping.get("answer")
    question_col = mapping.get("question")
    if shape in _CHAT_SHAPES or (answer_col and answer_col == question_col and isinstance(rec.get(answer_col), list)):
        col = answer_col or ("messages" if shape == "openai-messages" else "conversations")
        set_last_assistant(rec, col, target)
        return rec
    if answer_col is None:
        answer_col = _ANSWER_COLUMN.get(shape, "answers")
    rec[answer_col] = replace_value(rec.get(answer_col), target)
    return rec


def plain_record(question: str, answers: Sequence[str], target: str, *, relabelled: bool) -> dict:
    """The question-answer shape, for an example whose original record was not kept."""
    return {"question": question, "answers": [target] if relabelled else list(answers)}


def replace_value(old: Any, target: str) -> Any:
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


def set_last_assistant(rec: dict, col: str, target: str) -> None:
    """Put ``target`` into the last assistant turn of the chat in ``rec[col]`` (a list, or its JSON text)."""
    turns: Any = rec.get(col)
    as_text = isinstance(turns, str)
    if isinstance(turns, str):  # CSV/Parquet may store the turns as a JSON string
        try:
            turns = json.loads(turns)
        except ValueError:
            return
    if not isinstance(turns, list):
        return
    for turn in reversed(turns):
        if isinstance(turn, dict) and str(turn.get("role", turn.get("from", ""))).strip().lower() in ASSISTANT_ROLES:
            _set_turn_text(turn, target)
            break
    rec[col] = json.dumps(turns, ensure_ascii=False) if as_text else turns


def _set_turn_text(turn: dict, target: str) -> None:
    key = "content" if "content" in turn else "value" if "value" in turn else ("content" if "role" in turn else "value")
    if isinstance(turn.get(key), list):  # OpenAI content parts
        turn[key] = [{"type": "text", "text": target}]
    else:
        turn[key] = target
