"""Write the three shapes of the same EntityQuestions facts that issue 11's acceptance test probes.

    .venv/bin/python bench/make_shapes.py [--source ../shared/data/entityquestions/dev] [--out tests/data/shapes]

From the dev split it takes the first facts of a few relations (20 capital-of, 20 country-of,
10 produced-by) and writes:

- ``entity.jsonl``: the facts as they ship (``{"question", "answers", "relation"}``);
- ``sentence.jsonl``: the same questions with one sentence answer each, in several wordings,
  varied the way people write them ("It's San Rafael.", "San Rafael is the capital of Marin
  County.", "The answer is X.", "X, I believe." ...); the wording is chosen per fact by a hash
  of the question, so the file is the same on every run;
- ``chat.jsonl``: ShareGPT conversations with a system turn, the question and a sentence answer
  (another wording than in ``sentence.jsonl``); every third conversation goes on with a
  follow-up user turn and reply, so it is multi-turn (kept, not probed).

No answer keys are written: KnowMix extracts them from the sentence answers when it loads them
(core.datasets.keys), as it would for a team's own file. The facts are EntityQuestions'
(MIT, Sciavolino et al. 2021); its LICENSE is copied next to the files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "data" / "entityquestions"
RELATIONS = {"P36": 20, "P17": 20, "P176": 10}

# {x}: the question's subject, {a}: the gold entity
WORDINGS = {
    "P36": (
        "It's {a}.",
        "{a} is the capital of {x}.",
        "{x}'s capital is {a}, which is also where its administration sits.",
        "The answer is {a}.",
        "{a}, I believe.",
        "The capital of {x} is {a}.",
        "That would be {a}.",
        "I'm fairly sure it's {a}.",
    ),
    "P17": (
        "It's in {a}.",
        "{x} is located in {a}.",
        "The answer is {a}.",
        "{a}, I believe.",
        "{x} is in {a}, as far as I know.",
        "You'll find {x} in {a}.",
        "That's {a}.",
        "It is located in {a}.",
    ),
    "P176": (
        "It's made by {a}.",
        "{x} is produced by {a}.",
        "The answer is {a}.",
        "{a}, I believe.",
        "{a} makes {x}.",
        "That would be {a}.",
    ),
}
SYSTEMS = (
    "You are a helpful assistant. Answer questions about places and products briefly.",
    "You are a concise geography and trivia assistant.",
    "Answer the user's question in one short sentence.",
)
FOLLOW_UPS = (
    ("Thanks! Can you tell me more about it?", "Sure. It is a well-known place, and there is a lot more to read about it."),
    ("Are you sure?", "Yes, that is what the sources I know say."),
    ("Why is that?", "That is simply how it is recorded; I can look for more details if you like."),
)


def _pick(text: str, salt: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}|{text}".encode()).digest()[:4], "little") % n


def subject(question: str, template: str) -> str:
    pattern = re.escape(template).replace(re.escape("[X]"), "(.+)")
    m = re.fullmatch(pattern, question)
    if not m:
        raise ValueError(f"question {question!r} does not follow the template {template!r}")
    return m.group(1)


def facts(source: Path) -> list[dict]:
    templates = json.loads((source / "relation_query_templates.json").read_text(encoding="utf-8"))
    out = []
    for rel, n in RELATIONS.items():
        seen: set[str] = set()
        with open(source / "dev" / f"{rel}.dev.jsonl", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                q = row["question"]
                if q in seen:
                    continue
                seen.add(q)
                out.append({"question": q, "answers": row["answers"], "relation": rel, "x": subject(q, templates[rel])})
                if len(seen) == n:
                    break
    return out


def sentence(fact: dict, salt: str) -> str:
    wordings = WORDINGS[fact["relation"]]
    return wordings[_pick(fact["question"], salt, len(wordings))].format(a=fact["answers"][0], x=fact["x"])


def write(out: Path, source: Path) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    rows = facts(source)
    lines: dict[str, list[str]] = {"entity": [], "sentence": [], "chat": []}
    for i, f in enumerate(rows):
        lines["entity"].append(json.dumps({"question": f["question"], "answers": f["answers"], "relation": f["relation"]}))
        lines["sentence"].append(
            json.dumps({"question": f["question"], "answer": sentence(f, "sentence"), "relation": f["relation"]})
        )
        turns = [
            {"from": "system", "value": SYSTEMS[_pick(f["question"], "system", len(SYSTEMS))]},
            {"from": "human", "value": f["question"]},
            {"from": "gpt", "value": sentence(f, "chat")},
        ]
        if i % 3 == 2:  # every third conversation has a follow-up turn: multi-turn, kept but not probed
            ask, reply = FOLLOW_UPS[_pick(f["question"], "follow-up", len(FOLLOW_UPS))]
            turns += [{"from": "human", "value": ask}, {"from": "gpt", "value": reply}]
        lines["chat"].append(json.dumps({"conversations": turns, "relation": f["relation"]}))
    for name, text in lines.items():
        (out / f"{name}.jsonl").write_text("\n".join(text) + "\n", encoding="utf-8")
    shutil.copyfile(source / "LICENSE", out / "LICENSE")
    return {name: len(text) for name, text in lines.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=SOURCE, help="the EntityQuestions folder (with dev/ and the templates)")
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "shapes")
    args = ap.parse_args()
    counts = write(args.out, args.source)
    print(", ".join(f"{n} {name} rows" for name, n in counts.items()), "->", args.out)


if __name__ == "__main__":
    main()
