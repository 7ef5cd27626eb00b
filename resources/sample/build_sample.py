#!/usr/bin/env python3
"""Build the starter sample: EntityQuestions questions chosen by what the built-in model knows.

"Try it with the built-in model and sample data" and ``knowmix demo`` probe this sample. A random
draw of EntityQuestions is nearly all Unknown to SmolLM2-135M (4 of 48 known), so a plan made from
it trains on 2 questions and shows nothing. This script picks questions so that all four SliCK
categories are well represented *for the built-in model*:

1. Candidates: a seeded draw from the train split of each relation (``CANDIDATES``), more from
   the relations the model is more likely to know (countries, capitals, countries of origin).
2. Screen: KnowMix's own probe (``core.probe.run_probe``) of the candidates with the paper's
   exemplar sets and greedy answers (10 sets of 4 shots, seed 0, the app's defaults) and only
   ``SCREEN_SAMPLES`` sample per set. HighlyKnown and MaybeKnown depend on the greedy answers
   alone, so the screen finds every question the model knows. It is the slow part (about 10 CPU
   minutes for 225 candidates, most of them Unknown); ``--reuse`` reuses the screen project that an
   earlier run left in ``--work`` (checked: the same candidates, the same settings, finished).
3. Choose: ``--size`` questions, ``KNOWN_SHARE`` of them among those the screen found known (those
   it answered right every time first) and the rest among the others, each share taken round robin
   over the relations (seeded).
4. Probe the chosen questions at the paper's budget (the app's default settings), as the app will:
   these are the categories the sample records, and the probe's CPU time is the sample's cost.
   The screen only steers the choice; the categories are this probe's.

Writes ``entityquestions_starter.jsonl`` (the source's fields, unchanged) and
``entityquestions_starter.json`` (the command, the seed, the probe settings, the categories per
question and the probe's times). Needs KnowMix's environment (it loads the built-in model):

    nice -n 10 .venv/bin/python resources/sample/build_sample.py --threads 1
    # or, with the screen an earlier run left in --work (default /tmp/knowmix-starter):
    nice -n 10 .venv/bin/python resources/sample/build_sample.py --threads 1 --reuse
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from make_sample import DEFAULT_SOURCE, draw, norm, read_rows, write_jsonl  # noqa: E402

SEED = 20261207  # fixed: the candidates' draw and the round robin; the probe's own seed is the app's (0)
CATEGORIES = ("HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown")
# relation -> candidates drawn from its train split; the built-in model knows more of the first ones
CANDIDATES = {"P17": 40, "P495": 40, "P36": 40, "P136": 25, "P740": 25, "P131": 25, "P19": 15, "P264": 15}
# a second draw (another seed tag, none of the first draw's questions) from the relations whose
# questions the screen of the first found known most often: for a sample of 100 with 62 known
MORE_CANDIDATES = {"P17": 60, "P36": 50, "P131": 40, "P495": 20}
# of the sample, from the screen's known questions (the rest: questions it does not know)
KNOWN_SHARE = 0.62
SCREEN_SAMPLES = 1  # samples per exemplar set in the screen (the paper: 16)
SAMPLE_NAME = "entityquestions_starter"


def candidates(source: Path, exclude: set[str], table: dict[str, int] = CANDIDATES, tag: str = "starter") -> list[dict]:
    """The seeded draw; ``exclude`` (normalised questions) grows by what it drew."""
    rows: list[dict] = []
    for rel, k in table.items():
        picked = draw(read_rows(source / "train" / f"{rel}.train.jsonl", rel), k, f"{tag}:{SEED}:{rel}", exclude)
        exclude.update(norm(r["question"]) for r in picked)
        rows.extend(picked)
    return rows


def probe(rows: list[dict], work: Path, name: str, settings, threads: int) -> tuple[dict[str, str], dict]:
    """Probe ``rows`` in a project of their own with KnowMix's probe; categories by question, and times."""
    from core.datasets import load_dataset
    from core.paths import sample_pool
    from core.probe import ProbeRequest, run_probe
    from core.store import Project

    data = work / f"{name}.jsonl"
    write_jsonl(data, rows)
    for suffix in ("", "-wal", "-shm"):  # a scratch project: a new one per build
        (work / f"{name}.knowmix{suffix}").unlink(missing_ok=True)
    cpu0, wall0 = time.process_time(), time.monotonic()
    with Project(work / f"{name}.knowmix") as project:
        ds_id = project.add_dataset(load_dataset(data), role="train")
        pool_id = project.add_dataset(load_dataset(sample_pool()), role="pool")
        request = ProbeRequest(
            dataset_id=ds_id,
            pool_dataset_id=pool_id,
            model_spec="default",
            settings=settings,
            isolate=False,  # in this process, so process_time counts the model's threads
            backend_options={"n_threads": threads},
        )
        out = run_probe(project, request, on_status=lambda m: print(m, flush=True))
        cats = {r["question"]: r["category"] for r in _results(project, out.run_id)}
    times = {"cpu_seconds": round(time.process_time() - cpu0, 1), "wall_seconds": round(time.monotonic() - wall0, 1)}
    print(f"{name}: {len(rows)} questions, {times}", flush=True)
    return cats, times


BUDGET_KEYS = ("n_sets", "shots", "samples_per_set", "temperature", "top_k", "seed")


def reuse_screen(path: Path, rows: list[dict], settings) -> tuple[dict[str, str], dict]:
    """The categories of an earlier screen (``path``), refused unless it probed exactly ``rows``
    with the screen's budget to the end; its times are the stored run's. A screen made with an
    earlier scorer or prompt format is taken (and named in the record): it only steers which
    questions are chosen, the sample's categories are the final probe's."""
    from core.errors import ProjectError
    from core.store import Project

    with Project(path) as project:
        try:
            run = project.probe_run()
        except ProjectError:
            raise SystemExit(f"{path}: no probe run to reuse; run without --reuse") from None
        cats = {r["question"]: r["category"] for r in _results(project, run.id)}
    want = json.loads(settings.identity())
    same = all(run.settings.get(k) == want.get(k) for k in BUDGET_KEYS)
    if not run.finished or not same or set(cats) != {r["question"] for r in rows}:
        raise SystemExit(
            f"{path}: not a finished screen of these candidates with {settings.preset} settings; run without --reuse"
        )
    versions = {k: run.settings.get(k) for k in ("scorer", "prompt_format") if run.settings.get(k) != want.get(k)}
    return cats, {"wall_seconds": round(run.seconds, 1), "reused": str(path), **({"made_with": versions} if versions else {})}


def _results(project, run_id: int) -> list[dict]:
    from core.results import result_rows

    return result_rows(project, run_id)


def choose(rows: list[dict], cats: dict[str, str], size: int) -> list[dict]:
    """``size`` rows: ``KNOWN_SHARE`` from the screen's known ones (always-right first), the rest from
    the others, each share taken round robin over the relations."""
    n_known = round(KNOWN_SHARE * size)
    rng = random.Random(f"{SEED}:choose")
    picked: list[dict] = []
    shares = (("HighlyKnown",), ("MaybeKnown",), ("WeaklyKnown", "Unknown"))
    wants = (n_known, n_known, size)  # a running total: MaybeKnown tops HighlyKnown up to n_known
    for share, want in zip(shares, wants):
        by_rel: dict[str, list[dict]] = {}
        for r in rows:
            if cats.get(r["question"]) in share:
                by_rel.setdefault(r["relation"], []).append(r)
        for members in by_rel.values():
            rng.shuffle(members)
        while len(picked) < want and any(by_rel.values()):
            for rel in sorted(by_rel):
                if by_rel[rel] and len(picked) < want:
                    picked.append(by_rel[rel].pop())
        if len(picked) < want and share != ("HighlyKnown",):  # MaybeKnown tops HighlyKnown up
            print(f"only {len(picked)} questions up to {'/'.join(share)} among the candidates (wanted {want})", flush=True)
    order = {r["question"]: i for i, r in enumerate(rows)}
    return sorted(picked, key=lambda r: order[r["question"]])


def main(argv: list[str] | None = None) -> int:
    from core.probe import preset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="EntityQuestions folder (train/)")
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: next to this script)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/knowmix-starter"), help="folder for the probe projects")
    ap.add_argument("--size", type=int, default=100, help="questions in the sample (default 100)")
    ap.add_argument("--reuse", action="store_true", help="reuse the screen an earlier run left in --work (checked)")
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads (1 on a shared machine)")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    exclude = {norm(json.loads(line)["question"]) for line in (HERE / "entityquestions_pool.jsonl").open(encoding="utf-8")}
    screen_settings = preset("paper", samples_per_set=SCREEN_SAMPLES)
    first = candidates(args.source, exclude)
    more = candidates(args.source, exclude, MORE_CANDIDATES, "starter-more")
    screen: dict[str, str] = {}
    screen_times: dict = {}
    for name, part in (("screen", first), ("screen-more", more)):
        if args.reuse and (args.work / f"{name}.knowmix").is_file():
            cats, times = reuse_screen(args.work / f"{name}.knowmix", part, screen_settings)
        else:
            cats, times = probe(part, args.work, name, screen_settings, args.threads)
        screen.update(cats)
        screen_times[name] = times
    rows = first + more
    chosen = choose(rows, screen, args.size)
    paper = preset("paper")
    final, final_times = probe(chosen, args.work, "sample", paper, args.threads)
    out: Path = args.out
    write_jsonl(out / f"{SAMPLE_NAME}.jsonl", chosen)
    counts = {c: sum(1 for r in chosen if final[r["question"]] == c) for c in CATEGORIES}
    relations = sorted({r["relation"] for r in chosen})
    record = {
        "command": ".venv/bin/python resources/sample/build_sample.py " + " ".join(argv or sys.argv[1:]),
        "seed": SEED,
        "candidates": CANDIDATES,
        "more_candidates": MORE_CANDIDATES,
        "known_share": KNOWN_SHARE,
        "screen_settings": asdict(screen_settings),
        "probe_settings": asdict(paper),
        "screen_times": screen_times,
        "probe_times": final_times,
        "threads": args.threads,
        "counts": counts,
        "relations": {rel: sum(1 for r in chosen if r["relation"] == rel) for rel in relations},
        "screen_counts": {c: sum(1 for v in screen.values() if v == c) for c in CATEGORIES},
        "screen_agrees": sum(1 for r in chosen if screen[r["question"]] == final[r["question"]]),
        "categories": [{"question": r["question"], "relation": r["relation"], "category": final[r["question"]]} for r in chosen],
    }
    (out / f"{SAMPLE_NAME}.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({k: record[k] for k in ("counts", "relations", "screen_counts", "screen_agrees", "probe_times")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
