"""The app treats a project file as data (issue 19, item 2), offscreen.

* A project whose last probe went through a server (with a key variable) does not make that server
  the app's model: the Model step shows "This project was probed through server URL; use it?", no
  request is sent until the user clicks, and the key variable is never taken from the project.
* A local model path from the project is still pre-filled, and shown.
* "Open folder" opens only a folder inside the project's runs folder, never a file or a path the
  project's rows point to elsewhere.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from tests.test_gui_app import open_project, sample_project, wait_idle  # noqa: E402


class _Recorder(BaseHTTPRequestHandler):
    seen: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET


@pytest.fixture
def elsewhere():
    handler = type("Elsewhere", (_Recorder,), {"seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def with_probe_run(path: Path, model_spec: str, model_path: str) -> Path:
    """Add a finished probe run naming ``model_spec`` (as a project file from someone else would)."""
    conn = sqlite3.connect(str(path))
    try:
        dataset_id = conn.execute("SELECT id FROM datasets WHERE role = 'train'").fetchone()[0]
        conn.execute(
            "INSERT INTO probe_runs (dataset_id, model_spec, model_name, model_path, model_fingerprint, backend, preset, "
            "settings, status, n_total, n_done, created_at, updated_at) VALUES (?, ?, 'm', ?, 'f', 'server', 'smoke', '{}', "
            "'done', 0, 0, 0, 0)",
            [dataset_id, model_spec, model_path],
        )
        conn.commit()
    finally:
        conn.close()
    return path


def test_a_projects_server_is_offered_not_used_and_its_key_variable_never_taken(qtbot, window, tmp_path, elsewhere, monkeypatch):
    url, handler = elsewhere
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-send-me")
    spec = "server:" + json.dumps({"url": url, "model": "m", "api_key_env": "AWS_SECRET_ACCESS_KEY"})
    project = with_probe_run(sample_project(tmp_path / "shared.knowmix", 4), spec, url)
    before = window.ctx.model_spec
    open_project(window, project)
    assert window.ctx.model_spec == before == "default"  # the user's choice stays
    window.go("model")
    page = window.by_key["model"]
    assert page.offer_box.isVisible()
    assert f"This project was probed through server {url}; use it?" in page.offer_label.text()
    assert window.step_states()["model"] == "ready"
    window.go("probe")
    assert "AWS_SECRET_ACCESS_KEY" not in window.ctx.model_spec
    assert handler.seen == []  # nothing was sent to the project's server
    window.go("model")
    page.offer_button.click()
    chosen = json.loads(window.ctx.model_spec[len("server:") :])
    assert chosen["url"] == url and chosen["model"] == "m"
    assert chosen["api_key_env"] == ""  # the key variable is the user's to name
    assert not page.offer_box.isVisible()
    assert page.rb_server.isChecked() and page.url_edit.text() == url and page.key_env_edit.text() == ""
    wait_idle(qtbot, window, 120)  # the Model step's hardware look


def test_a_server_from_knowmix_probe_server_is_offered_too(qtbot, window, tmp_path):
    project = with_probe_run(sample_project(tmp_path / "cli.knowmix", 4), "https://elsewhere.example:8000", "https://x")
    open_project(window, project)
    assert window.ctx.model_spec == "default"
    assert window.ctx.offered_spec and "https://elsewhere.example:8000" in window.ctx.offered_spec


def test_a_local_model_from_the_project_is_prefilled_and_shown(qtbot, window, tmp_path):
    model = tmp_path / "team-model.gguf"
    model.write_bytes(b"GGUF")
    project = with_probe_run(sample_project(tmp_path / "local.knowmix", 4), str(model), str(model))
    open_project(window, project)
    assert window.ctx.model_spec == str(model) and window.ctx.offered_spec is None
    window.go("model")
    page = window.by_key["model"]
    assert page.path_edit.text() == str(model) and not page.offer_box.isVisible()
    wait_idle(qtbot, window, 120)


def test_open_folder_opens_only_a_folder_inside_the_projects_runs_folder(qtbot, tmp_path, monkeypatch):
    from gui.pages import export
    from gui.qt import QtGui

    opened: list[str] = []
    monkeypatch.setattr(QtGui.QDesktopServices, "openUrl", staticmethod(lambda url: opened.append(url.toLocalFile())))
    project = tmp_path / "p.knowmix"
    run = tmp_path / "p-runs" / "run-1"
    run.mkdir(parents=True)
    (run / "adapter.sh").write_text("echo hi\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "p-runs" / "run-2").symlink_to(outside)
    for refused in (run / "adapter.sh", outside, tmp_path / "p-runs" / "run-2", tmp_path / "p-runs" / "run-1" / ".." / ".."):
        assert not export.open_run_folder(refused, project)
    assert opened == []
    assert export.open_run_folder(run, project)
    assert opened == [str(run)]


def test_the_runs_panel_stops_a_worker_another_knowmix_left_running(qtbot, window, tmp_path):
    """A worker whose app died (its claim's app process is gone, the worker lives) is stopped from the next app."""
    import os
    import subprocess
    import sys

    from core.store import Project
    from core.store import runs as store
    from core.train.runs import RUNNING, update_run
    from tests.test_run_paths import new_run
    from tests.test_train_claims import foreign_claim, gone, start_group

    if os.name != "posix":
        pytest.skip("process groups")
    path = sample_project(tmp_path / "t.knowmix", 4)
    run_id = new_run(path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    worker, child = start_group()
    try:
        with Project(path) as project:
            update_run(project, run_id, status=RUNNING, worker_pid=worker.pid)
            claim = foreign_claim(os.getpid(), worker=worker.pid)
            claim.update(pid=dead.pid, started=None)
            store.claim_train_run(project, run_id, claim, lambda c: False)
        open_project(window, path)
        window.go("train")
        page = window.by_key["train"]
        page.refresh()
        page.update_actions()
        assert page.runs_box.stop_button.isVisible()
        assert not page.resume_button.isEnabled()  # its worker still trains it
        page.runs_box.stop_button.click()
        assert f"(process {worker.pid}) to stop" in page.message.text()
        assert gone(worker.pid) and gone(child)
        worker.wait(10)
        wait_idle(qtbot, window, 120)
    finally:
        from core.train.claims import kill_group

        kill_group(worker)
