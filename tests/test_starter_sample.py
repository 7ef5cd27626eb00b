"""The starter sample (issue 21): what "Try it" and `knowmix demo` probe. Its categories, recorded by
resources/sample/build_sample.py from the built-in model, cover every SliCK category across at least
6 relations, and the recommended plan made from them trains on at least 40 questions with a dev
split of at least 10 (no model is loaded: the recorded categories stand in for the probe)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from core.datasets import load_dataset
from core.paths import sample_pool, starter_dataset
from core.plan import PlanSettings, build_plan
from core.probe import CATEGORIES, ProbeSettings
from core.store import Project
from tests.probed import ProbedModel, ProbeRow, seed_project

RECORD = starter_dataset().with_suffix(".json")
# What the recommended plan of the sample trains on, and its dev split (issue 21): 2 and 4 with the
# 48 random questions "Try it" probed before
TRAIN_MIN, DEV_MIN = 40, 10


def recorded() -> dict:
    return json.loads(RECORD.read_text(encoding="utf-8"))


def test_the_starter_sample_has_every_category_across_six_relations():
    from gui.pages.project import SAMPLE_QUESTIONS

    ds = load_dataset(starter_dataset())
    rec = recorded()
    assert len(ds.examples) == SAMPLE_QUESTIONS == sum(rec["counts"].values())
    assert len(ds.groups()) >= 6
    counts = Counter(c["category"] for c in rec["categories"])
    assert counts == Counter(rec["counts"])
    for cat in CATEGORIES:
        assert counts[cat] >= 4, counts  # every category, not one or two (the model knows few questions HighlyKnown)
    assert counts["HighlyKnown"] + counts["MaybeKnown"] >= 0.6 * len(ds.examples)  # enough known to train on
    assert {ex.question for ex in ds.examples} == {c["question"] for c in rec["categories"]}
    pool = {ex.question for ex in load_dataset(sample_pool()).examples}
    assert not pool & {ex.question for ex in ds.examples}  # no question is its own exemplar
    assert rec["probe_settings"]["n_sets"] == 10 and rec["probe_settings"]["samples_per_set"] == 16  # the paper's budget


def recorded_project(path, ds, category: dict[str, str], settings: ProbeSettings, identity: str = "") -> None:
    """A project holding ``ds`` and a finished probe run whose categories are ``category``
    (by question): what the recorded probe found, without loading the model. ``identity``: the
    run's stored settings, when not ``settings``' own."""
    model = ProbedModel(spec="default", name="SmolLM2-135M-Instruct", fingerprint="recorded", backend="llama.cpp")
    row = ProbeRow(settings=identity or settings.identity(), preset=settings.preset)
    by_id = {ex.id: category[ex.question] for ex in ds.examples}
    project, _run_id = seed_project(path, ds.examples, by_id, model=model, row=row, dataset_path=str(ds.path))
    project.close()


def test_the_recommended_plan_of_the_starter_sample_trains_on_40_with_a_dev_split_of_10(tmp_path):
    ds = load_dataset(starter_dataset())
    category = {c["question"]: c["category"] for c in recorded()["categories"]}
    recorded_project(tmp_path / "p.knowmix", ds, category, ProbeSettings())
    with Project(tmp_path / "p.knowmix") as project:
        plan = build_plan(project, settings=PlanSettings())
    assert len(plan.train()) >= TRAIN_MIN and len(plan.dev()) >= DEV_MIN and len(plan.test()) >= DEV_MIN - 1
    assert not any("too few to change the model" in w for w in plan.warnings())


def test_the_build_reuses_a_screen_only_of_the_same_candidates_and_budget(tmp_path):
    """``--reuse`` takes an earlier screen's categories only when it probed exactly these
    candidates with the screen's budget: another screen would give the sample other questions. A
    screen graded by an earlier scorer is taken and named (it only steers the choice)."""
    from core.probe import preset

    build = _build_sample()
    ds = load_dataset(starter_dataset())
    rows = [{"question": ex.question, "answers": list(ex.answers), "relation": ex.group} for ex in ds.examples]
    category = {r["question"]: "Unknown" for r in rows}
    screen_settings = preset("paper", samples_per_set=build.SCREEN_SAMPLES)
    recorded_project(tmp_path / "screen.knowmix", ds, category, screen_settings)
    assert build.reuse_screen(tmp_path / "screen.knowmix", rows, screen_settings)[0] == category
    with pytest.raises(SystemExit, match="run without --reuse"):
        build.reuse_screen(tmp_path / "screen.knowmix", rows[1:], screen_settings)  # other candidates
    with pytest.raises(SystemExit, match="run without --reuse"):
        build.reuse_screen(tmp_path / "screen.knowmix", rows, preset("paper"))  # another budget
    older_identity = {**json.loads(screen_settings.identity()), "scorer": "grader-1"}
    recorded_project(tmp_path / "older.knowmix", ds, category, screen_settings, identity=json.dumps(older_identity))
    cats, times = build.reuse_screen(tmp_path / "older.knowmix", rows, screen_settings)
    assert cats == category and times["made_with"] == {"scorer": "grader-1"}


def test_try_it_and_the_demo_probe_the_whole_starter_sample():
    """ "Try it" opens all of it and `knowmix demo` probes all of it by default."""
    from core.cli import build_parser
    from gui.pages.project import SAMPLE_QUESTIONS

    n = len(load_dataset(starter_dataset()).examples)
    assert SAMPLE_QUESTIONS == n
    assert build_parser().parse_args(["demo"]).questions == n


def _build_sample():
    """resources/sample/build_sample.py as a module (it is a script, not part of the package)."""
    import importlib.util

    from core.paths import resources_dir

    spec = importlib.util.spec_from_file_location("build_sample", resources_dir() / "sample" / "build_sample.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_build_takes_its_share_of_known_questions_always_right_first_across_the_relations():
    build = _build_sample()
    rows = [{"question": f"{rel} q{i}", "answers": ["a"], "relation": rel} for rel in ("P17", "P36", "P19") for i in range(10)]
    screen = {}
    for r in rows:
        i = int(r["question"].split("q")[1])
        screen[r["question"]] = "HighlyKnown" if (r["relation"] == "P17" and i < 2) else "MaybeKnown" if i < 6 else "Unknown"
    chosen = build.choose(rows, screen, 20)
    assert chosen == build.choose(rows, screen, 20)  # seeded: the same sample every build
    known = [r for r in chosen if screen[r["question"]] != "Unknown"]
    assert len(known) == round(build.KNOWN_SHARE * 20) and len(chosen) == 20
    assert {"P17 q0", "P17 q1"} <= {r["question"] for r in chosen}  # always right first
    assert Counter(r["relation"] for r in known) == Counter({"P17": 6, "P19": 3, "P36": 3})  # round robin, not file order
    assert chosen == sorted(chosen, key=rows.index)  # the source's order


def test_the_starter_sample_ships_with_the_license_of_entityquestions_and_doctor_sees_it():
    """The packaged app carries the starter sample next to EntityQuestions' license (MIT: the
    notice goes with every copy), and `knowmix doctor` reports whether it is there."""
    from core.doctor import _resources
    from core.paths import resources_dir

    spec = (resources_dir().parent / "packaging" / "knowmix.spec").read_text(encoding="utf-8")
    assert '"entityquestions_starter.jsonl"' in spec and '"LICENSE-EntityQuestions"' in spec
    assert (starter_dataset().parent / "LICENSE-EntityQuestions").is_file()
    found = _resources()["samples"]["entityquestions_starter.jsonl"]
    assert found["exists"] and found["size"] > 0
