"""The scorer against a careful grader's verdicts: accuracy per class, false-right and false-wrong.

    .venv/bin/python bench/scoring_bench.py [--part dev|heldout|heldout2|both|all] [--judge] [--show-misses]

Cases are (question, gold answers as a dataset row holds them, model answer, verdict) in
bench/scoring_cases/{dev,heldout,heldout2}.jsonl, written from public facts by hand before the
grading rules changed (issue 18); the held-out parts are frozen and each measured once at the end
of the work it judges (``heldout2`` was written before the second round of rule changes).
``both`` is dev and the first held-out part, ``all`` the three parts. Each case goes through
the path a row takes: the loader's ``classify`` finds the row's answer key, then the mode grades.

Modes, side by side in one run:
* ``exact``, ``key``, ``auto``: the rules of this tree (``core.scoring``);
* ``old-exact``, ``old-key``, ``old-auto``: the rules before issue 18 (``core/matching.py`` and
  ``core/datasets/keys.py`` of commit a67ed41, read with ``git show``; skipped without the history);
* ``judge`` (``--judge``): the key rules, and the built-in model as judge for what they leave undecided.

A false-right is a wrong answer scored right (it inflates the known categories); a false-wrong,
a right answer scored wrong.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from collections import defaultdict
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.datasets.keys import classify  # noqa: E402
from core.scoring import Scorer, mode_for  # noqa: E402

CASES = ROOT / "bench" / "scoring_cases"
BEFORE = "a67ed41"
PARTS = {"both": ["dev", "heldout"], "all": ["dev", "heldout", "heldout2"]}


def load_cases(part: str) -> list[dict]:
    parts = PARTS.get(part, [part])
    out = []
    for p in parts:
        for line in (CASES / f"{p}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out


def _old_module(path: str) -> Optional[types.ModuleType]:
    try:
        src = subprocess.run(["git", "-C", str(ROOT), "show", f"{BEFORE}:{path}"], capture_output=True, check=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    mod = types.ModuleType(f"old_{Path(path).stem}")
    exec(compile(src.stdout, f"{BEFORE}:{path}", "exec"), mod.__dict__)
    return mod


def graders(with_old: bool) -> dict[str, Callable[[dict], tuple[bool, bool]]]:
    """Mode name -> grade(case) -> (right, decided)."""

    def new(match: str) -> Callable[[dict], tuple[bool, bool]]:
        def grade(c: dict) -> tuple[bool, bool]:
            reason, keys, source = classify(c["question"], tuple(c["answers"]))
            entity = source == "answer"
            mode = mode_for(match, entity)
            golds = tuple(c["answers"]) if mode == "exact" else (keys or tuple(c["answers"]))
            v = Scorer(mode, golds, c["question"])(c["answer"])
            return v.right, v.decided

        return grade

    out = {"exact": new("exact"), "key": new("key"), "auto": new("auto")}
    if with_old:
        m, k = _old_module("core/matching.py"), _old_module("core/datasets/keys.py")
        if m is not None and k is not None:

            def old(match: str) -> Callable[[dict], tuple[bool, bool]]:
                def grade(c: dict) -> tuple[bool, bool]:
                    reason, keys, source = k.classify(c["question"], tuple(c["answers"]))
                    exact = match == "exact" or (match == "auto" and source == "answer")
                    if exact:
                        return bool(m.AnswerMatcher(c["answers"])(c["answer"])), True
                    return bool(m.KeyMatcher(keys or c["answers"], c["question"])(c["answer"])), True

                return grade

            out.update({"old-exact": old("exact"), "old-key": old("key"), "old-auto": old("auto")})
        else:
            print(f"(no git history for {BEFORE}: the old rules are skipped)")
    return out


def judge_graders(cases: list[dict], threads: int) -> dict[str, Callable[[dict], tuple[bool, bool]]]:
    """``judge``: the key rules, and the built-in model (with the rubric) for what they leave
    undecided; ``old-judge``: before issue 18, every answer without the key went to the model."""
    from types import SimpleNamespace

    from core.backends.base import GenRequest
    from core.backends.llama_backend import LlamaCppBackend
    from core.models import resolve_model
    from core.scoring.judge import ask_judge

    backend = LlamaCppBackend(resolve_model("default"), n_threads=threads)
    rules = graders(False)["key"]
    asked_new: dict[int, bool] = {}
    todo = []
    for i, c in enumerate(cases):
        right, decided = rules(c)
        if not decided:
            todo.append((i, SimpleNamespace(question=c["question"], answers=tuple(c["answers"])), c["answer"]))
    for (i, _, _), v in zip(todo, ask_judge(backend, [(ex, a) for _, ex, a in todo])):
        asked_new[i] = v.right
    old_prompt = "Question: {question}\nGold answer: {gold}\nModel answer: {answer}\nDo they state the same fact? Answer yes or no.\nAnswer:"
    reqs = [
        GenRequest(old_prompt.format(question=c["question"], gold=c["answers"][0], answer=c["answer"]), max_tokens=3)
        for c in cases
    ]
    old_yes = [r[0].strip().lower().startswith("yes") for r in backend.generate(reqs)]
    backend.close()
    index = {id(c): i for i, c in enumerate(cases)}
    old_key = graders(True).get("old-key")

    def judge(c: dict) -> tuple[bool, bool]:
        i = index[id(c)]
        if i in asked_new:
            return asked_new[i], True
        return rules(c)

    def old_judge(c: dict) -> tuple[bool, bool]:
        right = old_key(c)[0] if old_key is not None else False
        return right or old_yes[index[id(c)]], True

    print(f"judge: {len(todo)} of {len(cases)} answers left undecided by the rules went to the judge")
    return {"judge": judge, "old-judge": old_judge}


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="dev", choices=("dev", "heldout", "heldout2", "both", "all"))
    ap.add_argument("--judge", action="store_true", help="also the judge mode, with the built-in model as judge")
    ap.add_argument("--no-old", action="store_true", help="skip the rules before issue 18")
    ap.add_argument("--show-misses", default="", help="print the cases this mode gets wrong")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads for the judge")
    args = ap.parse_args(argv)
    cases = load_cases(args.part)
    modes = graders(not args.no_old)
    if args.judge:
        modes.update(judge_graders(cases, args.threads))
    classes = sorted({c["class"] for c in cases})
    acc: dict[str, dict[str, list[int]]] = {m: defaultdict(lambda: [0, 0]) for m in modes}
    fr: dict[str, list[int]] = {m: [0, 0] for m in modes}  # false-right: wrong cases scored right / wrong cases
    fw: dict[str, list[int]] = {m: [0, 0] for m in modes}
    for c in cases:
        for name, grade in modes.items():
            got, _ = grade(c)
            ok = got == c["right"]
            acc[name][c["class"]][0] += ok
            acc[name][c["class"]][1] += 1
            acc[name]["ALL"][0] += ok
            acc[name]["ALL"][1] += 1
            side = fw if c["right"] else fr
            side[name][0] += not ok
            side[name][1] += 1
            if name == args.show_misses and not ok:
                print(f"MISS [{c['class']}] q={c['question']!r} gold={c['answers']!r} ans={c['answer']!r} want={c['right']}")
    names = list(modes)
    print(f"{len(cases)} cases ({args.part}); accuracy per class")
    print(f"{'class':<18}" + "".join(f"{n:>10}" for n in names))
    for cls in classes + ["ALL"]:
        print(f"{cls:<18}" + "".join(f"{100 * acc[n][cls][0] / max(1, acc[n][cls][1]):>9.0f}%" for n in names))
    print(f"{'false-right':<18}" + "".join(f"{100 * fr[n][0] / max(1, fr[n][1]):>9.1f}%" for n in names))
    print(f"{'false-wrong':<18}" + "".join(f"{100 * fw[n][0] / max(1, fw[n][1]):>9.1f}%" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
