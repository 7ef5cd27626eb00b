"""Issue 11's acceptance benchmark: do sentence answers and chats of the same facts get the same
Known / not-Known split as the entity answers?

    .venv/bin/python bench/shapes_bench.py [--preset paper|quick|smoke] [--samples N] [--limit N]
        [--match auto|exact|key] [--json OUT]

Probes the three shapes written by ``bench/make_shapes.py`` (tests/data/shapes: entity answers,
sentence answers in varied wordings, ShareGPT chats with system turns, every third multi-turn)
with the built-in model, loading each file as a user's file is loaded (so sentence answers get
the answer key KnowMix extracts). Known = HighlyKnown or MaybeKnown, i.e. at least one correct
greedy answer over the exemplar sets (core.probe.categorize); the samples only split not-Known
into WeaklyKnown and Unknown, so by default they are skipped (``--samples 0``): the Known split is
then exactly the one of the full budget of the chosen preset. Prints, per shape, the agreement
of its Known split with the entity-answer probe over the questions probed in both, and the
seconds per question.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.datasets import Example, load_dataset  # noqa: E402
from core.errors import DatasetError  # noqa: E402
from core.probe import ProbeSettings, draw_exemplar_sets, preset, probe_examples  # noqa: E402

SHAPES_DIR = ROOT / "tests" / "data" / "shapes"
SHAPES = ("entity", "sentence", "chat")
KNOWN = ("HighlyKnown", "MaybeKnown")


def load_shape(name: str, folder: Path = SHAPES_DIR) -> tuple[list[Example], str]:
    """The probed examples of one shape, and a note when the loader could not keep every row."""
    path = folder / f"{name}.jsonl"
    try:
        ds = load_dataset(path)
        note = ""
    except DatasetError as exc:  # a loader that refuses multi-turn rows: probe the rest and say so
        ds = load_dataset(path, skip_invalid=True)
        note = f"loaded with skip_invalid ({str(exc).splitlines()[0][:120]})"
    if getattr(ds, "unprobed", None):
        note = (note + "; " if note else "") + f"{len(ds.unprobed)} rows kept but not probed ({ds.reason_counts()})"
    return list(ds.examples), note


def slice_facts(examples: Sequence[Example], per_group: Optional[int]) -> list[Example]:
    """The first ``per_group`` questions of each group (file order), or all."""
    if not per_group:
        return list(examples)
    taken: dict[str, int] = {}
    out = []
    for ex in examples:
        if taken.get(ex.group, 0) < per_group:
            taken[ex.group] = taken.get(ex.group, 0) + 1
            out.append(ex)
    return out


def probe_shape(backend: Any, examples: list[Example], settings: ProbeSettings, questions: Optional[set[str]] = None) -> dict:
    """Probe one shape (the pool is the whole shape; only ``questions`` are probed): Known per question."""
    todo = [ex for ex in examples if questions is None or ex.question in questions]
    sets, _notes = draw_exemplar_sets(examples, {ex.group for ex in todo}, settings)
    t0 = time.perf_counter()
    rows = probe_examples(backend, todo, examples, settings, sets)
    seconds = time.perf_counter() - t0
    by_id = {ex.id: ex for ex in todo}
    known = {by_id[r["example_id"]].question: r["category"] in KNOWN for r in rows}
    answers = {by_id[r["example_id"]].question: json.loads(r["greedy_answers"])[:2] for r in rows}
    modes = sorted({settings.match_for(ex) for ex in todo})
    return {"known": known, "answers": answers, "seconds": seconds, "n": len(rows), "modes": modes}


def agreement(base: dict[str, bool], other: dict[str, bool]) -> tuple[float, int, list[str]]:
    both = [q for q in other if q in base]
    same = [q for q in both if base[q] == other[q]]
    return (len(same) / len(both) if both else 0.0), len(both), [q for q in both if base[q] != other[q]]


def run(
    backend: Any, settings: ProbeSettings, per_group: Optional[int] = None, folder: Path = SHAPES_DIR, verbose: bool = False
) -> dict[str, dict]:
    """Probe every shape; the entity shape is the reference. Returns per shape its numbers."""
    out: dict[str, dict] = {}
    entity_examples, _ = load_shape("entity", folder)
    facts = {ex.question for ex in slice_facts(entity_examples, per_group)}
    for name in SHAPES:
        examples, note = load_shape(name, folder) if name != "entity" else (entity_examples, "")
        res = probe_shape(backend, examples, settings, facts)
        res["note"] = note
        out[name] = res
        if name != "entity":
            res["agreement"], res["compared"], res["disagree"] = agreement(out["entity"]["known"], res["known"])
        if verbose:
            print(_line(name, res), flush=True)
    return out


def _line(name: str, res: dict) -> str:
    k = sum(res["known"].values())
    text = f"{name:9s} {res['n']:3d} probed  {k:3d} Known  {res['seconds'] / max(1, res['n']):6.2f} s/question  match={'+'.join(res['modes'])}"
    if "agreement" in res:
        text += f"  agreement with entity: {res['agreement']:.0%} of {res['compared']}"
    if res.get("note"):
        text += f"\n          note: {res['note']}"
    return text


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="paper", choices=("paper", "quick", "smoke"))
    ap.add_argument(
        "--samples", type=int, default=0, help="samples per set (default 0: the Known split needs only greedy answers)"
    )
    ap.add_argument("--limit", type=int, help="questions per relation (default: all 50 facts)")
    ap.add_argument("--match", default="auto", choices=("auto", "exact", "key"))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("KNOWMIX_THREADS") or 0) or None)
    ap.add_argument("--json", type=Path, help="write the per-question results here")
    ap.add_argument("--show", action="store_true", help="print each disagreement with its first greedy answers")
    args = ap.parse_args(argv)

    from core.backends.llama_backend import LlamaCppBackend
    from core.models import resolve_model

    settings = replace(preset(args.preset), samples_per_set=args.samples, match=args.match)
    print(
        f"budget: {args.preset} preset, {settings.n_sets} sets x {settings.shots} shots, samples per set {settings.samples_per_set}"
    )
    backend = LlamaCppBackend(resolve_model("default"), n_threads=args.threads)
    try:
        backend.generate([])
        results = run(backend, settings, args.limit, verbose=True)
    finally:
        backend.close()
    if args.show:
        for name in SHAPES[1:]:
            for q in results[name]["disagree"]:
                print(
                    f"[{name}] {q}  entity Known={results['entity']['known'][q]} {results['entity']['answers'][q]}"
                    f"  {name} {results[name]['answers'][q]}"
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
