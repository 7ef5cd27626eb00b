"""The import dialog's preview: the first records of a file and what KnowMix would make of them.

Unlike loading, a preview reads only as much of the file as it shows and never raises for an
undetected shape, so the GUI can show the columns and ask the user for a mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import DatasetError
from .files import EXTENSIONS, check_path, read_bytes, read_prefix, resolve_format
from .readers import columns_of, import_parquet, parse_records
from .shapes import resolve_shape, validate_mapping
from .types import PathLike, Preview


def read_preview(path: PathLike, n: int = 20, *, fmt: Optional[str] = None, mapping: Optional[dict[str, str]] = None) -> Preview:
    """First ``n`` records plus the detected format, shape and mapping, for the import dialog.

    Line-based files (JSONL, CSV, TSV) are read only as far as needed; Parquet reads only the
    first batch; a JSON array has to be parsed whole. Rows with problems are left out of the
    preview (``load_dataset`` reports them). Unlike ``load_dataset`` this does not raise when no
    shape is detected: it returns ``shape=None`` and a ``message`` so the GUI can ask for a mapping.
    """
    p = check_path(path)
    user_mapping = validate_mapping(mapping)
    fmt = _preview_format(p, fmt)
    if fmt == "parquet":
        columns, records = _parquet_head(p, n)
    else:
        columns, records, fmt = _text_head(p, n, fmt)
    shape, roles, error = resolve_shape(list(columns), user_mapping, p.name)
    return Preview(
        path=str(p),
        format=fmt,
        columns=list(columns),
        records=records,
        shape=shape or None,
        mapping=roles,
        message=error,
    )


def _preview_format(p: Path, fmt: Optional[str]) -> str:
    """The format from the name, or sniffed from the first lines only (never the whole file)."""
    if fmt is None and p.suffix.lower() not in EXTENSIONS:
        head, _ = read_prefix(p, 64)
        return resolve_format(p, head, None)
    return resolve_format(p, b"", fmt)


def _parquet_head(p: Path, n: int) -> tuple[list[str], list[dict]]:
    """Columns and the first ``n`` rows from the first batch, without reading the whole table."""
    pq = import_parquet()
    try:
        pf = pq.ParquetFile(str(p))
        columns = list(pf.schema_arrow.names)
        batch = next(pf.iter_batches(batch_size=max(1, n)), None)
    except Exception as exc:
        raise DatasetError(f"{p.name} is not a readable Parquet file ({exc}).") from None
    return columns, (batch.to_pylist()[:n] if batch is not None else [])


def _text_head(p: Path, n: int, fmt: str) -> tuple[list[str], list[dict], str]:
    """Columns, the first ``n`` good records and the actual format of a text file.

    Line-based files are read only as far as needed (four lines a record leaves room for broken
    and multi-line rows); a JSON array has to be parsed whole.
    """
    data = read_bytes(p) if fmt == "json" else read_prefix(p, n * 4 + 2)[0]
    items, columns, fmt = parse_records(data, fmt, p.name)
    records = [rec for _, rec in items if isinstance(rec, dict)][:n]
    if fmt not in ("csv", "tsv"):
        columns = columns_of((0, r) for r in records) or columns
    return columns, records, fmt
