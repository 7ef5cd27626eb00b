"""The server backend (core/backends/server.py) against a real OpenAI-compatible server.

llama-cpp-python's own server (``python -m llama_cpp.server``, its ``server`` extra) serves the
built-in GGUF on 127.0.0.1, started once for the module (it requires an API key, so every test
also shows the key is sent) and stopped after. The kill-and-resume test starts its own server,
because it kills it. Tiny stand-in servers (``http.server``) are used only where the test is
about KnowMix's message for a broken server (HTML instead of JSON, seeds ignored), never for a
result.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.backends.base import GenRequest
from core.backends.server import Patience, ServerBackend, ServerUnavailable
from core.datasets import load_dataset, take_balanced
from core.errors import ModelError
from core.models import resolve_model
from core.paths import sample_dataset, sample_pool
from core.probe import ProbeRequest, preset, run_probe
from core.store import Project

REPO = Path(__file__).resolve().parents[1]
KEY_ENV = "KNOWMIX_TEST_SERVER_KEY"
KEY = "sk-knowmix-test-" + "7f3a9c1e5b"  # a value that appears nowhere else
ALIAS = "smollm2-135m"
SETTINGS = dict(n_sets=2, samples_per_set=2, max_tokens=8, chunk_size=2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_llama_server(port: int) -> subprocess.Popen:
    gguf = resolve_model("default").path
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", ALIAS, "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--n_ctx", "2048", "--n_threads", "2", "--api_key", KEY]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    deadline = time.monotonic() + 60
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(req, timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not start in 60 s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


@pytest.fixture(scope="module")
def server_url():
    port = free_port()
    proc = start_llama_server(port)
    yield f"http://127.0.0.1:{port}"
    stop(proc)


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY_ENV


def questions(n: int = 6):
    return take_balanced(load_dataset(sample_dataset()), n), load_dataset(sample_pool())


def probe_with(tmp_path, backend, name="p.knowmix", n=6, **kw):
    ds, pool = questions(n)
    project = Project(tmp_path / name)
    dataset_id, pool_id = project.add_dataset(ds, role="train"), project.add_dataset(pool, role="pool")
    request = ProbeRequest(
        dataset_id=dataset_id, pool_dataset_id=pool_id, model_spec="x", settings=preset("smoke", **SETTINGS), isolate=False
    )
    outcome = run_probe(project, request, backend=backend, **kw)
    return project, outcome


def greedy_class(category: str) -> str:
    return category if category in ("HighlyKnown", "MaybeKnown") else "P(T=0)=0"


# -- results --------------------------------------------------------------------------------------


def test_server_probe_gives_the_local_backends_greedy_categories(tmp_path, server_url, key_env):
    from core.backends.llama_backend import LlamaCppBackend

    with ServerBackend(server_url, api_key_env=key_env) as served:
        assert served.seeded and served.top_k_honoured  # llama.cpp honours both
        assert served.info.backend == "server" and served.info.name == ALIAS and not served.info.extra.get("not_comparable")
        project, outcome = probe_with(tmp_path, served, "server.knowmix", n=4)
    server_rows = {r["example_id"]: r for r in project.probe_results(outcome.run_id)}
    local = LlamaCppBackend(resolve_model("default"), n_ctx=2048, n_threads=2)
    try:
        local_project, local_outcome = probe_with(tmp_path, local, "local.knowmix", n=4)
    finally:
        local.close()
    local_rows = {r["example_id"]: r for r in local_project.probe_results(local_outcome.run_id)}
    assert outcome.status == local_outcome.status == "finished" and len(server_rows) == 4
    assert {i: greedy_class(r["category"]) for i, r in server_rows.items()} == {
        i: greedy_class(r["category"]) for i, r in local_rows.items()
    }
    # the same probe again is the same run (the fingerprint is the model's, not the URL's) and is done
    with ServerBackend(server_url.replace("127.0.0.1", "localhost"), api_key_env=key_env, check_sampling=False) as again:
        assert again.info.fingerprint == served.info.fingerprint
        _, second = probe_with(tmp_path, again, "server.knowmix", n=4)
    assert second.status == "already finished" and second.run_id == outcome.run_id


def test_a_seed_gives_the_same_sample_on_the_server_and_samples_are_its_own_requests(server_url, key_env):
    prompt = "Q: Who wrote Hamlet?\nA:"
    with ServerBackend(server_url, api_key_env=key_env, check_sampling=False) as served:
        served.generate([GenRequest(prompt, n=3, temperature=1.0, top_k=40, seeds=(5, 6, 7), max_tokens=8)])
        assert served.stats.forward_calls == 3  # one request per sample
        # the lazy schedule asks for a subset of the samples: a seed asked again gives its answer again.
        # (Asked in the same cache state: llama.cpp's server re-evaluates a cached prompt's last token
        # alone, and at T=1 that logit difference can change a sample: equal in distribution, not bits.)
        again = [
            served.generate([GenRequest(prompt, n=1, temperature=1.0, top_k=40, seeds=(6,), max_tokens=8)])[0][0]
            for _ in range(2)
        ]
        assert again[0] == again[1]
        assert served.stats.forward_calls == 5


# -- a server that goes away -------------------------------------------------------------------------


def test_killing_the_server_mid_probe_stops_clearly_and_the_same_probe_resumes(tmp_path, key_env):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_llama_server(port)
    try:
        saved: list[int] = []

        def progress(p):
            if "batch saved" in p.message:
                saved.append(p.done)
                if len(saved) == 1:
                    stop(proc)

        served = ServerBackend(url, api_key_env=key_env, patience=Patience(retry_waits=(0.2, 0.4)), check_sampling=False)
        with pytest.raises(ServerUnavailable) as err:
            probe_with(tmp_path, served, n=3, progress=progress)
        served.close()
        message = str(err.value)
        assert f"The server at {url} stopped answering (connection refused) after 3 tries" in message
        assert "run the same command again to resume" in message
        project = Project(tmp_path / "p.knowmix", create=False)
        run = project.probe_run(None)
        assert run.status == "failed" and run.n_done == saved[0] >= 1  # the finished batches are saved
        assert len(list(project.probe_results(run.id))) == saved[0] and "stopped answering" in run.note
        project.close()

        proc = start_llama_server(port)
        with ServerBackend(url, api_key_env=key_env, check_sampling=False) as again:
            project, outcome = probe_with(tmp_path, again, n=3)
        assert outcome.run_id == run.id and outcome.resumed_from == saved[0] and outcome.status == "finished"
        assert len(list(project.probe_results(run.id))) == 3
    finally:
        stop(proc)


# -- one clear line for each failure ------------------------------------------------------------------


def test_an_unreachable_server_is_named_with_what_to_check():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ModelError) as err:
        ServerBackend(url)
    assert str(err.value).startswith(f"Cannot reach the server at {url} (connection refused). Check that the server is running")


def test_a_model_the_server_does_not_serve_lists_the_ones_it_does(server_url, key_env):
    with pytest.raises(ModelError) as err:
        ServerBackend(server_url, model="llama-70b", api_key_env=key_env)
    assert f"does not serve a model named 'llama-70b'. It offers: {ALIAS}." in str(err.value)


def test_a_missing_or_wrong_key_is_told_without_the_key(server_url, monkeypatch):
    with pytest.raises(ModelError) as err:
        ServerBackend(server_url)
    assert "(HTTP 401)" in str(err.value) and "--api-key-env" in str(err.value)
    monkeypatch.setenv(KEY_ENV, "sk-wrong-key-0000")
    with pytest.raises(ModelError) as err:
        ServerBackend(server_url, api_key_env=KEY_ENV)
    assert "sk-wrong-key-0000" not in str(err.value)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(Exception) as err:
        ServerBackend(server_url, api_key_env=KEY_ENV)
    assert f"The environment variable {KEY_ENV} (--api-key-env) is not set" in str(err.value)


CITIES = ("Rome", "Oslo", "Lima", "Bern", "Kyiv", "Baku")


class _Stub(BaseHTTPRequestHandler):
    """html: a web page at every address; unseeded: OpenAI-shaped answers that ignore seed and top_k."""

    mode = "html"

    def log_message(self, *args):
        pass

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.mode == "html":
            self._send(200, "text/html", b"<html><body>Welcome to my router</body></html>")
        else:
            self._send(200, "application/json", json.dumps({"object": "list", "data": [{"id": "stub"}]}).encode())

    served = itertools.count()  # an unseeded server: no two samples alike, whatever the seed

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        n = next(self.served)
        if self.mode == "capped" and body["temperature"] > 2:  # servers that cap the temperature at 2
            self._send(400, "application/json", b'{"error": {"message": "temperature must be between 0 and 2"}}')
            return
        if body["temperature"] == 0 or (self.mode in ("seeded", "capped") and body.get("top_k") == 1):
            text = " Paris"
        elif self.mode in ("seeded", "capped"):  # honours seed and top_k: the text is a function of the seed
            text = f" {CITIES[body['seed'] % len(CITIES)]} {body['seed']}"
        else:
            text = f" {CITIES[n % len(CITIES)]} {n}"
        self._send(200, "application/json", json.dumps({"choices": [{"text": text, "index": 0}]}).encode())


@pytest.fixture
def stub():
    servers = []

    def start(mode: str) -> str:
        handler = type("Handler", (_Stub,), {"mode": mode})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_a_server_that_is_not_openai_compatible_says_so(stub):
    url = stub("html")
    with pytest.raises(ModelError) as err:
        ServerBackend(url)
    assert f"The server at {url} answered {url}/v1/models but not as an OpenAI-compatible server (HTTP 200, text/html)" in str(
        err.value
    )


def test_a_server_that_ignores_seeds_marks_the_run_not_comparable(tmp_path, stub):
    url = stub("unseeded")
    with ServerBackend(url) as served:
        assert not served.seeded and not served.top_k_honoured
        note = served.info.extra["not_comparable"]
        assert note.startswith(f"NOT COMPARABLE: the server at {url} ignores seed and top_k")
        project, outcome = probe_with(tmp_path, served, n=2)
    run = project.probe_run(outcome.run_id)
    assert run.note == f"session 1: the server ignored seed and top_k\n{note}"
    identity = run.settings
    assert "server_seeded" not in identity  # recorded per session, not in the identity (it can flip)


def test_a_seed_check_that_flips_between_sessions_resumes_the_run_and_notes_each_session(tmp_path, stub):
    """Issue 20, item 8: llama.cpp's server can pass the seed check in one session and fail it in the
    next; the probe resumes the same run (it used to start a new one) and the note says per session."""
    from core.jobs import CancelToken

    token = CancelToken()
    with ServerBackend(stub("seeded")) as served:
        assert served.seeded and served.top_k_honoured
        project, first = probe_with(tmp_path, served, n=8, cancel=token, progress=lambda p: token.cancel() if p.done else None)
    assert first.status == "cancelled" and 0 < first.n_done < 8
    project.close()
    with ServerBackend(stub("unseeded")) as served:
        project, second = probe_with(tmp_path, served, n=8)
    assert second.run_id == first.run_id and second.resumed_from == first.n_done and second.status == "finished"
    note = project.probe_run(second.run_id).note
    lines = note.splitlines()
    assert lines[:2] == ["session 1: the server honoured seed and top_k", "session 2: the server ignored seed and top_k"]
    assert lines[2].startswith("NOT COMPARABLE")
    assert len(project.probe_runs()) == 1


def test_a_temperature_the_server_refuses_is_told_as_such(stub):
    url = stub("capped")
    with ServerBackend(url) as served:  # the start-up check itself stays within 2
        assert served.seeded and served.top_k_honoured
        with pytest.raises(ServerUnavailable) as err:
            served.generate([GenRequest("Q: x\nA:", max_tokens=4, temperature=2.5, top_k=40, seeds=(1,))])
    text = str(err.value)
    assert "refused the sampling temperature 2.5" in text and "--temperature" in text
    assert "longer than the server's context" not in text


# -- the API key is never written, and only the URL's host is contacted -----------------------------------


def test_the_api_key_is_never_written_and_only_the_servers_host_is_contacted(tmp_path, server_url, key_env, monkeypatch):
    home = Path(os.environ["KNOWMIX_HOME"])  # conftest: every test has its own app folder (settings, logs)
    project = tmp_path / "k.knowmix"
    data = tmp_path / "six.jsonl"
    ds, _ = questions(2)
    data.write_text("".join(json.dumps({"question": e.question, "answer": e.answers[0]}) + "\n" for e in ds.examples))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    base = [sys.executable, "-m", "core"]
    probe = base + ["probe", "--data", str(data), "--pool", str(sample_pool()), "--project", str(project)]
    probe += ["--preset", "smoke", "--max-tokens", "8", "--server", server_url, "--api-key-env", key_env]
    ran = subprocess.run(probe, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert f"Server model: {ALIAS}" in ran.stderr and "Probed 2 questions" in ran.stdout
    report = subprocess.run(base + ["report", "--project", str(project)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    html = [p for p in tmp_path.rglob("*.html")]
    assert html and "server" in html[0].read_text(encoding="utf-8")
    outputs = ran.stdout + ran.stderr + report.stdout + report.stderr
    written = [p for folder in (tmp_path, home) for p in folder.rglob("*") if p.is_file()]
    assert project in written and any(p.suffix == ".html" for p in written)
    leaks = [str(p) for p in written if KEY.encode() in p.read_bytes()] + (["CLI output"] if KEY in outputs else [])
    # every message KnowMix raises on the way: wrong model, bad address, a key the server refuses
    messages = []
    for make in (
        lambda: ServerBackend(server_url, model="nope", api_key_env=key_env),
        lambda: ServerBackend(f"http://127.0.0.1:{free_port()}", api_key_env=key_env),
        lambda: ServerBackend(f"http://user:{KEY}@127.0.0.1:1"),
    ):
        with pytest.raises(Exception) as err:
            make()
        messages.append(str(err.value))
    monkeypatch.setenv(key_env, KEY + "x")
    with pytest.raises(ModelError) as err:
        ServerBackend(server_url, api_key_env=key_env)
    messages.append(str(err.value))
    assert not leaks and not [m for m in messages if KEY in m]

    # with --server, the only host contacted is the URL's
    monkeypatch.setenv(key_env, KEY)
    seen: list = []
    real = socket.create_connection

    def recording(address, *args, **kwargs):
        seen.append(address[:2])
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", recording)
    with ServerBackend(server_url, api_key_env=key_env) as served:
        served.generate([GenRequest("Q: Capital of Peru?\nA:", max_tokens=4)])
    port = int(server_url.rsplit(":", 1)[1])
    assert seen and set(seen) == {("127.0.0.1", port)}


# -- the app: "A model on a server" in the Model step, then the Probe step probes through it -----------------


def test_the_app_checks_a_server_off_the_ui_thread_and_probes_through_it(qtbot, window, tmp_path, server_url, key_env):
    pytest.importorskip("pytestqt")
    from core.datasets import load_dataset, take_balanced

    path = tmp_path / "app.knowmix"
    with Project(path) as p:
        p.add_dataset(take_balanced(load_dataset(sample_dataset()), 2), role="train")
        p.add_dataset(load_dataset(sample_pool()), role="pool")
    assert window.by_key["project"].open_path(path)
    window.go("model")
    page = window.by_key["model"]
    page.rb_server.setChecked(True)
    page.url_edit.setText(f"{server_url}/v1")
    page.key_env_edit.setText(key_env)
    page.key_env_edit.editingFinished.emit()
    assert not page.path_edit.isEnabled() and page.url_edit.isEnabled() and not page.backend_combo.isEnabled()
    page.load_button.click()
    assert window.ctx.runner.active()  # the checks run on a worker thread
    qtbot.waitUntil(lambda: not window.ctx.runner.active(), timeout=60_000)
    assert page.message.kind == "ok", page.message.text()
    assert window.ctx.model_info.backend == "server" and ALIAS in page.info_label.text()

    window.go("probe")
    probe = window.by_key["probe"]
    probe.preset_combo.setCurrentIndex(probe.preset_combo.findData("smoke"))
    probe.start_button.click()
    qtbot.waitUntil(lambda: not window.ctx.runner.active(), timeout=240_000)
    with Project(path, create=False) as p:
        run = p.probe_run(None)
    assert run.status == "finished" and run.backend == "server" and run.n_done == 2
    window.close()
    settings_files = [f for f in Path(os.environ["KNOWMIX_HOME"]).rglob("*") if f.is_file()]
    assert not [f for f in settings_files if KEY.encode() in f.read_bytes()]
    assert KEY.encode() not in path.read_bytes()


# -- the network only where the user pointed: no redirects, no proxies from the environment ----------------


class _Redirector(BaseHTTPRequestHandler):
    """Answers every request with a redirect to ``target`` and records what it got."""

    target = ""
    seen: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(302)
        self.send_header("Location", self.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Recorder(BaseHTTPRequestHandler):
    """A stand-in for another host (or a proxy): records every request it gets, and the Authorization header."""

    seen: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        body = json.dumps({"object": "list", "data": [{"id": "stub"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_CONNECT = do_GET


@pytest.fixture
def serve():
    servers = []

    def start(handler) -> str:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_a_redirect_is_not_followed_and_the_key_stays_with_the_server_named(serve, monkeypatch):
    other = type("Other", (_Recorder,), {"seen": []})
    elsewhere = serve(other).replace("127.0.0.1", "localhost")  # another host name: the key must not go there
    redirector = type("Redirector", (_Redirector,), {"seen": [], "target": elsewhere})
    url = serve(redirector)
    monkeypatch.setenv(KEY_ENV, KEY)
    with pytest.raises(ModelError) as err:
        ServerBackend(url, api_key_env=KEY_ENV, check_sampling=False)
    message = str(err.value)
    assert f"redirected to {elsewhere}/v1/models" in message and "does not follow redirects" in message
    assert "\n" not in message and KEY not in message
    assert other.seen == []  # never contacted, so the key never reached it
    assert redirector.seen == [("/v1/models", f"Bearer {KEY}")]


def test_proxy_variables_are_ignored_and_server_proxy_is_used(serve, stub, monkeypatch):
    proxy = type("Proxy", (_Recorder,), {"seen": []})
    proxy_url = serve(proxy)
    url = stub("seeded")
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, proxy_url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setattr(urllib.request, "_opener", None)  # urlopen reads the variables when it first builds its opener
    with ServerBackend(url, check_sampling=False) as served:
        assert served.model == "stub"
    assert proxy.seen == []  # the environment's proxy was not contacted
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var)
    ServerBackend(url, check_sampling=False, proxy=proxy_url).close()
    assert [p for p, _ in proxy.seen] == [f"{url}/v1/models"]  # the named proxy carries the request


def test_server_proxy_needs_server_and_a_url(tmp_path, capsys):
    from core.cli import main

    data = sample_dataset()
    assert main(["probe", "--data", str(data), "--server-proxy", "http://127.0.0.1:9"]) != 0
    assert "--server-proxy needs --server URL" in capsys.readouterr().err
    code = main(["probe", "--data", str(data), "--server", "http://127.0.0.1:9", "--server-proxy", "ftp://x"])
    assert code != 0 and "is not an http:// or https:// URL" in capsys.readouterr().err
