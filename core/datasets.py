"""Load a user's fine-tuning dataset into questions with gold answers.

KnowMix probes *single closed-book questions*: every row of the user's file must become one
question, the list of accepted answers (aliases) and a group (the paper's "relation"; exemplars
for few-shot prompts are drawn from the same group). Users bring whatever their fine-tuning
tool expects, so this module accepts the common shapes and formats and says precisely what is
wrong with a row when it cannot use it.

Formats
    JSON Lines (``.jsonl``/``.ndjson``), a JSON array (``.json``; also ``{"data": [...]}``, an
    object whose single list value holds the records), CSV (``.csv``), TSV (``.tsv``/``.tab``)
    and Parquet (``.parquet``; needs pyarrow, imported only when such a file is opened). Other
    extensions are sniffed from the content. A ``.json`` file that is really JSON Lines, and a
    ``.jsonl`` file that is really one JSON document, are read as what they are.

Shapes (detected from the column names of the first records, case-insensitively)
    ``question-answer``   ``question`` + ``answers`` or ``answer`` (EntityQuestions)
    ``alpaca``            ``instruction`` (+ optional ``input``) + ``output``
    ``prompt-completion`` ``prompt`` + ``completion`` or ``response``
    ``openai-messages``   ``messages``: [{"role", "content"}, ...]
    ``sharegpt``          ``conversations``: [{"from": "human"|"gpt"|"system", "value"}, ...]
    ``custom``            a user mapping (``question=a,answer=b``) replaced the question/answer

    A ``relation``, ``group``, ``category`` or ``topic`` column (first found, in that order)
    gives the group, else every row is in group ``"all"``. An ``id``, ``_id`` or ``uid`` column
    gives the example id; otherwise the id is a hash of group and question, so it survives
    reordering and edits of other rows and a probe can resume.

Answers
    A list of aliases, or one string. In CSV/TSV files (question-answer and custom shapes only)
    a string cell may hold several aliases separated by ``|`` (``Paris|City of Light``) or a
    JSON list literal (``["Paris", "City of Light"]``); in JSON and Parquet files a string is
    always one alias, since those formats have real lists. Numbers become text (``1987`` ->
    ``"1987"``), surrounding whitespace is stripped, and None/NaN count as missing. A SQuAD-style
    ``{"text": [...]}`` or TriviaQA-style ``{"value", "aliases"}`` object is also understood.

Everything is read from one in-memory copy of the file bytes, which are hashed once
(``file_sha256``); ``content_sha256`` hashes the parsed examples, so re-formatting the file
(indentation, key order, CRLF) does not invalidate a probe, while any change of a question,
answer, group or id does.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import json
import math
import os
from dataclasses import replace, dataclass, field
from datetime import date, datetime, time as dtime
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from .errors import DatasetError

__all__ = [
    "Example",
    "Problem",
    "Dataset",
    "Preview",
    "FORMATS",
    "SHAPES",
    "ROLES",
    "parse_mapping",
    "load_dataset",
    "read_preview",
    "content_fingerprint",
]

PathLike = Union[str, "os.PathLike[str]"]

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet")
SHAPES = ("question-answer", "alpaca", "prompt-completion", "openai-messages", "sharegpt", "custom")
ROLES = ("question", "answer", "group", "id", "input")

_FORMAT_LABEL = {"jsonl": "JSONL", "json": "JSON", "csv": "CSV", "tsv": "TSV", "parquet": "Parquet"}
_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonlines": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_FORMAT_ALIASES = {"ndjson": "jsonl", "jsonlines": "jsonl", "pq": "parquet", "tab": "tsv"}
_SUPPORTED_TEXT = (
    "KnowMix reads JSON Lines (.jsonl), JSON (.json), CSV (.csv), TSV (.tsv) and Parquet (.parquet)"
)
_SKIP_HINT = "To go on, fix the file or choose to skip invalid rows (--skip-invalid)."

_GROUP_COLUMNS = ("relation", "group", "category", "topic")
_ID_COLUMNS = ("id", "_id", "uid")
_ROLE_ALIASES = {"answers": "answer"}
_SAMPLE_ROWS = 100  # records whose keys decide the shape; later rows may lack optional keys
_UTF8_BOM = b"\xef\xbb\xbf"

_USER_ROLES = {"user", "human"}
_ASSISTANT_ROLES = {"assistant", "gpt", "model", "bot", "chatgpt"}
_SYSTEM_ROLES = {"system", "developer"}


# --------------------------------------------------------------------------- public data types


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
        n = len(self.examples)
        g = len({ex.group for ex in self.examples})
        text = (
            f"{n} question{'s' if n != 1 else ''} in {g} group{'s' if g != 1 else ''} "
            f"from {os.path.basename(self.path)} ({_FORMAT_LABEL.get(self.format, self.format)}, "
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


def _validate_mapping(mapping: Optional[dict[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for role, column in (mapping or {}).items():
        _add_mapping_entry(out, role, column)
    return out


# --------------------------------------------------------------------------- file access


def _check_path(path: PathLike) -> Path:
    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise DatasetError(f"Dataset file not found: {p}. Check the path, or choose the file again.")
    if p.is_dir():
        raise DatasetError(
            f"{p} is a folder, not a file. Choose a dataset file inside it ({_SUPPORTED_TEXT} files)."
        )
    return p


def _read_bytes(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except PermissionError:
        raise DatasetError(
            f"Cannot read {p}: permission denied. Check that your user may read the file, or copy "
            f"it to a folder you own."
        ) from None
    except OSError as exc:
        raise DatasetError(
            f"Cannot read {p}: {exc.strerror or exc}. Check that the file is not being moved or "
            f"written by another program, then try again."
        ) from None


def _normalise_encoding(data: bytes, name: str) -> tuple[bytes, int]:
    """Return (UTF-8 bytes without BOM, number of bytes dropped from the start).

    UTF-16 files (Excel's "Unicode text" export) are re-encoded to UTF-8 so they just work; byte
    offsets in messages then refer to the UTF-8 text, which is acceptable for that rare case.
    """
    if data.startswith(_UTF8_BOM):
        return data[3:], 3
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16").encode("utf-8"), 0
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"{name} starts like a UTF-16 text file but is not valid UTF-16 ({exc.reason}). "
                f"Save it as UTF-8 and try again."
            ) from None
    return data, 0


def _resolve_format(p: Path, data: bytes, fmt: Optional[str]) -> str:
    if fmt:
        key = fmt.strip().lower().lstrip(".")
        key = _FORMAT_ALIASES.get(key, key)
        if key not in FORMATS:
            raise DatasetError(f"Unknown dataset format '{fmt}'. Choose one of: {', '.join(FORMATS)}.")
        return key
    by_ext = _EXTENSIONS.get(p.suffix.lower())
    if by_ext:
        return by_ext
    sniffed = _sniff_format(data)
    if sniffed is None:
        raise DatasetError(
            f"{p}: cannot tell the file format from its name or content. {_SUPPORTED_TEXT} files; "
            f"give the file one of those extensions or choose the format explicitly."
        )
    return sniffed


def _sniff_format(data: bytes) -> Optional[str]:
    """Guess a format from content, for files with unusual extensions (.txt, .data, none)."""
    if data[:4] == b"PAR1":
        return "parquet"
    text_bytes, _ = _normalise_encoding(data[:65536], "")
    head = text_bytes.lstrip()
    if not head or b"\x00" in head:
        return None
    if head[:1] == b"[":
        return "json"
    if head[:1] == b"{":
        first = head.split(b"\n", 1)[0]
        try:
            json.loads(first.decode("utf-8", "replace"))
            return "jsonl"
        except ValueError:
            return "json"
    first_line = head.split(b"\n", 1)[0].decode("utf-8", "replace")
    if "\t" in first_line:
        return "tsv"
    if "," in first_line or ";" in first_line:
        try:
            rows = list(csv.reader(io.StringIO(head.decode("utf-8", "replace")[:8192])))
        except csv.Error:
            return None
        if rows and len(rows[0]) >= 2:
            return "csv"
    return None


# --------------------------------------------------------------------------- line decoding


def _decode_lines(data: bytes, offset0: int) -> tuple[list[str], dict[int, str]]:
    """Split into physical lines and decode each; return (lines, {lineno: problem message}).

    One whole-buffer decode is tried first (fast path); only if it fails is each line decoded
    on its own, so that one bad line does not hide the others and each gets its own message.
    """
    try:
        return data.decode("utf-8").split("\n"), {}
    except UnicodeDecodeError:
        pass
    lines: list[str] = []
    bad: dict[int, str] = {}
    pos = 0
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            byte = raw[exc.start]
            bad[lineno] = (
                f"not valid UTF-8: byte 0x{byte:02X} at byte offset {offset0 + pos + exc.start} of "
                f"the file (byte {exc.start + 1} of the line). Save the file as UTF-8"
            )
            lines.append(raw.decode("utf-8", "replace"))
        pos += len(raw) + 1
    return lines, bad


def _type_name(value: Any) -> str:
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


# --------------------------------------------------------------------------- readers
#
# Each reader returns items in file order: (line, dict) for a record, (line, Problem) for a row
# that could not even be parsed. Converting records into examples is shape-specific and shared.

_Item = tuple[int, Union[dict, Problem]]


def _read_jsonl(data: bytes, offset0: int, name: str) -> list[_Item]:
    lines, bad = _decode_lines(data, offset0)
    items: list[_Item] = []
    loads = json.loads
    for lineno, text in enumerate(lines, start=1):
        if lineno in bad:
            items.append((lineno, Problem(lineno, None, bad[lineno])))
            continue
        if not text or text.isspace():
            continue
        try:
            value = loads(text)
        except ValueError as exc:
            msg = getattr(exc, "msg", str(exc))
            col = getattr(exc, "colno", None)
            where = f" at column {col}" if col else ""
            items.append((lineno, Problem(lineno, None, f"invalid JSON{where}: {msg}")))
            continue
        if not isinstance(value, dict):
            items.append((lineno, Problem(lineno, None, _not_object_message(value))))
            continue
        items.append((lineno, value))
    return items


def _not_object_message(value: Any) -> str:
    return (
        f"the row is {_type_name(value)}, not a JSON object; each row must be an object with "
        f"named fields such as {{\"question\": ..., \"answers\": [...]}}"
    )


def _first_bad_utf8(data: bytes, offset0: int, name: str) -> DatasetError:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = data.count(b"\n", 0, exc.start) + 1
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        return DatasetError(
            f"{name} line {lineno}: not valid UTF-8: byte 0x{data[exc.start]:02X} at byte offset "
            f"{offset0 + exc.start} of the file (byte {exc.start - line_start + 1} of the line). "
            f"Save the file as UTF-8 and try again."
        )
    raise AssertionError("called on valid UTF-8")


def _read_json(data: bytes, offset0: int, name: str) -> tuple[list[_Item], str]:
    """Read a JSON array (or {"key": [...]}); fall back to JSON Lines when that is what it is."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        first_line = data.lstrip().split(b"\n", 1)[0]
        try:
            if isinstance(json.loads(first_line), dict):
                # JSON Lines saved as .json: report bad bytes line by line like any JSONL file.
                return _read_jsonl(data, offset0, name), "jsonl"
        except ValueError:
            pass
        raise _first_bad_utf8(data, offset0, name) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip()[:1] == "{":
            return _read_jsonl(data, offset0, name), "jsonl"
        raise DatasetError(
            f"{name} line {exc.lineno}: invalid JSON at column {exc.colno}: {exc.msg}. "
            f"Fix the file (a JSON file must hold one array of objects) and try again."
        ) from None
    if isinstance(doc, dict) and _detect_shape([str(k) for k in doc]) is not None:
        # One record on its own (a one-line JSON Lines file saved as .json), e.g. a ShareGPT
        # row, whose single list value is its conversation, not a list of records.
        doc = [doc]
    elif isinstance(doc, dict):
        lists = [(k, v) for k, v in doc.items() if isinstance(v, list)]
        if len(lists) != 1:
            raise DatasetError(
                f"{name}: expected a JSON array of records, or an object with one list of records "
                f"such as {{\"data\": [...]}}; found an object with keys "
                f"{', '.join(map(str, list(doc)[:10]))}."
            )
        doc = lists[0][1]
    if not isinstance(doc, list):
        raise DatasetError(f"{name}: expected a JSON array of records, found {_type_name(doc)}.")
    items: list[_Item] = []
    for index, value in enumerate(doc, start=1):
        if isinstance(value, dict):
            items.append((index, value))
        else:
            items.append((index, Problem(index, None, _not_object_message(value), unit="record")))
    return items, "json"


def _guess_delimiter(header: str, fmt: str) -> str:
    if fmt == "tsv":
        return "\t"
    if "," in header:
        return ","
    if "\t" in header:
        return "\t"
    if ";" in header:
        return ";"
    return ","


def _read_delimited(data: bytes, offset0: int, name: str, fmt: str) -> tuple[list[_Item], list[str]]:
    lines, bad = _decode_lines(data, offset0)
    if lines and lines[-1] == "":
        lines.pop()  # the file ends with a newline
    first_text = next((ln for ln in lines if ln.strip()), "")
    delimiter = _guess_delimiter(first_text, fmt)
    if csv.field_size_limit() < 64 * 1024 * 1024:
        # Long answers (alpaca outputs) exceed the 128 KiB default; raising it is harmless.
        csv.field_size_limit(64 * 1024 * 1024)
    reader = csv.reader((ln + "\n" for ln in lines), delimiter=delimiter)
    header: Optional[list[str]] = None
    header_line = 0
    items: list[_Item] = []
    prev = 0
    try:
        for row in reader:
            start, end = prev + 1, reader.line_num
            prev = end
            if not row or all(not c.strip() for c in row):
                continue
            bad_here = [ln for ln in range(start, end + 1) if ln in bad]
            if header is None:
                if bad_here:
                    raise DatasetError(f"{name} line {bad_here[0]} (the header): {bad[bad_here[0]]}.")
                header = [c.strip() for c in row]
                header_line = start
                _check_header(header, name, start)
                continue
            if bad_here:
                msg = bad[bad_here[0]]
                if bad_here[0] != start:
                    msg = f"line {bad_here[0]} of this row is " + msg
                items.append((start, Problem(start, None, msg)))
                continue
            if len(row) > len(header) and any(c.strip() for c in row[len(header):]):
                items.append((start, Problem(
                    start, None,
                    f"the row has {len(row)} cells but the header names {len(header)} columns "
                    f"(a '{'TAB' if delimiter == chr(9) else delimiter}' inside a value that is not quoted?)",
                )))
                continue
            if end > start and len(row) < len(header):
                # A quote opened and never closed swallows the following lines into one cell.
                items.append((start, Problem(
                    start, None,
                    f"the row runs from line {start} to line {end} but has only {len(row)} of "
                    f"{len(header)} cells; is a quote (\") left open on line {start}?",
                )))
                continue
            record = {col: (row[i] if i < len(row) else None) for i, col in enumerate(header)}
            items.append((start, record))
    except csv.Error as exc:
        raise DatasetError(
            f"{name} line {reader.line_num}: cannot parse the {fmt.upper()} ({exc}). Check the "
            f"quotes around values near that line."
        ) from None
    if header is None:
        raise DatasetError(f"{name} is empty: there is no header and no data. Choose a file with rows.")
    if not items:
        raise DatasetError(
            f"{name} has only a header (line {header_line}: {', '.join(header)}) and no data rows."
        )
    return items, header


def _check_header(header: list[str], name: str, line: int) -> None:
    seen: set[str] = set()
    for i, col in enumerate(header, start=1):
        if not col:
            continue
        if col in seen:
            raise DatasetError(
                f"{name} line {line} (the header): the column name '{col}' appears twice. Rename "
                f"one of them so every column has its own name."
            )
        seen.add(col)


def _import_parquet() -> Any:
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415 - optional and heavy: only for Parquet files
    except ImportError:
        raise DatasetError(
            "Reading Parquet files needs the 'pyarrow' package, which is not installed. Install it "
            "(pip install pyarrow) or convert the file to JSON Lines or CSV."
        ) from None
    return pq


def _read_parquet(data: bytes, name: str) -> tuple[list[_Item], list[str]]:
    pq = _import_parquet()
    import pyarrow as pa  # noqa: PLC0415

    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as exc:  # pyarrow raises several types (ArrowInvalid, OSError...)
        raise DatasetError(f"{name} is not a readable Parquet file ({exc}).") from None
    columns = list(table.column_names)
    rows = table.to_pylist()
    return [(i, row) for i, row in enumerate(rows, start=1)], columns


def _parse(data: bytes, fmt: str, name: str) -> tuple[list[_Item], list[str], str]:
    """Parse bytes into items; returns (items, columns in order, actual format)."""
    if fmt == "parquet":
        if not data:
            raise DatasetError(f"{name} is empty (0 bytes). Choose a file with rows.")
        items, columns = _read_parquet(data, name)
        if not items:
            raise DatasetError(f"{name} has no rows (columns: {', '.join(columns) or 'none'}).")
        return items, columns, fmt
    text_data, offset0 = _normalise_encoding(data, name)
    if not text_data.strip():
        raise DatasetError(f"{name} is empty. Choose a file with rows.")
    if fmt in ("csv", "tsv"):
        items, columns = _read_delimited(text_data, offset0, name, fmt)
        return items, columns, fmt
    if fmt == "json":
        items, actual = _read_json(text_data, offset0, name)
        if not items:
            raise DatasetError(f"{name} holds an empty list: there are no records.")
    else:
        items = _read_jsonl(text_data, offset0, name)
        actual = "jsonl"
        if items and isinstance(items[0][1], Problem) and text_data.lstrip()[:1] in (b"{", b"["):
            # Maybe one pretty-printed JSON document saved as .jsonl.
            try:
                json.loads(text_data.decode("utf-8"))
            except ValueError:
                pass
            else:
                items, actual = _read_json(text_data, offset0, name)
    if not items:  # e.g. a .jsonl file holding just "[]"
        raise DatasetError(f"{name} holds no records. Choose a file with rows.")
    return items, _columns_of(items), actual


def _columns_of(items: Iterable[_Item], limit: Optional[int] = _SAMPLE_ROWS) -> list[str]:
    """Keys of the first ``limit`` records (all records when None), in order of appearance."""
    columns: dict[str, None] = {}
    seen = 0
    for _, rec in items:
        if isinstance(rec, dict):
            for k in rec:
                columns.setdefault(str(k), None)
            seen += 1
            if limit is not None and seen >= limit:
                break
    return list(columns)


# --------------------------------------------------------------------------- shape detection


def _find(columns: list[str], *names: str) -> Optional[str]:
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


def _detect_shape(columns: list[str]) -> Optional[tuple[str, dict[str, str]]]:
    if (col := _find(columns, "messages")) is not None:
        return "openai-messages", {"question": col, "answer": col}
    if (col := _find(columns, "conversations")) is not None:
        return "sharegpt", {"question": col, "answer": col}
    q = _find(columns, "question")
    a = _find(columns, "answers", "answer")
    if q is not None and a is not None:
        return "question-answer", {"question": q, "answer": a}
    ins = _find(columns, "instruction")
    out = _find(columns, "output")
    if ins is not None and out is not None:
        m = {"question": ins, "answer": out}
        if (inp := _find(columns, "input")) is not None:
            m["input"] = inp
        return "alpaca", m
    p = _find(columns, "prompt")
    c = _find(columns, "completion", "response")
    if p is not None and c is not None:
        return "prompt-completion", {"question": p, "answer": c}
    return None


def _resolve_shape(
    columns: list[str], user: dict[str, str], name: str
) -> tuple[str, dict[str, str], Optional[str]]:
    """Decide shape and role->column mapping; returns (shape, mapping, error-or-None).

    The user's mapping wins role by role; roles it leaves out keep what detection found, so
    ``group=topic`` alone is enough to change only the grouping.
    """
    for role, col in user.items():
        if col not in columns:
            actual = _find(columns, col.lower())
            if actual is None:
                return "", {}, (
                    f"{name}: the column mapping names '{col}' for {role}, but the file has no such "
                    f"column (columns: {', '.join(columns) or 'none'})."
                )
            user[role] = actual
    detected = _detect_shape(columns)
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
        return "", {}, (
            f"{name}: cannot tell which column holds the question and which the answer "
            f"(columns: {cols}). Use a column mapping, e.g. --map question={a},answer={b}"
        )
    if "group" not in mapping and (g := _find(columns, *_GROUP_COLUMNS)) is not None:
        mapping["group"] = g
    if "id" not in mapping and (i := _find(columns, *_ID_COLUMNS)) is not None:
        mapping["id"] = i
    return shape, mapping, None


# --------------------------------------------------------------------------- value coercion


class _RowProblem(Exception):
    def __init__(self, field_name: Optional[str], message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


_MISSING = object()


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
    raise TypeError(_type_name(value))


def _question_text(value: Any, col: str, what: str = "question") -> str:
    if type(value) is str:  # fast path: almost every cell
        text = value.strip()
        if text:
            return text
        raise _RowProblem(col, f"the {what} is empty")
    try:
        text = _text(value)
    except TypeError as exc:
        raise _RowProblem(col, f"the {what} is {exc}, expected text") from None
    if text is _MISSING:
        raise _RowProblem(col, f"the {what} is missing")
    if not text:
        raise _RowProblem(col, f"the {what} is empty")
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
    if isinstance(value, dict):
        # SQuAD {"text": [...]} / TriviaQA {"value": ..., "aliases": [...]}.
        if "text" in value:
            value = value["text"]
        elif "aliases" in value or "value" in value:
            aliases = value.get("aliases") or []
            value = [value.get("value"), *(aliases if isinstance(aliases, list) else [aliases])]
        else:
            raise _RowProblem(col, "the answer is an object without a 'text' or 'value' field, expected text or a list of texts")
    if isinstance(value, str) and split_cells:
        if not value.strip():
            raise _RowProblem(col, "the answer is empty")
        value = _split_cell(value.strip())
    if isinstance(value, (list, tuple)):
        if not value:
            raise _RowProblem(col, "the answer is empty (an empty list)")
        if len(value) == 1 and type(value[0]) is str:  # fast path: one text alias
            t = value[0].strip()
            if t:
                return (t,)
        out: dict[str, None] = {}
        for item in value:
            try:
                t = _text(item)
            except TypeError as exc:
                raise _RowProblem(col, f"an answer in the list is {exc}, expected text") from None
            if t is not _MISSING and t:
                out.setdefault(t, None)
        if not out:
            raise _RowProblem(col, "the answer is empty (the list holds no text)")
        return tuple(out)
    try:
        t = _text(value)
    except TypeError as exc:
        raise _RowProblem(col, f"the answer is {exc}, expected text or a list of texts") from None
    if t is _MISSING:
        raise _RowProblem(col, "the answer is missing")
    if not t:
        raise _RowProblem(col, "the answer is empty")
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
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise _RowProblem(col, "the conversation is missing")
    if isinstance(value, str):
        try:
            value = json.loads(value)  # CSV/Parquet may store the list as a JSON string
        except ValueError:
            raise _RowProblem(col, "expected a list of turns, found a string") from None
    if not isinstance(value, (list, tuple)):
        raise _RowProblem(col, f"expected a list of turns, found {_type_name(value)}")
    turns: list[tuple[str, Any]] = []
    for n, turn in enumerate(value, start=1):
        if not isinstance(turn, dict):
            raise _RowProblem(col, f"turn {n} is {_type_name(turn)}, expected an object with a role and content")
        role = turn.get("role", turn.get("from"))
        content = turn.get("content", turn.get("value"))
        role = str(role).strip().lower() if role is not None else ""
        if role in _SYSTEM_ROLES:
            continue
        if role in _USER_ROLES:
            turns.append(("user", content))
        elif role in _ASSISTANT_ROLES:
            turns.append(("assistant", content))
        else:
            raise _RowProblem(col, f"turn {n} has an unknown role '{role or '(none)'}'; expected user/human or assistant/gpt")
    users = sum(1 for r, _ in turns if r == "user")
    if users > 1:
        raise _RowProblem(col, f"multi-turn conversation ({users} user turns); KnowMix probes single questions")
    if not turns or turns[-1][0] != "assistant":
        raise _RowProblem(col, "the conversation does not end with an assistant reply, so there is no answer")
    if users == 0:
        raise _RowProblem(col, "the conversation has no user turn, so there is no question")
    question_content = next(c for r, c in reversed(turns) if r == "user")
    answer_content = turns[-1][1]
    try:
        q = _turn_text(question_content)
    except TypeError as exc:
        raise _RowProblem(col, f"the user turn is {exc}, expected text") from None
    if q is _MISSING or not q:
        raise _RowProblem(col, "the question (user turn) is empty")
    try:
        a = _turn_text(answer_content)
    except TypeError as exc:
        raise _RowProblem(col, f"the assistant turn is {exc}, expected text") from None
    if a is _MISSING or not a:
        raise _RowProblem(col, "the answer (assistant turn) is empty")
    return q, (a,)


class _Extractor:
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
        if self.chat:
            question, answers = _conversation(rec.get(self.q), self.q)
        else:
            question = _question_text(rec.get(self.q), self.q)
            if self.inp is not None:
                extra = rec.get(self.inp)
                try:
                    extra_text = _text(extra)
                except TypeError as exc:
                    raise _RowProblem(self.inp, f"the input is {exc}, expected text") from None
                if extra_text is not _MISSING and extra_text:
                    question = f"{question}\n\n{extra_text}"
            answers = _answer_values(rec.get(self.a), self.a, self.split_cells)
        group = "all"
        if self.g is not None:
            try:
                g = _text(rec.get(self.g))
            except TypeError as exc:
                raise _RowProblem(self.g, f"the group is {exc}, expected text") from None
            if g is not _MISSING and g:
                group = g
        ident: Optional[str] = None
        if self.i is not None:
            try:
                v = _text(rec.get(self.i))
            except TypeError as exc:
                raise _RowProblem(self.i, f"the id is {exc}, expected text or a number") from None
            if v is not _MISSING and v:
                ident = v
        return question, answers, group, ident


def _relabel(problem: Problem, unit: str) -> Problem:
    return problem if problem.unit == unit else Problem(problem.line, problem.field, problem.message, unit)


def _sentence(text: str) -> str:
    """End ``text`` with exactly one full stop (messages may already end in '?' or '.')."""
    return text if text.endswith((".", "?", "!")) else text + "."


def _hash_id(group: str, question: str) -> str:
    return hashlib.sha1(f"{group}\x00{question}".encode("utf-8")).hexdigest()[:16]


def _norm_question(q: str) -> str:
    return " ".join(q.casefold().split())


# --------------------------------------------------------------------------- loading


def load_dataset(
    path: PathLike,
    *,
    mapping: Optional[dict[str, str]] = None,
    skip_invalid: bool = False,
    fmt: Optional[str] = None,
    max_problems: int = 1000,
) -> Dataset:
    """Read a fine-tuning dataset file into examples.

    The file is read once into memory; the same bytes are hashed and parsed.

    Rows that cannot be used (bad JSON, not an object, non-UTF-8 bytes, a missing or empty
    question or answer, a multi-turn conversation, a repeated explicit id) are problems. By
    default the first problem is raised as one ``DatasetError`` (with a count of the rest), because
    silently probing a subset of the user's data would make the report lie about the data set.
    With ``skip_invalid=True`` those rows are skipped and listed in ``Dataset.problems`` (at most
    ``max_problems`` kept, all counted in ``problem_count``); loading still fails if nothing is
    left.

    Duplicates (same group and the same question up to case and whitespace) are skipped and
    listed as (duplicate line, first line); when a duplicate lists answers the first occurrence
    lacks, those answers are merged into the first occurrence's aliases, since both rows state
    accepted answers to the same question. ``Example.raw`` of the first occurrence is unchanged.

    An explicit id that repeats on a different question is a problem for the later row (naming
    both lines); a row with an empty id falls back to the hash id.
    """
    # Parsing allocates hundreds of thousands of small dicts and lists that all stay alive; the
    # cyclic GC would rescan them again and again (about a third of the load time) for nothing.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _load(path, mapping, skip_invalid, fmt, max_problems)
    finally:
        if enabled:
            gc.enable()


def _load(
    path: PathLike,
    mapping: Optional[dict[str, str]],
    skip_invalid: bool,
    fmt: Optional[str],
    max_problems: int,
) -> Dataset:
    p = _check_path(path)
    data = _read_bytes(p)
    file_sha = hashlib.sha256(data).hexdigest()
    name = p.name
    fmt = _resolve_format(p, data, fmt)
    user_mapping = _validate_mapping(mapping)

    items, columns, fmt = _parse(data, fmt, name)
    del data
    unit = "record" if fmt in ("json", "parquet") else "line"

    if not any(isinstance(rec, dict) for _, rec in items):
        # Every row failed to parse: the first problem says more than "no columns found".
        bad = [rec for _, rec in items if isinstance(rec, Problem)]
        more = len(bad) - 1
        tail = f" (and {more} more problem{'s' if more != 1 else ''})" if more > 0 else ""
        raise DatasetError(
            f"{name}: no usable rows. {_sentence(_relabel(bad[0], unit).describe(p) + tail)} "
            f"Fix the file and try again."
        )
    if fmt not in ("csv", "tsv") and any(c not in columns for c in user_mapping.values()):
        # The user named a column the first records lack; it may only appear in later ones.
        columns = _columns_of(items, None)
    shape, roles, error = _resolve_shape(columns, user_mapping, name)
    if error:
        raise DatasetError(error)
    extract = _Extractor(shape, roles, fmt)

    problems: list[Problem] = []
    problem_count = 0

    def add_problem(problem: Problem) -> None:
        nonlocal problem_count
        problem_count += 1
        if len(problems) < max(1, max_problems):
            problems.append(problem)

    # Mutable rows while loading: [id, question, answers(list), group, line, raw]
    rows: list[list[Any]] = []
    by_question: dict[tuple[str, str], int] = {}
    id_lines: dict[str, int] = {}
    duplicates: list[tuple[int, int]] = []
    id_col = roles.get("id")

    for line, rec in items:
        if isinstance(rec, Problem):
            add_problem(_relabel(rec, unit))
            continue
        try:
            question, answers, group, ident = extract(rec)
        except _RowProblem as rp:
            add_problem(Problem(line, rp.field, rp.message, unit))
            continue
        key = (group, _norm_question(question))
        first = by_question.get(key)
        if first is not None:
            row = rows[first]
            duplicates.append((line, row[4]))
            known = row[2]
            for a in answers:
                if a not in known:
                    known.append(a)
            continue
        ex_id = ident if ident is not None else _hash_id(group, question)
        seen_line = id_lines.get(ex_id)
        if seen_line is not None:
            if ident is not None:
                msg = f"the id '{ex_id}' is already used on {unit} {seen_line}; ids must be unique"
            else:
                msg = f"its generated id '{ex_id}' equals the id on {unit} {seen_line}; give the rows unique ids"
            add_problem(Problem(line, id_col, msg, unit))
            continue
        id_lines[ex_id] = line
        by_question[key] = len(rows)
        rows.append([ex_id, question, list(answers), group, line, rec])

    if problem_count and not skip_invalid:
        more = problem_count - 1
        tail = f" (and {more} more problem{'s' if more != 1 else ''})" if more else ""
        err = DatasetError(f"{_sentence(problems[0].describe(p) + tail)} {_SKIP_HINT}")
        err.problems = list(problems)  # type: ignore[attr-defined]  # for the GUI's table
        err.problem_count = problem_count  # type: ignore[attr-defined]
        raise err
    if not rows:
        lead = f" The first: {_sentence(problems[0].describe(p))}" if problems else ""
        raise DatasetError(
            f"{name}: no usable rows; all {problem_count} rows have problems.{lead} Fix the file "
            f"or check the column mapping."
        )

    examples = [Example(r[0], r[1], tuple(r[2]), r[3], r[4], r[5]) for r in rows]
    return Dataset(
        path=str(p),
        format=fmt,
        shape=shape,
        mapping=roles,
        examples=examples,
        file_sha256=file_sha,
        content_sha256=content_fingerprint(examples),
        duplicates=duplicates,
        problems=problems,
        problem_count=problem_count,
    )


def content_fingerprint(examples: Iterable[Example]) -> str:
    """sha256 over the canonical (id, question, answers, group) of the examples, in order.

    The canonical form is one compact UTF-8 JSON array of ``[id, question, [answers...], group]``
    arrays: unambiguous (no separator can be forged by the text), independent of how the source
    file was formatted, and encoded in a single C-level call.
    """
    rows = [[ex.id, ex.question, list(ex.answers), ex.group] for ex in examples]
    text = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def take_balanced(ds: Dataset, n: int) -> Dataset:
    """A copy of ``ds`` with at most ``n`` examples, taken round-robin over the groups in file order.

    Used by ``--limit`` and the demo, so a small probe still covers every group. The copy gets
    its own content fingerprint: a probe of the subset is a different probe from one of the whole.
    """
    if n is None or n >= len(ds.examples):
        return ds
    if n < 1:
        raise DatasetError(f"The number of questions to take must be at least 1 (got {n}).")
    queues = [list(reversed(exs)) for exs in ds.groups().values()]
    picked: list[Example] = []
    while len(picked) < n and any(queues):
        for q in queues:
            if q and len(picked) < n:
                picked.append(q.pop())
    order = {ex.id: i for i, ex in enumerate(ds.examples)}
    picked.sort(key=lambda ex: order[ex.id])
    return replace(ds, examples=picked, content_sha256=content_fingerprint(picked))


# --------------------------------------------------------------------------- preview

_PREVIEW_MAX_BYTES = 8 * 1024 * 1024


def _read_prefix(p: Path, lines_wanted: int) -> tuple[bytes, bool]:
    """Read whole lines from the start until ``lines_wanted`` newlines or the byte cap.

    Returns (bytes, reached_eof). A partial last line is cut off unless the file ended.
    """
    chunks: list[bytes] = []
    newlines = 0
    size = 0
    try:
        with p.open("rb") as fh:
            while newlines < lines_wanted and size < _PREVIEW_MAX_BYTES:
                chunk = fh.read(256 * 1024)
                if not chunk:
                    return b"".join(chunks), True
                chunks.append(chunk)
                newlines += chunk.count(b"\n")
                size += len(chunk)
            eof = fh.read(1) == b""
    except OSError as exc:
        raise DatasetError(f"Cannot read {p}: {exc.strerror or exc}.") from None
    data = b"".join(chunks)
    if not eof:
        cut = data.rfind(b"\n")
        data = data[: cut + 1] if cut >= 0 else data
    return data, eof


def read_preview(path: PathLike, n: int = 20, *, fmt: Optional[str] = None,
                 mapping: Optional[dict[str, str]] = None) -> Preview:
    """First ``n`` records plus the detected format, shape and mapping, for the import dialog.

    Line-based files (JSONL, CSV, TSV) are read only as far as needed; Parquet reads only the
    first batch; a JSON array has to be parsed whole. Rows with problems are left out of the
    preview (``load_dataset`` reports them). Unlike ``load_dataset`` this does not raise when no
    shape is detected: it returns ``shape=None`` and a ``message`` so the GUI can ask for a mapping.
    """
    p = _check_path(path)
    name = p.name
    user_mapping = _validate_mapping(mapping)
    if fmt is None and p.suffix.lower() not in _EXTENSIONS:
        head, _ = _read_prefix(p, 64)
        fmt = _resolve_format(p, head, None)
    else:
        fmt = _resolve_format(p, b"", fmt)
    records: list[dict]
    if fmt == "parquet":
        pq = _import_parquet()
        try:
            pf = pq.ParquetFile(str(p))
            columns = list(pf.schema_arrow.names)
            batch = next(pf.iter_batches(batch_size=max(1, n)), None)
        except Exception as exc:
            raise DatasetError(f"{name} is not a readable Parquet file ({exc}).") from None
        records = batch.to_pylist()[:n] if batch is not None else []
    else:
        if fmt == "json":
            data, eof = _read_bytes(p), True
        else:
            data, eof = _read_prefix(p, n * 4 + 2)
        items, columns, fmt = _parse(data, fmt, name)
        records = [rec for _, rec in items if isinstance(rec, dict)][:n]
        if fmt not in ("csv", "tsv"):
            columns = _columns_of((0, r) for r in records) or columns
    shape, roles, error = _resolve_shape(list(columns), user_mapping, name)
    return Preview(
        path=str(p),
        format=fmt,
        columns=list(columns),
        records=records,
        shape=shape or None,
        mapping=roles,
        message=error,
    )
