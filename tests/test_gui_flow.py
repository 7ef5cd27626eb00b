"""The whole app as a user drives it, offscreen: sample data in, built-in model, probe, breakdown,
plan, a short training run on a tiny model, and the exports. Assertions are on what the user sees:
labels, counts, enabled buttons and files written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from core.paths import sample_dataset, sample_pool  # noqa: E402
from core.probe import CATEGORIES  # noqa: E402

QUESTIONS = 24  # two per relation


def wait_idle(qtbot, win, timeout_s: float) -> None:
    qtbot.waitUntil(lambda: not win.ctx.runner.active(), timeout=int(timeout_s * 1000))


def new_project(win, path: Path) -> None:
    assert win.by_key["project"].open_path(path, create=True)
    assert win.windowTitle() == f"KnowMix — {path.name}"


def add_sample(qtbot, win, n: int) -> None:
    win.go("dataset")
    page = win.by_key["dataset"]
    page.open_file(str(sample_dataset()))
    qtbot.waitUntil(lambda: page.preview is not None, timeout=20_000)
    assert "detected shape <b>question-answer</b>" in page.file_label.text()
    assert page.map_combos["question"].currentText() == "question"
    assert page.map_combos["group"].currentText() == "relation"
    assert page.table.rowCount() == 20
    page.limit_check.setChecked(True)
    page.limit_spin.setValue(n)
    page.pool_edit.setText(str(sample_pool()))
    assert page.use_button.isEnabled()
    page.use_button.click()
    wait_idle(qtbot, win, 60)
    assert page.message.kind == "ok", page.message.text()
    assert f"{n} questions" in page.current.text()
    assert win.step_states()["dataset"] == "done"


def test_first_start_offers_the_sample_and_blocks_later_steps(window):
    page = window.by_key["project"]
    assert page.try_button.isEnabled()
    assert "Try it with the built-in model" in page.try_button.text()
    states = window.step_states()
    assert states["dataset"] == states["probe"] == states["plan"] == "blocked"
    assert "New here?" in page.summary.text()


def test_sample_project_opens_ready_to_probe(qtbot, window, knowmix_home):
    window.by_key["project"].try_button.click()
    qtbot.waitUntil(lambda: window.current_page().key == "probe", timeout=60_000)  # the sample is written off the UI thread
    probe = window.by_key["probe"]
    from gui.pages.project import SAMPLE_QUESTIONS

    assert f"Probing <b>{SAMPLE_QUESTIONS}</b> questions of <b>entityquestions_starter.jsonl</b>" in probe.what.text()
    assert "SmolLM2-135M-Instruct" in probe.what.text()
    assert probe.start_button.isEnabled()
    assert "model calls" in probe.estimate_label.text()
    assert window.ctx.recent_projects()[0].endswith("sample.knowmix")


def test_whole_flow_probe_breakdown_plan_train_export(qtbot, window, tmp_path, tiny_folder):
    project = tmp_path / "flow.knowmix"
    new_project(window, project)
    add_sample(qtbot, window, QUESTIONS)

    window.go("probe")
    probe = window.by_key["probe"]
    probe.preset_combo.setCurrentIndex(probe.preset_combo.findData("smoke"))
    assert "Cheaper than the paper" in probe.estimate_label.text()
    assert probe.start_button.text() == "Start probe"
    probe.start_button.click()
    assert not probe.start_button.isEnabled() and probe.cancel_button.isEnabled()
    wait_idle(qtbot, window, 300)
    assert probe.message.kind == "ok", probe.message.text()
    assert f"{QUESTIONS} questions probed" in probe.message.text()
    assert window.step_states()["probe"] == "done"
    counts = dict(part.split(": ") for part in probe.live_counts.text().split("  ·  "))
    assert sum(int(counts[c]) for c in CATEGORIES) == QUESTIONS == int(counts["probed"])
    assert window.ctx.model_info is not None and window.ctx.model_info.name == "SmolLM2-135M-Instruct"

    from core.store import Project
    from core.summary import breakdown

    with Project(project, create=False) as p:
        bd = breakdown(p, window.ctx.probe_run_id)
    assert bd.total == QUESTIONS

    window.go("plan")
    plan = window.by_key["plan"]
    plan.mix.setCurrentIndex(plan.mix.findData("natural"))
    plan.build_button.click()
    qtbot.waitUntil(lambda: window.ctx.plan_id is not None, timeout=30_000)
    text = plan.counts.text()
    assert f"Plan {window.ctx.plan_id}" in text and "held out for dev" in text
    assert "Memory" in plan.memory.text()
    assert "natural mix" in plan.explain.toPlainText()
    assert window.step_states()["plan"] == "done"

    window.go("train")
    train = window.by_key["train"]
    assert train.start_button.isEnabled()
    assert "SmolLM2-135M-Instruct" in train.model_note.text()  # the probed model is the default to train
    train.model_edit.setText(str(tiny_folder))  # a tiny model keeps the test short
    train.form.other_model.setChecked(True)  # not the probed model: the user says it is on purpose
    train.epochs.setValue(2)
    train.threads.setValue(1)
    train.device.setCurrentIndex(train.device.findData("cpu"))
    train.check_after.setChecked(False)  # the Check step has its own tests (test_gui_check.py)
    train.start_button.click()
    assert window.ctx.backend is None  # the probe's model is unloaded to free memory for training
    qtbot.waitUntil(lambda: not train.training, timeout=300_000)
    assert train.message.kind == "ok", train.message.text()
    assert "finished" in train.outcome_label.text() and "Stopping point" in train.outcome_label.text()
    assert train.em_plot.points("dev_em") == 3  # step 0 (before training) and one per epoch
    assert window.step_states()["train"] == "done"

    window.go("export")
    export = window.by_key["export"]
    assert "stopping point: epoch" in export.adapter_label.text()
    assert "PeftModel.from_pretrained" in export.adapter_label.text()
    assert export.copy_adapter.isEnabled()
    out = tmp_path / "out"
    export.copy_adapter_to(out / "adapter")
    wait_idle(qtbot, window, 30)
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert export.report_button.isEnabled() and export.export_plan_button.isEnabled()
    export.export_plan_to(out / "plan")
    wait_idle(qtbot, window, 30)
    rows = [json.loads(line) for line in (out / "plan" / "train.jsonl").read_text().splitlines()]
    assert rows and {"question", "answers"} <= set(rows[0])
    export.save_report(out / "report.html")
    wait_idle(qtbot, window, 30)
    html = (out / "report.html").read_text()
    assert "SmolLM2-135M-Instruct" in html and "<svg" in html
    assert "stopping point" in html.lower() and "tiny-llama" in html
    assert window.step_states()["export"] == "done"
    assert export.open_report.isEnabled()
    assert window.step_states()["check"] == "ready"  # the run is not checked: its box was unticked
    assert all(state == "done" for key, state in window.step_states().items() if key != "check"), window.step_states()


def test_bare_knowmix_opens_the_app_or_says_why_not(tmp_path):
    """`knowmix` with no arguments is the app; on a machine without a display it says what to use."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    proc = subprocess.run([sys.executable, "-m", "gui.entry"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "No display found" in proc.stderr and "knowmix demo" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "gui.entry", "--version"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("KnowMix ")
