"""The Check step (what training did to the model's knowledge), offscreen, as a user meets it.

Projects come from ``tests.check_fixture``: scripted models stand in for the base model and the
trained one, so a check takes a second and its new errors are known questions the "trained" model
stopped answering. Starting a check from the page runs ``core.check.run_check`` through the app's
job runner with those scripted models (the page's ``run_check_options``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from core.check import CheckModels, load_check  # noqa: E402
from core.store import Project  # noqa: E402
from tests.check_fixture import checked_project, probed_project, trained_run  # noqa: E402
from tests.scripted import ScriptedBackend  # noqa: E402


def wait_idle(qtbot, win, timeout_s: float) -> None:
    qtbot.waitUntil(lambda: not win.ctx.runner.active(), timeout=int(timeout_s * 1000))


def open_check(qtbot, window, path: Path):
    window.ctx.open_project(path)
    window.go("check")
    page = window.by_key["check"]
    wait_idle(qtbot, window, 30)  # the cost is worked out in a job
    return page


def table_rows(table) -> list[list[str]]:
    return [[table.item(i, j).text() for j in range(table.columnCount())] for i in range(table.rowCount())]


def test_a_stored_check_shows_each_splits_sentence_chart_and_broken_questions(qtbot, window, tmp_path):
    from gui.qt import QtWidgets
    from gui.transition_chart import TransitionBars

    project, (run_id,), _w = checked_project(tmp_path / "p.knowmix")
    report = load_check(project, train_run_id=run_id)
    project.close()
    page = open_check(qtbot, window, tmp_path / "p.knowmix")
    assert window.step_states()["check"] == "done"
    assert page.runs_combo.currentData() == run_id and "checked" in page.runs_combo.currentText()
    assert "questions (" in page.cost_label.text() and "answers" in page.cost_label.text()
    assert not page.check_button.isEnabled()  # already checked: the stored result is shown, nothing re-run
    boxes = page.splits_box.findChildren(QtWidgets.QGroupBox)
    assert [b.objectName() for b in boxes][:2] == ["split_test", "split_dev"]  # test first
    for box in boxes:
        split = report.splits[box.objectName().removeprefix("split_")]
        head = box.findChild(QtWidgets.QLabel, "newErrorsHeadline")
        assert head.text() == split.new_errors_text()
        # the probe's count, by its own measure, next to the answer's
        assert box.findChild(QtWidgets.QLabel, "probeNewErrorsHeadline").text() == split.probe_new_errors_text()
        assert head.font().pointSizeF() > page.font().pointSizeF()  # big
        assert split.em_text().split(" before")[0][1:] in box.findChild(QtWidgets.QLabel, "splitDetail").text()
        chart = box.findChild(TransitionBars)
        # one bar per category before, its counts adding up to the split's questions
        assert sum(sum(c.values()) for _b, c in chart.rows) == split.n
        assert [b for b, _c in chart.rows] == [
            c for c in ("HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown") if c in split.transitions
        ]
        table = box.findChild(QtWidgets.QTableWidget, "newErrors")
        if not split.new_errors:
            assert table is None
            continue
        rows = table_rows(table)
        assert len(rows) == len(split.new_errors)
        for e in split.new_errors:
            assert [e["question"], e["answers"][0], e["answer_before"], e["answer_after"]] in [r[:4] for r in rows]
    assert any(box.findChild(QtWidgets.QTableWidget, "newErrors") for box in boxes), "no split lost a question"
    assert not page.tabs.isTabEnabled(1)  # one checked run: nothing to compare


def test_two_checked_runs_are_compared_side_by_side(qtbot, window, tmp_path):
    project, ids, _w = checked_project(tmp_path / "p.knowmix", runs=(("recommended", "early_stop"), ("natural", "convergence")))
    tests = [load_check(project, train_run_id=i).splits["test"] for i in ids]
    project.close()
    page = open_check(qtbot, window, tmp_path / "p.knowmix")
    assert page.tabs.isTabEnabled(1)
    page.tabs.setCurrentIndex(1)
    table = page.compare_table
    assert [table.horizontalHeaderItem(j).text() for j in range(table.columnCount())] == [f"Training run {i}" for i in ids]
    rows = {table.verticalHeaderItem(i).text(): r for i, r in enumerate(table_rows(table))}
    assert rows["Mix"] == ["recommended", "natural"]
    assert rows["Stopping rule"][0].startswith("early stop") and rows["Stopping rule"][1].startswith("convergence")
    assert rows["New errors by the answer (right before, wrong after)"] == [
        f"{len(t.new_errors)} of {t.n_right_before} ({100 * len(t.new_errors) / t.n_right_before:.1f}%)" for t in tests
    ]
    assert rows["New errors by the probe (known before -> not known after)"] == [
        f"{len(t.probe_new_errors)} of {t.n_known_before}" for t in tests
    ]
    assert rows["Exact match before"] == [f"{100 * t.em_before:.1f}%" for t in tests]
    # choosing the other run shows its own check
    page.runs_combo.setCurrentIndex(page.runs_combo.findData(ids[0]))
    page.runs_combo.activated.emit(page.runs_combo.currentIndex())
    qtbot.waitUntil(lambda: f"training run {ids[0]}:" in page.summary_label.text(), timeout=10_000)
    assert window.ctx.train_run_id == ids[0] and "recommended mix" in page.summary_label.text()


def test_check_this_run_runs_the_check_as_a_job_and_keeps_the_result(qtbot, window, tmp_path):
    project, probe_id, w = probed_project(tmp_path / "p.knowmix")
    run_id = trained_run(project, probe_id)
    project.close()
    page = open_check(qtbot, window, tmp_path / "p.knowmix")
    assert window.step_states()["check"] == "ready"
    assert "has no check yet" in page.summary_label.text()
    assert page.check_button.isEnabled() and not page.cancel_button.isEnabled()
    page.run_check_options = {"models": CheckModels(base=ScriptedBackend(w[1]), adapter=ScriptedBackend(w[2]))}
    page.check_button.click()
    assert page.checking and window.ctx.runner.is_running(f"Check (run {run_id})")
    wait_idle(qtbot, window, 60)
    assert page.message.kind == "ok", page.message.text()
    with Project(tmp_path / "p.knowmix", create=False) as p:
        report = load_check(p, train_run_id=run_id)
    assert report is not None and report.status == "finished"
    assert report.splits["test"].new_errors_text() in page.message.text()
    assert window.step_states()["check"] == "done" and not page.check_button.isEnabled()
    # the result is stored: a fresh window shows it without running anything
    from gui.window import MainWindow

    again = MainWindow()
    qtbot.addWidget(again)
    again.show()
    page2 = open_check(qtbot, again, tmp_path / "p.knowmix")
    assert f"Check {report.id} of training run {run_id}" in page2.summary_label.text()
    assert again.step_states()["check"] == "done"


def test_cancel_stops_the_check_and_check_this_run_resumes_it(qtbot, window, tmp_path):
    import threading

    project, probe_id, w = probed_project(tmp_path / "p.knowmix")
    run_id = trained_run(project, probe_id)
    project.close()
    page = open_check(qtbot, window, tmp_path / "p.knowmix")
    gate = threading.Event()

    class Slow(ScriptedBackend):
        def generate(self, requests):  # waits for the test's cancel before answering the first batch
            gate.wait(10)
            return super().generate(requests)

    page.run_check_options = {"models": CheckModels(base=Slow(w[1]), adapter=ScriptedBackend(w[2]))}
    page.check_button.click()
    assert page.cancel_button.isEnabled()
    page.cancel_button.click()
    gate.set()
    wait_idle(qtbot, window, 60)
    assert "cancelled" in page.message.text() and "resumes" in page.message.text()
    assert window.step_states()["check"] == "ready" and page.check_button.isEnabled()
    assert f"of training run {run_id} is cancelled" in page.summary_label.text()
    page.run_check_options = {"models": CheckModels(base=ScriptedBackend(w[1]), adapter=ScriptedBackend(w[2]))}
    page.check_button.click()
    wait_idle(qtbot, window, 60)
    assert page.message.kind == "ok" and window.step_states()["check"] == "done"


def test_the_train_step_asks_for_a_check_when_training_finishes(qtbot, window, tmp_path):
    """The Train step's box (on by default): when a run finishes, the Check step checks it."""
    project, probe_id, w = probed_project(tmp_path / "p.knowmix")
    run_id = trained_run(project, probe_id)
    project.close()
    window.ctx.open_project(tmp_path / "p.knowmix")
    train = window.by_key["train"]
    assert train.check_after.isChecked()
    page = window.by_key["check"]
    page.run_check_options = {"models": CheckModels(base=ScriptedBackend(w[1]), adapter=ScriptedBackend(w[2]))}
    train.request_check(run_id)  # what the page does when a run ends with status "done" and the box ticked
    qtbot.waitUntil(lambda: window.ctx.runner.is_running(f"Check (run {run_id})") or page.message.kind == "ok", timeout=10_000)
    wait_idle(qtbot, window, 60)
    assert window.step_states()["check"] == "done"
    train.check_after.setChecked(False)
    assert not window.ctx.settings.value("train/check_after", True, type=bool)


def test_a_check_of_an_older_adapter_shows_as_stale_and_can_be_redone(qtbot, window, tmp_path):
    from tests.test_check_stale import resume_and_finish

    project, (run_id,), _w = checked_project(tmp_path / "p.knowmix")
    resume_and_finish(project, run_id)
    project.close()
    page = open_check(qtbot, window, tmp_path / "p.knowmix")
    assert window.step_states()["check"] == "ready"
    assert "stale" in page.summary_label.text() and f"knowmix check --run {run_id}" in page.summary_label.text()
    assert page.check_button.isEnabled()
