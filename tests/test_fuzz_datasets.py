"""Fuzzing the dataset loader: no file, however broken, may crash it with anything but a KnowMix error.

Hypothesis writes arbitrary bytes, arbitrary JSON values (as JSON Lines and as one JSON document),
CSV/TSV text with random quoting, delimiters and encodings (UTF-8 with and without BOM, UTF-16,
latin-1), random column names, nested values, huge and empty fields, and random Parquet tables
(and random bytes named .parquet), under every supported extension. Each file goes through
``load_dataset`` (strict and with ``skip_invalid``, with and without a random column mapping) and
``read_preview``. A ``KnowMixError`` is the only allowed failure; anything else is a bug in
``core/datasets.py``. Inputs that once crashed the loader are kept as ``@example``s.

The example counts keep the whole module around half a minute on a busy 2-core machine.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.datasets import load_dataset, parse_mapping, read_preview
from core.errors import KnowMixError

EXTENSIONS = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt")
# KNOWMIX_FUZZ_EXAMPLES=5000 runs a deeper search locally; the suite's default stays quick.
FUZZ = settings(
    max_examples=int(os.environ.get("KNOWMIX_FUZZ_EXAMPLES") or 120),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)

# Column names the loader looks for, so that generated records often reach the shape code.
KNOWN_COLUMNS = (
    "question",
    "answers",
    "answer",
    "instruction",
    "input",
    "output",
    "prompt",
    "completion",
    "response",
    "messages",
    "conversations",
    "relation",
    "group",
    "category",
    "topic",
    "id",
    "_id",
    "uid",
    "role",
    "content",
    "from",
    "value",
    "text",
    "aliases",
    "Question",
    " ANSWER ",
)
column_names = st.one_of(st.sampled_from(KNOWN_COLUMNS), st.text(max_size=12))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", " ", "Paris|City of Light", '["Paris", "Lutetia"]', "[1, 2", "|", "x" * 5000, "\u0000"]),
)


def json_values(max_leaves: int = 12):
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(column_names, inner, max_size=5),
        ),
        max_leaves=max_leaves,
    )


# A record is usually an object with known keys whose values are anything (chat turns included).
turns = st.lists(
    st.dictionaries(st.sampled_from(["role", "content", "from", "value", "text", "type"]), json_values(4), max_size=3),
    max_size=4,
)
records = st.one_of(
    st.dictionaries(column_names, st.one_of(json_values(), turns), max_size=6),
    json_values(),
)


def _write_tmp(suffix: str, data: bytes) -> Path:
    fd, name = tempfile.mkstemp(suffix=suffix, prefix="fuzz-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return Path(name)


def _mappings(draw_text: str | None) -> list:
    """The mappings to try: none, and the drawn one if ``parse_mapping`` accepts it."""
    out: list = [None]
    if draw_text is not None:
        try:
            out.append(parse_mapping(draw_text))
        except KnowMixError:
            pass
    return out


def check_loader(path: Path, mapping_text: str | None = None) -> None:
    """The property: every entry point either works or raises a KnowMixError."""
    try:
        for mapping in _mappings(mapping_text):
            for skip in (False, True):
                try:
                    ds = load_dataset(path, mapping=mapping, skip_invalid=skip)
                except KnowMixError as exc:
                    assert str(exc).strip(), "an empty error message"
                    continue
                assert ds.examples, "a dataset without examples must be refused"
                for ex in ds.examples:
                    assert isinstance(ex.question, str) and ex.question.strip()
                    assert ex.answers and all(isinstance(a, str) and a.strip() for a in ex.answers)
                    assert isinstance(ex.group, str) and isinstance(ex.id, str) and ex.id
                    json.dumps(ex.raw, ensure_ascii=False, default=str)  # what the project stores
                ds.summary_line()
            try:
                read_preview(path, mapping=mapping)
            except KnowMixError as exc:
                assert str(exc).strip()
    finally:
        path.unlink(missing_ok=True)


mapping_texts = st.one_of(
    st.none(),
    st.lists(
        st.tuples(st.sampled_from(["question", "answer", "answers", "group", "id", "input", "bogus"]), column_names),
        max_size=3,
    ).map(lambda pairs: ",".join(f"{r}={c}" for r, c in pairs)),
    st.text(max_size=20),
)


# ----------------------------------------------------------------------------- arbitrary bytes


@FUZZ
@given(data=st.binary(max_size=2000), suffix=st.sampled_from(EXTENSIONS), mapping=mapping_texts)
@example(data=b"PAR1", suffix=".parquet", mapping=None)
@example(data=b"PAR1\x00\x00\x00\x00PAR1", suffix=".parquet", mapping=None)
@example(data=b"\xff\xfe\x00", suffix=".csv", mapping=None)
@example(data=b"\xef\xbb\xbf", suffix=".json", mapping=None)
@example(data=b"", suffix=".txt", mapping=None)
def test_arbitrary_bytes(data: bytes, suffix: str, mapping) -> None:
    check_loader(_write_tmp(suffix, data), mapping)


# ----------------------------------------------------------------------------- JSON


@FUZZ
@given(
    values=st.lists(records, max_size=8),
    suffix=st.sampled_from([".jsonl", ".json", ".txt"]),
    as_array=st.booleans(),
    wrap=st.sampled_from([None, "data", "rows"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
    mapping=mapping_texts,
)
@example(values=[[]], suffix=".jsonl", as_array=False, wrap=None, encoding="utf-8", mapping=None)  # was IndexError
@example(
    values=[{"question": "q", "answers": {"text": 1}}], suffix=".jsonl", as_array=False, wrap=None, encoding="utf-8", mapping=None
)
@example(
    values=[{"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]}],
    suffix=".jsonl",
    as_array=False,
    wrap=None,
    encoding="utf-8",
    mapping=None,
)
def test_json_values(values, suffix, as_array, wrap, encoding, mapping) -> None:
    if as_array:
        doc = values if wrap is None else {wrap: values}
        text = json.dumps(doc, ensure_ascii=False)
    else:
        text = "\n".join(json.dumps(v, ensure_ascii=False) for v in values)
    check_loader(_write_tmp(suffix, text.encode(encoding, "surrogatepass")), mapping)


# ----------------------------------------------------------------------------- CSV / TSV

cells = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            "Paris|City of Light",
            '["Paris", "x"]',
            '[1, {"a": 2}]',
            "[",
            "a\nb",
            '"',
            "x" * 20000,
            "1987",
            "NaN",
            "null",
            " | ",
            "\ufeff",
        ]
    ),
)


@FUZZ
@given(
    header=st.lists(column_names, max_size=6),
    rows=st.lists(st.lists(cells, max_size=7), max_size=8),
    delimiter=st.sampled_from([",", "\t", ";", "|"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC, csv.QUOTE_NONE]),
    line_end=st.sampled_from(["\n", "\r\n", "\r"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]),
    suffix=st.sampled_from([".csv", ".tsv", ".txt"]),
    mapping=mapping_texts,
)
@example(
    header=["question", "answer"],
    rows=[["q", "\ufeff"]],
    delimiter=",",
    quoting=csv.QUOTE_MINIMAL,
    line_end="\n",
    encoding="utf-8",
    suffix=".csv",
    mapping=None,
)
def test_delimited_text(header, rows, delimiter, quoting, line_end, encoding, suffix, mapping) -> None:
    buf = io.StringIO()
    try:
        writer = csv.writer(buf, delimiter=delimiter, quoting=quoting, lineterminator=line_end, escapechar="\\")
        writer.writerow(header)
        writer.writerows(rows)
    except csv.Error:
        return  # the writer itself cannot express this row (QUOTE_NONE with a special character)
    data = buf.getvalue().encode(encoding, "replace")
    check_loader(_write_tmp(suffix, data), mapping)


# ----------------------------------------------------------------------------- Parquet


@FUZZ
@given(
    table=st.dictionaries(
        column_names,
        st.one_of(
            st.lists(st.one_of(st.none(), st.text(max_size=20)), min_size=3, max_size=3),
            st.lists(st.one_of(st.none(), st.integers(-5, 5)), min_size=3, max_size=3),
            st.lists(st.floats(allow_nan=True), min_size=3, max_size=3),
            st.lists(st.lists(st.text(max_size=8), max_size=3), min_size=3, max_size=3),
            st.lists(st.fixed_dictionaries({"text": st.lists(st.text(max_size=8), max_size=2)}), min_size=3, max_size=3),
            st.lists(
                st.lists(
                    st.fixed_dictionaries(
                        {"role": st.sampled_from(["user", "assistant", "system", "x"]), "content": st.text(max_size=8)}
                    ),
                    max_size=3,
                ),
                min_size=3,
                max_size=3,
            ),
        ),
        max_size=5,
    ),
    cut=st.one_of(st.none(), st.integers(0, 400)),
    mapping=mapping_texts,
)
def test_parquet_tables(table, cut, mapping) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    buf = io.BytesIO()
    pq.write_table(pa.table(table) if table else pa.table({"empty": pa.array([], pa.string())}), buf)
    data = buf.getvalue()
    if cut is not None:
        data = data[: len(data) - cut]  # a truncated download
    check_loader(_write_tmp(".parquet", data), mapping)
