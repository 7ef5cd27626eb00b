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

from .datasets import ASSISTANT_ROLES, json_default

_CHAT_SHAPES = ("openai-messages", "sharegpt")
_ANSWER_COLUMN = {"alpaca": "output", "prompt-completion": "completion"}  # else "answers"


def record_in_shape(raw: dict, shape: str, mapping: dict, target: str, *, relabelled: bool) -> dict:
    """A copy of the original record ``raw``, with its answer replaced by ``target`` when ``relabelled``.

    ``shape`` and ``mapping`` are the dataset's (``datasets.shape``/``mapping`` in the project):
    the mapping's ``answer`` column wins over the shape's usual one."""
    rec = json.loads(json.dumps(raw, default=json_default))  # a deep copy that never shares lists with the plan
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


# --------------------------------------------------------------------------- files in the input's format

# The file extension of each input format: an export is written in the format the data came in.
EXTENSIONS = {"jsonl": ".jsonl", "json": ".json", "csv": ".csv", "tsv": ".tsv", "parquet": ".parquet"}


def extension_for(fmt: str) -> str:
    """The file extension for a dataset format (".jsonl" for an unknown one)."""
    return EXTENSIONS.get(fmt, ".jsonl")


def columns_of_records(records: Sequence[dict]) -> list[str]:
    """Every field of the records, in order of first appearance (a CSV header: the input's own order,
    as a CSV record keeps its header's order)."""
    seen: dict[str, None] = {}
    for rec in records:
        for k in rec:
            seen.setdefault(str(k), None)
    return list(seen)


def records_bytes(records: Sequence[dict], fmt: str) -> bytes:
    """``records`` as the bytes of a file in ``fmt`` (jsonl, json, csv, tsv or parquet).

    CSV/TSV cells are written as they were read: text stays the same text (a '|'-joined or
    JSON-list cell is still that text), a value that is a list or an object (a relabelled answer
    whose cell held a list) is written as JSON text, a missing value as an empty cell. Parquet
    needs pyarrow (imported only here)."""
    if fmt == "json":
        return (json.dumps(list(records), ensure_ascii=False, indent=2, default=str) + "\n").encode("utf-8")
    if fmt in ("csv", "tsv"):
        return _delimited(records, "\t" if fmt == "tsv" else ",").encode("utf-8")
    if fmt == "parquet":
        return _parquet(records)
    return "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records).encode("utf-8")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _delimited(records: Sequence[dict], delimiter: str) -> str:
    """The team's own records as CSV/TSV. No spreadsheet-formula escaping here (unlike
    ``core.results``' report CSV): this is their training data going back to their trainer, and a
    question that starts with "=" must stay exactly that question."""
    import csv
    import io

    header = columns_of_records(records)
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    for rec in records:
        writer.writerow([_cell(rec.get(col)) for col in header])
    return buf.getvalue()


def _parquet(records: Sequence[dict]) -> bytes:
    from .datasets.readers import import_parquet

    pq = import_parquet()
    import pyarrow as pa  # noqa: PLC0415 - optional and heavy: only for Parquet files

    header = columns_of_records(records)
    table = pa.Table.from_pylist([{col: rec.get(col) for col in header} for rec in records])
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def write_records(
    path: Any, records: Sequence[dict], fmt: str, *, advice: str = "Check the folder and the free disk space."
) -> None:
    """Write ``records`` to ``path`` as a ``fmt`` file (see ``records_bytes``), atomically."""
    from .paths import write_bytes_atomic

    write_bytes_atomic(path, records_bytes(records, fmt), advice=advice)
