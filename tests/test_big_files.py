"""Big and hostile dataset files (issue 19, item 5): streamed loading, a bounded ``--limit`` load,
and a clear message naming the file for a line over 8 MiB, deeply nested JSON, a million-column
CSV and a Parquet file whose rows expand to too many values; never a RecursionError or an OOM.

Memory is measured as a child process's own peak RSS (``VmHWM``) on a generated 200k-row file;
the 1M-row case lives in ``bench/load_bench.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.datasets import load_dataset, take_balanced
from core.errors import DatasetError

ROOT = Path(__file__).resolve().parent.parent

_CHILD = r"""
import json, sys
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) * 1024
from core.datasets import load_dataset, take_balanced
before = hwm()
limit = int(sys.argv[2])
ds = load_dataset(sys.argv[1], limit=limit) if limit else load_dataset(sys.argv[1])
print(json.dumps({"growth": hwm() - before, "n": len(ds.examples)}))
"""


def _write_qa(path: Path, rows: int) -> None:
    if path.suffix == ".csv":
        _write_qa_csv(path, rows)
        return
    with path.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            rec = {
                "question": f"What is the capital of the country numbered {i}?",
                "answers": [f"Capital{i}"],
                "relation": f"P{i % 12}",
            }
            fh.write(json.dumps(rec) + "\n")


def _write_qa_csv(path: Path, rows: int) -> None:
    import csv

    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "answer", "relation"])
        w.writerows((f"What is the capital of the country numbered {i}?", f"Capital{i}", f"P{i % 12}") for i in range(rows))


def _peak_growth(path: Path, limit: int) -> dict:
    """Load ``path`` in a fresh interpreter; how much its peak RSS grew during the load."""
    if not Path("/proc/self/status").exists():
        pytest.skip("peak RSS is read from /proc (Linux)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(limit)], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=["jsonl", "csv"])
def big_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same 200k questions as JSON Lines and as CSV (a CSV row is read by its own code path)."""
    path = tmp_path_factory.mktemp("big") / f"qa_200k.{request.param}"
    _write_qa(path, 200_000)
    return path


def test_limit_probe_reads_a_big_file_in_little_memory(big_file: Path) -> None:
    # Before: the whole file was loaded (about 430 MB for these 23 MB), then 24 questions picked.
    res = _peak_growth(big_file, 24)
    # A CSV's rows once all went into the shape-detection sample (it counted only dict records).
    assert res["n"] == 24
    assert res["growth"] < 30 * 1024 * 1024, res


def test_full_load_is_streamed(big_file: Path) -> None:
    # Before: the file's bytes, its text, its lines and every parsed record at once, about 18x the
    # file's size; streamed, the rows kept and their index, under 10x.
    res = _peak_growth(big_file, 0)
    assert res["n"] == 200_000
    assert res["growth"] < 10 * big_file.stat().st_size, res


def test_limit_gives_what_take_balanced_gives(tmp_path: Path) -> None:
    """Same questions, same merged answers, same fingerprint, with duplicates of kept and unkept
    questions, groups of different sizes and not-probed rows."""
    lines = []
    for i in range(300):
        group = f"g{i % 7}" if i % 5 else "big"
        lines.append({"question": f"Who wrote book {i}?", "answers": [f"Author{i}"], "relation": group})
    lines.append({"question": "who WROTE book 3?", "answers": ["Other3"], "relation": "g3"})  # merges into a kept row
    lines.append({"question": "Who wrote book 299?", "answers": ["Other"], "relation": "g4"})  # duplicate of an unkept row
    lines.append({"question": "Summarise this text for me: a b c", "answers": ["It is about letters a, b and c, in that order."]})
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n", encoding="utf-8")
    for n in (1, 5, 24, 200, 1000):
        want = take_balanced(load_dataset(path), n)
        got = load_dataset(path, limit=n)
        assert [(e.id, e.answers, e.line) for e in got.examples] == [(e.id, e.answers, e.line) for e in want.examples]
        assert [e.line for e in got.unprobed] == [e.line for e in want.unprobed]
        assert got.content_sha256 == want.content_sha256
        assert got.file_sha256 == want.file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert want.unprobed, "the test needs a not-probed row"


def test_limit_below_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write_qa(path, 3)
    with pytest.raises(DatasetError, match="at least 1"):
        load_dataset(path, limit=0)


def test_a_line_over_8_mib_is_too_long_not_invalid(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    huge = json.dumps({"question": "Q?", "answers": ["x" * (9 * 1024 * 1024)]})
    path.write_text(
        '{"question": "A?", "answers": ["a"]}\n' + huge + '\n{"question": "B?", "answers": ["b"]}\n', encoding="utf-8"
    )
    with pytest.raises(DatasetError) as err:
        load_dataset(path)
    assert "long.jsonl line 2: the line is too long (9.0 MiB; KnowMix reads lines up to 8 MiB)" in str(err.value)
    ds = load_dataset(path, skip_invalid=True)
    assert [e.question for e in ds.examples] == ["A?", "B?"]
    assert ds.problems[0].line == 2 and "too long" in ds.problems[0].message


def test_a_csv_line_over_8_mib_is_too_long(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("question,answer\nA?,a\nB?," + "x" * (9 * 1024 * 1024) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"long\.csv line 3: the line is too long \(9\.0 MiB"):
        load_dataset(path)


@pytest.mark.parametrize("name", ["deep.jsonl", "deep.json"])
def test_deeply_nested_json_is_a_clear_message(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as err:
        load_dataset(path)
    assert name in str(err.value) and "nested too deeply" in str(err.value)


def test_nested_row_among_good_ones_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    deep = '{"question": "Q?", "answers": ' + "[" * 50_000 + "]" * 50_000 + "}"
    path.write_text('{"question": "A?", "answers": ["a"]}\n' + deep + "\n", encoding="utf-8")
    ds = load_dataset(path, skip_invalid=True)
    assert [e.question for e in ds.examples] == ["A?"]
    assert ds.problems[0].line == 2 and "nested too deeply" in ds.problems[0].message


def test_a_million_column_csv_is_refused_by_its_header(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    cols = [f"c{i}" for i in range(1_000_000)]
    with path.open("w", encoding="utf-8") as fh:
        fh.write(",".join(["question", "answer", *cols[2:]]) + "\n")
        fh.write(",".join(["Q?", "a", *("" for _ in cols[2:])]) + "\n")
    with pytest.raises(
        DatasetError, match=r"wide\.csv line 1 \(the header\) has 1,000,000 columns; KnowMix reads files with up to 10,000"
    ):
        load_dataset(path)


def _parquet(tmp_path: Path, rows: int, per_row: int) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "question": [f"Q{i}?" for i in range(rows)],
            "answers": [[f"a{i}"] + ["x"] * (per_row - 1) for i in range(rows)],
        }
    )
    path = tmp_path / "wide.parquet"
    pq.write_table(table, path, row_group_size=max(1, rows // 4))
    return path


def test_parquet_that_expands_too_far_is_refused_from_its_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.datasets import stream

    path = _parquet(tmp_path, 100, 500)  # 50,100 values; the real limit is 50 million, scaled down here
    monkeypatch.setattr(stream, "MAX_PARQUET_VALUES", 10_000)
    read = []
    monkeypatch.setattr(stream, "_PARQUET_BATCH", 1)
    with pytest.raises(DatasetError, match=r"wide\.parquet: its 100 rows hold 50,100 values .*KnowMix reads up to 10,000 values"):
        for item in stream.open_parquet(path).items:
            read.append(item)
    assert read == []


def test_parquet_is_read_in_batches_with_the_same_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.datasets import stream

    path = _parquet(tmp_path, 50, 3)
    whole = load_dataset(path)
    monkeypatch.setattr(stream, "_PARQUET_BATCH", 7)
    batched = load_dataset(path)
    assert [(e.line, e.question, e.answers) for e in batched.examples] == [
        (e.line, e.question, e.answers) for e in whole.examples
    ]
    assert batched.file_sha256 == whole.file_sha256 and batched.content_sha256 == whole.content_sha256


def test_a_json_document_too_big_to_read_whole_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.datasets import stream

    path = tmp_path / "big.json"
    path.write_text(json.dumps([{"question": f"Q{i}?", "answers": ["a"]} for i in range(2000)]), encoding="utf-8")
    monkeypatch.setattr(stream, "MAX_DOCUMENT_BYTES", 10_000)  # 256 MiB really; scaled down here
    with pytest.raises(DatasetError, match=r"big\.json is a JSON document of 0 MiB.*up to 0 MiB\. Save it as UTF-8 JSON Lines"):
        load_dataset(path)
    # a JSON Lines file whose first line is broken is then streamed, not read whole to try it as one document
    lines = tmp_path / "big.jsonl"
    lines.write_text(
        '{"question": "A?", "answers": ["a"\n'
        + "\n".join(json.dumps({"question": f"Q{i}?", "answers": ["a"]}) for i in range(2000))
        + "\n"
    )
    ds = load_dataset(lines, skip_invalid=True)
    assert len(ds.examples) == 2000 and ds.problems[0].line == 1


def test_ids_of_chats_that_share_a_probed_question_stay_as_they_were(tmp_path: Path) -> None:
    """Without an id column a probed row's id is no longer stored twice; a chat whose first
    question a probed row asks still gets an id of its own, and a probed row after such a chat is
    still the repeated-id problem it was."""
    from core.datasets.loading import _hash_id

    chat = {
        "messages": [
            {"role": "user", "content": "Who wrote Emma?"},
            {"role": "assistant", "content": "Austen"},
            {"role": "user", "content": "When?"},
        ]
    }
    rows = [
        {"messages": [{"role": "user", "content": "Who wrote Emma?"}, {"role": "assistant", "content": "Jane Austen"}]},
        chat,
        {
            "messages": [
                {"role": "user", "content": "Who wrote Ulysses?"},
                {"role": "assistant", "content": "x"},
                {"role": "user", "content": "Why?"},
            ]
        },
        {"messages": [{"role": "user", "content": "Who wrote Ulysses?"}, {"role": "assistant", "content": "James Joyce"}]},
    ]
    path = tmp_path / "chats.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    ds = load_dataset(path, skip_invalid=True)
    probed = _hash_id("all", "Who wrote Emma?")
    assert [e.id for e in ds.examples] == [probed]
    assert [e.line for e in ds.unprobed] == [2, 3]
    assert ds.unprobed[0].id != probed  # line 2 asks what line 1 asks: the record's own id
    assert ds.unprobed[1].id == _hash_id("all", "Who wrote Ulysses?")
    assert [(p.line, "equals the id on line 3" in p.message) for p in ds.problems] == [(4, True)]
