"""A plan in plain words: what it keeps, what it drops and why, with the paper's numbers.

The numbers are from Gekhman et al. 2024 (*Does Fine-Tuning LLMs on New Knowledge Encourage
Hallucinations?*), who fine-tuned PaLM 2-M on EntityQuestions: test accuracy per category and
mix at the best dev epoch and at convergence, and the linear fit of accuracy on the numbers of
fitted Known and fitted Unknown examples, each as a share of the whole training set. They are
written as sentences a non-engineer can read.
"""

from __future__ import annotations

from typing import Optional, Protocol

from ..categories import CATEGORIES
from ..datasets.types import reasons_text
from ..formats import percent as _pct
from ..probe import ProbeSettings
from .mixes import IDK_ANSWER, MIX_LABELS, WEAKLY_KNOWN_DEFAULT
from .settings import PlanSettings


class PlanFacts(Protocol):
    """What the words read of a plan (``core.plan.types.Plan`` is one). The words sit below the plan's
    type, which explains itself with them (``Plan.explain``), so this module never imports it: no circle."""

    name: str
    model_name: str
    probe_run_id: int
    settings: PlanSettings
    probe_settings: Optional[ProbeSettings]
    test_skipped: str

    def counts(self) -> dict: ...


CATEGORY_MEANING = {
    "HighlyKnown": "the model always answers it right",
    "MaybeKnown": "the model sometimes answers it right",
    "WeaklyKnown": "the model gets it right only when sampling",
    "Unknown": "the model never got it right: new knowledge",
}

PAPER = "Gekhman et al. 2024, who fine-tuned PaLM 2-M on EntityQuestions (12 relations)"
EVIDENCE = {
    "unknown_harm": (
        "Unknown examples teach the model new facts. The paper found the model fits them much more slowly than "
        "known ones, and once fitted they lower test accuracy: accuracy = 36.9 + 7.3 x N_kn/|D| - 8.3 x N_unk/|D|, "
        "where N_kn and N_unk are the Known and Unknown training examples the model has fitted (answers right) at "
        "that point of training and |D| is the size of the whole training set, so each term is fitted examples of "
        "that kind as a share of all training examples (a linear fit in-distribution, R^2 0.86)."
    ),
    "single": (
        "Test accuracy when training on one category only (at the best dev epoch / at convergence): HighlyKnown "
        "40.5/40.0, MaybeKnown 43.6/43.2, WeaklyKnown 39.2/35.4, Unknown 37.5/25.8; the natural mix 43.5/41.8."
    ),
    "filter": (
        "Dropping only the Unknown examples (the paper's filtered set, D_Known, which kept HighlyKnown, MaybeKnown and "
        "WeaklyKnown) was as good as keeping them with early stopping, and better when training runs to convergence."
    ),
    "maybe": (
        "MaybeKnown examples are needed: trained on HighlyKnown alone, the model answered MaybeKnown test "
        "questions 60.1% right versus 69.9% with MaybeKnown examples in the mix."
    ),
    "weak_dropped": WEAKLY_KNOWN_DEFAULT,
    "weak_capped": (
        "WeaklyKnown examples are kept up to your cap of {cap} ({kept} kept): alone they gave 39.2 at the best dev "
        "epoch but fell to 35.4 at convergence, so keep the cap small and rely on early stopping."
    ),
    "idk": (
        "Unknown answers are relabelled \"I don't know\" (the paper's IDK variant): the model learns to abstain "
        "instead of guessing. In the paper this raised accuracy on the questions the model chose to answer from "
        "43.0 to 61.8, at the cost of answering fewer questions."
    ),
    "natural": (
        "The natural mix keeps everything, Unknown included: it reached 43.5 with early stopping but fell to 41.8 "
        "at convergence, as the fitted Unknown examples pulled accuracy down. Early stopping matters most here."
    ),
    "stop": (
        "Training stops at the best dev exact match (the paper's EARLY_STOP, which came after 5-10 of 50 epochs); "
        "training to convergence lets the Unknown examples' harm in."
    ),
    "dev": (
        "The dev split is drawn from all probed questions before the mix is applied, so it keeps the natural share "
        "of each category and group, as the paper's dev set did: dev exact match measures what the paper measured. "
        "The test split is drawn the same way, before dev, and is never used for training or stopping, so it measures "
        "what training did without having steered it."
    ),
}


def _questions(n: int) -> str:
    return f"{n} question{'s' if n != 1 else ''}"


# --------------------------------------------------------------------------- warnings


def plan_warnings(plan: PlanFacts) -> list[str]:
    """Things the user should know before training on this plan, in plain words."""
    out: list[str] = []
    ps = plan.probe_settings
    if ps is not None and not ps.is_paper_budget:
        out.append(f"Probe budget: {ps.describe()} Re-probe with the paper preset before trusting this mix.")
    c = plan.counts()
    for cat in CATEGORIES:
        n = c["before"]["counts"][cat]
        if n and not c["dev"]["counts"][cat]:
            out.append(
                f"{cat} has only {n} probed question{'s' if n != 1 else ''}: too few for a dev example, so dev "
                f"accuracy says nothing about {cat} questions."
            )
    if c["before"]["counts"]["MaybeKnown"] > c["dev"]["counts"]["MaybeKnown"] and not c["train"]["counts"]["MaybeKnown"]:
        out.append(
            "The training set has no MaybeKnown examples: the paper found that training without them under-serves "
            "MaybeKnown questions (60.1% versus 69.9% right)."
        )
    n_unknown = c["train"]["counts"]["Unknown"]
    if plan.settings.mix == "custom" and n_unknown:
        out.append(
            f"The training set keeps {n_unknown} Unknown example{'s' if n_unknown != 1 else ''} with the real "
            "answer: the paper found these make the model hallucinate more once fitted; rely on early stopping."
        )
    return out


# --------------------------------------------------------------------------- the explanation


def explain_plan(plan: PlanFacts) -> str:
    """The plan in plain words: counts and shares before and after, what was dropped and why, and
    the paper's evidence for this mix."""
    c = plan.counts()
    parts = [_title(plan), _before(c), _test(plan, c), _dev(plan, c), _train(c), _dropped(plan, c)]
    ood = _ood(plan)
    if ood:
        parts.append(ood)
    multi = _multi_answer(plan, c)
    if multi:
        parts.append(multi)
    not_probed = _not_probed(plan, c)
    if not_probed:
        parts.append(not_probed)
    groups = _groups(c)
    if groups:
        parts.append(groups)
    parts.append([f"Why this mix: the evidence from {PAPER}."] + [f"  - {s}" for s in _evidence(plan, c)])
    warnings = plan_warnings(plan)
    if warnings:
        parts.append(["Warnings:"] + [f"  ! {w}" for w in warnings])
    return "\n\n".join("\n".join(lines) for lines in parts)


def _title(plan: PlanFacts) -> list[str]:
    title = f"Plan '{plan.name}'" if plan.name else "Plan"
    model = f" ({plan.model_name})" if plan.model_name else ""
    mix = MIX_LABELS.get(plan.settings.mix, plan.settings.mix)
    return [f"{title}: the {mix}, from probe run {plan.probe_run_id}{model}."]


def _before(c: dict) -> list[str]:
    before = c["before"]
    n_all = before["total"]
    lines = [f"Before: {n_all} probed question{'s' if n_all != 1 else ''}."]
    for cat in CATEGORIES:
        lines.append(f"  {cat:<12} {before['counts'][cat]:>7}  {_pct(before['shares'][cat]):>6}   {CATEGORY_MEANING[cat]}")
    return lines


def _dev(plan: PlanFacts, c: dict) -> list[str]:
    s, dev, n_all = plan.settings, c["dev"], c["before"]["total"]
    lines = [
        f"Dev split: {_questions(dev['total'])} held out "
        f"({_pct(dev['total'] / n_all if n_all else 0)} of the data; your limit is {_pct(s.dev_fraction, 0)}, at most "
        f"{s.dev_max}), stratified by category and group, from what the test split left. They are never trained on; "
        "dev exact match decides when training stops."
    ]
    for cat in CATEGORIES:
        lines.append(f"  {cat:<12} {dev['counts'][cat]:>7}  {_pct(dev['shares'][cat]):>6}")
    return lines


def _test(plan: PlanFacts, c: dict) -> list[str]:
    """The held-out test split: how many, by category, or why there is none."""
    s, n_all = plan.settings, c["before"]["total"]
    test = c["test"]
    if not s.test_fraction or not s.test_max:
        return [
            "Test split: none (turned off with a test fraction or maximum of 0); `knowmix check` can then measure "
            "only the dev and training questions."
        ]
    if not test["total"]:
        why = c.get("test_skipped") or plan.test_skipped or "No test split on this data."
        return [f"Test split: none. {why}"]
    lines = [
        f"Test split: {_questions(test['total'])} held out ({_pct(test['total'] / n_all if n_all else 0)} of the data; "
        f"your limit is {_pct(s.test_fraction, 0)}, at most {s.test_max}), stratified by category and group and drawn "
        "before the dev split. They are never trained on and never used for stopping: `knowmix check` re-probes them "
        "after training to measure what the fine-tune did to the model's knowledge (new errors, fixed answers)."
    ]
    for cat in CATEGORIES:
        lines.append(f"  {cat:<12} {test['counts'][cat]:>7}  {_pct(test['shares'][cat]):>6}")
    return lines


def _ood(plan: PlanFacts) -> list[str]:
    """The out-of-distribution dataset, when the plan has one."""
    ood = plan.settings.ood_dataset_id
    if ood is None:
        return []
    return [
        f'Out-of-distribution file: dataset {ood} of the project (role "ood"), with groups the plan does not have '
        "(as the paper's held-out relations). The plan does not probe or train on it; `knowmix check` probes it before "
        "and after training, to show what the fine-tune did to knowledge outside the training data's groups."
    ]


def _train(c: dict) -> list[str]:
    before, train, dev = c["before"], c["train"], c["dev"]
    relabel_note = f', of which {c["relabelled"]} Unknown with the answer "{IDK_ANSWER}"' if c["relabelled"] else ""
    lines = [f"Training set: {_questions(train['total'])}{relabel_note}."]
    left_out = (c.get("multi_answer") or {}).get("left_out_counts") or {}
    for cat in CATEGORIES:
        eligible = before["counts"][cat] - dev["counts"][cat] - c["test"]["counts"][cat] - left_out.get(cat, 0)
        kept = train["counts"][cat]
        of = f"{kept} of {eligible} kept" if eligible else "none to keep"
        lines.append(f"  {cat:<12} {kept:>7}  {_pct(train['shares'][cat]):>6}   ({of})")
    return lines


def _dropped(plan: PlanFacts, c: dict) -> list[str]:
    dropped = c["dropped"]
    if not dropped["total"]:
        return ["Dropped: nothing; every question not held out for dev or test trains."]
    lines = [f"Dropped: {_questions(dropped['total'])}."]
    multi = c.get("multi_answer") or {}
    left_out = multi.get("left_out_counts") or {}
    for cat in CATEGORIES:
        n = dropped["counts"][cat] - left_out.get(cat, 0)
        if n:
            lines.append(f"  {cat:<12} {n:>7}   {_drop_reason(plan, cat)}")
    if multi.get("left_out"):
        lines.append(
            f"  {'multi-answer':<12} {multi['left_out']:>7}   several different true answers: left out before the dev "
            "split, as you chose (--multi-answer drop)."
        )
    return lines


def _multi_answer(plan: PlanFacts, c: dict) -> list[str]:
    """Probed questions with several different true answers: how many, and what the plan does with them."""
    multi = c.get("multi_answer") or {}
    n = multi.get("total", 0)
    if not n:
        return []
    share = _pct(n / c["before"]["total"]) if c["before"]["total"] else "-"
    head = (
        f"Several true answers: {_questions(n)} ({share} of the probed) list two or more different true answers, "
        "not aliases of one (e.g. two children of one person); any of them counts as right, which makes them easier. "
        "The paper removed such questions (4.2% of its data)."
    )
    if plan.settings.multi_answer == "drop":
        what = f"This plan leaves them out ({multi.get('left_out', 0)} dropped before the dev split; --multi-answer keep keeps them)."
    else:
        what = "This plan keeps them like the other questions (--multi-answer drop leaves them out)."
    return [head, "  " + what]


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"


def not_probed_line(c: dict) -> str:
    """One sentence: every row accounted for (trained, dev, dropped, not probed). Empty when every
    row was probed."""
    np = c.get("not_probed") or {}
    if not np.get("total"):
        return ""
    what = "kept as they are in the training file" if np["kept"] else "left out, as you chose"
    if np["kept"] and np["left_out"]:
        what = f"{np['kept']} kept, {np['left_out']} left out"
    why = reasons_text(np["reasons"])
    return (
        f"All {_rows(c['rows'])}: {c['train']['total']} to train on, {c['dev']['total']} for dev, "
        f"{c['test']['total']} for test, "
        f"{c['dropped']['total']} dropped, and {np['total']} not probed ({why}): {what}."
    )


def _not_probed(plan: PlanFacts, c: dict) -> list[str]:
    """Rows the probe could not check: how many, why, and what the plan does with them."""
    from ..datasets.types import REASONS

    np = c.get("not_probed") or {}
    if not np.get("total"):
        return []
    n = np["total"]
    if plan.settings.not_probed == "keep":
        head = (
            f"Not probed: {_rows(n)}, kept as they are in the training file with their own answers. They are not "
            "facts the probe can judge, so no category applies and the mix does not touch them "
            "(--not-probed drop leaves them out)."
        )
    else:
        head = f"Not probed: {_rows(n)}, left out of the training file as you chose (--not-probed keep keeps them)."
    lines = [head]
    for reason, k in np["reasons"].items():
        lines.append(f"  {reason or 'unknown':<12} {k:>7}   {REASONS.get(reason, 'not probed')}")
    untrained = np["kept"] - np["trained"]
    if untrained:
        lines.append(
            f"  {untrained} of the kept rows (multi-turn conversations, rows without an answer) are in the exported "
            "training file only: KnowMix's own trainer takes one question and one answer per example."
        )
    lines.append("  " + not_probed_line(c))
    return lines


def _groups(c: dict) -> list[str]:
    groups = c["groups"]
    if len(groups) <= 1:
        return []
    lines = [
        f"Groups: {len(groups)}. Where a category is kept only in part, the kept examples are spread over the "
        "groups in proportion to their size (the paper sampled per relation)."
    ]
    if len(groups) <= 20:
        for g, v in groups.items():
            lines.append(
                f"  {g[:24]:<24} before {v['before']:>6} {_pct(v['before_share']):>6}   "
                f"training {v['train']:>6} {_pct(v['train_share']):>6}"
            )
    return lines


def _drop_reason(plan: PlanFacts, cat: str) -> str:
    s = plan.settings
    if s.mix in ("recommended", "idk") and cat == "WeaklyKnown":
        return f"over your WeaklyKnown cap of {s.weakly_known_cap}: the model knows these only when sampling."
    if s.mix == "recommended" and cat == "Unknown":
        return "new to the model: fitting them makes it hallucinate more."
    if s.mix == "custom":
        return f"outside your share of {_pct(s.share_of(cat), 0)} for {cat}."
    return "dropped."


def _evidence(plan: PlanFacts, c: dict) -> list[str]:
    """The paper's findings that bear on this mix, most relevant first."""
    s = plan.settings
    out = [EVIDENCE["unknown_harm"]]
    if s.mix in ("recommended", "idk"):
        out.append(EVIDENCE["filter"] if s.mix == "recommended" else EVIDENCE["idk"])
        out.append(EVIDENCE["maybe"])
        out.append(_weak_evidence(s.weakly_known_cap, c["train"]["counts"]["WeaklyKnown"]))
    elif s.mix == "natural":
        out.append(EVIDENCE["natural"])
        out.append(EVIDENCE["filter"] + " Consider the recommended mix.")
    else:
        out.extend(_custom_evidence(plan, c))
    out.extend((EVIDENCE["single"], EVIDENCE["dev"], EVIDENCE["stop"]))
    return out


def _weak_evidence(cap: int, kept: int) -> str:
    return EVIDENCE["weak_dropped"] if cap == 0 else EVIDENCE["weak_capped"].format(cap=cap, kept=kept)


def _custom_evidence(plan: PlanFacts, c: dict) -> list[str]:
    s = plan.settings
    before, train = c["before"]["counts"], c["train"]["counts"]
    out = [f"Your shares kept: {', '.join(f'{cat} {_pct(s.share_of(cat), 0)}' for cat in CATEGORIES)}."]
    if s.share_of("Unknown") > 0 and before["Unknown"]:
        out.append(EVIDENCE["filter"] + " You keep Unknown examples, so early stopping matters.")
    if s.share_of("MaybeKnown") < 1 and before["MaybeKnown"]:
        out.append(EVIDENCE["maybe"])
    if s.share_of("WeaklyKnown") > 0 and before["WeaklyKnown"]:
        out.append(EVIDENCE["weak_capped"].format(cap=_pct(s.share_of("WeaklyKnown"), 0), kept=train["WeaklyKnown"]))
    return out
