"""The Plan step's out-of-distribution file: picked in the app, kept in the project for the check,
and refused in plain words when it shares groups with the plan (the CLI's ``--ood``)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_plan import BALANCED, seeded_project


def _ood_file(path: Path, groups: list[str]) -> Path:
    rows = [
        {"question": f"Where is place {i} of {g}?", "answers": [f"city {i}"], "relation": g} for g in groups for i in range(3)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _build(qtbot, window, page) -> None:
    page.build_button.click()
    qtbot.waitUntil(lambda: not window.ctx.runner.busy and page.build_button.isEnabled(), timeout=30_000)


def test_the_plan_step_keeps_an_ood_file_for_the_check_and_refuses_one_with_the_plans_groups(qtbot, window, tmp_path):
    from core.store import Project

    project, _, _ = seeded_project(tmp_path, BALANCED)
    project.close()
    window.ctx.open_project(tmp_path / "p.knowmix")
    window.go("plan")
    page = window.by_key["plan"]
    assert window.ctx.plan_id is None and page.ood_edit.text() == ""

    # groups the plan has (G1): refused inline, naming them, and no plan is made
    bad = _ood_file(tmp_path / "bad.jsonl", ["G1", "P17"])
    page.ood_edit.setText(str(bad))
    _build(qtbot, window, page)
    assert window.ctx.plan_id is None
    assert page.message.kind == "error" and "G1" in page.message.text() and "not out of distribution" in page.message.text()

    ood = _ood_file(tmp_path / "ood.jsonl", ["P17", "P19"])
    page.ood_edit.setText(str(ood))
    _build(qtbot, window, page)
    assert window.ctx.plan_id is not None
    assert "Out-of-distribution file: dataset" in page.explain.toPlainText()
    with Project(tmp_path / "p.knowmix", create=False) as p:
        ood_sets = [d for d in p.datasets() if d["role"] == "ood"]
    assert len(ood_sets) == 1 and ood_sets[0]["n_examples"] == 6

    # reopened, the step shows the plan's file
    page.ood_edit.setText("")
    page.refresh_now()
    assert page.ood_edit.text() == str(ood)
