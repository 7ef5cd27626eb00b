"""The Train page counts what the trainer trains on (issue 20, item 7): the plan's probed training
examples *and* the kept not-probed rows that train (tasks, long-form answers), not the probed ones
alone."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from core.datasets import load_dataset  # noqa: E402
from core.plan import PlanSettings, build_plan, save_plan  # noqa: E402
from tests.test_plan import move_not_probed, scripted_probe_project, team_rows, write_rows  # noqa: E402


def test_the_train_page_counts_the_kept_rows_that_train(tmp_path):
    from gui.pages.train_text import plan_line

    ds = move_not_probed(load_dataset(write_rows(tmp_path / "team.jsonl", team_rows(), "jsonl")))
    project, _dataset_id = scripted_probe_project(tmp_path, ds)
    plan = build_plan(project, settings=PlanSettings(dev_fraction=0.2))
    plan_id = save_plan(project, plan)
    trains = len(plan.training_examples())
    probed, unprobed = len(plan.train()), plan.counts()["not_probed"]["trained"]
    assert unprobed > 0 and trains == probed + unprobed  # the case: kept rows that do train
    label = plan_line(project, plan_id).label
    assert f"{trains} training ({probed} probed, {unprobed} kept rows that were not probed)" in label
    assert f"and {len(plan.dev())} dev examples" in label
    project.close()
