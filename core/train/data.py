"""What a training run reads: train and dev items, their prompts, and their tokenised form.

The run works on its own small ``TrainItem`` type, read (duck-typed) from a plan, so training
does not depend on how plans are stored. The items are frozen into the run (``plan.json`` and the
run's row) when it is created, so a resume always sees the same data in the same order.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional, Sequence

from ..categories import ordered_categories
from ..errors import SettingsError
from ..probe import qa_prompt, zero_shot_messages
from ..scoring import Scorer, normalize_answer, scorer_for


@dataclass(frozen=True)
class TrainItem:
    example_id: str
    question: str
    target: str  # what the model is trained to answer
    answers: tuple[str, ...]  # the gold aliases (dev exact match is scored against these)
    category: str
    group: str
    # how the probe graded this question (core.scoring): its answer keys, whether the gold answer is
    # entity-shaped, and the matching mode; early stopping's dev score grades the same way
    keys: tuple[str, ...] = ()
    entity: bool = True
    match: str = "auto"

    @property
    def answer_keys(self) -> tuple[str, ...]:
        return self.keys or self.answers

    @property
    def entity_shaped(self) -> bool:
        return self.entity

    def to_dict(self) -> dict:
        d = asdict(self)
        d["answers"] = list(self.answers)
        d["keys"] = list(self.keys)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainItem":
        return cls(
            example_id=str(d["example_id"]),
            question=str(d["question"]),
            target=str(d["target"]),
            answers=tuple(str(a) for a in d.get("answers") or ()),
            category=str(d.get("category") or ""),
            group=str(d.get("group") or ""),
            keys=tuple(str(k) for k in d.get("keys") or ()),
            entity=bool(d.get("entity", True)),
            match=str(d.get("match") or "auto"),
        )


def _item(x: Any) -> TrainItem:
    answers = tuple(getattr(x, "answers", ()) or ())
    target = getattr(x, "target", None)
    if target is None or str(target).strip() == "":
        target = answers[0] if answers else ""
    return TrainItem(
        example_id=str(getattr(x, "example_id")),
        question=str(getattr(x, "question")),
        target=str(target),
        answers=tuple(str(a) for a in answers),
        category=str(getattr(x, "category", "") or "") or ("not-probed" if getattr(x, "status", "") == "not-probed" else ""),
        group=str(getattr(x, "group", "") or ""),
        keys=tuple(str(k) for k in getattr(x, "keys", ()) or ()),
        entity=str(getattr(x, "key_source", "answer") or "answer") == "answer",
        match=str(getattr(x, "match", "auto") or "auto"),
    )


def items_from_plan(plan: Any) -> tuple[list[TrainItem], list[TrainItem]]:
    """``(train, dev)`` items of a plan: anything with ``train()`` and ``dev()`` returning plan examples;
    a plan's ``training_examples()`` (its training examples and the kept not-probed rows) when it has them."""
    train = plan.training_examples() if hasattr(plan, "training_examples") else plan.train()
    return [_item(x) for x in train], [_item(x) for x in plan.dev()]


def with_grading(items: Sequence[TrainItem], examples: Any, match: str) -> list[TrainItem]:
    """``items`` with the probe's grading of each question: the answer keys and shape of its
    dataset row (``examples``: id -> example) and the probe's matching mode."""
    from dataclasses import replace

    out = []
    for it in items:
        ex = examples.get(it.example_id)
        if ex is None:
            out.append(replace(it, match=match))
        else:
            out.append(replace(it, keys=tuple(ex.keys), entity=bool(ex.entity_shaped), match=match))
    return out


def check_items(train: Sequence[TrainItem], dev: Sequence[TrainItem]) -> None:
    """Refuse data a run cannot use, before any model is loaded."""
    if not train:
        raise SettingsError("The plan has no training examples. Make a plan that keeps some examples for training.")
    if not dev:
        raise SettingsError(
            "The plan's dev split is empty, so there is nothing to pick the stopping point with. Make a plan with a "
            "dev split (a few percent of the examples, at least a few dozen)."
        )
    empty = [it.example_id for it in train if not it.question.strip() or not it.target.strip()]
    if empty:
        raise SettingsError(f"{len(empty)} training example(s) have an empty question or answer, e.g. {empty[0]}.")
    no_gold = [it.example_id for it in dev if not any(a.strip() for a in it.answers) and not it.target.strip()]
    if no_gold:
        raise SettingsError(f"{len(no_gold)} dev example(s) have no answer to score against, e.g. {no_gold[0]}.")
    seen: set[str] = set()
    for it in list(train) + list(dev):
        if it.example_id in seen:
            raise SettingsError(f"Example {it.example_id} is in the plan twice (train and dev must not overlap).")
        seen.add(it.example_id)


def dev_matcher(item: TrainItem) -> Callable[[str], bool]:
    """Early stopping's dev score: the probe's own grading of the question (``core.scoring``), so
    training, the probe and the check give one verdict for one answer."""
    if not item.answers:
        return Scorer("exact", (item.target,), item.question).right
    return scorer_for(item, item.match).right


def fit_matcher(item: TrainItem) -> Callable[[str], bool]:
    """Fitted = the model now gives the training target: graded as the question is when the target
    is one of its gold answers, exactly (the relabelled "I don't know") otherwise."""
    aliases = {normalize_answer(a) for a in item.answers}
    if normalize_answer(item.target) in aliases:
        return dev_matcher(item)
    return Scorer("exact", (item.target,), item.question).right


def fit_sample(train: Sequence[TrainItem], per_category: int, seed: int) -> dict[str, list[TrainItem]]:
    """A fixed sample of up to ``per_category`` training items of each category (same seed, same sample)."""
    by_cat: dict[str, list[TrainItem]] = {}
    for it in train:
        if it.category == "not-probed":  # kept rows the probe could not check: no category to measure
            continue
        by_cat.setdefault(it.category or "uncategorised", []).append(it)
    out: dict[str, list[TrainItem]] = {}
    for cat in ordered_categories(by_cat):
        items = sorted(by_cat[cat], key=lambda it: it.example_id)
        random.Random(f"fit:{seed}:{cat}").shuffle(items)
        if per_category:
            out[cat] = items[:per_category]
    return out


# ------------------------------------------------------------------------ prompts and tokens


class PromptFormat:
    """Builds prompts and (prompt, answer) token ids for one tokenizer and one format."""

    def __init__(self, tokenizer: Any, kind: str = "qa") -> None:
        self.tok = tokenizer
        self.kind = kind
        if kind == "chat" and not getattr(tokenizer, "chat_template", None):
            raise SettingsError(
                "The model has no chat template, so it cannot be trained in chat format. Use the qa prompt format."
            )

    def prompt(self, question: str) -> str:
        if self.kind == "chat":
            return self.tok.apply_chat_template(zero_shot_messages(question), tokenize=False, add_generation_prompt=True)
        return qa_prompt(question)

    def answer_text(self, question: str, target: str) -> str:
        """What follows the prompt in the training text."""
        if self.kind == "chat":
            prompt = self.prompt(question)
            full = self.tok.apply_chat_template(zero_shot_messages(question, target), tokenize=False)
            if full.startswith(prompt):
                rest = full[len(prompt) :]
                return rest if "\n" in rest or not rest else rest + "\n"
            return f"{target}{self.tok.eos_token or ''}\n"
        return f" {target}\n"

    def encode(self, question: str, target: str, max_len: int) -> tuple[list[int], int]:
        """Token ids of prompt + answer and how many of them are the prompt (masked out of the loss).

        The prompt is encoded exactly as the evaluation encodes it, so training and greedy
        decoding see the same prompt tokens. Too-long examples lose the start of the prompt.
        """
        prompt = self.prompt(question)
        answer = self.answer_text(question, target)
        p_ids = [int(t) for t in self.tok(prompt)["input_ids"]]
        full = [int(t) for t in self.tok(prompt + answer)["input_ids"]]
        if full[: len(p_ids)] == p_ids and len(full) > len(p_ids):
            ids, n_prompt = full, len(p_ids)
        else:  # the tokenizer merged across the boundary: keep the prompt's own tokens
            a_ids = [int(t) for t in self.tok(answer, add_special_tokens=False)["input_ids"]]
            ids, n_prompt = p_ids + a_ids, len(p_ids)
        if len(ids) > max_len:
            n_answer = len(ids) - n_prompt
            if n_answer >= max_len:
                ids, n_prompt = ids[n_prompt : n_prompt + max_len], 0
            else:
                cut = len(ids) - max_len
                ids, n_prompt = ids[cut:], n_prompt - cut
        return ids, n_prompt


def encode_items(fmt: PromptFormat, items: Sequence[TrainItem], max_len: int) -> list[tuple[list[int], int]]:
    return [fmt.encode(it.question, it.target, max_len) for it in items]


def items_to_json(train: Sequence[TrainItem], dev: Sequence[TrainItem], extra: Optional[dict] = None) -> dict:
    return {**(extra or {}), "train": [it.to_dict() for it in train], "dev": [it.to_dict() for it in dev]}


def items_from_json(data: dict) -> tuple[list[TrainItem], list[TrainItem]]:
    return [TrainItem.from_dict(d) for d in data.get("train", [])], [TrainItem.from_dict(d) for d in data.get("dev", [])]
