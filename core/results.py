"""Per-example results as a file: one row per example of a probe run's dataset, for teams'
own pipelines (``knowmix results``, the app's Export step).

Each row has the example's ``id``, ``group``, ``question``, ``answers`` (its gold answers),
``multi_answer`` (true when the key lists two or more different true answers, not aliases of one:
``core.datasets.multi.is_multi_answer``), ``key`` (the answer key and aliases the probe looked for), ``probe_status`` ("probed" or
"not-probed"), ``reason`` (why a row was not probed), the SliCK ``category``, ``p_greedy`` and
``p_sampled``, the ``exemplar_ids`` of each exemplar set, the ``exemplar_swaps`` (exemplars
replaced because they were the question itself or gave its answer away: set, dropped id, why,
replacement), the model's ``greedy_answers`` with ``greedy_reasons`` (per greedy answer, the
verdict and why: "✓ key 'Paris' stated", "✗ key 'Paris' negated"; ``core.scoring``) and its
``sampled_answers``. A not-probed row has an empty category and no P values or answers.

JSON Lines keeps lists as lists; CSV writes each list as JSON text (one cell), and a text cell a
spreadsheet would run as a formula with a leading "'" (``csv_text``); Parquet keeps lists as list
columns (it needs pyarrow, and a file: it is binary).
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from .datasets.multi import is_multi_answer
from .errors import SettingsError
from .store import results as _store

COLUMNS = (
    "id",
    "group",
    "question",
    "answers",
    "multi_answer",
    "key",
    "probe_status",
    "reason",
    "category",
    "p_greedy",
    "p_sampled",
    "exemplar_ids",
    "exemplar_swaps",
    "greedy_answers",
    "greedy_reasons",
    "sampled_answers",
)
FORMATS = ("jsonl", "csv", "parquet")
EXTENSIONS = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet"}


def _list(text: Optional[str]) -> list:
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def result_rows(project: Any, probe_run_id: Optional[int] = None) -> list[dict]:
    """One dict per row of the probe run's dataset (the latest run when ``probe_run_id`` is None),
    in file order, with the keys of ``COLUMNS``."""
    run = project.probe_run(probe_run_id)
    out: list[dict] = []
    for r in _store.every_row(project, run.id, int(run.dataset_id or 0)):
        answers = _list(r[3])
        probed = r[5] == "probed"
        out.append(
            {
                "id": r[0],
                "group": r[1],
                "question": r[2],
                "answers": answers,
                "multi_answer": probed and is_multi_answer(_list(r[4]) or answers),
                "key": (_list(r[4]) or answers) if probed else _list(r[4]),
                "probe_status": r[5],
                "reason": r[6] or "",
                "category": r[7] or "",
                "p_greedy": r[8],
                "p_sampled": r[9],
                "exemplar_ids": _list(r[10]),
                "exemplar_swaps": _list(r[13]),
                "greedy_answers": _list(r[11]),
                "greedy_reasons": _list(r[14]),
                "sampled_answers": _list(r[12]),
            }
        )
    return out


def check_format(fmt: str, out: Optional[str] = None) -> None:
    """``SettingsError`` for an unknown format, or Parquet without a file to write."""
    if fmt not in FORMATS:
        raise SettingsError(f"--format: '{fmt}' is not a results format; choose {', '.join(FORMATS)}.")
    if fmt == "parquet" and not out:
        raise SettingsError(
            "--format parquet writes a binary file, so it needs --out FILE (e.g. --out results.parquet); "
            "jsonl and csv can go to the terminal."
        )


def results_bytes(rows: Sequence[dict], fmt: str) -> bytes:
    """The rows as a ``fmt`` file: JSON Lines, CSV (lists as JSON text) or Parquet."""
    check_format(fmt, "file")
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        # RFC 4180's CRLF line ends: then the csv module also quotes a cell holding a lone carriage
        # return (with "\n" it quotes "\n" only, and a "\r" in a question split the row in two)
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow([_csv_cell(r[c]) for c in COLUMNS])
        return buf.getvalue().encode("utf-8")
    return _parquet(rows)


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...) can send the
# sheet's data elsewhere when clicked). Results hold the team's questions and the model's answers,
# text anyone could have written, so KnowMix's own report files escape them the usual way: a leading
# "'", which spreadsheets show as text. (A plan export does not: it is the team's training data,
# written back exactly as it came.)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(text: str) -> str:
    """``text`` as a CSV cell a spreadsheet shows and never runs."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (bool, int, float)):
        return str(value)  # a number is a number (P values are never negative)
    return csv_text(str(value))


def _parquet(rows: Sequence[dict]) -> bytes:
    from .datasets.readers import import_parquet

    pq = import_parquet()
    import pyarrow as pa  # noqa: PLC0415 - optional and heavy: only for Parquet files

    text_list = pa.list_(pa.string())
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("group", pa.string()),
            ("question", pa.string()),
            ("answers", text_list),
            ("multi_answer", pa.bool_()),
            ("key", text_list),
            ("probe_status", pa.string()),
            ("reason", pa.string()),
            ("category", pa.string()),
            ("p_greedy", pa.float64()),
            ("p_sampled", pa.float64()),
            ("exemplar_ids", pa.list_(text_list)),
            (
                "exemplar_swaps",
                pa.list_(pa.struct([("set", pa.int64()), ("dropped", pa.string()), ("why", pa.string()), ("by", pa.string())])),
            ),
            ("greedy_answers", text_list),
            ("greedy_reasons", text_list),
            ("sampled_answers", pa.list_(text_list)),
        ]
    )
    table = pa.Table.from_pylist([{c: r[c] for c in COLUMNS} for r in rows], schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def write_stream(data: bytes, stream: Any) -> None:
    """``results_bytes``' output to a text stream (the terminal) as the very bytes: a text stream on
    Windows would turn the CSV's \\r\\n line ends into \\r\\r\\n."""
    raw = getattr(stream, "buffer", None)
    if raw is None:
        stream.write(data.decode("utf-8"))
        return
    stream.flush()
    raw.write(data)
    raw.flush()


def write_results(project: Any, fmt: str, out: Any, probe_run_id: Optional[int] = None) -> int:
    """Write the probe run's per-example results to the file ``out`` (atomically); returns the row count.
    ``out`` is never one of the project's own files (the project, a dataset it was made from)."""
    from .exports_guard import project_files, refuse_project_file
    from .paths import write_bytes_atomic

    check_format(fmt, str(out))
    refuse_project_file(out, project_files(project))
    rows = result_rows(project, probe_run_id)
    write_bytes_atomic(out, results_bytes(rows, fmt), advice="Choose a folder you can write to, and check the free disk space.")
    return len(rows)


__all__ = [
    "COLUMNS",
    "FORMATS",
    "EXTENSIONS",
    "result_rows",
    "results_bytes",
    "write_results",
    "write_stream",
    "check_format",
    "csv_text",
]
