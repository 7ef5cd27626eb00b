"""The GUI's one job runner: every slow thing (model load, dataset load, probe, training) runs here.

A job is a plain function ``fn(job)`` that runs on a worker thread and talks back through
``job.progress`` / ``job.send_event`` / ``job.status``. The callbacks a page passes (``on_done``,
``on_error``, ``on_progress`` ...) always run on the UI thread: the worker emits Qt signals on the
``Job`` object, which lives in the UI thread, so Qt queues them. Progress is throttled to ten
updates a second so a fast loop cannot flood the event queue and stall the window.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import TYPE_CHECKING, Any, Callable, Optional, TypedDict

if TYPE_CHECKING:  # pragma: no cover - typing only
    from typing_extensions import Unpack

from core.jobs import CancelToken, Progress

from . import gc_guard
from .qt import QtCore, Signal, Slot

PROGRESS_INTERVAL_S = 0.1


class Job(QtCore.QObject):
    """One background job. ``cancel`` is the token the core function checks between batches."""

    _progress = Signal(object)
    _event = Signal(object)
    _status = Signal(str)
    _finished = Signal(bool, object, str)  # ok, result or exception, traceback text
    _held = Signal()  # a progress update was held back by the throttle: deliver it a little later

    def __init__(self, name: str, fn: Callable[["Job"], Any], *, exclusive: bool, parent: QtCore.QObject) -> None:
        super().__init__(parent)
        self.name = name
        self.fn = fn
        self.exclusive = exclusive
        self.cancel = CancelToken()
        self.started_at = time.monotonic()
        self.last_progress: Optional[Progress] = None
        self.status_text = ""
        self.done = False
        self._thread: Optional[threading.Thread] = None
        self._last_emit = 0.0
        self._pending: Optional[Progress] = None
        self._held_signalled = False
        self._lock = threading.Lock()
        self.callbacks: dict[str, Optional[Callable]] = {}
        # Without this a burst of updates followed by a long step would leave the window showing
        # where the job was before the burst ended, until the step is over.
        self._held_timer = QtCore.QTimer(self)
        self._held_timer.setSingleShot(True)
        self._held_timer.timeout.connect(self._deliver_held)
        self._held.connect(self._on_held)
        self._progress.connect(self._on_progress)
        self._event.connect(self._on_event)
        self._status.connect(self._on_status)
        self._finished.connect(self._on_finished)

    # -- called on the worker thread ------------------------------------------------------------
    def progress(self, p: Progress) -> None:
        now = time.monotonic()
        with self._lock:
            held = now - self._last_emit < PROGRESS_INTERVAL_S and p.done != p.total
            if held:
                self._pending = p
                first_held, self._held_signalled = not self._held_signalled, True
            else:
                self._pending = None
                self._last_emit = now
        if not held:
            self._progress.emit(p)
        elif first_held:
            self._held.emit()

    def send_event(self, data: dict) -> None:
        self._event.emit(data)

    def status(self, message: str) -> None:
        self._status.emit(message)

    def _run(self) -> None:
        try:
            result = self.fn(self)
        except BaseException as exc:  # noqa: BLE001 - every failure goes to the UI, never lost
            self._flush()
            self._finished.emit(False, exc, traceback.format_exc())
            return
        self._flush()
        self._finished.emit(True, result, "")

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self._progress.emit(pending)

    # -- UI thread --------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"knowmix-{self.name}", daemon=True)
        self._thread.start()

    def request_cancel(self) -> None:
        self.cancel.cancel()

    @property
    def running(self) -> bool:
        return not self.done

    @Slot()
    def _on_held(self) -> None:
        if not self._held_timer.isActive():
            wait_s = PROGRESS_INTERVAL_S - (time.monotonic() - self._last_emit)
            self._held_timer.start(max(0, int(wait_s * 1000) + 1))

    @Slot()
    def _deliver_held(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
            self._held_signalled = False
            if pending is not None:
                self._last_emit = time.monotonic()
        if pending is not None and not self.done:
            self._on_progress(pending)

    @Slot(object)
    def _on_progress(self, p: Progress) -> None:
        self.last_progress = p
        cb = self.callbacks.get("progress")
        if cb:
            cb(p)

    @Slot(object)
    def _on_event(self, data: dict) -> None:
        cb = self.callbacks.get("event")
        if cb:
            cb(data)

    @Slot(str)
    def _on_status(self, message: str) -> None:
        self.status_text = message
        cb = self.callbacks.get("status")
        if cb:
            cb(message)

    @Slot(bool, object, str)
    def _on_finished(self, ok: bool, value: object, tb: str) -> None:
        self.done = True
        runner = self.parent()
        try:
            if ok:
                cb = self.callbacks.get("done")
                if cb:
                    cb(value)
            else:
                cb = self.callbacks.get("error")
                if cb:
                    cb(value, tb)
        finally:
            cb = self.callbacks.get("finally")
            if cb:
                cb()
            if isinstance(runner, JobRunner):
                runner._finished(self)


class JobCallbacks(TypedDict, total=False):
    """What a page may be told about its job, each on the UI thread (``JobRunner.start``'s keywords):
    its result, its error (else the runner's default dialog), progress, worker events, status
    lines, and the end whatever happened."""

    on_done: Optional[Callable[[Any], None]]
    on_error: Optional[Callable[[BaseException, str], None]]
    on_progress: Optional[Callable[[Progress], None]]
    on_event: Optional[Callable[[dict], None]]
    on_status: Optional[Callable[[str], None]]
    on_finally: Optional[Callable[[], None]]


class JobRunner(QtCore.QObject):
    """Starts jobs, knows which are running, cancels them all when the window closes."""

    changed = Signal()  # a job started or ended: pages re-check which buttons are enabled

    def __init__(self, on_error: Callable[[BaseException, str], None], parent: Optional[QtCore.QObject] = None) -> None:
        super().__init__(parent)
        self._default_error = on_error
        self._jobs: list[Job] = []

    def start(self, name: str, fn: Callable[[Job], Any], *, exclusive: bool = True, **callbacks: Unpack[JobCallbacks]) -> Job:
        """Run ``fn(job)`` on a worker thread, calling ``callbacks`` (``JobCallbacks``) on the UI thread.
        Exclusive jobs (model work) never overlap each other: on a laptop two of them would only slow
        each other down and double the memory."""
        unknown = sorted(set(callbacks) - set(JobCallbacks.__annotations__))
        if unknown:
            raise TypeError(f"JobRunner.start() got unknown callbacks: {', '.join(unknown)}")
        if exclusive and self.busy:
            raise RuntimeError(f"'{self.current().name}' is still running")  # pages disable their buttons first
        job = Job(name, fn, exclusive=exclusive, parent=self)
        job.callbacks = {
            "done": callbacks.get("on_done"),
            "error": callbacks.get("on_error") or self._default_error,
            "progress": callbacks.get("on_progress"),
            "event": callbacks.get("on_event"),
            "status": callbacks.get("on_status"),
            "finally": callbacks.get("on_finally"),
        }
        self._jobs.append(job)
        gc_guard.hold()  # the collector stays on this (GUI) thread while a worker runs Python
        try:
            job.start()
        except BaseException:
            self._jobs.remove(job)
            gc_guard.release()
            raise
        self.changed.emit()
        return job

    def _finished(self, job: Job) -> None:
        if job in self._jobs:
            self._jobs.remove(job)
            gc_guard.release()
        job.deleteLater()
        self.changed.emit()

    @property
    def busy(self) -> bool:
        return any(j.exclusive for j in self._jobs)

    def current(self) -> Optional[Job]:
        for j in self._jobs:
            if j.exclusive:
                return j
        return self._jobs[0] if self._jobs else None

    def active(self) -> list[Job]:
        return list(self._jobs)

    def is_running(self, name: str) -> bool:
        return any(j.name == name for j in self._jobs)

    def cancel_all(self) -> None:
        for j in self._jobs:
            j.request_cancel()

    def wait_all(self, timeout_s: float = 60.0) -> bool:
        """Process events until every job has ended (their callbacks run); False on timeout."""
        deadline = time.monotonic() + timeout_s
        app = QtCore.QCoreApplication.instance()
        while self._jobs and time.monotonic() < deadline:
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.01)
        return not self._jobs


class ProjectOp:
    """Store work for a page in one pattern, like Anki's ``CollectionOp``: open the project on a worker
    thread of the app's ``JobRunner``, run ``op(project, job)`` against it, close it, and deliver the
    result on the UI thread.

    Why: a page that opens the project file on the UI thread freezes the window while SQLite waits
    (a busy file waits up to its timeout) or while the work reads a large dataset, and a failure
    there is a traceback in the middle of a click handler. Here the project is the worker's own
    connection (an SQLite connection belongs to one thread), an error goes to ``on_error`` (a page's
    ``report_error`` by default when run through ``Page.project_op``, which says a user mistake inline)
    and ``changes(result)`` names the context fields the work changed (``{"plan_id": 3}``): they are
    set on the UI thread before ``on_done`` runs, so every page watching them refreshes.
    """

    def __init__(
        self,
        name: str,
        path: Any,
        op: Callable[[Any, Job], Any],
        *,
        create: bool = False,
        exclusive: bool = False,
        changes: Optional[Callable[[Any], dict]] = None,
    ) -> None:
        self.name = name
        self.path = path
        self.op = op
        self.create = create
        self.exclusive = exclusive
        self.changes = changes

    def work(self, job: Job) -> Any:
        """The job function: open the project, run the work against it, close it (on the worker thread)."""
        from core.store import Project

        with Project(self.path, create=self.create) as project:
            return self.op(project, job)

    def run_in(self, runner: JobRunner, *, context: Any = None, **callbacks: Unpack[JobCallbacks]) -> Job:
        """Start the work on ``runner`` (``JobRunner.start``'s callbacks, all on the UI thread); the
        fields ``changes`` names are set on ``context`` (the app's ``AppContext``) before ``on_done``."""
        on_done = callbacks.pop("on_done", None)

        def done(result: Any) -> None:
            fields = self.changes(result) if self.changes is not None else None
            if fields and context is not None:
                context.set(**fields)
            if on_done is not None:
                on_done(result)

        return runner.start(self.name, self.work, exclusive=self.exclusive, on_done=done, **callbacks)
