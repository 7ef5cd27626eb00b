"""Hostile GGUF headers (issue 19, item 5): counts, lengths and nesting are checked against the
file before anything is read or allocated, and ``general.alignment`` must be a power of two; each
is one ``ModelError`` naming the file, never a hang, a MemoryError, a RecursionError or a
ZeroDivisionError. The files are tiny byte strings built here."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from core.errors import ModelError
from core.models import read_gguf_metadata


def _s(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _kv(key: str, vtype: int, payload: bytes) -> bytes:
    return _s(key) + struct.pack("<I", vtype) + payload


def _gguf(kvs: list[bytes], *, n_tensors: int = 1, n_kv: int | None = None, tensor: bool = True) -> bytes:
    body = b"GGUF" + struct.pack("<I", 3) + struct.pack("<Q", n_tensors) + struct.pack("<Q", len(kvs) if n_kv is None else n_kv)
    body += b"".join(kvs)
    if tensor:
        body += _s("weight") + struct.pack("<I", 1) + struct.pack("<Q", 4) + struct.pack("<I", 0) + struct.pack("<Q", 0)
    body += b"\0" * ((-len(body)) % 32) + b"\0" * 64
    return body


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "hostile.gguf"
    path.write_bytes(data)
    return path


def test_a_well_formed_header_still_reads(tmp_path: Path) -> None:
    path = _write(tmp_path, _gguf([_kv("general.name", 8, _s("tiny")), _kv("general.alignment", 4, struct.pack("<I", 32))]))
    meta = read_gguf_metadata(path)
    assert meta["general.name"] == "tiny" and meta["general.alignment"] == 32


@pytest.mark.parametrize(
    "payload, words",
    [
        (struct.pack("<I", 0), "general.alignment is 0, not a power of two"),
        (struct.pack("<I", 24), "general.alignment is 24, not a power of two"),
    ],
)
def test_alignment_zero_or_not_a_power_of_two(tmp_path: Path, payload: bytes, words: str) -> None:
    path = _write(tmp_path, _gguf([_kv("general.alignment", 4, payload)]))
    with pytest.raises(ModelError, match=words) as err:
        read_gguf_metadata(path)
    assert "hostile.gguf" in str(err.value)


@pytest.mark.parametrize(
    "vtype, payload",
    [
        (8, _s("32")),
        (6, struct.pack("<f", 32.0)),
        (7, struct.pack("<?", True)),
        (9, struct.pack("<I", 4) + struct.pack("<Q", 1) + struct.pack("<I", 32)),
    ],
    ids=["string", "float", "bool", "array"],
)
def test_alignment_of_the_wrong_type(tmp_path: Path, vtype: int, payload: bytes) -> None:
    path = _write(tmp_path, _gguf([_kv("general.alignment", vtype, payload)]))
    with pytest.raises(ModelError, match="general.alignment is .*not a whole number"):
        read_gguf_metadata(path)


def test_counts_beyond_what_the_file_holds(tmp_path: Path) -> None:
    path = _write(tmp_path, _gguf([], n_tensors=1000, n_kv=50_000, tensor=False))
    with pytest.raises(ModelError, match="claims 1,000 tensors and 50,000 metadata keys, more than the file holds"):
        read_gguf_metadata(path)


def test_a_string_longer_than_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, _gguf([_s("general.name") + struct.pack("<I", 8) + struct.pack("<Q", 10_000_000) + b"abc"]))
    with pytest.raises(ModelError, match="the value of general.name claims 10,000,000 bytes, more than the file holds"):
        read_gguf_metadata(path)


def test_an_array_count_beyond_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, _gguf([_kv("tokenizer.ggml.scores", 9, struct.pack("<I", 6) + struct.pack("<Q", 1 << 25))]))
    with pytest.raises(ModelError, match="tokenizer.ggml.scores claims an array of 33,554,432 values"):
        read_gguf_metadata(path)


def test_arrays_nested_deeply_are_refused_not_recursed(tmp_path: Path) -> None:
    nest = b"".join(struct.pack("<I", 9) + struct.pack("<Q", 1) for _ in range(100_000))
    path = _write(tmp_path, _gguf([_s("evil") + struct.pack("<I", 9) + nest]))
    with pytest.raises(ModelError, match="evil nests arrays more than 4 deep"):
        read_gguf_metadata(path)


def test_wide_arrays_of_arrays_are_bounded(tmp_path: Path) -> None:
    # 60,000 x 60,000 empty arrays would be 3.6 billion values to walk: refused at once.
    inner = struct.pack("<I", 9) + struct.pack("<Q", 60_000)
    empty = struct.pack("<I", 4) + struct.pack("<Q", 0)
    payload = inner + (struct.pack("<I", 9) + struct.pack("<Q", 60_000) + empty * 60_000) * 20
    path = _write(tmp_path, _gguf([_s("evil") + struct.pack("<I", 9) + payload]))
    t0 = time.monotonic()
    with pytest.raises(ModelError, match="evil holds arrays of arrays with more than 65,536 values|evil claims an array"):
        read_gguf_metadata(path)
    assert time.monotonic() - t0 < 10
