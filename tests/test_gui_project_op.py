"""The app's one pattern for store work (``gui.jobs.ProjectOp``, ``Page.project_op``): the project is
opened on a worker thread of the app's job runner, the result and the context fields it changed
arrive on the UI thread, and a user mistake is said on the page, not as a traceback dialog."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from core.store import Project  # noqa: E402


def wait_idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.ctx.runner.active(), timeout=30_000)


def test_a_project_op_opens_the_project_off_the_ui_thread_and_reports_on_it(qtbot, window, tmp_path: Path) -> None:
    path = tmp_path / "op.knowmix"
    Project(path).close()
    window.ctx.open_project(path)
    page = window.by_key["export"]
    seen: dict = {}

    def work(project, _job) -> int:
        seen["work_thread"] = threading.current_thread()
        seen["path"] = Path(project.path)
        return 7

    def done(result: int) -> None:
        seen["done_thread"] = threading.current_thread()
        seen["result"] = result
        seen["plan_id_when_done"] = window.ctx.plan_id  # the changed fields are set before on_done

    page.project_op("A read", work, changes=lambda n: {"plan_id": n}, on_done=done)
    wait_idle(qtbot, window)
    assert seen["work_thread"] is not threading.main_thread()
    assert seen["done_thread"] is threading.main_thread()
    assert seen["path"].resolve() == path.resolve() and seen["result"] == 7
    assert seen["plan_id_when_done"] == 7 and window.ctx.plan_id == 7


def test_a_project_op_error_reaches_the_page_as_a_message_not_a_traceback(qtbot, window, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "gone.knowmix"
    Project(path).close()
    window.ctx.open_project(path)
    path.unlink()  # moved away while the app had it open
    page = window.by_key["export"]
    dialogs: list = []
    monkeypatch.setattr(window.ctx, "show_error", lambda exc, tb="": dialogs.append((exc, tb)))
    done: list = []

    page.project_op("A read", lambda project, _job: project.datasets(), on_done=done.append)
    wait_idle(qtbot, window)
    assert not done and not dialogs  # no result, and no error dialog with a traceback
    assert page.message.kind == "error"
    text = page.message.text()
    assert "gone.knowmix" in text and "Traceback" not in text
    assert not path.exists()  # the op opens an existing project only: it never creates one by mistake
