"""The app never loses a user's file (issue 19, item 1): "New project" over an existing project
keeps it, the Export step says inline why it will not write over a file, and opening a project
cleans the temp files a killed run left in its runs folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from core.store import Project  # noqa: E402
from gui.qt import QtWidgets  # noqa: E402
from tests.test_export_safety import team_project  # noqa: E402
from tests.test_temp_files import dead_pid  # noqa: E402


def test_new_project_over_an_existing_one_keeps_it_and_its_wal(qtbot, window, tmp_path, monkeypatch) -> None:
    project, _ = team_project(tmp_path)  # a project with a dataset and a finished probe
    project.close()
    path = tmp_path / "p.knowmix"
    wal = tmp_path / "p.knowmix-wal"
    wal.write_bytes(b"")  # what a project left open by another window has beside it
    before = path.read_bytes()
    options: list = []

    def save_name(*args, **kwargs):
        options.append(kwargs.get("options"))
        return str(path), ""

    asked: list[str] = []

    def question(parent, title, text, *args, **kwargs):
        asked.append(text)
        return QtWidgets.QMessageBox.StandardButton.No

    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", staticmethod(save_name))
    monkeypatch.setattr(QtWidgets.QMessageBox, "question", staticmethod(question))
    page = window.by_key["project"]
    page.new_project()
    assert asked and "p.knowmix" in asked[0] and "already exists" in asked[0]
    assert path.read_bytes() == before and wal.exists()
    assert window.ctx.project_path is None
    assert "another name" in page.message.text()
    # the file dialog does not ask "Replace?" first: the app's own question is the one that counts
    assert options and options[0] & QtWidgets.QFileDialog.Option.DontConfirmOverwrite

    monkeypatch.setattr(QtWidgets.QMessageBox, "question", staticmethod(lambda *a, **k: QtWidgets.QMessageBox.StandardButton.Yes))
    page.new_project()  # "Open it instead?" Yes: the existing project opens, as it was
    assert window.ctx.project_path == path.resolve()
    with Project(path, create=False) as p:
        assert len(p.probe_runs()) == 1 and len(p.datasets()) == 1


def test_export_step_says_inline_why_it_will_not_write_over_a_file(qtbot, window, tmp_path) -> None:
    project, plan = team_project(tmp_path)
    from core.plan import save_plan

    plan_id = save_plan(project, plan)
    project.close()
    window.ctx.open_project(tmp_path / "p.knowmix")
    window.ctx.set(plan_id=plan_id)
    window.go("export")
    page = window.by_key["export"]
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "train.jsonl").write_text("theirs\n", encoding="utf-8")
    page.export_plan_to(folder)
    qtbot.waitUntil(lambda: not window.ctx.runner.busy and page.message.kind in ("ok", "error"), timeout=30_000)
    assert page.message.kind == "error"
    assert str(folder / "train.jsonl") in page.message.text() and "new (empty) folder" in page.message.text()
    assert "--force" not in page.message.text()  # a command-line flag means nothing in the app
    assert (folder / "train.jsonl").read_text(encoding="utf-8") == "theirs\n"


def test_opening_a_project_cleans_a_killed_runs_temp_folders(qtbot, window, tmp_path) -> None:
    from core.train.runs import run_folder

    path = tmp_path / "p.knowmix"
    Project(path).close()
    stale = run_folder(path, 1) / "checkpoints" / f"tmp-{dead_pid()}"
    stale.mkdir(parents=True)
    live = run_folder(path, 1) / "checkpoints" / f"tmp-{os.getppid()}"
    live.mkdir()
    window.ctx.open_project(path)
    assert not stale.exists() and live.exists()
    assert Path(run_folder(path, 1)).is_dir()
