"""One reader per file format: JSON Lines, JSON, CSV/TSV and Parquet, turned into records.

Each reader returns items in file order: ``(line, dict)`` for a record, ``(line, Problem)`` for
a row that could not even be parsed, so that one broken row is reported by its line and does not
stop the rest. Turning records into examples depends on the shape and happens in ``rows``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from typing import Any, Iterable, Optional, Union

from ..errors import DatasetError
from .files import decode_lines, normalise_encoding
from .records import Record
from .shapes import detect_shape
from .types import Problem, type_name

# A record is a dict, or a CSV row's compact stand-in for one (core.datasets.records).
Item = tuple[int, Union[dict, Record, Problem]]
NESTED_TOO_DEEPLY = "invalid JSON: the value is nested too deeply (hundreds of levels of [ or {); KnowMix reads flat records"

_SAMPLE_ROWS = 100  # records whose keys decide the shape; later rows may lack optional keys
MAX_LINE_BYTES = 8 * 1024 * 1024  # the longest line (and CSV cell) KnowMix reads (issue 19)


def _read_jsonl(data: bytes, offset0: int, name: str) -> list[Item]:
    """One record a line; a bad line becomes a problem of its own and the rest still load."""
    lines, bad = decode_lines(data, offset0)
    items: list[Item] = []
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
        except RecursionError:
            items.append((lineno, Problem(lineno, None, NESTED_TOO_DEEPLY)))
            continue
        if not isinstance(value, dict):
            items.append((lineno, Problem(lineno, None, _not_object_message(value))))
            continue
        items.append((lineno, value))
    return items


def _not_object_message(value: Any) -> str:
    """Why a row that is not an object is no record, with an example of one that is."""
    return (
        f"the row is {type_name(value)}, not a JSON object; each row must be an object with "
        f'named fields such as {{"question": ..., "answers": [...]}}'
    )


def _first_bad_utf8(data: bytes, offset0: int, name: str) -> DatasetError:
    """The error for a JSON document with bad bytes: one document fails whole, so name the first."""
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


def _read_json(data: bytes, offset0: int, name: str) -> tuple[list[Item], str]:
    """Read a JSON array (or {"key": [...]}); fall back to JSON Lines when that is what it is."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        first_line = data.lstrip().split(b"\n", 1)[0]
        try:
            if isinstance(json.loads(first_line), dict):
                # JSON Lines saved as .json: report bad bytes line by line like any JSONL file.
                return _read_jsonl(data, offset0, name), "jsonl"
        except (ValueError, RecursionError):
            pass
        raise _first_bad_utf8(data, offset0, name) from None
    try:
        doc = json.loads(text)
    except RecursionError:
        raise DatasetError(f"{name}: {NESTED_TOO_DEEPLY}. Fix the file and try again.") from None
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip()[:1] == "{":
            return _read_jsonl(data, offset0, name), "jsonl"
        raise DatasetError(
            f"{name} line {exc.lineno}: invalid JSON at column {exc.colno}: {exc.msg}. "
            f"Fix the file (a JSON file must hold one array of objects) and try again."
        ) from None
    if isinstance(doc, dict) and detect_shape([str(k) for k in doc]) is not None:
        # One record on its own (a one-line JSON Lines file saved as .json), e.g. a ShareGPT
        # row, whose single list value is its conversation, not a list of records.
        doc = [doc]
    elif isinstance(doc, dict):
        lists = [(k, v) for k, v in doc.items() if isinstance(v, list)]
        if len(lists) != 1:
            raise DatasetError(
                f"{name}: expected a JSON array of records, or an object with one list of records "
                f'such as {{"data": [...]}}; found an object with keys '
                f"{', '.join(map(str, list(doc)[:10]))}."
            )
        doc = lists[0][1]
    if not isinstance(doc, list):
        raise DatasetError(f"{name}: expected a JSON array of records, found {type_name(doc)}.")
    items: list[Item] = []
    for index, value in enumerate(doc, start=1):
        if isinstance(value, dict):
            items.append((index, value))
        else:
            items.append((index, Problem(index, None, _not_object_message(value), unit="record")))
    return items, "json"


def _guess_delimiter(header: str, fmt: str) -> str:
    """The delimiter from the header line: European spreadsheets export ``;`` as "CSV"."""
    if fmt == "tsv":
        return "\t"
    if "," in header:
        return ","
    if "\t" in header:
        return "\t"
    if ";" in header:
        return ";"
    return ","


def _read_delimited(data: bytes, offset0: int, name: str, fmt: str) -> tuple[list[Item], list[str]]:
    """CSV/TSV rows as records keyed by the header, each found by the line it starts on.

    Rows with too many cells, or a quote left open that swallowed the next lines, are problems
    with the line in the message, because that is what a user can find in a spreadsheet.
    """
    lines, bad = decode_lines(data, offset0)
    if lines and lines[-1] == "":
        lines.pop()  # the file ends with a newline
    first_text = next((ln for ln in lines if ln.strip()), "")
    delimiter = _guess_delimiter(first_text, fmt)
    if csv.field_size_limit() != MAX_LINE_BYTES:
        # Long answers (alpaca outputs) exceed the 128 KiB default; no cell may exceed a line's limit.
        csv.field_size_limit(MAX_LINE_BYTES)
    reader = csv.reader((ln + "\n" for ln in lines), delimiter=delimiter)
    header: Optional[list[str]] = None
    header_line = 0
    items: list[Item] = []
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
            problem = _row_problem(row, header, start, end, delimiter, bad_here, bad)
            if problem is not None:
                items.append((start, problem))
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
        raise DatasetError(f"{name} has only a header (line {header_line}: {', '.join(header)}) and no data rows.")
    return items, header


def _row_problem(
    row: list[str], header: list[str], start: int, end: int, delimiter: str, bad_here: list[int], bad: dict[int, str]
) -> Optional[Problem]:
    """Why a data row spanning lines ``start``..``end`` cannot be a record, or None when it can."""
    if bad_here:
        msg = bad[bad_here[0]]
        if bad_here[0] != start:
            msg = f"line {bad_here[0]} of this row is " + msg
        return Problem(start, None, msg)
    if len(row) > len(header) and any(c.strip() for c in row[len(header) :]):
        return Problem(
            start,
            None,
            f"the row has {len(row)} cells but the header names {len(header)} columns "
            f"(a '{'TAB' if delimiter == chr(9) else delimiter}' inside a value that is not quoted?)",
        )
    if end > start and len(row) < len(header):
        # A quote opened and never closed swallows the following lines into one cell.
        return Problem(
            start,
            None,
            f"the row runs from line {start} to line {end} but has only {len(row)} of "
            f'{len(header)} cells; is a quote (") left open on line {start}?',
        )
    return None


def _check_header(header: list[str], name: str, line: int) -> None:
    """Refuse a repeated column name: one of the two columns would be silently lost."""
    seen: set[str] = set()
    for col in header:
        if not col:
            continue
        if col in seen:
            raise DatasetError(
                f"{name} line {line} (the header): the column name '{col}' appears twice. Rename "
                f"one of them so every column has its own name."
            )
        seen.add(col)


def import_parquet() -> Any:
    """``pyarrow.parquet``, imported only when a Parquet file is opened, as it is heavy."""
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415 - optional and heavy: only for Parquet files
    except ImportError:
        raise DatasetError(
            "Reading Parquet files needs the 'pyarrow' package, which is not installed. Install it "
            "(pip install pyarrow) or convert the file to JSON Lines or CSV."
        ) from None
    return pq


def _read_parquet(data: bytes, name: str) -> tuple[list[Item], list[str]]:
    """Every row as a record; Parquet has no lines, so rows are numbered from 1 as records."""
    pq = import_parquet()
    import pyarrow as pa  # noqa: PLC0415

    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as exc:  # pyarrow raises several types (ArrowInvalid, OSError...)
        raise DatasetError(f"{name} is not a readable Parquet file ({exc}).") from None
    columns = list(table.column_names)
    rows = table.to_pylist()
    return [(i, row) for i, row in enumerate(rows, start=1)], columns


def parse_records(data: bytes, fmt: str, name: str) -> tuple[list[Item], list[str], str]:
    """Parse bytes into items; returns (items, columns in order, actual format)."""
    if fmt == "parquet":
        if not data:
            raise DatasetError(f"{name} is empty (0 bytes). Choose a file with rows.")
        items, columns = _read_parquet(data, name)
        if not items:
            raise DatasetError(f"{name} has no rows (columns: {', '.join(columns) or 'none'}).")
        return items, columns, fmt
    text_data, offset0 = normalise_encoding(data, name)
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
            except (ValueError, RecursionError):
                pass
            else:
                items, actual = _read_json(text_data, offset0, name)
    if not items:  # e.g. a .jsonl file holding just "[]"
        raise DatasetError(f"{name} holds no records. Choose a file with rows.")
    return items, columns_of(items), actual


def columns_of(items: Iterable[Item], limit: Optional[int] = _SAMPLE_ROWS) -> list[str]:
    """Keys of the first ``limit`` records (all records when None), in order of appearance."""
    columns: dict[str, None] = {}
    seen = 0
    for _, rec in items:
        if isinstance(rec, Mapping):
            for k in rec:
                columns.setdefault(str(k), None)
            seen += 1
            if limit is not None and seen >= limit:
                break
    return list(columns)
