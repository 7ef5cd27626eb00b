"""One run, one worker (core/train/claims.py): a training run is claimed in one transaction.

* Two resumes of one run at once (two windows: two threads here; the CLI and the app: another
  process) start one worker; the second is told "this run is being trained by another KnowMix
  (process N)".
* A claim whose processes are gone, or whose process id now belongs to another program, is
  taken over; one whose app died while its worker still trains is not.
* The next app start can stop such a worker (SIGTERM to its process group), and a kill reaches
  every process the worker started (torchrun's training processes).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from core.errors import ProjectError
from core.store import Project
from core.store import runs as store
from core.train import claims, runner
from tests.test_run_paths import new_run

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process groups")

# A stand-in for torchrun: a session leader that starts a training process of its own, in a session of its
# own as torchrun does (so the launcher's process group alone does not reach it), both sleeping; it
# passes a SIGTERM on as torchrun does.
LAUNCHER = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    def forward(*args):  # torchrun passes a SIGTERM on to its processes
        child.terminate()
        child.wait()
        sys.exit(0)
    signal.signal(signal.SIGTERM, forward)
    print(child.pid, flush=True)
    time.sleep(120)
    """
)


def start_group() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True, start_new_session=True)
    child = int(proc.stdout.readline())
    return proc, child


def gone(pid: int, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def foreign_claim(pid: int, worker: int | None = None, **extra) -> dict:
    return {
        "pid": pid,
        "started": psutil.Process(pid).create_time() if psutil.pid_exists(pid) else None,
        "host": socket.gethostname(),
        "token": "someone-else",
        "at": time.time(),
        "worker": worker,
        "worker_started": psutil.Process(worker).create_time() if worker else None,
        **extra,
    }


def test_a_second_claim_in_the_same_app_is_told_who_trains_the_run(tmp_path: Path) -> None:
    path = tmp_path / "p.knowmix"
    run_id = new_run(path)
    with Project(path) as first, Project(path) as second:
        token = claims.claim(first, run_id)
        with pytest.raises(ProjectError) as err:
            claims.claim(second, run_id)
        assert f"Training run {run_id} is being trained by another KnowMix (process {os.getpid()}" in str(err.value)
        assert "Wait for it to finish, or cancel it" in str(err.value)
        claims.release(first, run_id, token)
        claims.release(second, run_id, claims.claim(second, run_id))


def test_claims_of_live_dead_and_reused_processes(tmp_path: Path) -> None:
    path = tmp_path / "p.knowmix"
    run_id = new_run(path)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with Project(path) as project:
            store.claim_train_run(project, run_id, foreign_claim(other.pid), lambda c: False)
            with pytest.raises(ProjectError, match=f"process {other.pid}"):
                claims.claim(project, run_id)  # the CLI in another process trains it
            reused = foreign_claim(other.pid)
            reused["started"] -= 1000  # the same pid, but a program started later: not the claimant
            store.claim_train_run(project, run_id, reused, lambda c: False)
            claims.release(project, run_id, claims.claim(project, run_id))
            other.kill()
            other.wait()
            store.claim_train_run(project, run_id, foreign_claim(other.pid), lambda c: False)
            claims.release(project, run_id, claims.claim(project, run_id))  # dead: taken over
    finally:
        if other.poll() is None:
            other.kill()


def test_a_worker_whose_app_died_holds_the_run_and_the_next_app_can_stop_it(tmp_path: Path) -> None:
    path = tmp_path / "p.knowmix"
    run_id = new_run(path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    worker, child = start_group()
    try:
        with Project(path) as project:
            stale_app = foreign_claim(os.getpid(), worker=worker.pid)
            stale_app.update(pid=dead.pid, started=None)
            store.claim_train_run(project, run_id, stale_app, lambda c: False)
            with pytest.raises(ProjectError, match=f"worker process {worker.pid}"):
                claims.claim(project, run_id)
            assert claims.stop_worker(project, run_id) == worker.pid
        assert gone(worker.pid) and gone(child)  # the whole process group stopped
        worker.wait(10)
        with Project(path) as project:
            claims.release(project, run_id, claims.claim(project, run_id))
            with pytest.raises(ProjectError, match="no worker running"):
                claims.stop_worker(project, run_id)
    finally:
        claims.kill_group(worker)


def test_kill_group_reaches_every_process_the_worker_started() -> None:
    proc, child = start_group()
    claims.kill_group(proc)
    proc.wait(10)
    assert gone(child)


def test_two_resumes_at_once_start_one_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.knowmix"
    run_id = new_run(path)
    started: list[int] = []

    def fake_worker(*args, **kwargs):  # a worker that trains for 2 s and says nothing (then: crashed)
        proc = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(2)"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(proc.pid)
        return proc

    monkeypatch.setattr(runner, "_start_worker", fake_worker)
    errors: list[BaseException] = []

    def resume() -> None:
        try:
            runner.run_worker(path, run_id, resume=True)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertions
            errors.append(exc)

    first = threading.Thread(target=resume)
    first.start()
    end = time.monotonic() + 10
    while time.monotonic() < end:  # until the first one's worker is started and recorded
        with Project(path) as project:
            if (store.read_train_claim(project, run_id) or {}).get("worker"):
                break
        time.sleep(0.02)
    resume()  # the second window, while the first one's worker runs
    first.join(30)
    assert len(started) == 1
    busy = [e for e in errors if isinstance(e, ProjectError)]
    assert len(busy) == 1 and f"Training run {run_id} is being trained by another KnowMix" in str(busy[0])
    assert f"worker process {started[0]}" in str(busy[0])
    assert any(isinstance(e, runner.TrainingCrashed) for e in errors)  # the first one's fake worker ended
    with Project(path) as project:
        assert store.read_train_claim(project, run_id) is None  # released at the end
