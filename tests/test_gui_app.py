"""The app's plumbing as a user meets it, offscreen: the job runner (threads, throttled progress,
error dialogs and the log), closing the window during a probe, settings that survive a restart,
broken dataset files, wrong model files, and the keyboard shortcuts."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from core.errors import KnowMixError  # noqa: E402
from core.jobs import Progress  # noqa: E402
from core.paths import sample_dataset, sample_pool  # noqa: E402

# -- helpers ------------------------------------------------------------------------------------------


@pytest.fixture
def app_log():
    """The app's file log in this test's KNOWMIX_HOME (the handler is process-wide, so it is set up
    here and removed afterwards)."""
    import logging

    from gui.errors import setup_logging

    root = logging.getLogger("knowmix")

    def drop():
        for h in [h for h in root.handlers if getattr(h, "_knowmix", False)]:
            root.removeHandler(h)
            h.close()

    drop()
    path = setup_logging()
    yield path
    drop()


def wait_idle(qtbot, win, timeout_s: float) -> None:
    qtbot.waitUntil(lambda: not win.ctx.runner.active(), timeout=int(timeout_s * 1000))


def error_dialogs(parent):
    from gui.qt import QtWidgets

    return [b for b in parent.findChildren(QtWidgets.QMessageBox, "errorDialog") if b.isVisible()]


def close_dialogs(parent) -> None:
    for box in error_dialogs(parent):
        box.close()


def sample_project(path: Path, n: int) -> Path:
    """A project with ``n`` sample questions and the sample exemplar pool, made without the UI."""
    from core.datasets import load_dataset, take_balanced
    from core.store import Project

    with Project(path) as p:
        p.add_dataset(take_balanced(load_dataset(sample_dataset()), n), role="train")
        p.add_dataset(load_dataset(sample_pool()), role="pool")
    return path


def open_project(win, path: Path) -> None:
    assert win.by_key["project"].open_path(path)


# -- 2. the job runner -----------------------------------------------------------------------------------


@pytest.fixture
def ctx(qtbot):
    from gui.context import AppContext
    from gui.qt import QtWidgets

    host = QtWidgets.QWidget()
    qtbot.addWidget(host)
    c = AppContext(host)
    c.window = host
    yield c
    c.runner.cancel_all()
    c.runner.wait_all(10)


def test_job_callbacks_run_on_the_ui_thread(qtbot, ctx):
    seen: dict[str, object] = {}
    main = threading.main_thread()

    def fn(job):
        seen["worker"] = threading.current_thread()
        job.status("working")
        job.send_event({"x": 1})
        job.progress(Progress(1, 1, 0.0, None))
        return 42

    def record(name):
        return lambda *a: seen.setdefault(name, (threading.current_thread(), a))

    ctx.runner.start(
        "t",
        fn,
        on_done=record("done"),
        on_progress=record("progress"),
        on_event=record("event"),
        on_status=record("status"),
        on_finally=record("finally"),
    )
    assert ctx.runner.busy and ctx.runner.is_running("t")
    qtbot.waitUntil(lambda: "finally" in seen, timeout=5000)
    assert seen["worker"] is not main
    for name in ("done", "progress", "event", "status", "finally"):
        assert seen[name][0] is main, name
    assert seen["done"][1] == (42,)
    assert seen["event"][1] == ({"x": 1},)
    assert seen["status"][1] == ("working",)
    assert not ctx.runner.active() and not ctx.runner.busy


def test_progress_is_throttled_and_the_latest_always_arrives(qtbot, ctx):
    got: list[int] = []
    release = threading.Event()
    burst_sent = threading.Event()

    burst = {}

    def fn(job):
        t0 = time.monotonic()
        for i in range(1, 501):  # a fast loop: 500 updates in a few milliseconds
            job.progress(Progress(i, 1000, 0.0, None))
        burst["s"] = time.monotonic() - t0
        burst_sent.set()
        release.wait(10)  # then a long step (a slow batch) with nothing new to report
        job.progress(Progress(1000, 1000, 0.0, None))

    job = ctx.runner.start("t", fn, on_progress=lambda p: got.append(p.done))
    qtbot.waitUntil(burst_sent.is_set, timeout=5000)
    # The user sees where the job is while it works on the slow step, not where it was 500 updates ago.
    qtbot.waitUntil(lambda: bool(got) and got[-1] == 500, timeout=2000)
    assert job.running
    assert len(got) <= 3 + burst["s"] / 0.1, (got, burst)  # throttled to 10/s: not one queued signal per update
    release.set()
    qtbot.waitUntil(lambda: not ctx.runner.active(), timeout=5000)
    assert got[-1] == 1000


def test_a_failing_job_reports_its_traceback_to_on_error(qtbot, ctx):
    errors = []

    def fn(job):
        raise ValueError("boom in the worker")

    ctx.runner.start("t", fn, on_error=lambda exc, tb: errors.append((exc, tb, threading.current_thread())))
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    exc, tb, thread = errors[0]
    assert isinstance(exc, ValueError) and str(exc) == "boom in the worker"
    assert "Traceback" in tb and "in fn" in tb and "boom in the worker" in tb
    assert thread is threading.main_thread()
    assert not error_dialogs(ctx.window)  # the page handled it: no second dialog


def test_an_unexpected_error_shows_details_and_goes_to_the_log(qtbot, ctx, app_log):
    from gui.qt import QtWidgets

    def fn(job):
        return {}["missing key"]

    ctx.runner.start("t", fn)
    qtbot.waitUntil(lambda: bool(error_dialogs(ctx.window)), timeout=5000)
    box = error_dialogs(ctx.window)[0]
    assert box.icon() == QtWidgets.QMessageBox.Icon.Critical
    assert "Something went wrong inside KnowMix: KeyError" in box.text()
    assert str(app_log) in box.text()  # where to find the details
    assert "Traceback" in box.detailedText() and "in fn" in box.detailedText()
    for h in __import__("logging").getLogger("knowmix").handlers:
        h.flush()
    logged = app_log.read_text(encoding="utf-8")
    assert "unexpected error" in logged and "Traceback" in logged and "missing key" in logged
    box.close()


def test_a_user_error_shows_a_plain_warning(qtbot, ctx, app_log):
    from gui.qt import QtWidgets

    def fn(job):
        raise KnowMixError("The file is empty. Pick a file with at least one question.")

    ctx.runner.start("t", fn)
    qtbot.waitUntil(lambda: bool(error_dialogs(ctx.window)), timeout=5000)
    box = error_dialogs(ctx.window)[0]
    assert box.icon() == QtWidgets.QMessageBox.Icon.Warning
    assert box.text() == "The file is empty. Pick a file with at least one question."
    assert not box.detailedText() and "Traceback" not in box.text()
    box.close()


def test_exclusive_jobs_never_overlap_and_cancel_reaches_the_job(qtbot, ctx):
    from core.errors import Cancelled

    started = threading.Event()
    outcome: list[str] = []

    def slow(job):
        started.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            job.cancel.raise_if_cancelled("The slow job")
            time.sleep(0.01)
        return "ran to the end"

    job = ctx.runner.start("slow", slow, on_done=outcome.append, on_error=lambda exc, tb: outcome.append(exc))
    qtbot.waitUntil(started.is_set, timeout=5000)
    with pytest.raises(RuntimeError, match="'slow' is still running"):
        ctx.runner.start("second", lambda j: None)
    side = ctx.runner.start("side", lambda j: "side done", exclusive=False, on_done=outcome.append)  # e.g. a file preview
    qtbot.waitUntil(lambda: "side done" in outcome, timeout=5000)
    assert ctx.runner.current() is job and not side.cancel.cancelled
    t0 = time.monotonic()
    ctx.runner.cancel_all()
    assert job.cancel.cancelled
    assert ctx.runner.wait_all(5)
    assert time.monotonic() - t0 < 2
    assert len(outcome) == 2 and isinstance(outcome[1], Cancelled)
    ctx.runner.start("third", lambda j: None)  # free again
    assert ctx.runner.wait_all(5)


# -- 3. closing the window while a probe runs --------------------------------------------------------------


def test_closing_during_a_probe_asks_then_cancels_and_keeps_finished_batches(qtbot, window, tmp_path, monkeypatch, knowmix_home):
    from core.store import Project
    from gui.context import open_settings
    from gui.qt import QtWidgets

    project = sample_project(tmp_path / "close.knowmix", 24)  # 12 groups of 2: one saved batch per group
    open_project(window, project)
    window.go("probe")
    probe = window.by_key["probe"]
    probe.preset_combo.setCurrentIndex(probe.preset_combo.findData("smoke"))
    probe.start_button.click()
    qtbot.waitUntil(lambda: probe.ctx.probe_run_id is not None and probe.progress.bar.value() >= 2, timeout=60_000)
    job = window.ctx.runner.current()
    assert job is not None and job.name == "Probe"

    asked: list[str] = []
    answer = {"value": QtWidgets.QMessageBox.StandardButton.No}

    def question(parent, title, text, *args, **kwargs):
        asked.append(text)
        return answer["value"]

    monkeypatch.setattr(QtWidgets.QMessageBox, "question", staticmethod(question))
    assert not window.close()  # No: nothing happens
    assert len(asked) == 1 and "Probe is still running" in asked[0]
    assert window.isVisible() and job.running and not job.cancel.cancelled

    answer["value"] = QtWidgets.QMessageBox.StandardButton.Yes
    t0 = time.monotonic()
    assert window.close()
    took = time.monotonic() - t0
    assert len(asked) == 2
    assert not window.isVisible() and not window.ctx.runner.active()
    assert window.ctx.backend is None  # the model's memory is given back
    assert probe.message.kind == "warning" and "Paused" in probe.message.text()
    with Project(project, create=False) as p:
        run = p.probe_run(window.ctx.probe_run_id)
        saved = len(p.done_example_ids(run.id))
    assert run.status == "cancelled"
    assert 2 <= run.n_done < 24 and saved == run.n_done  # finished batches are kept, whole
    assert took < 30, f"stopping took {took:.1f} s"
    ini = (knowmix_home / "settings.ini").read_text(encoding="utf-8")
    assert "[window]" in ini and "geometry=" in ini
    settings = open_settings()
    assert settings.value("window/geometry") is not None and settings.value("window/splitter") is not None


# -- 4. settings that persist ---------------------------------------------------------------------------------


def test_recent_projects_most_recent_first_at_most_eight_and_missing_marked(qtbot, window, tmp_path):
    paths = [tmp_path / f"p{i}.knowmix" for i in range(10)]
    page = window.by_key["project"]
    for p in paths:
        assert page.open_path(p, create=True)
    recent = window.ctx.recent_projects()
    assert recent == [str(p.resolve()) for p in reversed(paths)][:8]
    assert page.open_path(paths[5])  # reopening moves it to the top, once
    recent = window.ctx.recent_projects()
    assert recent[0] == str(paths[5].resolve()) and len(recent) == 8 and len(set(recent)) == 8

    paths[7].unlink()
    window.go("project")
    page.refresh()
    rows = [page.recent.item(i).text() for i in range(page.recent.count())]
    assert len(rows) == 8
    assert rows[0] == str(paths[5].resolve())
    missing = [r for r in rows if r.endswith("(missing)")]
    assert missing == [f"{paths[7].resolve()}  (missing)"]
    page._open_recent(page.recent.item(rows.index(missing[0])))  # a double-click on it explains, no crash
    assert page.message.kind == "warning" and "no longer exists" in page.message.text()
    assert window.ctx.project_path == paths[5].resolve()

    from gui.context import AppContext

    later = AppContext()  # the next start of the app
    assert later.recent_projects() == window.ctx.recent_projects()


def test_the_last_model_choice_is_restored_at_the_next_start(qtbot, tmp_path):
    from gui.context import AppContext
    from gui.window import MainWindow

    gguf = tmp_path / "my-model.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 64)
    first = AppContext()
    first.set(model_spec=str(gguf), backend_name="llama.cpp", device="cpu")
    first.settings.sync()
    del first

    ctx = AppContext()
    assert (ctx.model_spec, ctx.backend_name, ctx.device) == (str(gguf), "llama.cpp", "cpu")
    win = MainWindow(ctx)
    qtbot.addWidget(win)
    model = win.by_key["model"]
    assert model.rb_gguf.isChecked() and model.path_edit.text() == str(gguf)
    assert model.backend_combo.currentData() == "llama.cpp"


# -- 5. the dataset page with broken and unusual files ----------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _open(qtbot, page, path: Path) -> None:
    page.open_file(str(path))
    qtbot.waitUntil(lambda: page.preview is not None and not page.ctx.runner.active(), timeout=10_000)


def _check_and_add(qtbot, win, page) -> None:
    assert page.use_button.isEnabled()
    page.use_button.click()
    wait_idle(qtbot, win, 30)


BAD_CSV = """question,answer,relation
Who wrote Hamlet?,William Shakespeare,author
What is the capital of France?,Paris,capital
,Salzburg,birthplace
Who painted the Mona Lisa?,Leonardo da Vinci,painter
"""

BAD_JSONL = """{"question": "Who wrote Hamlet?", "answer": "William Shakespeare"}
{"question": "What is the capital of France?", "answer": "Paris"}
{"question": "Where was Mozart born?", "answer": "Salzburg"
{"question": "Who painted the Mona Lisa?", "answer": "Leonardo da Vinci"}
"""


@pytest.mark.parametrize(
    "name,text,where,readable",
    [
        ("team.csv", BAD_CSV, "team.csv line 4, field 'question'", 4),  # the row parses; its question is empty
        ("team.jsonl", BAD_JSONL, "team.jsonl line 3: invalid JSON", 3),  # the line does not parse at all
    ],
)
def test_invalid_rows_are_listed_with_line_numbers_and_can_be_skipped(qtbot, window, tmp_path, name, text, where, readable):
    assert window.by_key["project"].open_path(tmp_path / "ds.knowmix", create=True)
    window.go("dataset")
    page = window.by_key["dataset"]
    _open(qtbot, page, _write(tmp_path / name, text))
    assert "detected shape <b>question-answer</b>" in page.file_label.text()
    assert page.table.rowCount() == readable  # the preview shows the rows it can parse

    _check_and_add(qtbot, window, page)
    assert page.message.kind == "error"
    assert "1 row of" in page.message.text() and "Skip invalid rows" in page.message.text()
    assert page.problems.isVisible()
    problems = [page.problems.item(i).text() for i in range(page.problems.count())]
    assert len(problems) == 1 and problems[0].startswith(where), problems
    assert window.ctx.dataset_id is None and window.step_states()["dataset"] == "ready"
    assert not error_dialogs(window)

    page.skip_invalid.setChecked(True)
    _check_and_add(qtbot, window, page)
    assert page.message.kind == "ok", page.message.text()
    assert window.ctx.dataset_id is not None
    assert "3 questions" in page.current.text() and "1 invalid rows skipped" in page.current.text()
    assert [page.problems.item(i).text() for i in range(page.problems.count())] == problems  # still shown


def test_unknown_columns_are_mapped_by_hand(qtbot, window, tmp_path):
    assert window.by_key["project"].open_path(tmp_path / "ds.knowmix", create=True)
    window.go("dataset")
    page = window.by_key["dataset"]
    path = _write(
        tmp_path / "odd.csv",
        "prompt_text,gold\nWho wrote Hamlet?,William Shakespeare\n"
        "What is the capital of France?,Paris\nWho painted the Mona Lisa?,Leonardo da Vinci\n",
    )
    _open(qtbot, page, path)
    assert "shape not detected" in page.file_label.text()
    assert page.message.kind == "warning" and "Columns boxes" in page.message.text()
    assert not page.use_button.isEnabled()

    def pick(role: str, column: str) -> None:  # what choosing an entry of the combo with the mouse does
        combo = page.map_combos[role]
        index = combo.findText(column)
        assert index >= 0, (role, column, [combo.itemText(i) for i in range(combo.count())])
        page.preview = None
        combo.setCurrentIndex(index)
        combo.activated.emit(index)
        qtbot.waitUntil(lambda: page.preview is not None and not page.ctx.runner.active(), timeout=10_000)

    pick("question", "prompt_text")
    assert page.map_combos["question"].currentText() == "prompt_text"  # the first choice is kept
    pick("answer", "gold")
    assert page.map_combos["question"].currentText() == "prompt_text"
    assert page.map_combos["answer"].currentText() == "gold"
    assert "detected shape <b>custom</b>" in page.file_label.text()
    assert page.message.kind == ""  # the warning is gone
    header = page.table.horizontalHeaderItem(0).text()
    assert header == "prompt_text\n→ question"
    _check_and_add(qtbot, window, page)
    assert page.message.kind == "ok", page.message.text()
    with window.ctx.project() as p:
        examples = p.examples(window.ctx.dataset_id)
    assert [ex.question for ex in examples][:1] == ["Who wrote Hamlet?"]
    assert examples[0].answers[0] == "William Shakespeare"


def test_alpaca_and_openai_messages_files_are_recognised(qtbot, window, tmp_path):
    window.go("dataset")
    page = window.by_key["dataset"]
    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(
        json.dumps(
            [
                {"instruction": "Who wrote Hamlet?", "input": "", "output": "William Shakespeare"},
                {"instruction": "What is the capital of France?", "input": "", "output": "Paris"},
            ]
        ),
        encoding="utf-8",
    )
    _open(qtbot, page, alpaca)
    assert "JSON, detected shape <b>alpaca</b>" in page.file_label.text()
    assert page.map_combos["question"].currentText() == "instruction"
    assert page.map_combos["answer"].currentText() == "output"
    assert page.table.rowCount() == 2

    chat = tmp_path / "chat.jsonl"
    chat.write_text(
        "\n".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "system", "content": "Answer briefly."},
                        {"role": "user", "content": q},
                        {"role": "assistant", "content": a},
                    ]
                }
            )
            for q, a in [("Who wrote Hamlet?", "William Shakespeare"), ("Capital of France?", "Paris")]
        )
        + "\n",
        encoding="utf-8",
    )
    _open(qtbot, page, chat)
    assert "JSONL, detected shape <b>openai-messages</b>" in page.file_label.text()
    assert page.map_combos["question"].currentText() == "messages"
    assert page.message.kind == ""


# -- 6. the model page --------------------------------------------------------------------------------------------


def test_wrong_model_files_are_explained_inline_and_the_builtin_model_still_works(qtbot, window, tmp_path):
    open_project(window, sample_project(tmp_path / "m.knowmix", 4))
    window.go("model")
    page = window.by_key["model"]
    fake = tmp_path / "notes.gguf"
    fake.write_text("meeting notes, not a model\n", encoding="utf-8")
    folder = tmp_path / "downloaded-model"
    folder.mkdir()
    (folder / "README.md").write_text("weights go here\n", encoding="utf-8")

    for radio, path, words in ((page.rb_gguf, fake, "starts with the bytes 'GGUF'"), (page.rb_hf, folder, "no config.json")):
        radio.setChecked(True)
        page.path_edit.setText(str(path))
        page.path_edit.editingFinished.emit()
        assert window.ctx.model_spec == str(path)
        page.load_button.click()
        wait_idle(qtbot, window, 30)
        assert page.message.kind == "error" and page.message.isVisible()
        assert words in page.message.text() and "Traceback" not in page.message.text()
        assert not error_dialogs(window)
        assert page.load_button.isEnabled() and window.ctx.model_info is None

    page.rb_default.setChecked(True)
    assert window.ctx.model_spec == "default" and page.message.kind == ""
    window.go("probe")
    probe = window.by_key["probe"]
    assert probe.start_button.isEnabled()
    assert "the built-in SmolLM2-135M-Instruct" in probe.what.text()

    window.go("model")
    page.load_button.click()
    wait_idle(qtbot, window, 60)
    assert page.message.kind == "ok", page.message.text()
    info = page.info_label.text()
    assert "SmolLM2-135M-Instruct" in info
    assert "Context length" in info and "8,192 tokens" in info
    assert "Size" in info and " MiB" in info
    assert window.step_states()["model"] == "done"
    window.go("probe")
    assert "(loaded)" in probe.what.text() and probe.start_button.isEnabled()


# -- 7. keyboard -----------------------------------------------------------------------------------------------------


def test_keyboard_shortcuts_go_to_steps_and_start_the_probe(qtbot, window, tmp_path):
    from gui.qt import Qt

    open_project(window, sample_project(tmp_path / "k.knowmix", 4))
    window.activateWindow()
    window.go("project")
    qtbot.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert window.current_page().key == "dataset"
    assert window.nav.currentRow() == 2
    qtbot.keyClick(window, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    probe = window.current_page()
    assert probe.key == "probe"
    probe.preset_combo.setCurrentIndex(probe.preset_combo.findData("smoke"))
    qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert probe.job is not None and window.ctx.runner.is_running("Probe")
    assert not probe.start_button.isEnabled() and probe.cancel_button.isEnabled()
    wait_idle(qtbot, window, 90)
    assert probe.message.kind == "ok", probe.message.text()
    assert "4 questions probed" in probe.message.text()


def test_ctrl_period_cancels_the_running_job(qtbot, window):
    from gui.qt import Qt

    started = threading.Event()

    def long_job(job):
        started.set()
        while not job.cancel.cancelled:
            time.sleep(0.01)
        return "stopped"

    job = window.ctx.runner.start("Long job", long_job)
    qtbot.waitUntil(started.is_set, timeout=5000)
    assert window.job_label.text() == "Running: Long job"
    qtbot.keyClick(window, Qt.Key.Key_Period, Qt.KeyboardModifier.ControlModifier)
    assert job.cancel.cancelled
    wait_idle(qtbot, window, 5)
    assert window.job_label.text() == ""


def test_the_probe_steps_loading_line_goes_once_the_model_is_loaded(window):
    """It said "Loading the model (default) …" above a running probe's bar until the probe ended."""
    from tests.scripted import ScriptedBackend

    window.go("probe")
    page = window.by_key["probe"]
    page._status("Loading the model (default) …")
    assert page.message.isVisible() and page.message.text().startswith("Loading")
    page._event({"loaded": ScriptedBackend({})})
    assert not page.message.text()
