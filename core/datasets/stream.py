"""Reading a dataset file as a stream of records, with limits that keep a big or hostile file
from taking the machine down (issue 19).

A JSON Lines, CSV or TSV file is read one line at a time and a Parquet file one batch of rows at
a time, so memory holds the records the loader keeps, never the file's text or a list of all its
parsed records. The bytes read are hashed on the way (``Source.sha256`` once the items are
consumed), so the bytes hashed are still the bytes parsed.

The limits, each refused with a message naming the file and what to do:

* a line longer than ``MAX_LINE_BYTES`` (8 MiB) is "line N is too long", for JSON Lines one
  problem row (the rest still load), for CSV/TSV the end of the load (a quoted cell may go on
  over the next lines, so the parser cannot resynchronise);
* a CSV/TSV header or Parquet schema with more than ``MAX_COLUMNS`` columns;
* a JSON value nested deeper than Python's parser allows (a few hundred to a thousand levels):
  "nested too deeply", never a RecursionError;
* a Parquet file whose rows expand to more than ``MAX_PARQUET_VALUES`` values or
  ``MAX_PARQUET_BYTES`` bytes once decompressed (read from its metadata, before any row is read).

A JSON array (``.json``), a UTF-16 file and a pretty-printed JSON document saved as ``.jsonl``
are one document each and still read whole (``readers.parse_records``).
"""

from __future__ import annotations

import csv
import hashlib
import json
from itertools import chain
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Optional, Sequence

from ..errors import DatasetError
from .files import read_bytes
from .readers import (
    MAX_LINE_BYTES,
    NESTED_TOO_DEEPLY,
    Item,
    _check_header,
    _guess_delimiter,
    _not_object_message,
    _row_problem,
    import_parquet,
    parse_records,
)
from .records import Record, record_type
from .types import Problem

MAX_COLUMNS = 10_000
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024  # a JSON array is parsed whole: about 10x its size in memory
MAX_PARQUET_VALUES = 50_000_000
MAX_PARQUET_BYTES = 2 * 1024 * 1024 * 1024
_PARQUET_BATCH = 4096
_UTF8_BOM = b"\xef\xbb\xbf"
_CHUNK = 1024 * 1024
_SHARED_VALUES = 10_000
_MAX_RECORD_TYPES = 256  # distinct key sets of a JSON Lines file kept as compact records


def too_long(size: int) -> str:
    """The words for a line over the limit, with its size so the user can find it."""
    return f"the line is too long ({size / (1024 * 1024):.1f} MiB; KnowMix reads lines up to 8 MiB)"


class Source:
    """A file's records as they are read: ``items`` (in file order), the format actually found,
    the columns when the format names them up front (CSV header, Parquet schema), and the
    sha256 of the file's bytes, complete once ``items`` is exhausted."""

    def __init__(self, items: Iterator[Item], fmt: str, columns: Optional[list[str]], sha: Callable[[], str]) -> None:
        self.items, self.fmt, self.columns, self._sha = items, fmt, columns, sha

    def sha256(self) -> str:
        return self._sha()


def _open(p: Path) -> IO[bytes]:
    try:
        return p.open("rb")
    except OSError as exc:
        raise DatasetError(f"Cannot read {p}: {exc.strerror or exc}. Check that you may read the file.") from None


def _raw_lines(fh: IO[bytes], sha: Any, p: Path) -> Iterator[tuple[int, Optional[bytes], int]]:
    """``(line number, bytes or None when too long, size)`` for each physical line, every byte
    hashed; a line over the limit is skipped in 1 MiB pieces, never held whole."""
    readline, update = fh.readline, sha.update
    lineno = 0
    try:
        while True:
            raw = readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            update(raw)
            lineno += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                size = len(raw)
                while True:
                    rest = readline(_CHUNK)
                    if not rest:
                        break
                    update(rest)
                    size += len(rest)
                    if rest.endswith(b"\n"):
                        break
                yield lineno, None, size
                continue
            yield lineno, raw, len(raw)
    except OSError as exc:
        raise DatasetError(
            f"Cannot read {p}: {exc.strerror or exc}. Check that the file is not being moved or written."
        ) from None


def _text_lines(fh: IO[bytes], sha: Any, p: Path) -> Iterator[tuple[int, str, Optional[str]]]:
    """``(line number, text, problem or None)``: each line decoded on its own, so one bad line
    has its own message with its byte offset (as ``files.decode_lines`` words it)."""
    pos = 0  # bytes before this line, in the file without its BOM
    offset0 = 0
    for lineno, raw, size in _raw_lines(fh, sha, p):
        if raw is None:
            yield lineno, "", too_long(size)
            pos += size
            continue
        if lineno == 1 and raw.startswith(_UTF8_BOM):
            raw, offset0, size = raw[3:], 3, size - 3
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield (
                lineno,
                raw.decode("utf-8", "replace"),
                (
                    f"not valid UTF-8: byte 0x{raw[exc.start]:02X} at byte offset {offset0 + pos + exc.start} of "
                    f"the file (byte {exc.start + 1} of the line). Save the file as UTF-8"
                ),
            )
        else:
            yield lineno, text, None
        pos += size


_scan_once = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # json.loads' own scanner, without its per-call overhead


def loads_line(text: str) -> tuple[Any, Optional[str]]:
    """One JSON value, or (None, why not) for invalid or too deeply nested JSON.

    An object line goes straight to the scanner ``json.loads`` uses (a third of its time is the
    wrapping); anything the fast path does not accept whole is parsed by ``json.loads`` itself, so
    values and messages are exactly its own."""
    try:
        if text[:1] == "{":
            try:
                value, end = _scan_once(text, 0)
            except (StopIteration, ValueError):
                pass
            else:
                if end == len(text) or text[end:].isspace():
                    return value, None
        return json.loads(text), None
    except ValueError as exc:
        msg = getattr(exc, "msg", str(exc))
        col = getattr(exc, "colno", None)
        where = f" at column {col}" if col else ""
        return None, f"invalid JSON{where}: {msg}"
    except RecursionError:
        return None, NESTED_TOO_DEEPLY


class _Shared(dict):
    """One shared string for each short cell value that repeats (a group such as "P17" on a
    million rows), for the first ``_SHARED_VALUES`` distinct values only: ``shared[value]``."""

    def __missing__(self, value: str) -> str:
        if len(self) < _SHARED_VALUES:
            self[value] = value
        return value


def _compact(value: Any, shared: _Shared) -> Any:
    """A short text shared, a list copied to its exact size (the parser leaves room for 4 items)."""
    kind = type(value)
    if kind is str:
        return shared[value] if len(value) <= 32 else value
    if kind is list:
        return value[:]
    return value


def _jsonl_items(lines: Iterator[tuple[int, str, Optional[str]]], name: str) -> Iterator[Item]:
    """One record a line, as ``readers._read_jsonl`` reads them; a file of blank lines is empty."""
    seen = False
    keys: dict[str, str] = {}  # one string per column name, not one per row (a third of a row's memory)
    # A row is kept as a compact Record of its key set's class (56 bytes for three keys, not a
    # 184-byte dict); a file with more key sets than _MAX_RECORD_TYPES keeps the rest as dicts.
    makers: dict[tuple[str, ...], Callable[[Sequence[Any]], Record]] = {}
    shared = _Shared()
    for lineno, text, problem in lines:
        if problem is not None:
            seen = True
            yield lineno, Problem(lineno, None, problem)
            continue
        if not text or text.isspace():
            continue
        seen = True
        value, why = loads_line(text)
        if why is not None:
            yield lineno, Problem(lineno, None, why)
        elif not isinstance(value, dict):
            yield lineno, Problem(lineno, None, _not_object_message(value))
        else:
            cols = tuple(value)
            make = makers.get(cols)
            if make is None and len(makers) < _MAX_RECORD_TYPES:
                make = makers[cols] = record_type(cols)
            if make is not None:
                yield lineno, make([_compact(v, shared) for v in value.values()])
            else:
                yield lineno, {keys.setdefault(k, k): _compact(v, shared) for k, v in value.items()}
    if not seen:
        raise DatasetError(f"{name} is empty. Choose a file with rows.")


def open_jsonl(p: Path, head: bytes) -> Optional[Source]:
    """A JSON Lines file as a stream; None when its first line says it is one JSON document
    (pretty-printed, saved as .jsonl) small enough to be read whole, which the caller then does."""
    sha = hashlib.sha256()
    fh = _open(p)
    items = _jsonl_items(_text_lines(fh, sha, p), p.name)
    try:
        first = next(items, None)
    except BaseException:
        fh.close()
        raise
    maybe_document = head.lstrip(_UTF8_BOM + b" \t\r\n")[:1] in (b"{", b"[") and p.stat().st_size <= MAX_DOCUMENT_BYTES
    if first is not None and isinstance(first[1], Problem) and maybe_document:
        fh.close()
        return None
    return Source(_closing(chain([first] if first else [], items), fh), "jsonl", None, sha.hexdigest)


def _closing(items: Iterator[Item], fh: IO[bytes]) -> Iterator[Item]:
    """``items``, closing the file when they end (or the consumer drops them)."""
    try:
        yield from items
    finally:
        fh.close()


def open_delimited(p: Path, fmt: str) -> Source:
    """A CSV/TSV file as a stream of records keyed by its header (``readers._read_delimited``'s
    rules), with the header's columns known before the first record."""
    sha = hashlib.sha256()
    fh = _open(p)
    try:
        lines = _text_lines(fh, sha, p)
        blank: list[tuple[int, str, Optional[str]]] = []
        first = None
        for entry in lines:
            if entry[2] is not None and entry[2].startswith("the line is too long"):
                raise DatasetError(f"{p.name} line {entry[0]}: {entry[2]}. Shorten or remove that row.")
            if entry[1].strip():
                first = entry
                break
            blank.append(entry)
        if first is None:
            raise DatasetError(f"{p.name} is empty. Choose a file with rows.")
        delimiter = _guess_delimiter(first[1], fmt)
        return _delimited_source(p, fmt, fh, sha, chain(blank, [first], lines), delimiter)
    except BaseException:
        fh.close()
        raise


def _delimited_source(p: Path, fmt: str, fh: IO[bytes], sha: Any, lines: Iterator, delimiter: str) -> Source:
    """Read the header now (its columns decide the shape), the rows as they are consumed."""
    name = p.name
    bad: dict[int, str] = {}

    def texts() -> Iterator[str]:
        for lineno, text, problem in lines:
            if problem is not None:
                if problem.startswith("the line is too long"):
                    raise DatasetError(f"{name} line {lineno}: {problem}. Shorten or remove that row.")
                bad[lineno] = problem
            yield text if text.endswith("\n") else text + "\n"

    if csv.field_size_limit() != MAX_LINE_BYTES:
        # Long answers (alpaca outputs) exceed the 128 KiB default; no cell may exceed a line's limit.
        csv.field_size_limit(MAX_LINE_BYTES)
    reader = csv.reader(texts(), delimiter=delimiter)
    state = {"prev": 0}

    def rows() -> Iterator[tuple[int, int, list[str]]]:
        try:
            for row in reader:
                start, end = state["prev"] + 1, reader.line_num
                state["prev"] = end
                if row and any(c.strip() for c in row):
                    yield start, end, row
        except csv.Error as exc:
            raise DatasetError(
                f"{name} line {reader.line_num}: cannot parse the {fmt.upper()} ({exc}). Check the quotes around "
                f"values near that line (a cell may hold at most 8 MiB)."
            ) from None

    row_iter = rows()
    head = next(row_iter, None)
    if head is None:
        raise DatasetError(f"{name} is empty: there is no header and no data. Choose a file with rows.")
    start, end, row = head
    bad_here = [ln for ln in range(start, end + 1) if ln in bad]
    if bad_here:
        raise DatasetError(f"{name} line {bad_here[0]} (the header): {bad[bad_here[0]]}.")
    if len(row) > MAX_COLUMNS:
        raise DatasetError(
            f"{name} line {start} (the header) has {len(row):,} columns; KnowMix reads files with up to "
            f"{MAX_COLUMNS:,} columns. Keep only the columns that hold the questions and answers, and try again."
        )
    header = [c.strip() for c in row]
    _check_header(header, name, start)

    shared = _Shared()
    make = record_type(header)
    width = len(header)

    def items() -> Iterator[Item]:
        n = 0
        try:
            for start, end, row in row_iter:
                bad_here = [ln for ln in range(start, end + 1) if ln in bad] if bad else []
                problem = _row_problem(row, header, start, end, delimiter, bad_here, bad)
                for ln in bad_here:
                    del bad[ln]
                n += 1
                if problem is not None:
                    yield start, problem
                    continue
                cells = [shared[c] if len(c) <= 32 else c for c in row[:width]]
                yield start, make(cells + [None] * (width - len(cells)))
        finally:
            fh.close()
        if not n:
            raise DatasetError(f"{name} has only a header (line {head[0]}: {', '.join(header[:20])}) and no data rows.")

    return Source(items(), fmt, header, sha.hexdigest)


def _file_sha256(p: Path) -> str:
    """The sha256 of a file read in pieces (Parquet is read by pyarrow, not line by line)."""
    sha = hashlib.sha256()
    with _open(p) as fh:
        try:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                sha.update(chunk)
        except OSError as exc:
            raise DatasetError(f"Cannot read {p}: {exc.strerror or exc}.") from None
    return sha.hexdigest()


def open_parquet(p: Path) -> Source:
    """A Parquet file as batches of rows, after its metadata says the rows fit (columns, values,
    decompressed bytes); rows are numbered from 1 as records."""
    name = p.name
    if p.stat().st_size == 0:
        raise DatasetError(f"{name} is empty (0 bytes). Choose a file with rows.")
    pq = import_parquet()
    try:
        pf = pq.ParquetFile(str(p))
        meta = pf.metadata
    except Exception as exc:  # pyarrow raises several types (ArrowInvalid, OSError...)
        raise DatasetError(f"{name} is not a readable Parquet file ({exc}).") from None
    columns = list(pf.schema_arrow.names)
    check_parquet_metadata(meta, name, len(columns))
    if meta.num_rows == 0:
        raise DatasetError(f"{name} has no rows (columns: {', '.join(columns[:20]) or 'none'}).")
    sha = _file_sha256(p)

    # Rows as compact records of the file's columns (a dict a row doubled a full load's memory);
    # a file whose columns repeat a name keeps pyarrow's dicts, which keep the last of them.
    make = record_type(columns) if len(set(columns)) == len(columns) else None
    shared = _Shared()

    def items() -> Iterator[Item]:
        index = 0
        try:
            for batch in pf.iter_batches(batch_size=_PARQUET_BATCH):
                if make is None:
                    for row in batch.to_pylist():
                        index += 1
                        yield index, row
                    continue
                for values in zip(*(column.to_pylist() for column in batch.columns)):
                    index += 1
                    yield index, make([_compact(v, shared) for v in values])
        except DatasetError:
            raise
        except Exception as exc:
            raise DatasetError(f"{name} record {index + 1}: cannot be read ({exc}). The Parquet file may be damaged.") from None
        finally:
            pf.close()

    return Source(items(), "parquet", columns, lambda: sha)


def check_parquet_metadata(meta: Any, name: str, n_columns: int) -> None:
    """Refuse, from the footer alone, a file whose rows would not fit in memory once expanded."""
    if n_columns > MAX_COLUMNS:
        raise DatasetError(
            f"{name} has {n_columns:,} columns; KnowMix reads files with up to {MAX_COLUMNS:,} columns. Keep only "
            f"the columns that hold the questions and answers, and try again."
        )
    values = 0
    size = 0
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        size += rg.total_byte_size
        for c in range(rg.num_columns):
            values += rg.column(c).num_values
    if values > MAX_PARQUET_VALUES or size > MAX_PARQUET_BYTES:
        raise DatasetError(
            f"{name}: its {meta.num_rows:,} rows hold {values:,} values ({size / 1e9:.1f} GB once decompressed); "
            f"KnowMix reads up to {MAX_PARQUET_VALUES:,} values and {MAX_PARQUET_BYTES / 1e9:.1f} GB. Split the file, "
            f"or keep only the columns that hold the questions and answers."
        )


def open_source(p: Path, fmt: str, head: bytes) -> Source:
    """The file's records, streamed where the format allows, else parsed from one read of it."""
    if fmt == "parquet":
        return open_parquet(p)
    if fmt == "json" or head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _whole(p, fmt)
    if fmt in ("csv", "tsv"):
        return open_delimited(p, fmt)
    return open_jsonl(p, head) or _whole(p, fmt)


def _whole(p: Path, fmt: str) -> Source:
    """One document (a JSON array, a UTF-16 file): read whole, hashed, parsed; refused above
    ``MAX_DOCUMENT_BYTES``, as parsing it whole takes about ten times its size in memory."""
    size = p.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        kind = "a JSON document" if fmt == "json" else "a UTF-16 text file"
        raise DatasetError(
            f"{p.name} is {kind} of {size / (1024 * 1024):,.0f} MiB, which KnowMix would have to read whole; it reads "
            f"such files up to {MAX_DOCUMENT_BYTES >> 20} MiB. Save it as UTF-8 JSON Lines (one record a line) or "
            f"CSV, which are read as a stream, and try again."
        )
    data = read_bytes(p)
    sha = hashlib.sha256(data).hexdigest()
    items, columns, actual = parse_records(data, fmt, p.name)
    del data
    return Source(iter(items), actual, columns if actual in ("csv", "tsv") else None, lambda: sha)
