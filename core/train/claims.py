"""One run, one worker: which KnowMix trains a run now, and stopping a worker another KnowMix left.

Two resumes of the same run within seconds (two windows, or the CLI and the app) would start two
workers writing one folder. ``claim`` writes the run's owner in the same transaction that finds
it free (``core.store.runs.claim_train_run``); the second caller gets "this run is being trained
by another KnowMix (process N)". A claim whose processes are gone (killed, the app closed) is
stale and is taken over, so a kill never leaves a run locked. A process id the OS gave to a new
program is not mistaken for the old one: the claim keeps each process's start time.

The claim also records the worker's process group (the worker, or torchrun and its processes, is
started in a session of its own), so the next app start can stop a worker whose app died
(``stop_worker``), and a kill reaches every torchrun process (``kill_group``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from typing import Any, Optional

from ..errors import ProjectError

STALE_FOREIGN_CLAIM_S = 3600.0  # a claim written on another computer (a shared folder) expires unused
_LIVE: set[str] = set()  # tokens of claims held by this process (an app can run two jobs)
_LOCK = threading.Lock()


def _started(pid: int) -> Optional[float]:
    """When process ``pid`` started (None: no such process)."""
    import psutil

    try:
        return float(psutil.Process(int(pid)).create_time())
    except (psutil.Error, ValueError, TypeError, OverflowError):
        return None


def _same_process(pid: Any, started: Any) -> bool:
    """Whether ``pid`` still runs and is the process that had it when the claim was written."""
    if not pid or int(pid) <= 0:
        return False
    now = _started(int(pid))
    if now is None:
        return False
    return started is None or abs(now - float(started)) < 1.0


def is_live(claim: dict) -> bool:
    """Whether the KnowMix that wrote ``claim``, or its worker, still works on the run."""
    if claim.get("host") != socket.gethostname():  # another computer's processes cannot be looked at
        return time.time() - float(claim.get("at") or 0.0) < STALE_FOREIGN_CLAIM_S
    if claim.get("pid") == os.getpid():
        with _LOCK:
            if claim.get("token") in _LIVE:
                return True
        return _same_process(claim.get("worker"), claim.get("worker_started"))
    return _same_process(claim.get("pid"), claim.get("started")) or _same_process(
        claim.get("worker"), claim.get("worker_started")
    )


def busy_message(run_id: int, claim: dict) -> str:
    """The words for a run another KnowMix trains now."""
    since = time.strftime("%H:%M", time.localtime(float(claim.get("at") or 0)))
    where = f" on {claim.get('host')}" if claim.get("host") != socket.gethostname() else ""
    worker = f", worker process {claim['worker']}" if claim.get("worker") else ""
    return (
        f"Training run {run_id} is being trained by another KnowMix (process {claim.get('pid')}{worker}{where}, since "
        f"{since}). Wait for it to finish, or cancel it (in the app: Train step, select the run, Stop its worker), "
        "then resume it."
    )


def claim(project: Any, run_id: int) -> str:
    """Make this process the run's only trainer; returns the claim's token. ProjectError if another live one is."""
    from ..store import runs as store

    token = uuid.uuid4().hex
    owner = {
        "pid": os.getpid(),
        "started": _started(os.getpid()),
        "host": socket.gethostname(),
        "token": token,
        "at": time.time(),
    }
    with _LOCK:
        _LIVE.add(token)
    try:
        blocking = store.claim_train_run(project, run_id, owner, is_live)
    except BaseException:
        forget(token)
        raise
    if blocking is not None:
        forget(token)
        raise ProjectError(busy_message(run_id, blocking))
    return token


def attach_worker(project: Any, run_id: int, token: str, pid: int) -> None:
    """Record the worker's process group in the claim (its leader's pid), for ``stop_worker``."""
    from ..store import runs as store

    store.update_train_claim(project, run_id, token, worker=int(pid), worker_started=_started(pid))


def forget(token: str) -> None:
    with _LOCK:
        _LIVE.discard(token)


def release(project: Any, run_id: int, token: str) -> None:
    """Drop this process's claim (no error when the file is gone or busy: a stale claim is taken over)."""
    from ..store import runs as store

    forget(token)
    try:
        store.release_train_claim(project, run_id, token)
    except ProjectError:
        pass


def live_claim(project: Any, run_id: int) -> Optional[dict]:
    """The run's claim if a live process holds it, else None."""
    from ..store import runs as store

    current = store.read_train_claim(project, run_id)
    return current if current and is_live(current) else None


def stop_worker(project: Any, run_id: int) -> int:
    """Ask the worker of a run another KnowMix started (one whose app died, say) to stop: SIGTERM to its
    process group, so torchrun and each of its processes stop after their step and save. Returns its pid."""
    current = live_claim(project, run_id)
    pid = int((current or {}).get("worker") or 0)
    if not current or not _same_process(pid, current.get("worker_started")):
        raise ProjectError(f"Training run {run_id} has no worker running on this computer; nothing to stop.")
    if os.name == "posix":
        os.killpg(pid, signal.SIGTERM)
    else:  # pragma: no cover - Windows: end the worker and its children
        import psutil

        proc = psutil.Process(pid)
        for child in proc.children(recursive=True):
            child.terminate()
        proc.terminate()
    return pid


def kill_group(proc: subprocess.Popen) -> None:
    """Kill the worker and every process it started: its own process group (it was started in a session of
    its own, so its pid is the group's id) and each descendant, since torchrun starts every training
    process in a session of its own too. The descendants are listed before the launcher dies (after,
    they no longer hang below it). Nothing happens to processes already gone."""
    import psutil

    try:
        family = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
    except psutil.Error:
        family = []
    if os.name == "posix":
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:  # no such group (all ended), or not ours
            pass
    if proc.poll() is None:
        proc.kill()
    for child in family:
        try:
            child.kill()
        except psutil.Error:
            pass
