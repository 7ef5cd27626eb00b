"""Plain words for tiny data (issue 21): a plan with fewer than 20 known questions to train on says
what that means before the user trains, in the plan's warnings and explanation, the CLI's plan
output and the Train step's plan line."""

from __future__ import annotations

from core.cli import main
from core.plan import PlanSettings, build_plan, save_plan
from core.plan.tiny import MIN_KNOWN_TO_TRAIN, too_few_note
from tests.test_plan import BALANCED, seeded_project

# The case: the built-in model knew 4 of 48 questions, and the plan trained on 2.
TINY = {("HighlyKnown", "G0"): 2, ("MaybeKnown", "G0"): 2, ("WeaklyKnown", "G0"): 5, ("Unknown", "G0"): 39}


def test_a_plan_with_two_known_questions_to_train_on_says_it_is_too_few_and_what_to_do(tmp_path):
    project, _, _ = seeded_project(tmp_path, TINY)
    plan = build_plan(project)
    n = plan.counts()["train"]["total"]
    assert 0 < n < MIN_KNOWN_TO_TRAIN
    first = plan.warnings()[0]  # the first thing the user reads among the warnings
    assert f"{n} known question" in first and "too few to change the model" in first
    assert "Probe more questions, or a model that knows more of them" in first
    assert first in plan.explain()
    project.close()


def test_a_plan_with_enough_known_questions_says_nothing_about_size(tmp_path):
    project, _, _ = seeded_project(tmp_path, BALANCED)
    plan = build_plan(project)
    assert not any("too few to change the model" in w for w in plan.warnings())
    assert too_few_note(plan.counts()) == ""
    project.close()


def test_the_note_counts_known_questions_not_unknown_ones_a_mix_keeps():
    counts = {"train": {"counts": {"HighlyKnown": 1, "MaybeKnown": 0, "WeaklyKnown": 0, "Unknown": 300}}}
    assert too_few_note(counts).startswith("1 known question to train on is too few")
    assert too_few_note({}) == ""


def test_the_cli_plan_output_says_it(tmp_path, capsys):
    project, _, _ = seeded_project(tmp_path, TINY)
    project.close()
    assert main(["plan", "--project", str(tmp_path / "p.knowmix")]) == 0
    out = capsys.readouterr().out
    assert "too few to change the model" in out and "a model that knows more of them" in out


def test_the_train_step_shows_it_beside_the_plan_it_trains_on(tmp_path):
    from gui.pages.train_text import plan_line

    project, _, _ = seeded_project(tmp_path, TINY)
    tiny_id = save_plan(project, build_plan(project))
    label = plan_line(project, tiny_id).label
    assert "too few to change the model" in label and "training and" in label
    project.close()
    (tmp_path / "big").mkdir()
    big, _, _ = seeded_project(tmp_path / "big", BALANCED)
    big_id = save_plan(big, build_plan(big, settings=PlanSettings()))
    assert "too few" not in plan_line(big, big_id).label
    big.close()
