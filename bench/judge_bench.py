"""Judge mode against exact match on the shipped EntityQuestions sample: agreement and cost.

    .venv/bin/python bench/judge_bench.py [--per-group 3] [--preset quick] [--samples N] [--threads N]

Probes the same questions of core.paths.sample_dataset() (the first ``--per-group`` of each
relation, pool: core.paths.sample_pool()) with the built-in model twice: ``match="exact"`` (the
paper's) and ``match="judge"`` (the answer key decides when it appears; otherwise the probed
model is asked whether the answer states the same fact as the gold answer). Prints the share of
questions whose category, and whose Known / not-Known split, agree, the model requests of each
mode (judge mode's extra ones are its questions to the judge), and the seconds per question of each mode.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.shapes_bench import KNOWN, slice_facts  # noqa: E402
from core.datasets import load_dataset  # noqa: E402
from core.paths import sample_dataset, sample_pool  # noqa: E402
from core.probe import draw_exemplar_sets, preset, probe_examples  # noqa: E402


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick", choices=("paper", "quick", "smoke"))
    ap.add_argument("--samples", type=int, help="samples per set (default: the preset's)")
    ap.add_argument("--per-group", type=int, default=3, help="questions per relation (12 relations)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("KNOWMIX_THREADS") or 0) or None)
    args = ap.parse_args(argv)

    from core.backends.llama_backend import LlamaCppBackend
    from core.models import resolve_model

    examples = slice_facts(load_dataset(sample_dataset()).examples, args.per_group)
    pool = load_dataset(sample_pool()).examples
    base = preset(args.preset) if args.samples is None else replace(preset(args.preset), samples_per_set=args.samples)
    sets, _ = draw_exemplar_sets(pool, {ex.group for ex in examples}, base)
    backend = LlamaCppBackend(resolve_model("default"), n_threads=args.threads)
    out: dict[str, dict] = {}
    try:
        backend.generate([])
        for mode in ("exact", "judge"):
            settings = replace(base, match=mode)
            backend.stats.reset()
            t0 = time.perf_counter()
            rows = probe_examples(backend, examples, pool, settings, sets)
            seconds = time.perf_counter() - t0
            out[mode] = {
                "cat": {r["example_id"]: r["category"] for r in rows},
                "s": seconds / len(rows),
                "requests": backend.stats.requests,
            }
    finally:
        backend.close()
    ex_cat, ju_cat = out["exact"]["cat"], out["judge"]["cat"]
    n = len(ex_cat)
    same_cat = sum(ex_cat[i] == ju_cat[i] for i in ex_cat)
    same_known = sum((ex_cat[i] in KNOWN) == (ju_cat[i] in KNOWN) for i in ex_cat)
    print(
        f"{n} questions of {sample_dataset().name}, {base.preset} preset ({base.n_sets} sets, {base.samples_per_set} samples per set)"
    )
    print(f"category agreement judge vs exact: {same_cat}/{n} = {same_cat / n:.0%}")
    print(f"Known/not-Known agreement:         {same_known}/{n} = {same_known / n:.0%}")
    print(f"Known: exact {sum(c in KNOWN for c in ex_cat.values())}, judge {sum(c in KNOWN for c in ju_cat.values())}")
    print(
        f"model requests: exact {out['exact']['requests']}, judge {out['judge']['requests']} (judge mode's count includes its questions to the judge)"
    )
    print(
        f"seconds per question: exact {out['exact']['s']:.2f}, judge {out['judge']['s']:.2f} ({out['judge']['s'] / out['exact']['s']:.1f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
