"""Benchmark: memory and time of loading big dataset files, before and after streaming (issue 19).

Generates question-answer files of 10k, 100k and 1M rows (JSON Lines, CSV and Parquet) into a
temporary folder and loads each one in a fresh child process, twice: with the loader at commit
``a67ed41`` (before: the whole file in memory, then parsed into a list of records) and with the
working tree's loader (after: streamed). A child reports its own peak RSS (``VmHWM`` in
``/proc/self/status``, the high-water mark of the whole process, Python itself included; not
``ru_maxrss``, which on Linux starts from the parent's size at the fork) and the seconds ``load_dataset``
took. Two kinds of load per file:

* ``full``: ``load_dataset(path)``, every row kept (what the plan and the export need);
* ``limit``: a 24-question probe (``knowmix probe --limit 24``): before, the whole file is loaded
  and ``take_balanced`` picks 24; after, ``load_dataset(path, limit=24)`` keeps only what the
  pick can need.

The "before" loader is taken with ``git archive a67ed41 core`` into the temporary folder, so the
working tree is not touched. Run from the repository root (a 1M-row run takes a few minutes):

    PYTHONPATH=. .venv/bin/python bench/load_bench.py            # 10k, 100k and 1M rows
    PYTHONPATH=. .venv/bin/python bench/load_bench.py --rows 10000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
BEFORE_COMMIT = "a67ed41"
LIMIT = 24
GROUPS = ("P17", "P19", "P20", "P26", "P36", "P40", "P50", "P69", "P106", "P112", "P127", "P131")

# The child: load the file, print seconds and peak RSS as one JSON line. ``limit`` goes to
# load_dataset when the loader takes it (after), else the CLI's way: load all, take_balanced.
CHILD = r"""
import inspect, json, resource, sys, time
from core.datasets import load_dataset, take_balanced
path, limit = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
if limit and "limit" in inspect.signature(load_dataset).parameters:
    ds = load_dataset(path, limit=limit)
elif limit:
    ds = take_balanced(load_dataset(path), limit)
else:
    ds = load_dataset(path)
seconds = time.perf_counter() - t0
try:  # this process's own high-water mark (ru_maxrss would start from the parent's size at fork)
    rss_kib = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
except OSError:
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_mib": rss_kib / 1024, "n": len(ds.examples), "sha": ds.content_sha256}))
"""


def _row(i: int) -> tuple[str, str, str]:
    """One question-answer row, about 100 bytes as JSON Lines (the issue's 1M rows ~ 100 MB); a
    one-word answer, as in EntityQuestions (a sentence answer would time answer-key extraction)."""
    return f"What is the capital of the country numbered {i}?", f"Capital{i}", GROUPS[i % len(GROUPS)]


def write_files(folder: Path, rows: int) -> dict[str, Path]:
    """The same rows as .jsonl, .csv and .parquet."""
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq

    out = {}
    p = folder / f"qa_{rows}.jsonl"
    with p.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            q, a, g = _row(i)
            fh.write(json.dumps({"question": q, "answers": [a], "relation": g}) + "\n")
    out["jsonl"] = p
    p = folder / f"qa_{rows}.csv"
    with p.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "answer", "relation"])
        for i in range(rows):
            w.writerow(_row(i))
    out["csv"] = p
    p = folder / f"qa_{rows}.parquet"
    cols = list(zip(*(_row(i) for i in range(rows))))
    table = pa.table({"question": list(cols[0]), "answers": [[a] for a in cols[1]], "relation": list(cols[2])})
    pq.write_table(table, p)
    out["parquet"] = p
    return out


def run_child(pythonpath: Path, path: Path, limit: int) -> dict:
    """Load ``path`` in a fresh interpreter whose ``core`` is the one under ``pythonpath``."""
    extra = os.environ.get("PYTHONPATH", "")
    env = {**os.environ, "PYTHONPATH": str(pythonpath) + (os.pathsep + extra if extra else "")}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(limit)], env=env, capture_output=True, text=True, cwd=pythonpath
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["exit " + str(proc.returncode)])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def checkout_before(folder: Path) -> Path:
    """``core`` as it was at BEFORE_COMMIT, unpacked under ``folder/before``."""
    dest = folder / "before"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE_COMMIT, "core"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def _fmt(res: dict, key: str, spec: str) -> str:
    return "error" if "error" in res else format(res[key], spec)


def _ratio(before: dict, after: dict, key: str) -> str:
    if "error" in before or "error" in after or not after[key]:
        return "-"
    return f"{before[key] / after[key]:.1f}x"


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--formats", nargs="+", default=["jsonl", "csv", "parquet"])
    args = ap.parse_args(argv)
    header = (
        "| rows | format | file MB | load | before MiB | after MiB | memory before/after | "
        "before s | after s | time before/after | same result |"
    )
    rule = "|---" * (header.count("|") - 1) + "|"
    with tempfile.TemporaryDirectory(prefix="knowmix-load-bench-") as tmp:
        folder = Path(tmp)
        before_root = checkout_before(folder)
        print(header)
        print(rule)
        for rows in args.rows:
            files = write_files(folder, rows)
            for fmt in args.formats:
                path = files[fmt]
                size_mb = path.stat().st_size / 1e6
                for limit in (0, LIMIT):
                    before = run_child(before_root, path, limit)
                    after = run_child(ROOT, path, limit)
                    same = (
                        "-"
                        if "error" in before or "error" in after
                        else ("yes" if (before["n"], before["sha"]) == (after["n"], after["sha"]) else "NO")
                    )
                    line = (
                        f"| {rows:,} | {fmt} | {size_mb:.1f} | {'limit ' + str(limit) if limit else 'full'} | "
                        f"{_fmt(before, 'peak_mib', '.0f')} | {_fmt(after, 'peak_mib', '.0f')} | "
                        f"{_ratio(before, after, 'peak_mib')} | {_fmt(before, 'seconds', '.2f')} | "
                        f"{_fmt(after, 'seconds', '.2f')} | {_ratio(before, after, 'seconds')} | {same} |"
                    )
                    print(line, flush=True)
                    for res, side in ((before, "before"), (after, "after")):
                        if "error" in res:
                            print(f"  {side}: {res['error']}", flush=True)
            for p in files.values():
                p.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
