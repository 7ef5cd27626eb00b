"""The import dialog's preview: the first records of a file and what KnowMix would make of them.

Unlike loading, a preview reads only as much of the file as it shows and never raises for an
undetected shape, so the GUI can show the columns and ask the user for a mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import DatasetError
from .files import EXTENSIONS, check_path, read_bytes, read_prefix, resolve_format
from .keys import classify
from .readers import columns_of, import_parquet, parse_records
from .rows import Extractor, RowProblem
from .shapes import resolve_shape, validate_mapping
from .types import NOT_PROBED, PROBED, PathLike, Preview


def read_preview(
    path: PathLike,
    n: int = 20,
    *,
    fmt: Optional[str] = None,
    mapping: Optional[dict[str, str]] = None,
    key_overrides: Optional[dict[int, str]] = None,
) -> Preview:
    """First ``n`` records plus the detected format, shape and mapping, for the import dialog.

    Line-based files (JSONL, CSV, TSV) are read only as far as needed; Parquet reads only the
    first batch; a JSON array has to be parsed whole. Rows with problems are left out of the
    preview (``load_dataset`` reports them). Unlike ``load_dataset`` this does not raise when no
    shape is detected: it returns ``shape=None`` and a ``message`` so the GUI can ask for a mapping.

    ``Preview.rows`` says per record what loading would make of it: its probe status and
    reason, and its answer key and where the key comes from, for the user to check (and edit:
    ``key_overrides`` maps a record's line to the user's key, as ``load_dataset`` takes it).
    """
    p = check_path(path)
    user_mapping = validate_mapping(mapping)
    fmt = _preview_format(p, fmt)
    if fmt == "parquet":
        columns, items = _parquet_head(p, n)
    else:
        columns, items, fmt = _text_head(p, n, fmt)
    records = [rec for _, rec in items]
    shape, roles, error = resolve_shape(list(columns), user_mapping, p.name)
    rows = _analyse(items, shape, roles, fmt, key_overrides or {}) if shape and not error else []
    return Preview(
        path=str(p),
        format=fmt,
        columns=list(columns),
        records=records,
        shape=shape or None,
        mapping=roles,
        message=error,
        rows=rows,
    )


def _analyse(items: list[tuple[int, dict]], shape: str, roles: dict[str, str], fmt: str, overrides: dict[int, str]) -> list[dict]:
    """What ``load_dataset`` would make of each previewed record (status, reason, key)."""
    extract = Extractor(shape, roles, fmt)
    out: list[dict] = []
    for line, rec in items:
        try:
            row = extract(rec)
        except RowProblem as rp:
            where = f"field '{rp.field}': " if rp.field else ""
            out.append({"line": line, "status": "problem", "reason": where + rp.message, "key": "", "key_source": ""})
            continue
        reason, keys, source = classify(
            row.question, row.answers, reason=row.reason, key_column=row.keys, override=overrides.get(line)
        )
        key = " | ".join(keys or row.answers) if not reason else ""
        out.append(
            {
                "line": line,
                "status": NOT_PROBED if reason else PROBED,
                "reason": reason,
                "key": key,
                "key_source": source if not reason else "",
            }
        )
    return out


def _preview_format(p: Path, fmt: Optional[str]) -> str:
    """The format from the name, or sniffed from the first lines only (never the whole file)."""
    if fmt is None and p.suffix.lower() not in EXTENSIONS:
        head, _ = read_prefix(p, 64)
        return resolve_format(p, head, None)
    return resolve_format(p, b"", fmt)


def _parquet_head(p: Path, n: int) -> tuple[list[str], list[tuple[int, dict]]]:
    """Columns and the first ``n`` rows from the first batch, without reading the whole table."""
    pq = import_parquet()
    try:
        pf = pq.ParquetFile(str(p))
        columns = list(pf.schema_arrow.names)
        batch = next(pf.iter_batches(batch_size=max(1, n)), None)
    except Exception as exc:
        raise DatasetError(f"{p.name} is not a readable Parquet file ({exc}).") from None
    rows = batch.to_pylist()[:n] if batch is not None else []
    return columns, list(enumerate(rows, start=1))


def _text_head(p: Path, n: int, fmt: str) -> tuple[list[str], list[tuple[int, dict]], str]:
    """Columns, the first ``n`` good records and the actual format of a text file.

    Line-based files are read only as far as needed (four lines a record leaves room for broken
    and multi-line rows); a JSON array has to be parsed whole.
    """
    data = read_bytes(p) if fmt == "json" else read_prefix(p, n * 4 + 2)[0]
    items, columns, fmt = parse_records(data, fmt, p.name)
    records = [(line, rec) for line, rec in items if isinstance(rec, dict)][:n]
    if fmt not in ("csv", "tsv"):
        columns = columns_of(records) or columns
    return columns, records, fmt
