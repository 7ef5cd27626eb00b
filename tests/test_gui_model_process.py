"""The app with the model in its own process, offscreen and for real (built-in model, sample data):
a segmentation fault of the model process leaves the window open, says what happened on the probe
page (no bug dialog), and Resume probe loads a fresh model process and finishes the run; a paused
probe and a closed window leave no model process behind."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("llama_cpp")

from tests.test_gui_flow import add_sample, new_project, wait_idle  # noqa: E402
from tests.test_model_process import gone, model_children, wait_gone  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

QUESTIONS = 8


def saved(win) -> int:
    try:
        with win.ctx.project() as p:
            return p.db.execute("SELECT COUNT(*) FROM probe_results").fetchone()[0]
    except Exception:  # noqa: BLE001 - the run's tables may still be being written
        return 0


def bug_dialogs(win) -> list:
    from gui.qt import QtWidgets

    return [b for b in win.findChildren(QtWidgets.QMessageBox) if b.objectName() == "errorDialog" and b.isVisible()]


def start_smoke_probe(qtbot, win, path: Path):
    new_project(win, path)
    add_sample(qtbot, win, QUESTIONS)
    win.go("probe")
    probe = win.by_key["probe"]
    probe.preset_combo.setCurrentIndex(probe.preset_combo.findData("smoke"))
    probe.start_button.click()
    qtbot.waitUntil(lambda: win.ctx.backend is not None and saved(win) >= 1, timeout=120_000)
    return probe


def test_a_model_crash_is_shown_on_the_probe_page_and_resume_finishes(qtbot, window, tmp_path):
    probe = start_smoke_probe(qtbot, window, tmp_path / "crash.knowmix")
    pid = window.ctx.backend.pid
    assert pid in [p.pid for p in model_children(os.getpid())]
    os.kill(pid, signal.SIGSEGV)
    wait_idle(qtbot, window, 60)

    assert window.isVisible()
    assert probe.message.kind == "error", probe.message.text()
    text = probe.message.text()
    assert "SIGSEGV (segmentation fault) while probing group" in text and "\n" not in text
    assert "Finished work is saved in the project" in text and "Press Resume probe" in text
    assert "--backend" not in text and "Model step" in text  # the app's words, not the CLI's
    assert not bug_dialogs(window)
    assert window.ctx.backend is None and gone(pid)
    done_before = saved(window)
    assert 1 <= done_before < QUESTIONS
    assert probe.start_button.isEnabled() and probe.start_button.text() == "Resume probe"

    probe.start_button.click()
    wait_idle(qtbot, window, 300)
    assert probe.message.kind == "ok", probe.message.text()
    assert f"Finished: {QUESTIONS} questions probed" in probe.message.text()
    assert saved(window) == QUESTIONS
    new_pid = window.ctx.backend.pid
    assert new_pid != pid and window.ctx.backend.alive

    window.close()  # no job runs: no question asked; the model is released
    assert wait_gone(new_pid, 10)
    assert new_pid not in [p.pid for p in model_children(os.getpid())]


def test_a_paused_probe_keeps_one_model_process_and_closing_the_window_ends_it(qtbot, window, tmp_path):
    probe = start_smoke_probe(qtbot, window, tmp_path / "pause.knowmix")
    pid = window.ctx.backend.pid
    probe.cancel_button.click()
    wait_idle(qtbot, window, 60)
    assert probe.message.kind == "warning" and "Paused" in probe.message.text()
    assert window.ctx.backend.alive and pid in [p.pid for p in model_children(os.getpid())]

    window.go("model")
    window.by_key["model"].unload_button.click()  # Unload ends the process
    assert window.ctx.backend is None and wait_gone(pid, 10)

    window.go("probe")
    probe.start_button.click()  # resumes with a fresh model process
    qtbot.waitUntil(lambda: window.ctx.backend is not None, timeout=120_000)
    pid = window.ctx.backend.pid
    probe.cancel_button.click()
    wait_idle(qtbot, window, 60)
    window.close()
    assert wait_gone(pid, 10) and pid not in [p.pid for p in model_children(os.getpid())]
