"""The first ten minutes (issue 21), offscreen, with the real built-in model, every step by its buttons:
"Try it" -> probe -> breakdown -> plan -> train (early stop) -> check -> export.

The slice: the whole starter sample, probed with the smoke preset (2 exemplar sets, 2 samples) instead
of the paper's budget, and 2 epochs of training. The path with the paper's budget is timed by
bench/first_minutes.py (bench/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from core.probe import CATEGORIES  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def check_words(check) -> tuple[str, str]:
    """The Check step's words on the test split: the questions it lost, then the ones it gained."""
    from gui.qt import QtWidgets

    box = check.findChild(QtWidgets.QGroupBox, "split_test")
    assert box is not None, "the Check step shows no test split"
    return (
        box.findChild(QtWidgets.QLabel, "newErrorsHeadline").text(),
        box.findChild(QtWidgets.QLabel, "splitDetail").text(),
    )


def wait_idle(qtbot, win, timeout_s: float) -> None:
    qtbot.waitUntil(lambda: not win.ctx.runner.active(), timeout=int(timeout_s * 1000))


def test_try_it_probe_breakdown_plan_train_check_export_with_the_built_in_model(qtbot, window, knowmix_home, tmp_path):
    from gui.pages.project import SAMPLE_QUESTIONS

    pytest.importorskip("torch")
    window.by_key["project"].try_button.click()
    qtbot.waitUntil(lambda: window.current_page().key == "probe", timeout=60_000)  # the sample is written off the UI thread
    probe = window.by_key["probe"]
    assert f"Probing <b>{SAMPLE_QUESTIONS}</b> questions" in probe.what.text()
    probe.preset_combo.setCurrentIndex(probe.preset_combo.findData("smoke"))  # the slice (see the docstring)
    probe.start_button.click()
    wait_idle(qtbot, window, 1200)
    assert probe.message.kind == "ok", probe.message.text()
    assert f"{SAMPLE_QUESTIONS} questions probed" in probe.message.text()

    window.go("breakdown")
    breakdown = window.by_key["breakdown"]
    wait_idle(qtbot, window, 60)
    assert breakdown.count_label.text() == f"{SAMPLE_QUESTIONS} of {SAMPLE_QUESTIONS} examples"
    assert all(breakdown.count_cell("All", c).split()[0] != "0" for c in CATEGORIES)  # the sample shows every category

    window.go("plan")
    plan = window.by_key["plan"]
    plan.build_button.click()  # the recommended mix, as the Plan step opens
    qtbot.waitUntil(lambda: window.ctx.plan_id is not None, timeout=60_000)
    text = plan.counts.text()
    n_train = int(text.split("<b>")[2].split("</b>")[0])
    assert n_train >= 20, text  # enough to train on (the random 48 gave 2), so no "too few" warning
    assert "too few to change the model" not in plan.message.text()

    window.go("train")
    train = window.by_key["train"]
    assert "too few" not in train.plan_label.text()
    assert train.start_button.isEnabled() and train.check_after.isChecked()
    train.epochs.setValue(2)
    train.threads.setValue(2)  # the suite runs one test at a time: both cores
    train.device.setCurrentIndex(train.device.findData("cpu"))
    train.start_button.click()
    qtbot.waitUntil(lambda: not train.training, timeout=1_200_000)
    assert train.message.kind == "ok", train.message.text()
    assert "Stopping point" in train.outcome_label.text()

    window.go("check")  # the Train step started the check when training finished
    check = window.by_key["check"]
    wait_idle(qtbot, window, 1200)
    assert check.message.kind == "ok", check.message.text()
    assert window.step_states()["check"] == "done"
    # each direction in words (a count, or why there is none): the questions it lost, the ones it gained
    from core.check import load_check
    from core.store import Project

    with Project(window.ctx.project_path) as p:
        split = load_check(p).splits["test"]
    lost, gained = check_words(check)
    assert split.new_errors_text() in lost and split.fixed_text() in gained, (lost, gained)

    window.go("export")
    export = window.by_key["export"]
    out = tmp_path / "out"
    export.copy_adapter_to(out / "adapter")
    wait_idle(qtbot, window, 60)
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    export.save_report(out / "report.html")
    wait_idle(qtbot, window, 60)
    assert "SmolLM2-135M-Instruct" in Path(out / "report.html").read_text()
