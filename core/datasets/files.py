"""Getting a dataset file's bytes: checking the path, reading it once, fixing the encoding,
telling the format from the name or the content, and splitting it into lines.

Everything here works on bytes and knows nothing of rows or shapes, so the readers can trust
that what they get is UTF-8 without a BOM, and every message about the file itself (missing,
a folder, unreadable, not UTF-8) is worded in one place.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Optional

from ..errors import DatasetError
from .types import FORMATS, PathLike

EXTENSIONS = {
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
_SUPPORTED_TEXT = "KnowMix reads JSON Lines (.jsonl), JSON (.json), CSV (.csv), TSV (.tsv) and Parquet (.parquet)"
_UTF8_BOM = b"\xef\xbb\xbf"
_PREVIEW_MAX_BYTES = 8 * 1024 * 1024


def check_path(path: PathLike) -> Path:
    """The path as a file that exists, with a message saying what to do when it is not one."""
    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise DatasetError(f"Dataset file not found: {p}. Check the path, or choose the file again.")
    if p.is_dir():
        raise DatasetError(f"{p} is a folder, not a file. Choose a dataset file inside it ({_SUPPORTED_TEXT} files).")
    return p


def read_bytes(p: Path) -> bytes:
    """The whole file, read once so the bytes hashed are the bytes parsed."""
    try:
        return p.read_bytes()
    except PermissionError:
        raise DatasetError(
            f"Cannot read {p}: permission denied. Check that your user may read the file, or copy it to a folder you own."
        ) from None
    except OSError as exc:
        raise DatasetError(
            f"Cannot read {p}: {exc.strerror or exc}. Check that the file is not being moved or "
            f"written by another program, then try again."
        ) from None


def read_head(p: Path, size: int = 65536) -> bytes:
    """The file's first bytes: enough to tell its format and encoding before streaming it."""
    try:
        with p.open("rb") as fh:
            return fh.read(size)
    except PermissionError:
        raise DatasetError(
            f"Cannot read {p}: permission denied. Check that your user may read the file, or copy it to a folder you own."
        ) from None
    except OSError as exc:
        raise DatasetError(
            f"Cannot read {p}: {exc.strerror or exc}. Check that the file is not being moved, then try again."
        ) from None


def normalise_encoding(data: bytes, name: str) -> tuple[bytes, int]:
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
                f"{name} starts like a UTF-16 text file but is not valid UTF-16 ({exc.reason}). Save it as UTF-8 and try again."
            ) from None
    return data, 0


def resolve_format(p: Path, data: bytes, fmt: Optional[str]) -> str:
    """The format the user chose, else the one the extension names, else one sniffed from the bytes."""
    if fmt:
        key = fmt.strip().lower().lstrip(".")
        key = _FORMAT_ALIASES.get(key, key)
        if key not in FORMATS:
            raise DatasetError(f"Unknown dataset format '{fmt}'. Choose one of: {', '.join(FORMATS)}.")
        return key
    by_ext = EXTENSIONS.get(p.suffix.lower())
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
    text_bytes, _ = normalise_encoding(data[:65536], "")
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
        except (ValueError, RecursionError):
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


def decode_lines(data: bytes, offset0: int) -> tuple[list[str], dict[int, str]]:
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


def read_prefix(p: Path, lines_wanted: int) -> tuple[bytes, bool]:
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
