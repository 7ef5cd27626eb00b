"""A check belongs to one adapter (issue 20, item 1).

A training run's adapter changes when a cancelled run is resumed and finishes; its id does not. A
check stored for the old adapter is shown as stale with the command that redoes it (the CLI's
words, the app's Check step and the report), and ``run_check`` asks the new adapter in a new check
instead of returning or resuming the old one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.check import CheckModels, list_checks, load_check, run_check
from core.jobs import CancelToken
from core.train.runs import get_run, update_run
from tests.check_fixture import check_run, probed_project, trained_run
from tests.scripted import ScriptedBackend


def resume_and_finish(project, run_id: int, step: int = 30) -> None:
    """What a resumed run that finishes does to its adapter: new weights, a later best step."""
    from safetensors.numpy import load_file, save_file

    weights = Path(get_run(project, run_id).adapter_dir) / "adapter_model.safetensors"
    tensors = {k: v + np.float32(0.5) for k, v in load_file(str(weights)).items()}
    save_file(tensors, str(weights))
    update_run(project, run_id, best_step=step)


def test_a_check_of_an_older_adapter_is_stale_and_says_how_to_redo_it(tmp_path):
    project, probe_id, w = probed_project(tmp_path / "p.knowmix")
    run_id = trained_run(project, probe_id)
    first = check_run(project, run_id, w)
    assert first.status == "finished"
    assert not load_check(project, train_run_id=run_id).stale
    resume_and_finish(project, run_id)
    old = load_check(project, train_run_id=run_id)
    assert old.id == first.id and old.stale
    assert f"knowmix check --run {run_id}" in old.stale and "step 10" in old.stale and "step 30" in old.stale
    assert "stale" in old.headline() and f"knowmix check --run {run_id}" in old.to_text()
    assert [c.stale != "" for c in list_checks(project)] == [True]
    # checking the run again asks the new adapter, in a new check
    second = check_run(project, run_id, w)
    assert second.id != first.id and second.status == "finished" and "step 30" in second.adapter
    assert not load_check(project, train_run_id=run_id).stale
    project.close()


def test_same_step_but_other_weights_is_still_stale(tmp_path):
    project, probe_id, w = probed_project(tmp_path / "p.knowmix")
    run_id = trained_run(project, probe_id)
    check_run(project, run_id, w)
    resume_and_finish(project, run_id, step=10)  # same best step, new weights
    assert load_check(project, train_run_id=run_id).stale
    project.close()


def test_a_half_done_check_is_not_resumed_with_another_adapter(tmp_path):
    project, probe_id, w = probed_project(tmp_path / "p.knowmix")
    run_id = trained_run(project, probe_id)
    token = CancelToken()
    seen = []

    def progress(p):
        seen.append(p)
        if len(seen) == 2:
            token.cancel()

    half = run_check(
        project,
        run_id,
        models=CheckModels(base=ScriptedBackend(w[1]), adapter=ScriptedBackend(w[2])),
        cancel=token,
        progress=progress,
    )
    assert half.status == "cancelled"
    resume_and_finish(project, run_id)
    base = ScriptedBackend(w[1])
    done = run_check(project, run_id, models=CheckModels(base=base, adapter=ScriptedBackend(w[2])))
    assert done.id != half.id and done.status == "finished"
    from core.check import plan_check

    # every question asked afresh: nothing from the old adapter's half-done check was reused
    assert sum(r.n for r in base.calls) >= plan_check(project, run_id).n
    project.close()


def test_the_report_says_the_check_is_stale(tmp_path):
    from core.report import build_report

    project, probe_id, w = probed_project(tmp_path / "p.knowmix")
    run_id = trained_run(project, probe_id)
    check_run(project, run_id, w)
    resume_and_finish(project, run_id)
    with project:
        text = build_report(project)
    assert "stale" in text and f"knowmix check --run {run_id}" in text


def test_a_check_that_counted_new_errors_the_old_way_is_stale_and_redone(tmp_path):
    """A check stored before new errors compared like with like (issue 20, item 2) counted a question
    known by the probe and answered wrongly alone both times as lost: it is shown as stale with the
    command that redoes it, and checking the run again makes a new check with both counts."""
    import json

    project, probe_id, w = probed_project(tmp_path / "p.knowmix")
    run_id = trained_run(project, probe_id)
    first = check_run(project, run_id, w)
    row = project.db.execute("SELECT settings, summary FROM checks WHERE id = ?", [first.id]).fetchone()
    settings = {k: v for k, v in json.loads(row[0]).items() if k != "measures"}
    summary = json.loads(row[1])
    for split in summary["splits"].values():
        split.pop("n_right_before")
        split.pop("probe_new_errors")
    with project.transaction():
        project.db.execute(
            "UPDATE checks SET settings = ?, summary = ? WHERE id = ?",
            [json.dumps(settings, sort_keys=True), json.dumps(summary), first.id],
        )
    old = load_check(project, train_run_id=run_id)
    assert "old way" in old.stale and f"knowmix check --run {run_id}" in old.stale
    assert "stale" in old.headline() and "By the probe" not in old.to_text()
    second = check_run(project, run_id, w)
    assert second.id != first.id and second.status == "finished"
    assert not load_check(project, train_run_id=run_id).stale
    assert "By the answer" in second.to_text() and "By the probe" in second.to_text()
    project.close()
