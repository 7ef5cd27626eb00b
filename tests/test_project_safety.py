"""Two KnowMix instances on one project, a read-only project and a full disk.

* A probe run is claimed by one process at a time (``Project.claim_probe_run``): a second probe of
  the same run is told the project is in use (a ProjectError naming the file and what to do); a
  claim whose process is gone is stale and is taken over, so a kill never leaves a run locked.
  Two real ``knowmix probe`` processes on one project leave it intact: one run, no lost or
  duplicated results, ``PRAGMA integrity_check`` ok.
* A read-only project (file and folder) gets a plain ProjectError when probing and when planning,
  and still opens for reading. The test runs the command as an unprivileged user when the suite
  runs as root (permission bits do not stop root).
* A full disk (SQLite's "database or disk is full", injected at the write) says so, and the work
  saved before it is kept and resumed.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import sqlite_utils

from core.errors import ProjectError
from core.paths import sample_dataset
from core.plan import PlanSettings, build_plan, save_plan
from core.probe import ProbeRequest, ProbeSettings, run_probe
from core.store import Project, pid_alive
from tests.scripted import FakeDataset, ScriptedBackend
from tests.test_cli import (
    assert_one_clear_error,
    probe_args,
    read_only,
    run_cli,
    start_cli,
    wait_for_saved_results,
)

REPO = Path(__file__).resolve().parents[1]
SETTINGS = ProbeSettings(n_sets=2, samples_per_set=2, chunk_size=4, preset="test")


@pytest.fixture
def examples(sample_examples):
    return sample_examples[:24]


def knowledge_of(examples) -> dict:
    return {ex.question: (ex.answers[0], 0.5, 0.3) for ex in examples}


def scripted_project(path: Path, examples) -> tuple[Project, int]:
    project = Project(path)
    return project, project.add_dataset(FakeDataset(examples))


def probe(project: Project, dataset_id: int, examples, **kw):
    request = ProbeRequest(dataset_id=dataset_id, pool_dataset_id=None, model_spec="scripted", settings=SETTINGS)
    return run_probe(project, request, backend=ScriptedBackend(knowledge_of(examples)), **kw)


def claims(path: Path) -> dict[str, dict]:
    conn = read_only(path)
    try:
        return {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta WHERE key LIKE 'probe_run_owner:%'")}
    finally:
        conn.close()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    assert not pid_alive(proc.pid)
    return proc.pid


# ----------------------------------------------------------------------------- run claims


def test_a_second_project_object_is_told_the_run_is_in_use_until_the_first_lets_go(tmp_path: Path, examples) -> None:
    path = tmp_path / "p.knowmix"
    a, dataset_id = scripted_project(path, examples)
    run_id = probe(a, dataset_id, examples).run_id
    b = Project(path)
    try:
        a.claim_probe_run(run_id)
        with pytest.raises(ProjectError) as exc:
            b.claim_probe_run(run_id)
        text = str(exc.value)
        assert str(path) in text and "in use" in text and f"process {os.getpid()}" in text
        assert "Wait for it to finish" in text and "run the same probe again" in text
        a.claim_probe_run(run_id)  # the owner may claim again
        a.release_probe_run(run_id)
        b.claim_probe_run(run_id)  # free now
        b.release_probe_run(run_id)
        assert claims(path) == {}
    finally:
        a.close()
        b.close()


def test_a_claim_of_a_dead_process_is_stale_and_taken_over(tmp_path: Path, examples) -> None:
    path = tmp_path / "p.knowmix"
    project, dataset_id = scripted_project(path, examples)
    with project:
        run_id = probe(project, dataset_id, examples).run_id
        stale = {"pid": dead_pid(), "host": __import__("socket").gethostname(), "token": "killed", "at": 0.0}
        project.db["meta"].upsert({"key": f"probe_run_owner:{run_id}", "value": json.dumps(stale)}, pk="key")
        project.claim_probe_run(run_id)  # no error: its owner is gone
        assert claims(path)[f"probe_run_owner:{run_id}"]["pid"] == os.getpid()
        project.release_probe_run(run_id)


def test_a_claim_of_a_live_process_is_respected(tmp_path: Path, examples) -> None:
    path = tmp_path / "p.knowmix"
    project, dataset_id = scripted_project(path, examples)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with project:
            outcome = probe(project, dataset_id, examples)
            live = {"pid": sleeper.pid, "host": __import__("socket").gethostname(), "token": "other", "at": 0.0}
            project.db["meta"].upsert({"key": f"probe_run_owner:{outcome.run_id}", "value": json.dumps(live)}, pk="key")
            with project.transaction():  # make the run look unfinished, as if the other process were mid-way
                project.db.execute("DELETE FROM probe_results WHERE rowid IN (SELECT rowid FROM probe_results LIMIT 5)")
            with pytest.raises(ProjectError) as exc:
                probe(project, dataset_id, examples)
            assert f"process {sleeper.pid}" in str(exc.value) and "in use" in str(exc.value)
            assert len(project.done_example_ids(outcome.run_id)) == len(examples) - 5  # nothing was written
            sleeper.kill()
            sleeper.wait(30)
            resumed = probe(project, dataset_id, examples)  # the owner died: the run resumes
            assert resumed.run_id == outcome.run_id and resumed.resumed_from == len(examples) - 5
            assert resumed.n_done == len(examples)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait(30)


def test_the_claim_is_released_when_a_probe_finishes_or_fails(tmp_path: Path, examples) -> None:
    path = tmp_path / "p.knowmix"
    project, dataset_id = scripted_project(path, examples)
    with project:
        probe(project, dataset_id, examples)
        assert claims(path) == {}

        class Broken(ScriptedBackend):
            def generate(self, requests):
                raise RuntimeError("the model crashed")

        with pytest.raises(RuntimeError):
            run_probe(
                project,
                ProbeRequest(
                    dataset_id=dataset_id,
                    pool_dataset_id=None,
                    model_spec="scripted",
                    settings=ProbeSettings(n_sets=1, samples_per_set=0),
                ),
                backend=Broken(knowledge_of(examples)),
            )
        assert claims(path) == {}


def test_two_project_objects_probing_at_once_in_two_threads(tmp_path: Path, examples) -> None:
    """As the app and a second window would: both add the data and start the same probe at the same moment."""
    path = tmp_path / "p.knowmix"
    Project(path).close()
    start = threading.Barrier(2)
    outcomes: list = []
    errors: list[BaseException] = []

    class Slow(ScriptedBackend):
        def generate(self, requests):
            time.sleep(0.02)
            return super().generate(requests)

    def worker() -> None:
        try:
            with Project(path) as project:
                start.wait(10)
                dataset_id = project.add_dataset(FakeDataset(examples))
                outcomes.append(
                    run_probe(
                        project,
                        ProbeRequest(dataset_id=dataset_id, pool_dataset_id=None, model_spec="scripted", settings=SETTINGS),
                        backend=Slow(knowledge_of(examples)),
                    )
                )
        except BaseException as exc:  # noqa: BLE001 - collected for the asserts below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(outcomes) + len(errors) == 2
    assert any(o.status == "finished" for o in outcomes)
    for exc in errors:  # the one that lost the race was told plainly
        assert isinstance(exc, ProjectError) and "in use" in str(exc), repr(exc)
    for o in outcomes:
        assert o.status in ("finished", "already finished")
    conn = read_only(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM datasets").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM probe_runs").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT example_id) FROM probe_results").fetchone() == (24, 24)
    finally:
        conn.close()
    assert claims(path) == {}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")
def test_two_probe_processes_on_one_project(tmp_path: Path) -> None:
    """The second `knowmix probe` of the same run is refused while the first works; nothing is corrupted."""
    project = tmp_path / "p.knowmix"
    args = probe_args(project, 24) + ["--threads", "1"]
    first, out, err = start_cli(*args, cwd=tmp_path)
    try:
        wait_for_saved_results(project, first, err, at_least=1)
        second = run_cli(*args, cwd=tmp_path, timeout=300)
        assert second.returncode == 2, second.stderr
        line = assert_one_clear_error(
            second.returncode, second.stderr, str(project), "in use", f"process {first.pid}", "Wait for it to finish"
        )
        assert "Traceback" not in line
        assert first.wait(300) == 0, err.read_text()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(30)
    conn = read_only(project)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM probe_runs").fetchone()[0] == 1
        assert conn.execute("SELECT status, n_done, n_total FROM probe_runs").fetchone() == ("finished", 24, 24)
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT example_id) FROM probe_results").fetchone() == (24, 24)
        assert conn.execute("SELECT COUNT(*) FROM datasets").fetchone()[0] == 2  # data and pool, once each
    finally:
        conn.close()
    assert claims(project) == {}
    assert "Probed 24 questions" in out.read_text()


# ----------------------------------------------------------------------------- a read-only project


def _as_unprivileged_user() -> list[str]:
    """A command prefix that runs a command as a user the permission bits apply to (root ignores them)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("running as root without setpriv: cannot make a project read-only for the test")
    prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]  # nobody
    # nobody must be able to read this checkout and its venv; a clone in a private (0700) folder is not
    reach = subprocess.run(
        [*prefix, sys.executable, "-c", "import core.store"],
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if reach.returncode != 0:
        pytest.skip(
            "user nobody cannot read this checkout or its venv (a clone in a private folder), so the "
            f"read-only check cannot run as another user here: {reach.stderr.strip()[-200:]}"
        )
    return prefix


@pytest.fixture
def read_only_project(examples):
    """A finished (scripted) probe in a project whose file and folder are read-only."""
    top = Path(tempfile.mkdtemp(prefix="knowmix-ro-"))  # not under pytest's 0700 temp root: nobody must reach it
    top.chmod(0o755)
    folder = top / "shared"
    folder.mkdir()
    path = folder / "p.knowmix"
    project, dataset_id = scripted_project(path, examples)
    with project:
        probe(project, dataset_id, examples)
    home = top / "home"
    home.mkdir()
    home.chmod(0o777)
    path.chmod(0o444)
    folder.chmod(0o555)
    try:
        yield path, home
    finally:
        folder.chmod(0o755)
        shutil.rmtree(top, ignore_errors=True)


def run_cli_as_user(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "KNOWMIX_HOME": str(home), "HOME": str(home)}
    return subprocess.run(
        [*_as_unprivileged_user(), sys.executable, "-m", "core", *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_a_read_only_project_gets_a_clear_message_when_probing_and_planning(read_only_project) -> None:
    path, home = read_only_project
    before = path.read_bytes()
    probed = run_cli_as_user(
        "probe", "--data", str(sample_dataset()), "--limit", "8", "--preset", "smoke", "--project", str(path), home=home
    )
    assert_one_clear_error(probed.returncode, probed.stderr, str(path), "read-only", "Copy the project")
    assert probed.returncode == 2
    planned = run_cli_as_user("plan", "--project", str(path), home=home)
    assert_one_clear_error(planned.returncode, planned.stderr, str(path), "read-only", "Copy the project")
    assert "OperationalError" not in probed.stderr + planned.stderr
    # ... and it still opens for reading: the summary works
    summary = run_cli_as_user("summary", "--project", str(path), "--json", home=home)
    assert summary.returncode == 0, summary.stderr
    assert sum(json.loads(summary.stdout)["overall"]["counts"].values()) == 24
    assert path.read_bytes() == before
    assert not (path.parent / "p.knowmix-wal").exists()


# ----------------------------------------------------------------------------- a full disk


def disk_full_after(monkeypatch: pytest.MonkeyPatch, table: str, calls: int) -> None:
    """Writes of ``table`` fail as SQLite fails on a full disk, from the ``calls``-th on."""
    real = sqlite_utils.db.Table.insert_all
    seen = {"n": 0}

    def insert_all(self, *args, **kwargs):
        if self.name == table:
            seen["n"] += 1
            if seen["n"] >= calls:
                raise sqlite3.OperationalError("database or disk is full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(sqlite_utils.db.Table, "insert_all", insert_all)


def test_a_full_disk_during_a_probe_says_so_and_keeps_the_finished_batches(
    tmp_path: Path, examples, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.knowmix"
    project, dataset_id = scripted_project(path, examples)
    with project:
        with monkeypatch.context() as m:
            disk_full_after(m, "probe_results", calls=3)  # two batches of 4 are saved, the third hits the full disk
            with pytest.raises(ProjectError) as exc:
                probe(project, dataset_id, examples)
        text = str(exc.value)
        assert "disk" in text and "full" in text and str(path) in text
        assert "Free some space" in text and "saved so far is kept" in text
        assert "OperationalError" not in text
        run = project.probe_run()
        assert run.status == "failed" and run.n_done == 8
        assert len(project.done_example_ids(run.id)) == 8
        assert claims(path) == {}
        # space freed: the same probe resumes from the saved batches and finishes
        outcome = probe(project, dataset_id, examples)
        assert outcome.run_id == run.id and outcome.resumed_from == 8 and outcome.n_done == len(examples)
        assert project.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_full_disk_while_saving_a_plan_says_so(tmp_path: Path, examples, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.knowmix"
    project, dataset_id = scripted_project(path, examples)
    with project:
        probe(project, dataset_id, examples)
        plan = build_plan(project, settings=PlanSettings(mix="natural"))
        with monkeypatch.context() as m:
            disk_full_after(m, "plans", calls=1)
            with pytest.raises(ProjectError) as exc:
                save_plan(project, plan)
        assert "full" in str(exc.value) and "kept" in str(exc.value)
        assert project.db.execute("SELECT COUNT(*) FROM plans").fetchone()[0] == 0  # nothing half-written
        assert project.probe_run().status == "finished"
        save_plan(project, plan)  # space freed
        assert project.db.execute("SELECT COUNT(*) FROM plans").fetchone()[0] == 1
