#!/usr/bin/env python3
"""Make the sample dataset that ships with KnowMix from EntityQuestions.

Writes, next to this script:
  entityquestions_sample.jsonl  600 questions: 50 from the train split of each of the paper's
                                12 in-distribution relations (the data a user would probe)
  entityquestions_pool.jsonl    300 questions: 25 from the dev split of each relation (the
                                held-out exemplar pool the few-shot prompts are drawn from)
  LICENSE-EntityQuestions       the dataset's MIT license, copied unchanged

Deterministic: each relation's rows are drawn with its own random.Random seeded from a fixed
string, so the output depends only on the source files, not on dict or file-listing order.
Standard library only; run with plain python3:

    python3 resources/sample/make_sample.py [--source /path/to/entityquestions]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

SEED = 20240508  # fixed: changing it changes the shipped sample
RELATIONS = ("P131", "P136", "P17", "P19", "P26", "P264", "P36", "P40", "P495", "P69", "P740", "P800")
SAMPLE_PER_RELATION = 50
POOL_PER_RELATION = 25

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[2] / "shared" / "data" / "entityquestions"


def norm(question: str) -> str:
    """The loader's duplicate key: case-folded, whitespace collapsed."""
    return " ".join(question.casefold().split())


def read_rows(path: Path, relation: str) -> list[dict]:
    """Usable rows of one split file, first occurrence of each question only, in file order."""
    rows: list[dict] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = json.loads(line)
            q = str(rec.get("question", "")).strip()
            answers = [str(a).strip() for a in rec.get("answers") or [] if str(a).strip()]
            if not q or not answers or norm(q) in seen:
                continue
            seen.add(norm(q))
            rows.append({"question": q, "answers": answers, "relation": rec.get("relation", relation)})
    return rows


def draw(rows: list[dict], k: int, tag: str, exclude: set[str]) -> list[dict]:
    candidates = [r for r in rows if norm(r["question"]) not in exclude]
    if len(candidates) < k:
        sys.exit(f"{tag}: only {len(candidates)} usable questions, need {k}")
    rng = random.Random(f"{SEED}:{tag}")
    picked = sorted(rng.sample(range(len(candidates)), k))  # keep the source order
    return [candidates[i] for i in picked]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="EntityQuestions folder (train/, dev/, LICENSE)")
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: next to this script)")
    args = ap.parse_args(argv)
    src: Path = args.source
    if not (src / "train").is_dir() or not (src / "dev").is_dir():
        sys.exit(f"{src} does not look like the EntityQuestions folder (needs train/ and dev/)")

    sample: list[dict] = []
    pool: list[dict] = []
    used: set[str] = set()  # questions already taken, across relations and splits
    for rel in RELATIONS:
        train = read_rows(src / "train" / f"{rel}.train.jsonl", rel)
        chosen = draw(train, SAMPLE_PER_RELATION, f"{rel}:train", used)
        used.update(norm(r["question"]) for r in chosen)
        sample.extend(chosen)
    for rel in RELATIONS:
        dev = read_rows(src / "dev" / f"{rel}.dev.jsonl", rel)
        chosen = draw(dev, POOL_PER_RELATION, f"{rel}:dev", used)
        used.update(norm(r["question"]) for r in chosen)
        pool.extend(chosen)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "entityquestions_sample.jsonl", sample)
    write_jsonl(out / "entityquestions_pool.jsonl", pool)
    shutil.copyfile(src / "LICENSE", out / "LICENSE-EntityQuestions")
    print(f"wrote {len(sample)} sample and {len(pool)} pool questions to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
