"""Benchmark: KnowMix's probe against the naive schedule of Gekhman et al. 2024, in one run.

Both schedules probe the same questions with the same exemplar sets and the same prompts on
the built-in model (or ``--model``):

* **KnowMix**: ``probe_examples`` on a ``LlamaCppBackend`` (prefix-reusing KV cache, answer
  trie shared by the greedy answer and the samples, pruning of samples that can no longer be
  correct, lazy schedule), exactly as the app runs it.
* **naive**: the paper's procedure done the obvious way, on a separate plain
  ``llama_cpp.Llama``: for every question and exemplar set one ``create_completion`` at
  temperature 0 (the greedy answer) and ``samples_per_set`` more at T=0.5 / top-k 40, each on a
  freshly reset context, so every call evaluates its whole prompt again. It computes all
  10 x 16 samples of every question, so its P(T>0) is exact.

Printed: seconds per question, their ratio, model calls and evaluated tokens of both, the
category counts of both and their agreement on the greedy-based categories (HighlyKnown,
MaybeKnown), which must be equal: the greedy answers of both are llama.cpp's argmax. The two
sides draw their T=0.5 samples with different samplers (KnowMix's seeded inverse CDF in
``core/backends/sampling.py``, llama.cpp's ``dist`` sampler), so WeaklyKnown vs Unknown may
differ by chance; that comparison is shown but is not part of the target.

Run from the repository root (see bench/README.md):

    PYTHONPATH=. .venv/bin/python bench/probe_bench.py --n 12 --naive-n 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/probe_bench.py` without PYTHONPATH
    sys.path.insert(0, str(ROOT))

from core.backends.base import GenRequest  # noqa: E402
from core.datasets import Example, load_dataset, take_balanced  # noqa: E402
from core.models import ModelRef, resolve_model  # noqa: E402
from core.paths import sample_dataset, sample_pool  # noqa: E402
from core.probe import (  # noqa: E402
    CATEGORIES,
    PRESETS,
    ProbeSettings,
    _prepare,
    categorize,
    draw_exemplar_sets,
    preset,
    probe_examples,
    sample_seed,
)
from core.scoring import Scorer  # noqa: E402

TARGET_SPEEDUP = 3.0
N_CTX = 2048
WARMUP_PROMPT = "Q: What is the capital of France?\nA: Paris\n\nQ: What is the capital of Italy?\nA:"
LLAMA_DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp reads this seed as "pick a random one"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def greedy_class(category: str) -> str:
    """The part of the category that only the greedy answers decide."""
    return category if category in ("HighlyKnown", "MaybeKnown") else "P(T=0)=0"


# -- KnowMix ----------------------------------------------------------------------------------------


def run_knowmix(
    ref: ModelRef,
    examples: Sequence[Example],
    pool: Sequence[Example],
    settings: ProbeSettings,
    sets: dict,
    threads: int,
    isolated: bool = False,
) -> dict:
    """``isolated``: the same backend in its own process (``ProcessBackend``), as the CLI and the
    app run it, so the cost of the process boundary is measured on the same requests."""
    from core.backends.llama_backend import LlamaCppBackend
    from core.backends.process import ProcessBackend

    if isolated:
        backend = ProcessBackend(ref, "llama.cpp", n_ctx=N_CTX, n_threads=threads)
    else:
        backend = LlamaCppBackend(ref, n_ctx=N_CTX, n_threads=threads)
    try:
        # One untimed call so that first-use costs (weights paged in from the file, buffers
        # allocated) are paid outside the timed region, as on the naive side; then forget it.
        backend.generate([GenRequest(WARMUP_PROMPT, max_tokens=4)])
        backend.reset_cache()
        backend.stats.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        rows = probe_examples(backend, examples, pool, settings, sets)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        stats = backend.stats
        return {
            "seconds": seconds,
            "cpu_seconds": cpu,
            "questions": len(examples),
            "requests": stats.requests,
            "answers": stats.answers,
            "forward_calls": stats.forward_calls,
            "tokens_evaluated": stats.tokens_evaluated,
            "truncated_prompts": getattr(backend, "truncated_prompts", None),
            "rows": {r["example_id"]: r for r in rows},
        }
    finally:
        backend.close()


# -- naive ------------------------------------------------------------------------------------------


class CountingLlama:
    """A plain ``llama_cpp.Llama`` whose ``eval`` (one llama_decode per call for prompts <= n_batch)
    is counted, so the naive side reports forward calls and tokens the way ``GenStats`` does."""

    def __init__(self, model_path: str, threads: int) -> None:
        import llama_cpp

        from core.backends.llama_backend import MAX_PASS

        # the numbers KnowMix's backend computes (flash attention, passes of at most MAX_PASS
        # tokens: those of token-by-token evaluation), so the greedy answers of both sides agree
        self.llm = llama_cpp.Llama(
            model_path=model_path,
            n_ctx=N_CTX,
            n_batch=MAX_PASS,
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=False,
            flash_attn=True,
            verbose=False,
        )
        self.eval_calls = 0
        self.tokens = 0
        self._evals: list[int] = []
        original = self.llm.eval

        def counting_eval(tokens: Sequence[int]) -> None:
            self.eval_calls += 1
            self.tokens += len(tokens)
            self._evals.append(len(tokens))
            original(tokens)

        self.llm.eval = counting_eval  # instance attribute: Llama.generate calls self.eval(...)

    def complete(self, prompt: str, **kwargs) -> tuple[str, dict, int]:
        """One completion on a reset context; returns (text, usage, prompt tokens evaluated)."""
        self.llm.reset()  # n_tokens = 0: generate() skips its prefix match and clears the KV cache
        self._evals = []
        out = self.llm.create_completion(
            prompt, stop=["\n"], repeat_penalty=1.0, frequency_penalty=0.0, presence_penalty=0.0, **kwargs
        )
        usage = out["usage"]
        first = self._evals[0] if self._evals else 0
        if first != usage["prompt_tokens"]:
            raise RuntimeError(
                f"the naive baseline reused a cached prefix ({first} of {usage['prompt_tokens']} prompt tokens "
                "evaluated); it must re-evaluate every prompt"
            )
        return out["choices"][0]["text"], usage, first

    def close(self) -> None:
        try:
            self.llm.close()
        except Exception:
            pass


def run_naive(
    ref: ModelRef, examples: Sequence[Example], pool: Sequence[Example], settings: ProbeSettings, sets: dict, threads: int
) -> dict:
    pool_by_id = {ex.id: ex for ex in pool}
    model = CountingLlama(str(ref.path), threads)
    try:
        model.complete(WARMUP_PROMPT, max_tokens=4, temperature=0.0)  # untimed, like KnowMix's warm-up
        model.eval_calls = model.tokens = 0
        calls = usage_tokens = 0
        per_example: dict[str, dict] = {}
        t_all, c_all = time.perf_counter(), time.process_time()
        for i, ex in enumerate(examples):
            t0 = time.perf_counter()
            work = _prepare(ex, sets[ex.group], pool_by_id, settings)  # the same prompts as KnowMix
            matcher = Scorer("exact", ex.answers).right
            greedy, samples = [], []
            for k, prompt in enumerate(work.prompts):
                text, usage, _ = model.complete(prompt, max_tokens=settings.max_tokens, temperature=0.0)
                calls += 1
                usage_tokens += usage["prompt_tokens"] + usage["completion_tokens"]
                greedy.append(text.strip())
                drawn = []
                for j in range(settings.samples_per_set):
                    seed = sample_seed(settings.seed, ex.id, k, j) % LLAMA_DEFAULT_SEED  # uint32, never "random"
                    text, usage, _ = model.complete(
                        prompt,
                        max_tokens=settings.max_tokens,
                        temperature=settings.temperature,
                        top_k=settings.top_k,
                        top_p=1.0,
                        min_p=0.0,
                        typical_p=1.0,
                        seed=seed,
                    )
                    calls += 1
                    usage_tokens += usage["prompt_tokens"] + usage["completion_tokens"]
                    drawn.append(text.strip())
                samples.append(drawn)
            greedy_ok = sum(matcher(a) for a in greedy)
            sampled_ok = sum(matcher(a) for s in samples for a in s)
            sampled_n = sum(len(s) for s in samples)
            seconds = time.perf_counter() - t0
            per_example[ex.id] = {
                "category": categorize(greedy_ok, len(greedy), sampled_ok),
                "p_greedy": greedy_ok / len(greedy) if greedy else 0.0,
                "p_sampled": sampled_ok / sampled_n if sampled_n else None,
                "greedy_correct": greedy_ok,
                "sampled_correct": sampled_ok,
                "sampled_total": sampled_n,
                "greedy_answers": greedy,
                "sampled_answers": samples,
                "seconds": seconds,
            }
            log(f"  naive {i + 1}/{len(examples)}: {seconds:.1f} s, {per_example[ex.id]['category']}")
        seconds, cpu = time.perf_counter() - t_all, time.process_time() - c_all
        return {
            "seconds": seconds,
            "cpu_seconds": cpu,
            "questions": len(examples),
            "completion_calls": calls,
            "eval_calls": model.eval_calls,
            "tokens_evaluated": model.tokens,
            "tokens_from_usage": usage_tokens,
            "examples": per_example,
        }
    finally:
        model.close()


# -- report -----------------------------------------------------------------------------------------


def _counts(categories: Sequence[str]) -> dict[str, int]:
    return {c: sum(1 for x in categories if x == c) for c in CATEGORIES}


def compare(examples: Sequence[Example], km: dict, naive: Optional[dict]) -> dict:
    out: dict = {"knowmix_categories": _counts([r["category"] for r in km["rows"].values()])}
    if naive is None:
        return out
    subset = [ex for ex in examples if ex.id in naive["examples"]]
    km_sub = [km["rows"][ex.id] for ex in subset]
    nv_sub = [naive["examples"][ex.id] for ex in subset]
    out["knowmix_categories_on_naive_questions"] = _counts([r["category"] for r in km_sub])
    out["naive_categories"] = _counts([r["category"] for r in nv_sub])
    agree = {"HighlyKnown": 0, "MaybeKnown": 0, "P(T=0)=0": 0}
    disagreements, per_question = [], []
    same_greedy = total_greedy = same_p0 = same_cat = 0
    for ex, r, n in zip(subset, km_sub, nv_sub):
        km_greedy = json.loads(r["greedy_answers"])
        equal = sum(a == b for a, b in zip(km_greedy, n["greedy_answers"]))
        same_greedy += equal
        total_greedy += len(n["greedy_answers"])
        gk, gn = greedy_class(r["category"]), greedy_class(n["category"])
        same_p0 += r["greedy_correct"] == n["greedy_correct"]
        same_cat += r["category"] == n["category"]
        entry = {
            "id": ex.id,
            "group": ex.group,
            "question": ex.question,
            "answers": list(ex.answers),
            "knowmix_category": r["category"],
            "naive_category": n["category"],
            "knowmix_p_greedy": r["p_greedy"],
            "naive_p_greedy": n["p_greedy"],
            "knowmix_p_sampled": r["p_sampled"],
            "naive_p_sampled": n["p_sampled"],
            "same_greedy_answers": equal,
            "greedy_total": len(n["greedy_answers"]),
        }
        per_question.append(entry)
        if gk == gn:
            agree[gk] += 1
        else:
            disagreements.append({**entry, "knowmix_greedy": km_greedy, "naive_greedy": n["greedy_answers"]})
    out.update(
        questions_compared=len(subset),
        greedy_agreement=agree,
        greedy_disagreements=disagreements,
        same_greedy_answers=same_greedy,
        greedy_answers_compared=total_greedy,
        same_p_greedy=same_p0,
        same_category=same_cat,
        per_question=per_question,
    )
    return out


def _fmt_counts(c: dict[str, int]) -> str:
    return "  ".join(f"{k} {v}" for k, v in c.items())


def report(result: dict) -> str:
    km, nv, cmp_ = result["knowmix"], result.get("naive"), result["comparison"]
    n, m = km["questions"], (nv or {}).get("questions", 0)
    lines = [
        "KnowMix probe benchmark",
        f"model:    {result['model']} ({result['model_file']}), llama-cpp-python {result['llama_cpp_version']}, "
        f"{result['threads']} thread{'s' if result['threads'] != 1 else ''}, {result['cpu']}",
        f"data:     {result['data']}: {n} questions in {result['groups']} groups (take_balanced); "
        f"pool {result['pool']} ({result['pool_size']} questions)",
        f"budget:   {result['budget']}",
        "both sides use the same exemplar sets and prompts; model load and one warm-up call are not timed",
    ]
    iso = result.get("isolated")
    if iso is not None:
        same = "identical" if iso["same_rows"] else "DIFFERENT"
        lines.append(
            f"process isolation: in-process {km['seconds'] / max(1, n):.2f} s/question, model in its own process "
            f"{iso['seconds'] / max(1, n):.2f} s/question on the same {n} questions: {iso['ratio']:.3f}x the in-process "
            f"time ({iso['requests']} requests, {iso['tokens_evaluated']} tokens; answers {same})"
        )
    if nv is None:
        lines.append("naive schedule skipped (--naive-n 0)")
    elif m < n:
        lines.append(
            f"NOTE: the naive schedule was timed on the first {m} of the {n} questions only (--naive-n {m}); "
            "KnowMix on all of them"
        )
    lines.append("")
    w = 16
    lines.append(f"{'':34}{'KnowMix (lazy)':>{w}}{'naive':>{w}}")

    def row(label: str, a: object, b: object = "") -> None:
        lines.append(f"{label:34}{a!s:>{w}}{b!s:>{w}}")

    kq = km["seconds"] / max(1, n)
    row("questions timed", n, m if nv else "-")
    row("wall seconds", f"{km['seconds']:.1f}", f"{nv['seconds']:.1f}" if nv else "-")
    row("seconds / question", f"{kq:.2f}", f"{nv['seconds'] / m:.2f}" if nv else "-")
    row("CPU seconds / question", f"{km['cpu_seconds'] / max(1, n):.2f}", f"{nv['cpu_seconds'] / m:.2f}" if nv else "-")
    row("model calls", km["requests"], nv["completion_calls"] if nv else "-")
    row("  per question", f"{km['requests'] / max(1, n):.1f}", f"{nv['completion_calls'] / m:.1f}" if nv else "-")
    row("answers decoded", km["answers"], nv["completion_calls"] if nv else "-")
    row("forward calls (llama eval)", km["forward_calls"], nv["eval_calls"] if nv else "-")
    row("  per question", f"{km['forward_calls'] / max(1, n):.0f}", f"{nv['eval_calls'] / m:.0f}" if nv else "-")
    row("tokens evaluated", km["tokens_evaluated"], nv["tokens_evaluated"] if nv else "-")
    row("  per question", f"{km['tokens_evaluated'] / max(1, n):.0f}", f"{nv['tokens_evaluated'] / m:.0f}" if nv else "-")
    if nv:
        row("  (naive, from usage: prompt+completion)", "", nv["tokens_from_usage"])
    lines.append(
        "(model calls: KnowMix = generate requests, one per prompt and kind, each answered n times; "
        "naive = create_completion calls)"
    )
    lines.append("")
    lines.append(f"{f'categories, KnowMix ({n} questions):':40}{_fmt_counts(cmp_['knowmix_categories'])}")
    if nv:
        if m < n:
            sub = cmp_["knowmix_categories_on_naive_questions"]
            lines.append(f"{f'categories, KnowMix (the naive {m}):':40}{_fmt_counts(sub)}")
        lines.append(f"{f'categories, naive ({m} questions):':40}{_fmt_counts(cmp_['naive_categories'])}")
        lines.append("")
        ratio = result["speedup"]
        lines.append(f"speed-up, naive s/question / KnowMix s/question: {ratio:.1f}x (CPU time: {result['speedup_cpu']:.1f}x)")
        if m < n:
            lines.append(
                f"speed-up on the same {m} questions (KnowMix: its per-batch time per question): "
                f"{result['speedup_same_questions']:.1f}x"
            )
        a = cmp_["greedy_agreement"]
        q = cmp_["questions_compared"]
        lines.append(
            f"greedy-based categories on {q} questions: agree {sum(a.values())} (both HighlyKnown {a['HighlyKnown']}, "
            f"both MaybeKnown {a['MaybeKnown']}, both P(T=0)=0 {a['P(T=0)=0']}), disagree {len(cmp_['greedy_disagreements'])}"
        )
        lines.append(
            f"P(T=0) equal on {cmp_['same_p_greedy']}/{q} questions; identical greedy answers "
            f"{cmp_['same_greedy_answers']}/{cmp_['greedy_answers_compared']}; "
            f"same 4-way category {cmp_['same_category']}/{q} (WeaklyKnown vs Unknown uses different samplers)"
        )
        lines.append("")
        lines.append(f"  {'question':44} {'P0 KnowMix':>10} {'P0 naive':>9} {'P>0 naive':>9}  categories (KnowMix / naive)")
        for e in cmp_["per_question"]:
            qtext = (e["group"] + " " + e["question"])[:44]
            lines.append(
                f"  {qtext:44} {e['knowmix_p_greedy']:>10.1f} {e['naive_p_greedy']:>9.1f} "
                f"{e['naive_p_sampled']:>9.3f}  {e['knowmix_category']} / {e['naive_category']}"
            )
        for d in cmp_["greedy_disagreements"]:
            lines.append(f"  DISAGREE {d['id']} {d['question']!r} gold {d['answers']}")
            lines.append(f"    KnowMix greedy: {d['knowmix_greedy']}")
            lines.append(f"    naive greedy:   {d['naive_greedy']}")
        lines.append("")
        lines.append(
            ("TARGET MET" if result["target_met"] else "TARGET NOT MET")
            + f" (speed-up >= {TARGET_SPEEDUP:g}x and equal greedy-based categories)"
        )
    return "\n".join(lines)


# -- --server: local llama.cpp and a server, each lazy and full, on the same questions -----------------


def run_backend(backend, examples, pool, settings: ProbeSettings, sets: dict) -> dict:
    """One probe of ``examples`` on a loaded backend, timed: questions per second and the requests made."""
    backend.stats.reset()
    t0 = time.perf_counter()
    rows = probe_examples(backend, examples, pool, settings, sets)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "questions_per_second": len(examples) / seconds,
        "requests": backend.stats.forward_calls,
        "categories": {r["example_id"]: r["category"] for r in rows},
    }


def start_llama_server(model_path: str, threads: int) -> tuple[object, str]:
    """``python -m llama_cpp.server`` on 127.0.0.1 and a free port, the model given; (process, URL)."""
    import socket
    import subprocess
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", model_path, "--model_alias", "bench-model"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(N_CTX), "--n_threads", str(threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("llama_cpp.server did not start in 60 s")


def server_main(args: argparse.Namespace, threads: int) -> int:
    from core.backends.llama_backend import LlamaCppBackend
    from core.backends.server import ServerBackend

    settings = preset(args.preset)
    ref = resolve_model(args.model)
    ds = take_balanced(load_dataset(Path(args.data) if args.data else sample_dataset()), args.n)
    examples = list(ds.examples)
    pool = list(load_dataset(Path(args.pool) if args.pool else sample_pool()).examples)
    sets, _ = draw_exemplar_sets(pool, {ex.group for ex in examples}, settings)
    full = ProbeSettings(**{**settings.__dict__, "schedule": "full"})
    proc = None
    url = args.server
    if url == "auto":
        log(f"starting llama_cpp.server on {ref.display_name} ...")
        proc, url = start_llama_server(str(ref.path), threads)
    results: dict = {}
    try:
        local = LlamaCppBackend(ref, n_ctx=N_CTX, n_threads=threads)
        try:
            local.generate([GenRequest(WARMUP_PROMPT, max_tokens=4)])
            for label, s in (("lazy", settings), ("full", full)):
                local.reset_cache()
                log(f"local llama.cpp, {label} schedule, {len(examples)} questions ...")
                results[f"local llama.cpp|{label}"] = run_backend(local, examples, pool, s, sets)
        finally:
            local.close()
        with ServerBackend(
            url, model=args.server_model, api_key_env=args.api_key_env, concurrency=args.server_concurrency
        ) as served:
            if served.info.extra.get("not_comparable"):
                log(served.info.extra["not_comparable"])
            served.generate([GenRequest(WARMUP_PROMPT, max_tokens=4)])
            for label, s in (("lazy", settings), ("full", full)):
                log(f"server {served.info.name}, {label} schedule, {len(examples)} questions ...")
                results[f"server|{label}"] = run_backend(served, examples, pool, s, sets)
    finally:
        if proc is not None:
            proc.kill()  # type: ignore[attr-defined]
    print(f"{len(examples)} questions, {settings.describe()}")
    print(f"threads {threads}; server {args.server} ({url}), {args.server_concurrency} requests at a time")
    print(f"{'backend':<18}{'lazy q/s':>10}{'full q/s':>10}{'lazy/full':>11}{'calls lazy':>12}{'calls full':>12}")
    for side in ("local llama.cpp", "server"):
        lazy, naive = results[f"{side}|lazy"], results[f"{side}|full"]
        print(
            f"{side:<18}{lazy['questions_per_second']:>10.3f}{naive['questions_per_second']:>10.3f}"
            f"{lazy['questions_per_second'] / naive['questions_per_second']:>10.2f}x{lazy['requests']:>12}{naive['requests']:>12}"
        )
    local_cats, server_cats = results["local llama.cpp|lazy"]["categories"], results["server|lazy"]["categories"]
    same = sum(greedy_class(local_cats[i]) == greedy_class(server_cats[i]) for i in local_cats)
    print(f"greedy-based categories equal, local vs server: {same}/{len(local_cats)}")
    print(
        "lazy equals full: local "
        f"{results['local llama.cpp|lazy']['categories'] == results['local llama.cpp|full']['categories']}, "
        f"server {results['server|lazy']['categories'] == results['server|full']['categories']}"
    )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=24, help="questions to probe with KnowMix (take_balanced over the groups)")
    ap.add_argument(
        "--naive-n",
        type=int,
        default=None,
        help="time the naive schedule on the first M of those questions only (default: all; 0: skip it)",
    )
    ap.add_argument("--data", default=None, help="dataset file (default: the bundled EntityQuestions sample)")
    ap.add_argument("--pool", default=None, help="exemplar pool file (default: the bundled held-out pool)")
    ap.add_argument("--preset", default="paper", choices=sorted(PRESETS), help="probe budget (default: the paper's)")
    ap.add_argument("--model", default="default", help="GGUF model (default: the built-in SmolLM2-135M-Instruct)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for both sides (default: all cores)")
    ap.add_argument(
        "--no-isolated",
        action="store_true",
        help="skip the second KnowMix run with the model in its own process (ProcessBackend)",
    )
    ap.add_argument("--json", dest="json_out", default=None, help="also write every number and answer to this JSON file")
    ap.add_argument(
        "--server",
        default=None,
        metavar="URL",
        help="instead: questions per second of local llama.cpp and of this OpenAI-compatible server, each lazy and "
        "full schedule; 'auto' starts llama_cpp.server on --model itself",
    )
    ap.add_argument("--server-model", default=None, help="the model id on the server (default: its only one)")
    ap.add_argument("--api-key-env", default=None, help="environment variable holding the server's API key")
    ap.add_argument("--server-concurrency", type=int, default=8, help="requests in flight at once (default 8)")
    args = ap.parse_args(argv)

    threads = args.threads or max(1, os.cpu_count() or 1)
    if args.server:
        return server_main(args, threads)
    settings = preset(args.preset)
    ref = resolve_model(args.model)
    data_path = Path(args.data) if args.data else sample_dataset()
    pool_path = Path(args.pool) if args.pool else sample_pool()
    ds = take_balanced(load_dataset(data_path), args.n)
    examples = list(ds.examples)
    pool = list(load_dataset(pool_path).examples)
    sets, notes = draw_exemplar_sets(pool, {ex.group for ex in examples}, settings)
    m = len(examples) if args.naive_n is None else max(0, min(args.naive_n, len(examples)))

    import llama_cpp

    log(f"KnowMix probe of {len(examples)} questions ...")
    km = run_knowmix(ref, examples, pool, settings, sets, threads)
    log(f"  KnowMix: {km['seconds']:.1f} s")
    isolated = None
    if not args.no_isolated:
        log(f"KnowMix probe of the same {len(examples)} questions, model in its own process ...")
        iso = run_knowmix(ref, examples, pool, settings, sets, threads, isolated=True)
        log(f"  KnowMix, isolated: {iso['seconds']:.1f} s")
        answers = ("category", "greedy_answers", "sampled_answers")
        isolated = {
            "seconds": iso["seconds"],
            "ratio": iso["seconds"] / km["seconds"],
            "requests": iso["requests"],
            "tokens_evaluated": iso["tokens_evaluated"],
            "same_rows": all(iso["rows"][i][k] == r[k] for i, r in km["rows"].items() for k in answers)
            and (iso["requests"], iso["tokens_evaluated"]) == (km["requests"], km["tokens_evaluated"]),
        }
    naive = None
    if m:
        log(f"naive schedule on {m} questions ({settings.n_sets * (1 + settings.samples_per_set)} calls each) ...")
        naive = run_naive(ref, examples[:m], pool, settings, sets, threads)

    comparison = compare(examples, km, naive)
    result: dict = {
        "model": ref.display_name,
        "model_file": ref.path.name,
        "llama_cpp_version": llama_cpp.__version__,
        "threads": threads,
        "cpu": f"{platform.machine()}, {os.cpu_count()} cores",
        "data": data_path.name,
        "pool": pool_path.name,
        "pool_size": len(pool),
        "groups": len({ex.group for ex in examples}),
        "budget": settings.describe(),
        "settings": settings.identity(),
        "exemplar_notes": notes,
        "question_ids": [ex.id for ex in examples],
        "knowmix": {**km, "rows": list(km["rows"].values())},
        "isolated": isolated,
        "naive": naive,
        "comparison": comparison,
    }
    if naive is not None:
        km_sq = km["seconds"] / len(examples)
        nv_sq = naive["seconds"] / m
        km_same = sum(km["rows"][i]["seconds"] for i in naive["examples"]) / m
        result["seconds_per_question"] = {"knowmix": km_sq, "naive": nv_sq, "knowmix_on_naive_questions": km_same}
        result["speedup"] = nv_sq / km_sq
        result["speedup_cpu"] = (naive["cpu_seconds"] / m) / (km["cpu_seconds"] / len(examples))
        result["speedup_same_questions"] = nv_sq / km_same if km_same > 0 else float("inf")
        speed = min(result["speedup"], result["speedup_same_questions"])
        result["target_met"] = speed >= TARGET_SPEEDUP and not comparison["greedy_disagreements"]
    result_for_report = {**result, "knowmix": km}
    print(report(result_for_report))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
        log(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
