"""The plan: mixes, the stratified dev split, group shares, words, store, export and memory."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from core import models
from core.datasets import Example, load_dataset
from core.errors import ProjectError, SettingsError
from core.plan import (
    IDK_ANSWER,
    MIXES,
    Plan,
    PlanSettings,
    build_plan,
    check_memory_fits,
    estimate_memory,
    export_plan,
    load_plan,
    save_plan,
)
from core.probe import CATEGORIES, ProbeRequest, ProbeSettings, run_probe
from core.store import Project
from tests.probed import ProbeRow, seed_project
from tests.scripted import ScriptedBackend


def seeded_project(
    tmp_path, spec: dict[tuple[str, str], int], *, status="finished", done=None, probe_settings=ProbeSettings(), seed=0
):
    """A project whose (finished) probe run gives exactly ``spec[(category, group)]`` examples, in shuffled file order.

    Probe rows are written straight to the store (``tests.probed.seed_project``, the ``probed_project``
    fixture's builder), so a test can ask for thousands of examples with exact category counts in milliseconds.
    """
    cats: dict[str, str] = {}
    examples = []
    for (cat, group), n in spec.items():
        for i in range(n):
            ex_id = f"{cat[:2]}-{group}-{i:05d}"
            q = f"{cat} question {i} of {group}?"
            a = f"answer {cat} {group} {i}"
            examples.append(
                Example(ex_id, q, (a, f"alias {i}"), group, 0, {"question": q, "answers": [a, f"alias {i}"], "relation": group})
            )
            cats[ex_id] = cat
    random.Random(seed).shuffle(examples)
    row = ProbeRow(settings=probe_settings.identity(), preset=probe_settings.preset, status=status)
    project, run_id = seed_project(tmp_path / "p.knowmix", examples, cats, row=row, done=done)
    return project, run_id, examples


BALANCED = {(c, g): n for c, n in zip(CATEGORIES, (120, 90, 60, 150)) for g in ("G0", "G1", "G2")}


def by_cat(items):
    return Counter(e.category for e in items)


def test_settings_are_checked_in_plain_words():
    PlanSettings().validate()
    for mix in MIXES:
        PlanSettings(mix=mix, shares={"WeaklyKnown": 0.5} if mix == "custom" else None).validate()
    bad = [
        (PlanSettings(mix="best"), "mix must be one of"),
        (PlanSettings(weakly_known_cap=-1), "WeaklyKnown cap"),
        (PlanSettings(mix="custom"), "needs a share per category"),
        (PlanSettings(mix="custom", shares={"Known": 1}), "not a category"),
        (PlanSettings(mix="custom", shares={"Unknown": 1.5}), "from 0 to 1"),
        (PlanSettings(shares={"Unknown": 1}), "only used by the custom mix"),
        (PlanSettings(dev_fraction=0), "dev fraction"),
        (PlanSettings(dev_fraction=0.8), "dev fraction"),
        (PlanSettings(dev_max=2), "at least 4"),
    ]
    for settings, words in bad:
        with pytest.raises(SettingsError, match=words):
            settings.validate()


def test_recommended_mix_keeps_known_drops_unknown_and_caps_weakly_known(tmp_path):
    project, run_id, examples = seeded_project(tmp_path, BALANCED)
    plan = build_plan(project)
    assert plan.probe_run_id == run_id and plan.settings == PlanSettings()
    dev_ids = {e.example_id for e in plan.dev()}
    for e in plan.examples:
        if e.split in ("dev", "test"):
            continue
        if e.category in ("HighlyKnown", "MaybeKnown"):
            assert e.split == "train" and e.target == e.answers[0]
        else:
            assert e.split == "dropped"
    assert by_cat(plan.train())["WeaklyKnown"] == 0 and by_cat(plan.train())["Unknown"] == 0
    assert any("dropped: Unknown" in e.reason for e in plan.dropped())
    assert all(e.reason.startswith("kept: the model") for e in plan.train())
    # The cap: exactly N WeaklyKnown examples, or all there are.
    capped = build_plan(project, settings=PlanSettings(weakly_known_cap=25))
    assert by_cat(capped.train())["WeaklyKnown"] == 25
    assert {e.example_id for e in capped.dev()} == dev_ids  # the dev split does not depend on the mix
    everything = build_plan(project, settings=PlanSettings(weakly_known_cap=10_000))
    assert by_cat(everything.train())["WeaklyKnown"] == 180 - by_cat(everything.dev() + everything.test())["WeaklyKnown"]
    assert len(plan.examples) == len(examples)
    project.close()


def test_idk_mix_relabels_unknown_answers_and_keeps_them(tmp_path):
    project, _, _ = seeded_project(tmp_path, BALANCED)
    plan = build_plan(project, settings=PlanSettings(mix="idk"))
    unknown_train = [e for e in plan.train() if e.category == "Unknown"]
    assert len(unknown_train) == 450 - by_cat(plan.dev() + plan.test())["Unknown"]
    assert all(e.target == IDK_ANSWER and e.relabelled for e in unknown_train)
    assert all(e.target == e.answers[0] for e in plan.examples if e.category != "Unknown" or e.split in ("dev", "test"))
    assert by_cat(plan.train())["WeaklyKnown"] == 0
    assert plan.counts()["relabelled"] == len(unknown_train)
    project.close()


def test_natural_mix_keeps_everything_outside_dev(tmp_path):
    project, _, examples = seeded_project(tmp_path, BALANCED)
    plan = build_plan(project, settings=PlanSettings(mix="natural", weakly_known_cap=3))
    assert not plan.dropped()
    assert len(plan.train()) + len(plan.dev()) + len(plan.test()) == len(examples)
    assert all(e.target == e.answers[0] for e in plan.train())
    project.close()


def test_custom_shares_keep_that_share_of_each_category(tmp_path):
    project, _, _ = seeded_project(tmp_path, BALANCED)
    shares = {"HighlyKnown": 1, "MaybeKnown": 0.5, "WeaklyKnown": 0.25, "Unknown": 0}
    plan = build_plan(project, settings=PlanSettings(mix="custom", shares=shares))
    dev, train = by_cat(plan.dev() + plan.test()), by_cat(plan.train())
    total = {c: 3 * n for c, n in zip(CATEGORIES, (120, 90, 60, 150))}
    for cat, share in shares.items():
        assert train[cat] == int(share * (total[cat] - dev[cat]) + 0.5)
    # A category the shares leave out follows the recommended mix.
    partial = build_plan(project, settings=PlanSettings(mix="custom", shares={"WeaklyKnown": 1}))
    t = by_cat(partial.train())
    held = by_cat(partial.dev() + partial.test())
    assert t["Unknown"] == 0 and t["WeaklyKnown"] == total["WeaklyKnown"] - held["WeaklyKnown"]
    assert t["HighlyKnown"] == total["HighlyKnown"] - held["HighlyKnown"]
    project.close()


def test_dev_split_is_stratified_by_category_and_group_and_has_every_category(tmp_path):
    spec = {
        ("HighlyKnown", "G0"): 400,
        ("HighlyKnown", "G1"): 100,
        ("MaybeKnown", "G0"): 50,
        ("MaybeKnown", "G1"): 250,
        ("WeaklyKnown", "G0"): 30,
        ("WeaklyKnown", "G1"): 9,
        ("Unknown", "G0"): 200,
        ("Unknown", "G1"): 600,
    }
    project, _, examples = seeded_project(tmp_path, spec)
    n = len(examples)  # 1639
    plan = build_plan(project)
    dev = plan.dev()
    assert len(dev) == int(0.1 * n) and len(dev) <= 0.1 * n and len(dev) <= 500
    strata = Counter((e.category, e.group) for e in dev)
    for key, size in spec.items():
        assert abs(strata[key] - 0.1 * size) <= 1, key
    assert set(by_cat(dev)) == set(CATEGORIES)
    # Shares in dev follow the data's shares (the natural distribution), within 1 percentage point.
    shares_all = plan.counts()["before"]["shares"]
    shares_dev = plan.counts()["dev"]["shares"]
    assert all(abs(shares_all[c] - shares_dev[c]) < 0.01 for c in CATEGORIES)
    assert not {e.example_id for e in dev} & {e.example_id for e in plan.train()}
    assert all(e.reason.startswith("held out for dev") for e in dev)
    project.close()


def test_dev_split_is_capped_and_scaled_down_proportionally(tmp_path):
    spec = {
        ("HighlyKnown", "G0"): 3000,
        ("MaybeKnown", "G0"): 1500,
        ("WeaklyKnown", "G1"): 400,
        ("Unknown", "G1"): 1100,
        ("Unknown", "G0"): 3,
    }
    project, _, examples = seeded_project(tmp_path, spec)
    plan = build_plan(project)
    dev = plan.dev()
    assert len(dev) == 500 < 0.1 * len(examples)
    strata = Counter((e.category, e.group) for e in dev)
    for key, size in spec.items():
        assert abs(strata[key] - 500 * size / len(examples)) <= 1, key
    small = build_plan(project, settings=PlanSettings(dev_fraction=0.05, dev_max=100))
    assert len(small.dev()) == 100 and set(by_cat(small.dev())) == set(CATEGORIES)
    project.close()


def test_every_category_with_two_examples_reaches_dev_without_breaking_the_limits(tmp_path):
    spec = {
        ("HighlyKnown", "G0"): 150,
        ("MaybeKnown", "G0"): 40,
        ("WeaklyKnown", "G0"): 1,
        ("WeaklyKnown", "G1"): 1,
        ("Unknown", "G1"): 1,
    }
    project, _, examples = seeded_project(tmp_path, spec)
    plan = build_plan(project)
    dev = by_cat(plan.dev())
    assert dev["WeaklyKnown"] == 1 and dev["HighlyKnown"] and dev["MaybeKnown"]
    assert len(plan.dev()) == int(0.1 * len(examples))
    assert not dev["Unknown"]  # a category of one cannot be in dev and train: the plan says so
    assert any("Unknown has only 1 probed question" in w for w in plan.warnings())
    assert "too few for a dev example" in plan.explain()
    project.close()


def test_on_tiny_data_every_category_still_gets_one_dev_example(tmp_path):
    project, _, _ = seeded_project(tmp_path, {(c, "G0"): 5 for c in CATEGORIES})
    plan = build_plan(project, settings=PlanSettings(mix="natural", test_fraction=0))
    assert by_cat(plan.dev()) == {c: 1 for c in CATEGORIES}  # 4 > 10% of 20: the categories come first
    assert by_cat(plan.train()) == {c: 4 for c in CATEGORIES}
    # With a test split (20 questions is just enough), the categories come first in it too, and dev still has each.
    with_test = build_plan(project, settings=PlanSettings(mix="natural"))
    assert by_cat(with_test.test()) == by_cat(with_test.dev()) == {c: 1 for c in CATEGORIES}
    assert by_cat(with_test.train()) == {c: 3 for c in CATEGORIES}
    project.close()


def test_plan_is_deterministic_for_a_seed(tmp_path):
    project, _, _ = seeded_project(tmp_path, BALANCED)
    settings = PlanSettings(weakly_known_cap=20)
    a, b = build_plan(project, settings=settings), build_plan(project, settings=settings)
    assert [(e.example_id, e.split, e.target) for e in a.examples] == [(e.example_id, e.split, e.target) for e in b.examples]
    c = build_plan(project, settings=PlanSettings(weakly_known_cap=20, seed=1))
    assert {e.example_id for e in c.dev()} != {e.example_id for e in a.dev()}
    assert len(c.dev()) == len(a.dev())
    project.close()


def test_partial_keep_preserves_each_groups_share_not_file_order(tmp_path):
    spec = {("HighlyKnown", "G0"): 100, ("WeaklyKnown", "G0"): 600, ("WeaklyKnown", "G1"): 300, ("WeaklyKnown", "G2"): 100}
    project, _, examples = seeded_project(tmp_path, spec)
    plan = build_plan(project, settings=PlanSettings(weakly_known_cap=90))
    pool = Counter(e.group for e in plan.examples if e.category == "WeaklyKnown" and e.split not in ("dev", "test"))
    kept = Counter(e.group for e in plan.train() if e.category == "WeaklyKnown")
    assert sum(kept.values()) == 90
    for g, n in pool.items():
        assert abs(kept[g] - 90 * n / sum(pool.values())) <= 1, g
    # Not the first 90 in file order: the kept examples are spread over the file.
    weak_order = [e.id for e in examples if e.id.startswith("We-")]  # file order
    positions = sorted(weak_order.index(e.example_id) for e in plan.train() if e.category == "WeaklyKnown")
    assert positions[-1] > 300
    custom = build_plan(project, settings=PlanSettings(mix="custom", shares={"WeaklyKnown": 0.1}))
    kept = Counter(e.group for e in custom.train() if e.category == "WeaklyKnown")
    for g, n in pool.items():
        assert abs(kept[g] - 0.1 * n) <= 1, g
    project.close()


def test_the_same_data_in_another_file_order_gives_the_same_plan(tmp_path):
    """``core/plan/sampling.py`` promises a plan that does not depend on the file's order (issue 20,
    item 7): the same questions shuffled, with the same seed, go to the same test, dev and training
    splits and the same mix."""
    spec = {("HighlyKnown", "G0"): 40, ("MaybeKnown", "G1"): 60, ("WeaklyKnown", "G0"): 300, ("Unknown", "G1"): 200}
    plans = []
    for order in (0, 1):
        folder = tmp_path / f"order{order}"
        folder.mkdir()
        project, _, examples = seeded_project(folder, spec, seed=order)
        plans.append(build_plan(project, settings=PlanSettings(weakly_known_cap=50)))
        project.close()
    splits = [{e.example_id: (e.split, e.reason) for e in plan.examples} for plan in plans]
    assert Counter(s for s, _r in splits[0].values())["test"] > 0
    assert splits[0] == splits[1]


def test_explain_gives_counts_shares_reasons_and_the_papers_numbers(tmp_path):
    project, _, _ = seeded_project(tmp_path, BALANCED)
    plan = build_plan(project)
    text = plan.explain()
    c = plan.counts()
    assert f"Before: {c['before']['total']} probed questions" in text
    assert f"Training set: {c['train']['total']} questions" in text
    assert f"Dropped: {c['dropped']['total']} questions" in text
    assert "28.6%" in text and "35.7%" in text  # shares before: HighlyKnown 360 and Unknown 450 of 1260
    assert "36.9 + 7.3" in text and "8.3" in text and "R^2 0.86" in text
    # the linear model's terms are FITTED Known/Unknown examples as a share of the whole training set |D|
    assert "accuracy = 36.9 + 7.3 x N_kn/|D| - 8.3 x N_unk/|D|" in text
    assert "the Known and Unknown training examples the model has fitted" in text
    assert "|D| is the size of the whole training set" in text and "as a share of all training examples" in text
    assert "share of Known examples fitted" not in text
    # dropping WeaklyKnown is KnowMix's default, not the paper's result: said so, with why and how to change it
    assert "This default goes beyond the paper's evidence" in text
    assert "kept WeaklyKnown examples in" in text and "D_Known" in text
    assert "lowest test accuracy of the known categories" in text and "--weakly-known-cap" in text
    for number in ("40.5/40.0", "43.6/43.2", "39.2/35.4", "37.5/25.8", "43.5/41.8", "60.1", "69.9", "EARLY_STOP"):
        assert number in text, number
    assert "hallucinate" in text and "cap of 0" in text
    assert "61.8" not in text  # the IDK result belongs to the IDK mix
    assert "Warnings" not in text  # paper budget, every category in dev
    idk = build_plan(project, settings=PlanSettings(mix="idk")).explain()
    assert "43.0 to 61.8" in idk and IDK_ANSWER in idk
    natural = build_plan(project, settings=PlanSettings(mix="natural")).explain()
    assert "43.5 with early stopping but fell to 41.8" in natural and "Dropped: nothing" in natural
    custom = build_plan(project, settings=PlanSettings(mix="custom", shares={"MaybeKnown": 0.5, "Unknown": 0.2})).explain()
    assert "MaybeKnown 50%" in custom and "60.1" in custom and "keeps" in custom and "Unknown examples" in custom
    data = plan.to_dict()
    assert data["counts"]["train"]["total"] == len(plan.train()) and data["paper_budget"] is True
    assert json.loads(json.dumps(plan.to_dict(include_examples=True)))["examples"][0]["split"] in ("train", "dev", "dropped")
    project.close()


def test_explain_warns_about_a_cheaper_probe(tmp_path):
    project, _, _ = seeded_project(tmp_path, BALANCED, probe_settings=ProbeSettings(n_sets=2, samples_per_set=2, preset="smoke"))
    text = build_plan(project).explain()
    assert (
        "Warnings" in text
        and "CHEAPER than the paper" in text
        and "Re-probe with the paper preset" in text
        and "Unknown category is less reliable" in text
    )
    project.close()


def test_plan_on_an_unfinished_probe_says_how_far_it_got(tmp_path):
    project, run_id, _ = seeded_project(tmp_path, {("HighlyKnown", "G0"): 30, ("Unknown", "G0"): 10}, status="cancelled", done=14)
    with pytest.raises(ProjectError, match=r"not finished: 14 of 40 questions probed.*Resume the probe"):
        build_plan(project)
    project.close()
    empty = Project(tmp_path / "empty.knowmix")
    with pytest.raises(ProjectError, match="no probe yet"):
        build_plan(empty)
    with pytest.raises(ProjectError, match="no plan yet"):
        load_plan(empty)
    empty.close()


def test_a_mix_that_keeps_nothing_and_an_empty_dev_split_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    project, _, _ = seeded_project(tmp_path / "a", {("Unknown", "G0"): 40, ("WeaklyKnown", "G0"): 10})
    with pytest.raises(SettingsError, match="the plan has no training examples"):
        build_plan(project)
    assert build_plan(project, settings=PlanSettings(mix="idk")).train()
    project.close()
    (tmp_path / "b").mkdir()
    tiny, _, _ = seeded_project(tmp_path / "b", {("HighlyKnown", "G0"): 1, ("MaybeKnown", "G0"): 1, ("Unknown", "G0"): 1})
    with pytest.raises(SettingsError, match="dev split is empty"):
        build_plan(tiny, settings=PlanSettings(mix="natural"))
    tiny.close()
    (tmp_path / "c").mkdir()
    two, _, _ = seeded_project(tmp_path / "c", {("HighlyKnown", "G0"): 2, ("MaybeKnown", "G0"): 1})
    plan = build_plan(two)
    assert len(plan.dev()) == 1 and plan.dev()[0].category == "HighlyKnown" and plan.train()
    two.close()


def test_save_and_load_round_trip(tmp_path):
    project, run_id, _ = seeded_project(tmp_path, BALANCED)
    plan = build_plan(project, settings=PlanSettings(mix="idk", weakly_known_cap=7, seed=3))
    plan_id = save_plan(project, plan, name="first try")
    assert plan.id == plan_id and plan.name == "first try"
    other = save_plan(project, build_plan(project))
    loaded = load_plan(project, plan_id)
    assert isinstance(loaded, Plan) and loaded.id == plan_id and loaded.name == "first try"
    assert loaded.settings == plan.settings and loaded.probe_run_id == run_id and loaded.dataset_id == plan.dataset_id
    assert loaded.examples == plan.examples  # ids, questions, answers, groups, splits, targets, reasons and raw records
    assert loaded.counts() == plan.counts() and loaded.explain() == plan.explain()
    assert load_plan(project).id == other
    row = project.db.execute("SELECT n_train, n_dev, summary FROM plans WHERE id = ?", [plan_id]).fetchone()
    assert row[0] == len(plan.train()) and row[1] == len(plan.dev()) and "61.8" in row[2]
    with pytest.raises(ProjectError, match="no plan number 99"):
        load_plan(project, 99)
    project.close()
    reopened = Project(tmp_path / "p.knowmix", create=False)
    assert load_plan(reopened, plan_id).examples == plan.examples
    reopened.close()


def test_a_saved_plans_rows_are_read_by_column_name(tmp_path):
    """The store hands a plan's rows over keyed by column name, so reordering the SELECT (or adding a
    column to it) cannot shift a question into the answers' place when a plan loads (issue 22)."""
    from core.store.plans import READ_COLUMNS, plan_example_rows

    project, _run_id, _ = seeded_project(tmp_path, BALANCED)
    plan = build_plan(project)
    plan_id = save_plan(project, plan)
    rows = plan_example_rows(project, plan_id, plan.dataset_id)
    assert [r["example_id"] for r in rows] == [e.example_id for e in plan.examples]
    first, example = rows[0], plan.examples[0]
    assert set(first) == set(READ_COLUMNS)
    assert (first["question"], first["group_name"], first["split"], first["category"]) == (
        example.question,
        example.group,
        example.split,
        example.category,
    )
    project.close()


# -- export in the input's own shape -------------------------------------------------------------------


def _records(shape: str, n: int) -> list[dict]:
    out = []
    for i in range(n):
        q, a, g = f"What is fact number {i}?", f"Fact {i}", f"R{i % 2}"
        if shape == "question-answer":
            out.append({"question": q, "answers": [a, f"fact-{i}"], "relation": g})
        elif shape == "question-answer-str":
            out.append({"question": q, "answer": a, "relation": g})
        elif shape == "alpaca":
            out.append({"instruction": q, "input": "", "output": a, "topic": g})
        elif shape == "prompt-completion":
            out.append({"prompt": q, "completion": " " + a, "group": g})
        elif shape == "openai-messages":
            out.append(
                {
                    "messages": [
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": q},
                        {"role": "assistant", "content": a},
                    ],
                    "group": g,
                }
            )
        elif shape == "sharegpt":
            out.append({"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}], "group": g})
        elif shape == "custom":
            out.append({"query": q, "gold": a, "topic": g, "extra": i})
    return out


@pytest.mark.parametrize(
    "shape", ["question-answer", "question-answer-str", "alpaca", "prompt-completion", "openai-messages", "sharegpt", "custom"]
)
def test_export_writes_the_inputs_own_shape_with_planned_targets(tmp_path, shape):
    src = tmp_path / "data.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _records(shape, 60)), encoding="utf-8")
    mapping = {"question": "query", "answer": "gold", "group": "topic"} if shape == "custom" else None
    ds = load_dataset(src, mapping=mapping)
    want_shape = "question-answer" if shape == "question-answer-str" else shape
    assert ds.shape == want_shape
    # i % 3 == 0: always right (HighlyKnown); 1: never (Unknown); 2: half the time.
    knowledge = {ex.question: (ex.answers[0], [1.0, 0.0, 0.5][i % 3], 0.0) for i, ex in enumerate(ds.examples)}
    project = Project(tmp_path / "p.knowmix")
    dataset_id = project.add_dataset(ds)
    run_probe(
        project,
        ProbeRequest(
            dataset_id=dataset_id,
            pool_dataset_id=None,
            model_spec="scripted",
            settings=ProbeSettings(n_sets=3, samples_per_set=2, chunk_size=32),
        ),
        backend=ScriptedBackend(knowledge),
    )
    plan = build_plan(project, settings=PlanSettings(mix="idk", dev_fraction=0.2))
    assert any(e.relabelled for e in plan.train())
    paths = export_plan(plan, tmp_path / "out", dataset_row=project.dataset(dataset_id))
    held_out = {"test", "test_qa"} if plan.test() else set()  # the test split, when the data is large enough
    assert set(paths) == {"train", "dev", "train_qa", "dev_qa", "plan"} | held_out

    back = load_dataset(paths["train"], mapping=mapping)
    assert back.shape == want_shape and len(back.examples) == len(plan.train())
    targets = {e.example_id: e.target for e in plan.train()}
    assert {ex.id: ex.answers[0] for ex in back.examples} == targets
    for ex, original in zip(back.examples, plan.train()):  # every other field as it was
        assert ex.question == original.question and ex.group == original.group
        if not original.relabelled:
            assert ex.raw == original.raw
    raw_lines = [json.loads(line) for line in paths["train"].read_text(encoding="utf-8").splitlines()]
    relabelled = [r for r, e in zip(raw_lines, plan.train()) if e.relabelled]
    if shape == "question-answer":
        assert all(r["answers"] == [IDK_ANSWER] for r in relabelled)
    if shape == "question-answer-str":
        assert all(r["answer"] == IDK_ANSWER for r in relabelled)
    if shape == "prompt-completion":
        assert all(r["completion"] == " " + IDK_ANSWER for r in relabelled)  # the leading space is kept
    if shape == "openai-messages":
        assert all(r["messages"][0] == {"role": "system", "content": "Be brief."} for r in relabelled)
    if shape == "custom":
        assert all(r["gold"] == IDK_ANSWER and "extra" in r for r in relabelled)

    dev = load_dataset(paths["dev"], mapping=mapping)
    assert dev.shape == want_shape and {ex.id for ex in dev.examples} == {e.example_id for e in plan.dev()}
    assert all(ex.answers == e.answers for ex, e in zip(dev.examples, plan.dev()))  # dev keeps the gold answers
    qa = load_dataset(paths["train_qa"])
    assert qa.shape == "question-answer"
    assert [(ex.question, ex.answers[0]) for ex in qa.examples] == [(e.question, e.target) for e in plan.train()]
    assert set(json.loads(paths["train_qa"].read_text().splitlines()[0])) == {"question", "answer"}
    assert len(load_dataset(paths["dev_qa"]).examples) == len(plan.dev())
    summary = json.loads(paths["plan"].read_text(encoding="utf-8"))
    assert summary["counts"]["train"]["total"] == len(plan.train()) and "61.8" in summary["explain"]
    project.close()


# -- memory ----------------------------------------------------------------------------------------------


def test_memory_estimate_grows_with_rank_batch_and_length():
    base = estimate_memory(models.ModelShape(135_000_000, n_layers=30, hidden=576, vocab_size=49152))
    assert base.total == base.weights_bytes + base.lora_bytes + base.activation_bytes + base.overhead_bytes
    assert base.weights_bytes == 135_000_000 * 4
    assert estimate_memory(135_000_000, lora_rank=64).lora_bytes > estimate_memory(135_000_000, lora_rank=16).lora_bytes
    assert estimate_memory(135_000_000, batch_size=32).total > estimate_memory(135_000_000, batch_size=8).total
    assert estimate_memory(135_000_000, seq_len=512).total > estimate_memory(135_000_000, seq_len=64).total
    assert estimate_memory(135_000_000, dtype="bfloat16").total < estimate_memory(135_000_000).total
    big = estimate_memory(7_000_000_000)
    assert 20 * 1024**3 < big.total < 60 * 1024**3  # 7B in fp32: 28 GB of weights and then some
    assert "GiB" in big.describe() and "rank 16" in big.describe() and "7.0B parameters" in big.describe()
    with pytest.raises(SettingsError, match="unknown dtype"):
        estimate_memory(1000, dtype="float8")
    with pytest.raises(SettingsError, match="batch size"):
        estimate_memory(1000, batch_size=0)


def test_memory_warning_when_the_run_does_not_fit(monkeypatch):
    est = estimate_memory(135_000_000)
    monkeypatch.setattr(models, "available_memory", lambda device="cpu": est.total // 2)
    warning = check_memory_fits(est)
    assert warning and "RAM" in warning and "Lower the batch size" in warning
    assert "GPU memory" in check_memory_fits(est, "cuda")
    monkeypatch.setattr(models, "available_memory", lambda device="cpu": est.total * 2)
    assert check_memory_fits(est) is None
    monkeypatch.setattr(models, "available_memory", lambda device="cpu": None)
    assert check_memory_fits(est) is None


# -- rows that were not probed, and exports in the input's own format ----------------------------------

# Rows marked with a "note" naming a reason stand for rows the loader keeps without a probe
# (multi-turn chats, long-form answers, tasks, no answer): the test moves them to
# ``Dataset.unprobed`` as the loader does, so the plan and the export can be checked on any format.
NOT_PROBED_NOTES = {3: "task", 7: "long-form", 12: "multi-turn", 18: "task", 21: "no-answer"}


def team_rows(n: int = 30) -> list[dict]:
    rows = []
    for i in range(n):
        answers = [f"Answer{i}", f"Alias{i}"] if i % 4 == 0 else [f"Answer{i}"]  # entity answers: one word each
        rows.append(
            {
                "question": f"What is fact number {i}?",
                "answers": answers,
                "relation": f"R{i % 2}",
                "note": NOT_PROBED_NOTES.get(i, ""),
                "extra": i,
            }
        )
    return rows


def write_rows(path, rows: list[dict], fmt: str, *, list_cells: str = "pipe"):
    """``rows`` as a file in ``fmt``; CSV/TSV list cells '|'-joined or as a JSON list literal."""
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        import csv

        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, delimiter="\t" if fmt == "tsv" else ",")
            w.writerow(list(rows[0]))
            for r in rows:
                cell = "|".join(r["answers"]) if list_cells == "pipe" else json.dumps(r["answers"])
                w.writerow([cell if k == "answers" else r[k] for k in r])
    return path


def move_not_probed(ds):
    """Set each row's probe status from its note, as the loader sets it from the row's content: a row
    whose note names a reason goes to ``ds.unprobed``, every other row is probed (whatever the
    loader's own classification of these made-up facts)."""
    from dataclasses import replace

    from core.datasets.types import NOT_PROBED, PROBED, REASONS

    keep, moved = [], []
    for ex in all_rows(ds):
        note = ex.raw.get("note")
        if note in REASONS:
            moved.append(replace(ex, status=NOT_PROBED, reason=note, answers=() if note == "no-answer" else ex.answers))
        else:
            keep.append(replace(ex, status=PROBED, reason=""))
    ds.examples, ds.unprobed = keep, moved
    return ds


def all_rows(ds):
    return sorted([*ds.examples, *ds.unprobed], key=lambda e: e.line)


def scripted_probe_project(tmp_path, ds, name="p.knowmix"):
    """A project holding ``ds`` with a finished scripted probe: every third question known, every third not."""
    knowledge = {ex.question: (ex.answers[0], [1.0, 0.0, 0.5][i % 3], 0.0) for i, ex in enumerate(ds.examples)}
    project = Project(tmp_path / name)
    dataset_id = project.add_dataset(ds)
    run_probe(
        project,
        ProbeRequest(
            dataset_id=dataset_id,
            pool_dataset_id=None,
            model_spec="scripted",
            settings=ProbeSettings(n_sets=2, samples_per_set=1, shots=2, chunk_size=32),
        ),
        backend=ScriptedBackend(knowledge),
    )
    return project, dataset_id


def test_plan_accounts_for_every_row_and_keeps_not_probed_rows_by_default(tmp_path):
    ds = move_not_probed(load_dataset(write_rows(tmp_path / "team.jsonl", team_rows(), "jsonl")))
    assert len(ds.unprobed) == 5
    project, dataset_id = scripted_probe_project(tmp_path, ds)
    plan = build_plan(project, settings=PlanSettings(dev_fraction=0.2))
    c = plan.counts()
    assert c["rows"] == 30 == len(plan.examples)
    assert c["train"]["total"] + c["dev"]["total"] + c["test"]["total"] + c["dropped"]["total"] + c["not_probed"]["total"] == 30
    assert c["before"]["total"] == 25  # the categories are about probed rows only
    assert c["not_probed"] == {
        "total": 5,
        "kept": 5,
        "left_out": 0,
        "trained": 3,  # the task and long-form rows; the multi-turn and no-answer ones only go to the export
        "reasons": {"multi-turn": 1, "long-form": 1, "task": 2, "no-answer": 1},
        "kept_reasons": {"multi-turn": 1, "long-form": 1, "task": 2, "no-answer": 1},
    }
    assert [e.example_id for e in plan.kept()] == [ex.id for ex in ds.unprobed]
    assert all(e.category == "" and e.split == "kept" and e.target == (e.answers[0] if e.answers else "") for e in plan.kept())
    # the training file is the training examples and the kept rows, in file order
    order = {ex.id: i for i, ex in enumerate(all_rows(ds))}
    file_ids = [e.example_id for e in plan.training_file()]
    assert file_ids == sorted(file_ids, key=order.__getitem__)
    assert set(file_ids) == {e.example_id for e in plan.train()} | {ex.id for ex in ds.unprobed}
    # KnowMix's own trainer reads the kept task and long-form rows with their own answers
    from core.train import items_from_plan

    train_items, dev_items = items_from_plan(plan)
    by_id = {it.example_id: it for it in train_items}
    for ex in ds.unprobed:
        if ex.reason in ("task", "long-form"):
            assert by_id[ex.id].target == ex.answers[0] and by_id[ex.id].category == "not-probed"
        else:
            assert ex.id not in by_id
    assert len(train_items) == c["train"]["total"] + 3 and len(dev_items) == c["dev"]["total"]
    text = plan.explain()
    assert "Not probed: 5 rows, kept as they are in the training file" in text
    assert "multi-turn" in text and "task" in text and "2 task" in text
    assert (
        f"All 30 rows: {c['train']['total']} to train on, {c['dev']['total']} for dev, {c['test']['total']} for test, "
        f"{c['dropped']['total']} dropped, and 5 not probed" in text
    )

    save_plan(project, plan)
    again = load_plan(project, plan.id)
    assert again.counts()["not_probed"] == c["not_probed"] and again.counts()["rows"] == 30
    assert [(e.example_id, e.split, e.probe_reason) for e in again.kept()] == [
        (e.example_id, e.split, e.probe_reason) for e in plan.kept()
    ]
    project.close()


def test_not_probed_rows_can_be_left_out(tmp_path):
    ds = move_not_probed(load_dataset(write_rows(tmp_path / "team.jsonl", team_rows(), "jsonl")))
    project, dataset_id = scripted_probe_project(tmp_path, ds)
    with pytest.raises(SettingsError, match="'keep' or 'drop'"):
        build_plan(project, settings=PlanSettings(not_probed="ignore"))
    plan = build_plan(project, settings=PlanSettings(dev_fraction=0.2, not_probed="drop"))
    c = plan.counts()
    assert c["not_probed"]["kept"] == 0 and c["not_probed"]["left_out"] == 5 and c["not_probed"]["trained"] == 0
    assert c["train"]["total"] + c["dev"]["total"] + c["test"]["total"] + c["dropped"]["total"] + c["not_probed"]["total"] == 30
    assert not plan.kept() and len(plan.left_out()) == 5
    assert "left out of the training file as you chose" in plan.explain()
    paths = export_plan(plan, tmp_path / "out", dataset_row=project.dataset(dataset_id))
    back = load_dataset(paths["train"])
    assert {ex.id for ex in all_rows(back)} == {e.example_id for e in plan.train()}
    project.close()


@pytest.mark.parametrize(
    "fmt,list_cells", [("jsonl", ""), ("json", ""), ("csv", "pipe"), ("csv", "json"), ("tsv", "pipe"), ("parquet", "")]
)
def test_export_is_written_in_the_input_format_with_the_kept_rows(tmp_path, fmt, list_cells):
    src = write_rows(tmp_path / f"team.{fmt}", team_rows(), fmt, list_cells=list_cells)
    ds = move_not_probed(load_dataset(src))
    project, dataset_id = scripted_probe_project(tmp_path, ds)
    plan = build_plan(project, settings=PlanSettings(mix="idk", dev_fraction=0.2))
    assert any(e.relabelled for e in plan.train())
    paths = export_plan(plan, tmp_path / "out", dataset_row=project.dataset(dataset_id))
    assert paths["train"].name == f"train.{fmt}" and paths["dev"].name == f"dev.{fmt}"

    back = load_dataset(paths["train"])
    assert back.format == fmt
    rows = all_rows(back)
    want = plan.training_file()
    assert [ex.id for ex in rows] == [e.example_id for e in want]  # train and kept rows, in file order
    for ex, e in zip(rows, want):
        assert ex.question == e.question and ex.group == e.group
        if e.relabelled:
            assert ex.answers == (IDK_ANSWER,)
        else:
            assert ex.raw == e.raw  # the same fields and values as the input
        assert list(ex.raw) == list(e.raw)  # the same fields (columns) in the same order
    n_kept = sum(1 for ex in rows if ex.raw["note"])
    assert n_kept == 5
    if fmt in ("csv", "tsv"):
        sep = "\t" if fmt == "tsv" else ","
        lines = paths["train"].read_text(encoding="utf-8").splitlines()
        assert lines[0] == sep.join(["question", "answers", "relation", "note", "extra"])
        orig = {ex.id: ex.raw["answers"] for ex in all_rows(ds)}
        multi = [ex for ex in rows if "Alias" in orig[ex.id] and ex.answers != (IDK_ANSWER,)]
        assert multi and all(ex.raw["answers"] == orig[ex.id] for ex in multi)  # list cells as they were written
        assert all(len(ex.answers) == 2 for ex in multi)
    dev = load_dataset(paths["dev"])
    assert [ex.id for ex in all_rows(dev)] == [e.example_id for e in plan.dev()]
    assert all(ex.answers == e.answers for ex, e in zip(all_rows(dev), plan.dev()))
    project.close()


def test_a_chat_file_with_follow_ups_loads_plans_every_row_and_exports_the_kept_ones(tmp_path):
    """The issue's chat case, on the shipped ShareGPT shape (system turns, every third chat multi-turn)."""
    from pathlib import Path

    src = Path(__file__).parent / "data" / "shapes" / "chat.jsonl"
    ds = load_dataset(src)  # no --skip-invalid: the multi-turn chats load, kept without a probe
    n_rows = len(src.read_text(encoding="utf-8").splitlines())
    assert len(ds.examples) + len(ds.unprobed) == n_rows and ds.reason_counts().get("multi-turn", 0) >= n_rows // 3
    project, dataset_id = scripted_probe_project(tmp_path, ds)
    plan = build_plan(project, settings=PlanSettings(dev_fraction=0.2))
    c = plan.counts()
    assert (
        c["train"]["total"] + c["dev"]["total"] + c["test"]["total"] + c["dropped"]["total"] + c["not_probed"]["total"]
        == c["rows"]
        == n_rows
    )
    assert c["not_probed"]["kept"] == len(ds.unprobed) and c["not_probed"]["reasons"] == ds.reason_counts()
    paths = export_plan(plan, tmp_path / "out", dataset_row=project.dataset(dataset_id))
    back = all_rows(load_dataset(paths["train"]))
    assert [ex.id for ex in back] == [e.example_id for e in plan.training_file()]
    originals = {ex.id: ex.raw for ex in ds.unprobed}
    kept_back = [ex for ex in back if ex.id in originals]
    assert len(kept_back) == len(ds.unprobed)  # every multi-turn chat the plan keeps is in the training file
    assert all(ex.raw == originals[ex.id] for ex in kept_back)  # as it was, every turn and the system turn
    project.close()


# ----------------------------------------------------------------------------- several true answers

P40 = Path(__file__).resolve().parents[2] / "shared" / "data" / "entityquestions" / "train" / "P40.train.jsonl"


def child_rows(n_single: int = 20, n_multi: int = 10) -> list[dict]:
    """Real EntityQuestions child (P40) rows: ``n_single`` with one answer, ``n_multi`` listing two
    or more children, interleaved in file order."""
    single, multi = [], []
    with open(P40, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            (multi if len(row["answers"]) > 1 else single).append(row)
            if len(single) >= n_single and len(multi) >= n_multi + 5:
                break
    multi = [r for r in multi if r["question"] != "Who is Frank Lloyd Wright's child?"][:n_multi]
    rows = single[:n_single]
    for i, r in enumerate(multi):
        rows.insert(3 * i + 1, r)
    return rows


def multi_answer_project(tmp_path):
    ds = load_dataset(write_rows(tmp_path / "child.jsonl", child_rows(), "jsonl"))
    project, _ = scripted_probe_project(tmp_path, ds)
    return project, ds


@pytest.mark.skipif(not P40.exists(), reason="needs ../shared/data/entityquestions")
def test_questions_with_several_true_answers_are_kept_by_default_and_can_be_left_out(tmp_path, capsys):
    project, ds = multi_answer_project(tmp_path)
    multi_ids = {ex.id for ex in ds.examples if ex.multi_answer}
    assert len(multi_ids) == 10 and len(ds.examples) == 30

    kept = build_plan(project, settings=PlanSettings(dev_fraction=0.2))
    c = kept.counts()
    assert c["multi_answer"]["total"] == 10 and c["multi_answer"]["left_out"] == 0
    assert {e.example_id for e in kept.examples if e.multi_answer} == multi_ids
    assert any(e.split in ("train", "dev") for e in kept.examples if e.multi_answer)
    text = kept.explain()
    assert "Several true answers: 10 questions (33.3% of the probed) list two or more different true answers" in text
    assert "This plan keeps them" in text and "--multi-answer drop leaves them out" in text

    with pytest.raises(SettingsError, match="several different true answers are either kept or dropped"):
        build_plan(project, settings=PlanSettings(multi_answer="ignore"))
    plan = build_plan(project, settings=PlanSettings(dev_fraction=0.2, multi_answer="drop"))
    c = plan.counts()
    assert c["multi_answer"]["total"] == 10 and c["multi_answer"]["left_out"] == 10
    assert c["before"]["total"] == 30 and c["rows"] == 30
    assert c["train"]["total"] + c["dev"]["total"] + c["test"]["total"] + c["dropped"]["total"] == 30
    for e in plan.examples:
        if e.example_id in multi_ids:
            assert e.split == "dropped" and "several different true answers" in e.reason
        else:
            assert e.split in ("train", "dev", "test", "dropped") and "several" not in e.reason
    assert not any(e.multi_answer for e in plan.train() + plan.dev() + plan.test())
    text = plan.explain()
    assert "This plan leaves them out (10 dropped before the dev split" in text
    assert "multi-answer      10   several different true answers: left out before the dev split" in text
    # the per-category "kept of" counts leave the multi-answer questions out of what could be kept
    eligible = sum(int(line.split("(")[1].split(" of ")[1].split()[0]) for line in text.splitlines() if " kept)" in line)
    assert eligible == 30 - c["dev"]["total"] - c["test"]["total"] - 10
    save_plan(project, plan)
    again = load_plan(project, plan.id)
    assert again.counts()["multi_answer"] == c["multi_answer"]
    assert "This plan leaves them out" in again.explain()
    project.close()

    from core.cli import main

    assert main(["plan", "--project", str(tmp_path / "p.knowmix"), "--multi-answer", "drop", "--dev-fraction", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "This plan leaves them out (10 dropped" in out


# --------------------------------------------------------------------------- the test split (issue 13)


def test_test_split_is_stratified_disjoint_drawn_before_dev_and_never_trained(tmp_path):
    from core.plan import plan_split_ids
    from core.train.data import items_from_plan

    project, _, examples = seeded_project(tmp_path, BALANCED)
    n = len(examples)  # 1260
    plan = build_plan(project, settings=PlanSettings(mix="natural"))
    test, dev, train = plan.test(), plan.dev(), plan.train()
    # 10% of all probed questions each; the dev split is a share of all, not of what the test split left
    assert len(test) == int(0.1 * n) and len(dev) == int(0.1 * n)
    assert len(train) + len(dev) + len(test) == n  # natural mix: nothing dropped
    ids = [{e.example_id for e in part} for part in (test, dev, train)]
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    strata = Counter((e.category, e.group) for e in test)
    for key, size in BALANCED.items():
        assert abs(strata[key] - 0.1 * size) <= 1, key
    assert all(
        e.reason.startswith("held out for test (") and "never trained on, never used for stopping" in e.reason for e in test
    )
    # never trained on, never used for stopping: the trainer's items hold no test example
    train_items, dev_items = items_from_plan(plan)
    assert not {it.example_id for it in train_items + dev_items} & ids[0]
    # the test split does not depend on the mix; the dev split is drawn from what it left
    other = build_plan(project, settings=PlanSettings(mix="recommended"))
    assert {e.example_id for e in other.test()} == ids[0] and {e.example_id for e in other.dev()} == ids[1]
    # capped, proportionally; 0 turns it off
    capped = build_plan(project, settings=PlanSettings(test_max=40))
    assert len(capped.test()) == 40 and set(by_cat(capped.test())) == set(CATEGORIES)
    assert not build_plan(project, settings=PlanSettings(test_fraction=0)).test()
    # the explanation, the counts and the stored plan say it; the check engine gets the ids per split
    text = plan.explain()
    assert f"Test split: {len(test)} questions held out" in text and "knowmix check" in text
    assert plan.to_dict()["counts"]["test"]["total"] == len(test)
    save_plan(project, plan)
    again = load_plan(project, plan.id)
    assert [e.example_id for e in again.test()] == [e.example_id for e in test]
    split_ids = plan_split_ids(project, plan.id)
    assert split_ids["test"] == [e.example_id for e in test]  # file order
    assert split_ids["dev"] == [e.example_id for e in dev] and split_ids["train"] == [e.example_id for e in train]
    project.close()


def test_on_tiny_data_the_test_split_is_empty_and_the_plan_says_why(tmp_path):
    project, _, _ = seeded_project(tmp_path, {(c, "G0"): 3 for c in CATEGORIES})  # 12 probed questions
    plan = build_plan(project, settings=PlanSettings(mix="natural"))
    assert not plan.test() and by_cat(plan.dev()) == {c: 1 for c in CATEGORIES}
    assert "Test split: none. No test split: only 12 probed questions (fewer than 20)" in plan.explain()
    assert plan.counts()["test_skipped"]
    save_plan(project, plan)
    assert "only 12 probed questions" in load_plan(project, plan.id).test_skipped
    project.close()
    # enough questions, but a category of 2: a test example would leave dev without one of it
    project, _, _ = seeded_project(tmp_path / "b", {("HighlyKnown", "G0"): 30, ("Unknown", "G0"): 2})
    plan = build_plan(project, settings=PlanSettings(mix="natural", test_fraction=0.5))
    assert not plan.test() and by_cat(plan.dev())["Unknown"] == 1
    assert "Unknown has only 2 probed questions" in plan.explain()
    project.close()


def test_settings_check_the_test_split(tmp_path):
    PlanSettings(test_fraction=0, test_max=0).validate()
    for settings, words in [
        (PlanSettings(test_fraction=0.6), "test fraction"),
        (PlanSettings(test_fraction=True), "test fraction"),
        (PlanSettings(test_fraction=0.5, dev_fraction=0.5), "at least 20% to train on"),
        (PlanSettings(test_max=-1), "test split's maximum"),
    ]:
        with pytest.raises(SettingsError, match=words):
            settings.validate()


def test_export_writes_the_test_split_to_its_own_files(tmp_path):
    project, _, _ = seeded_project(tmp_path, BALANCED)
    plan = build_plan(project)
    paths = export_plan(plan, tmp_path / "out", dataset_row=project.dataset(plan.dataset_id))
    test_rows = [json.loads(line) for line in paths["test_qa"].read_text().splitlines()]
    assert [r["question"] for r in test_rows] == [e.question for e in plan.test()]
    assert paths["test"].name == "test.jsonl" and len(paths["test"].read_text().splitlines()) == len(plan.test())
    train_questions = {json.loads(line)["question"] for line in paths["train_qa"].read_text().splitlines()}
    assert not train_questions & {r["question"] for r in test_rows}
    project.close()


def _ood_file(path: Path, groups: list[str]) -> Path:
    rows = [
        {"question": f"Where is place {i} of {g}?", "answers": [f"city {i}"], "relation": g} for g in groups for i in range(3)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_ood_file_is_stored_for_the_check_and_overlapping_groups_are_refused(tmp_path, capsys):
    from core.cli import main

    project, _, _ = seeded_project(tmp_path, BALANCED)
    project.close()
    where = str(tmp_path / "p.knowmix")
    ood = _ood_file(tmp_path / "ood.jsonl", ["P17", "P19"])
    assert main(["plan", "--project", where, "--ood", str(ood), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    ood_id = data["settings"]["ood_dataset_id"]
    with Project(where, create=False) as project:
        assert project.dataset(ood_id)["role"] == "ood" and len(project.examples(ood_id, status=None)) == 6
        plan = load_plan(project)
        assert plan.settings.ood_dataset_id == ood_id
        assert f"Out-of-distribution file: dataset {ood_id}" in plan.explain()
        n_plans = len(project.datasets())
    # groups the plan has: refused, naming them, and nothing is saved
    bad = _ood_file(tmp_path / "bad.jsonl", ["G1", "P17", "G2"])
    assert main(["plan", "--project", where, "--ood", str(bad)]) != 0
    err = capsys.readouterr().err
    assert "shares 2 groups with the plan (G1, G2)" in err and "not out of distribution" in err
    with Project(where, create=False) as project:
        assert len(project.datasets()) == n_plans
