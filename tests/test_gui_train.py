"""The Train page, offscreen: a short run on the tiny model from a saved plan, cancel and resume, and
the states where training cannot start (no plan, the lite edition).

The worker process pays a few seconds for its imports of torch, transformers and peft; each run
here is ten to twenty steps of the tiny random Llama on one CPU thread.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("torch")
pytest.importorskip("peft")

from core.store import Project, TrainRun  # noqa: E402
from core.train.events import Step  # noqa: E402
from core.train.runs import eval_history, get_run, list_runs, metric_series  # noqa: E402

CATS = ("HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown")
RUN_TIMEOUT_MS = 120_000
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _facts() -> list[tuple[str, str, str, str]]:
    """50 (id, question, answer, category) facts the tiny tokenizer encodes in a token or two."""
    from tests.tiny_models import _WORDS, make_tiny_tokenizer

    tok = make_tiny_tokenizer()
    words = list(dict.fromkeys(_WORDS))
    one = [w for w in words if len(tok(" " + w)["input_ids"]) == 1]
    two = [w for w in words if len(tok(" " + w)["input_ids"]) == 2]
    rng = random.Random(0)
    return [(f"ex{i:02d}", f"What is the name of {key}?", rng.choice(one), CATS[i % 4]) for i, key in enumerate((one + two)[:50])]


def make_project(probed_project, model_folder: Path, *, with_plan: bool = True) -> Path:
    """A project with a finished probe of ``model_folder`` (the ``probed_project`` fixture: rows written
    straight to the store) and a plan."""
    from core.datasets import Example
    from core.plan import PlanSettings, build_plan, save_plan
    from tests.probed import ProbedModel

    facts = _facts()
    examples = [Example(i, q, (a,), "names", n, {}) for n, (i, q, a, _c) in enumerate(facts)]
    # the probe asked the model it trains
    project, probe = probed_project(
        examples, {i: c for i, _q, _a, c in facts}, model=ProbedModel.of_folder(model_folder, "tiny-llama")
    )
    with project:
        if with_plan:
            save_plan(project, build_plan(project, probe, PlanSettings(mix="natural", dev_fraction=0.2)))
    return Path(project.path)


@pytest.fixture
def ctx(qtbot):
    from gui.context import AppContext

    context = AppContext()
    yield context
    context.runner.cancel_all()
    assert context.runner.wait_all(timeout_s=60), "a job was still running after the test"


def open_page(qtbot, ctx, project_path: Path):
    from gui.pages.train import TrainPage

    ctx.open_project(project_path)
    page = TrainPage(ctx)
    qtbot.addWidget(page)
    page.resize(1200, 800)
    page.show()
    qtbot.waitExposed(page)
    return page


def fast_form(page, model_folder: Path, *, epochs: int, eval_every: int = 0) -> None:
    page.model_edit.setText(str(model_folder))
    page.epochs.setValue(epochs)
    page.threads.setValue(1)
    page.device.setCurrentIndex(page.device.findData("cpu"))
    page.eval_every.setValue(eval_every)
    page.lr.setCurrentText("0.005")


def wait_idle(qtbot, page) -> None:
    qtbot.waitUntil(lambda: not page.training, timeout=RUN_TIMEOUT_MS)


def run_row(project_path: Path, run_id: int) -> TrainRun:
    with Project(project_path) as project:
        return get_run(project, run_id)


def test_a_short_run_shows_live_curves_the_stopping_point_and_the_adapter(qtbot, ctx, tmp_path, tiny_folder, probed_project):
    from gui.qt import Qt

    project_path = make_project(probed_project, tiny_folder)
    page = open_page(qtbot, ctx, project_path)
    assert "tiny-llama" in page.model_note.text()  # the default model is the probe's, and the page says which
    assert page.start_button.isEnabled() and not page.cancel_button.isEnabled()
    assert "No training run yet" in page.checkpoint_label.text()
    fast_form(page, tiny_folder, epochs=2)
    lines: list[str] = []  # every status line the user saw
    show = page.status_label.setText
    page.status_label.setText = lambda text: (lines.append(text), show(text))

    during: list[tuple[str, str, str]] = []  # the banner, the runs box and the runs list at each step
    on_event = page.on_event

    def follow(event):
        on_event(event)
        if isinstance(event, Step):
            during.append((page.message.text(), page.checkpoint_label.text(), page.runs_combo.currentText()))

    page.on_event = follow
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert page.training and not page.start_button.isEnabled() and page.cancel_button.isEnabled()
    assert not page.epochs.isEnabled()  # the settings of a running run cannot change
    assert "Starting the training process" in page.message.text()
    wait_idle(qtbot, page)
    # once training has started, no banner says it is starting and no box says there is no run
    assert during and not any("Starting the training process" in m for m, _c, _r in during), during
    assert all(f"Run {ctx.train_run_id} — training" in c for _m, c, _r in during), during
    assert all(r.startswith(f"Run {ctx.train_run_id} — running") for _m, _c, r in during), during

    assert page.message.kind == "ok", page.message.text()
    run_id = ctx.train_run_id
    row = run_row(project_path, run_id)
    with Project(project_path) as project:
        history = eval_history(project, run_id)
        losses = metric_series(project, run_id, "loss")
    assert row.status == "done" and row.final_step == 10 and len(history) == 3  # step 0 (before training) and one per epoch
    # What the user sees: the outcome with the stopping point, the curves, the line at the best step.
    text = page.outcome_label.text()
    assert f"Run {run_id} finished" in text
    assert f"Stopping point: epoch {row.best_epoch:.2f}, step {row.best_step}" in text
    assert "Train fit at the stopping point" in text and str(row.adapter_dir) in text
    assert page.loss_plot.points("loss") == len(losses) == 10
    assert page.em_plot.points("dev_em") == len(history)
    xs, ys = page.em_curve.getData()
    assert list(xs) == [h["step"] for h in history] and list(ys) == pytest.approx([100 * h["dev_em"] for h in history])
    assert all(page.fit_plot.points(c) == len(history) for c in CATS)
    for plot in page.plots:
        assert plot.stop_line.isVisible() and plot.stop_line.value() == row.best_step
    assert Path(row.adapter_dir, "adapter_model.safetensors").is_file()
    # Buttons and the runs selector.
    assert page.start_button.isEnabled() and not page.cancel_button.isEnabled() and not page.resume_button.isEnabled()
    assert page.runs_combo.currentData() == run_id and "done" in page.runs_combo.currentText()
    assert "Last checkpoint: step 10" in page.checkpoint_label.text() and page.open_button.isEnabled()
    assert page.step_state()[0] == "done"
    started = f"{row.n_train} examples, {row.n_dev} dev examples"  # the plan holds out test questions too
    assert any(l.startswith("Training on cpu") and started in l and "10 steps" in l for l in lines), lines
    evals = [l for l in lines if l.startswith("Epoch ") and "train fit HighlyKnown" in l and "Checkpoint" not in l]
    assert [l.split(" (")[0] for l in evals] == ["Epoch 1.00", "Epoch 2.00"], lines
    assert any("Checkpoint saved at step 10" in l for l in lines)
    assert page.status_label.text().startswith("Finished at step 10")

    page.grab().save(str(tmp_path / "train.png"))  # renders without errors in the offscreen platform


def test_cancel_keeps_a_cancelled_run_that_resume_finishes(qtbot, ctx, tmp_path, tiny_folder, probed_project):
    from gui.qt import Qt

    project_path = make_project(probed_project, tiny_folder)
    page = open_page(qtbot, ctx, project_path)
    fast_form(page, tiny_folder, epochs=20, eval_every=5)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.loss_plot.points("loss") >= 1, timeout=RUN_TIMEOUT_MS)
    qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    assert not page.cancel_button.isEnabled()  # asked once
    assert "checkpoint" in page.message.text() and "best adapter" in page.message.text()
    wait_idle(qtbot, page)

    run_id = ctx.train_run_id
    row = run_row(project_path, run_id)
    assert row.status == "cancelled" and 0 < row.step < 100
    assert Path(row.folder, "checkpoints", "last", "state.json").is_file()
    assert "was cancelled" in page.outcome_label.text() and "cancelled" in page.runs_combo.currentText()
    assert f"Last checkpoint: step {row.step}" in page.checkpoint_label.text()
    assert page.resume_button.isEnabled() and page.start_button.isEnabled()
    assert page.step_state()[0] == "ready"

    qtbot.mouseClick(page.resume_button, Qt.MouseButton.LeftButton)
    assert page.training and not page.resume_button.isEnabled()
    wait_idle(qtbot, page)
    row = run_row(project_path, run_id)
    assert row.status == "done", page.message.text()
    with Project(project_path) as project:
        assert len(list_runs(project)) == 1  # resumed, not a new run
        history = eval_history(project, run_id)
    # The curves join the part before the cancel (from the project) and the resumed part (live).
    assert page.loss_plot.points("loss") == row.final_step
    assert page.em_plot.points("dev_em") == len(history)
    assert page.em_plot.stop_line.value() == row.best_step
    assert f"Run {run_id} finished" in page.outcome_label.text()
    assert not page.resume_button.isEnabled() and page.step_state()[0] == "done"


def test_without_a_plan_start_is_disabled_and_the_page_says_why(qtbot, ctx, tmp_path, tiny_folder, probed_project):
    project_path = make_project(probed_project, tiny_folder, with_plan=False)
    page = open_page(qtbot, ctx, project_path)
    state, tip = page.step_state()
    assert state == "blocked" and "Plan step" in tip
    assert not page.start_button.isEnabled() and not page.resume_button.isEnabled()
    assert "Plan step" in page.edition_message.text() and page.edition_message.isVisible()
    assert "Plan step" in page.start_button.toolTip()
    page.primary_action()  # Ctrl+Return does nothing
    assert not page.training


def test_the_device_note_sits_below_the_fields_not_over_the_processes_box(qtbot, ctx, tmp_path, tiny_folder, probed_project):
    page = open_page(qtbot, ctx, make_project(probed_project, tiny_folder))
    form = page.processes.parentWidget()
    note = form.gpu_label
    assert note.text()  # "No GPU found: ..." on this machine, the GPU's name on another
    qtbot.waitUntil(lambda: note.geometry().height() > 0 and page.processes.geometry().height() > 0, timeout=5000)
    assert note.geometry().top() >= page.processes.geometry().bottom()


def test_the_lite_edition_explains_that_training_needs_the_full_edition(
    qtbot, ctx, tmp_path, tiny_folder, probed_project, monkeypatch
):
    import gui.pages.train as train_page

    monkeypatch.setattr(train_page, "missing_training_packages", lambda: ["torch", "peft"])
    project_path = make_project(probed_project, tiny_folder)
    page = open_page(qtbot, ctx, project_path)
    assert "full edition" in page.edition_message.text() and page.edition_message.isVisible()
    assert not page.start_button.isEnabled() and "full edition" in page.start_button.toolTip()


def test_a_model_that_cannot_be_trained_is_said_on_the_page_and_in_a_dialog(qtbot, ctx, tmp_path, tiny_folder, probed_project):
    from gui.qt import Qt, QtWidgets

    project_path = make_project(probed_project, tiny_folder)
    page = open_page(qtbot, ctx, project_path)
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    page.model_edit.setText(str(not_a_model))
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, page)
    assert page.message.kind == "error" and str(not_a_model) in page.message.text()
    dialogs = [w for w in QtWidgets.QApplication.topLevelWidgets() if w.objectName() == "errorDialog" and w.isVisible()]
    assert dialogs, "the error was not shown in a dialog"
    for d in dialogs:
        d.close()
    assert page.start_button.isEnabled() and not page.cancel_button.isEnabled()
    with Project(project_path) as project:
        assert list_runs(project) == []  # refused before a run was created

    page.model_edit.setText(str(tmp_path / "missing"))
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert not page.training and "does not exist" in page.message.text()


def test_another_model_than_the_probed_one_is_refused_until_the_user_says_it_is_meant(
    qtbot, ctx, tmp_path, tiny_folder, probed_project
):
    """The plan's categories belong to the probed model: the Train step refuses another model inline,
    before any worker starts, and says how to train it anyway (the box, or --other-model)."""
    from gui.qt import Qt

    project_path = make_project(probed_project, tiny_folder)
    with Project(project_path) as project:  # the probe asked another model than the tiny one
        project.update_probe_run(project.probe_run().id, model_fingerprint="another-model")
    page = open_page(qtbot, ctx, project_path)
    fast_form(page, tiny_folder, epochs=1)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.message.kind == "error", timeout=20_000)
    assert "not the model the plan's probe asked" in page.message.text()
    assert "Not the probed model, on purpose" in page.message.text()
    assert not page.training and ctx.train_run_id is None
