"""The parent side of training: create a run, start its worker process, follow it, report the outcome.

The training itself runs in a child process (``core.train.worker``), so a crash, an out-of-memory
kill or a cancel never takes the caller (CLI or GUI) down, and GPU memory is returned when it
ends. The child writes its progress into the project itself; the parent decodes the child's
JSON-lines events into the typed events of ``core.train.events``, turns them into ``Progress``
events and passes them to ``on_event``, forwards a cancel as SIGTERM, and turns an unexpected end
into a ``TrainingCrashed`` error that says how to resume.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional, Sequence

from .. import errors as _errors
from ..cpu_load import worker_threads
from ..errors import KnowMixError, ProjectError, SettingsError
from ..formats import percent
from ..jobs import CancelToken, Progress, ProgressCallback, RateMeter, no_progress
from ..processes import describe_exit
from . import claims
from .claims import kill_group
from .data import TrainItem, check_items, items_from_plan, with_grading
from .events import Done, Eval, Start, Step, TrainEvent, WorkerError, decode
from .settings import TrainSettings
from .worker_launch import CANCEL_GRACE_S, log_tail, torchrun_root_cause, worker_command, worker_env

EventCallback = Callable[[TrainEvent], None]  # gets every event of ``core.train.events``


class TrainingCrashed(KnowMixError):
    """The worker process ended without finishing (killed, out of memory, crashed); the run can be resumed."""

    def __init__(self, message: str, run_id: int, returncode: Optional[int]) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.returncode = returncode


class TrainingFailed(KnowMixError):
    """The worker stopped on an unexpected error (a bug); ``child_traceback`` holds its traceback."""

    def __init__(self, message: str, run_id: int, child_traceback: str = "") -> None:
        super().__init__(message)
        self.run_id = run_id
        self.child_traceback = child_traceback


@dataclass
class TrainOutcome:
    run_id: int
    status: str  # "done" | "cancelled"
    stop_reason: Optional[str]  # "early_stop" | "max_epochs" | "cancelled"
    best_epoch: Optional[float]
    best_step: Optional[int]
    best_dev_em: Optional[float]
    fit_at_best: dict  # {category: share of the fixed train sample answered correctly}, at the best step
    adapter_dir: Optional[str]  # the run's result (best adapter for early stop, final one for convergence)
    run_dir: str
    history: list[dict] = field(default_factory=list)  # every evaluation: step, epoch, dev_em, fit {...}
    final_step: Optional[int] = None
    final_epoch: Optional[float] = None
    merged_dir: Optional[str] = None
    seconds: float = 0.0
    # Where the run stopped, by the one rule in ``TrainRun.stopping_point`` (core.store.records): the best evaluation,
    # or the last step of a finished convergence run. Show this, not ``best_*``, as "the stopping point".
    stopping_point: Optional[dict] = None  # a core.store.records.StoppingPoint


# ------------------------------------------------------------------------------ what training needs

TRAINING_PACKAGES = ("torch", "transformers", "peft")


def missing_training_packages() -> list[str]:
    """The packages training needs that this installation lacks (the lite edition has none of them).
    ``find_spec`` looks for a top-level package without importing it."""
    import importlib.util

    missing = []
    for name in TRAINING_PACKAGES:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    return missing


def check_training_available() -> None:
    """Say so before a run is created, rather than let the worker die on an import."""
    missing = missing_training_packages()
    if missing:
        raise SettingsError(
            f"Training needs {', '.join(missing)}, which this installation does not include (the lite edition "
            "probes, plans and exports only). Install the full edition of KnowMix to train, or export the plan "
            "(knowmix plan --export DIR) and train it with another tool."
        )


def check_processes(settings: TrainSettings) -> None:
    """Several processes need torchrun, which a packaged app cannot start (it runs only KnowMix's own modules)."""
    if settings.processes > 1 and getattr(sys, "frozen", False):
        raise SettingsError(
            f"The packaged app trains in one process; {settings.processes} processes need torchrun, which needs KnowMix "
            "run from its source folder (make run sets it up; then .venv/bin/knowmix train --processes N). Set Processes to 1."
        )


# ------------------------------------------------------------------------------ creating a run


def prepare_run(
    project_path: str | os.PathLike,
    plan_id: Optional[int],
    settings: TrainSettings,
    *,
    train: Optional[Sequence[TrainItem]] = None,
    dev: Optional[Sequence[TrainItem]] = None,
    model: Optional[str] = None,
) -> int:
    """Check everything that can be checked without loading the model, then create the run; returns its id.

    The items come from the plan (``core.plan.load_plan``), or are given as ``train``/``dev``.
    The model is ``model``, else ``settings.model``, else the model the plan's probe used.
    """
    from ..store import Project

    _check_settings(settings)  # before the project is opened: the lite edition, bad settings
    with Project(project_path, create=False) as project:
        return _prepare_in(project, plan_id, settings, train, dev, model)


def _check_settings(settings: TrainSettings) -> None:
    """What is refused before anything is opened or created: bad settings, no torch, too many processes."""
    settings.validate()
    check_training_available()
    check_processes(settings)


def _prepare_in(
    project: Any,
    plan_id: Optional[int],
    settings: TrainSettings,
    train: Optional[Sequence[TrainItem]],
    dev: Optional[Sequence[TrainItem]],
    model: Optional[str],
) -> int:
    """``prepare_run`` in a project already open (a training command opens it once), its settings checked."""
    from ..models import model_fingerprint, resolve_model
    from ..plan import load_plan, plan_model
    from .model_match import check_trained_model
    from .runs import RunModel, create_run

    plan = None
    if train is None or dev is None:
        plan = load_plan(project, plan_id)
        train, dev = items_from_plan(plan)
        train, dev = _graded(project, plan, train), _graded(project, plan, dev)
        plan_id = getattr(plan, "id", plan_id)
    train, dev = list(train), list(dev)
    check_items(train, dev)
    spec = model or settings.model or plan_model(project, plan_id)
    if not spec:
        raise SettingsError("No model to train: the plan does not say which model was probed. Pick one with --model.")
    ref = resolve_model(spec, allow_pickle=settings.allow_pickle)
    if ref.kind not in ("hf", "gguf"):
        raise SettingsError(f"{ref.path} cannot be trained: training needs a Hugging Face folder or a GGUF file.")
    fingerprint = model_fingerprint(ref)
    # the plan's categories are the probed model's: another model only when the user says so
    check_trained_model(project, plan_id, ref.display_name, fingerprint, settings.other_model)
    run_id, _folder = create_run(
        project,
        plan_id=plan_id,
        settings=settings,
        train=train,
        dev=dev,
        model=RunModel(str(spec), ref.display_name, str(ref.path), fingerprint),
        plan_info={"name": getattr(plan, "name", None)} if plan is not None else None,
    )
    return run_id


def start_training(
    project_path: str | os.PathLike,
    plan_id: Optional[int],
    settings: TrainSettings,
    *,
    progress: ProgressCallback = no_progress,
    on_event: Optional[EventCallback] = None,
    cancel: Optional[CancelToken] = None,
    model: Optional[str] = None,
) -> TrainOutcome:
    """Create a training run for a plan and run it in a worker process; see ``prepare_run`` and ``run_worker``.
    To train on other items than the plan's, ``prepare_run(..., train=, dev=)`` then ``run_worker``.
    The project is opened once for the whole command and handed along."""
    from ..store import Project

    _check_settings(settings)
    with Project(project_path, create=False) as project:
        run_id = _prepare_in(project, plan_id, settings, None, None, model)
        return run_worker(
            project_path,
            run_id,
            resume=False,
            progress=progress,
            on_event=on_event,
            cancel=cancel,
            allow_pickle=settings.allow_pickle,
            project=project,
        )


def resume_training(
    project_path: str | os.PathLike,
    run_id: int,
    *,
    progress: ProgressCallback = no_progress,
    on_event: Optional[EventCallback] = None,
    cancel: Optional[CancelToken] = None,
    allow_pickle: bool = False,
) -> TrainOutcome:
    """Continue a cancelled, failed or killed run from its last checkpoint, with the same data order.

    ``allow_pickle`` is the user's choice now; the run's stored settings never switch it on."""
    from ..models import model_fingerprint, resolve_model
    from ..store import Project
    from .runs import DONE, get_run, is_resumable, run_dir, run_settings

    check_training_available()
    with Project(project_path, create=False) as project:
        row = get_run(project, run_id)
        if row.status == DONE:
            raise SettingsError(f"Training run {run_id} has already finished; its adapter is in {row.adapter_dir}.")
        if not is_resumable(row):
            raise SettingsError(
                f"Training run {run_id} is still running (process {row.worker_pid}). Wait for it, or cancel it first."
            )
        settings = run_settings(row)
        check_processes(settings)
        run_dir(row)  # a folder outside the project's runs folder is refused before anything starts
        ref = resolve_model(row.model_ref, allow_pickle=allow_pickle)
        if row.model_fingerprint and model_fingerprint(ref) != row.model_fingerprint:
            raise SettingsError(
                f"The model file {ref.path} has changed since run {run_id} started, so the run cannot be resumed. "
                "Start a new run."
            )
        return run_worker(
            project_path,
            run_id,
            resume=True,
            progress=progress,
            on_event=on_event,
            cancel=cancel,
            allow_pickle=allow_pickle,
            project=project,
        )


def _reader(stream: Any, q: "queue.Queue[Optional[str]]") -> None:
    try:
        for line in iter(stream.readline, ""):
            q.put(line)
    except (OSError, ValueError):
        pass
    finally:
        q.put(None)


def run_worker(
    project_path: str | os.PathLike,
    run_id: int,
    *,
    resume: bool = False,
    progress: ProgressCallback = no_progress,
    on_event: Optional[EventCallback] = None,
    cancel: Optional[CancelToken] = None,
    allow_pickle: bool = False,
    project: Any = None,
) -> TrainOutcome:
    """Start the worker for a created run and follow it to the end; raise a ``KnowMixError`` if it fails.

    ``project``: the project already open (a training command opens it once and hands it along);
    None opens ``project_path`` for the run. The connection holds no transaction while the worker
    process writes: each of its writes is one short transaction of its own."""
    from ..store import Project
    from .runs import get_run, run_dir, run_settings

    if project is None:
        with Project(project_path, create=False) as opened:
            return run_worker(
                project_path,
                run_id,
                resume=resume,
                progress=progress,
                on_event=on_event,
                cancel=cancel,
                allow_pickle=allow_pickle,
                project=opened,
            )
    row = get_run(project, run_id)
    settings = run_settings(row)
    folder = run_dir(row)
    token = claims.claim(project, run_id)  # one worker per run: a second resume is told who trains it
    try:
        folder.mkdir(parents=True, exist_ok=True)
        log_path = folder / "worker.log"
        proc = _start_worker(project_path, run_id, resume, log_path, settings, allow_pickle)
        try:
            claims.attach_worker(project, run_id, token, proc.pid)
        except ProjectError:  # busy: the claim still names this process, which stops its worker
            pass
        follower = _Follower(proc, run_id, progress, on_event, cancel or CancelToken())
        returncode = follower.follow()
    finally:
        try:
            claims.release(project, run_id, token)
        except ProjectError:  # the file is gone or busy: a claim whose processes ended is taken over
            claims.forget(token)
    return _outcome_of(project, run_id, follower, returncode, log_path)


def _outcome_of(project: Any, run_id: int, follower: "_Follower", returncode: Optional[int], log_path: Path) -> TrainOutcome:
    """The run's outcome once its worker ended, or the error that says what happened."""
    if follower.error is not None:
        _raise_worker_error(follower.error, run_id, log_path)
    if follower.done is None:
        if follower.cancel_sent_at is not None and returncode is not None and returncode < 0:
            _mark_cancelled_before_start(project, run_id)
        else:
            _raise_crashed(project, run_id, returncode, log_path)
    return _outcome_in(project, run_id)


def _start_worker(
    project_path: str | os.PathLike,
    run_id: int,
    resume: bool,
    log_path: Path,
    settings: TrainSettings,
    allow_pickle: bool = False,
) -> subprocess.Popen:
    """The worker process (or torchrun and its processes), its stderr appended to the run's ``worker.log``, its
    stdout the event stream (rank 0's: the others write none)."""
    # Its own session / process group: a Ctrl-C in the terminal reaches only the parent, which forwards
    # it as one SIGTERM (a second Ctrl-C, forwarded as a second SIGTERM, stops the worker at once).
    detach: dict[str, Any] = (
        {"start_new_session": True}
        if os.name == "posix"
        else {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
    )
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            worker_command(project_path, run_id, resume, settings.processes, allow_pickle),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=worker_env(settings),
            text=True,
            encoding="utf-8",
            bufsize=1,
            **detach,
        )


class _Follower:
    """Reads the worker's events until its stdout closes: turns them into progress, keeps the last
    ``done`` or ``error`` event, and forwards a cancel (killing the worker if it does not stop in time)."""

    def __init__(
        self,
        proc: subprocess.Popen,
        run_id: int,
        progress: ProgressCallback,
        on_event: Optional[EventCallback],
        cancel: CancelToken,
    ) -> None:
        self.proc, self.progress, self.on_event, self.cancel = proc, progress, on_event, cancel
        self.meter: Optional[RateMeter] = None
        self.done: Optional[Done] = None
        self.error: Optional[WorkerError] = None
        self.cancel_sent_at: Optional[float] = None
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, self.lines), name=f"knowmix-train-{run_id}", daemon=True).start()

    def follow(self) -> Optional[int]:
        """Follow the worker to its end; returns its exit status."""
        proc = self.proc
        try:
            while True:
                self._check_cancel()
                try:
                    line = self.lines.get(timeout=0.2)
                except queue.Empty:
                    continue
                if line is None:
                    break
                event = decode(line)
                if event is not None:
                    self._handle(event)
            return proc.wait()
        except BaseException:
            # The caller is going away (e.g. a second Ctrl-C): ask the worker to stop cleanly, then make sure it does.
            if proc.poll() is None:
                _send_cancel(proc)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    kill_group(proc)
            raise
        finally:
            kill_group(proc)  # whatever the worker (torchrun) left of its process group
            for stream in (proc.stdin, proc.stdout):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass

    def _check_cancel(self) -> None:
        if self.cancel.cancelled and self.cancel_sent_at is None:
            self.cancel_sent_at = time.monotonic()
            _send_cancel(self.proc)
            meter = self.meter
            self.progress(
                Progress(
                    meter.done if meter else 0,
                    meter.total if meter else 0,
                    0.0,
                    None,
                    "Stopping after the current step ...",
                    "steps",
                )
            )
        if (
            self.cancel_sent_at is not None
            and time.monotonic() - self.cancel_sent_at > CANCEL_GRACE_S
            and self.proc.poll() is None
        ):
            kill_group(self.proc)

    def _handle(self, event: TrainEvent) -> None:
        """Progress for the caller's bar; keep the final ``Done`` or ``WorkerError``; pass every event on."""
        if isinstance(event, Start):
            self.meter = RateMeter(event.total_steps, event.start_step, "steps", worker_threads(event.device, event.threads))
            self.progress(
                self.meter.update(
                    int(event.start_step), "Training started" if not event.resumed else f"Resumed at step {event.start_step}"
                )
            )
        elif isinstance(event, Step) and self.meter is not None:
            self.progress(self.meter.update(int(event.step), f"epoch {event.epoch:.2f}, loss {event.loss:.3f}"))
        elif isinstance(event, Eval) and self.meter is not None:
            if int(event.step) == self.meter.start_done == self.meter.done:
                # the evaluation before the first step (step 0) is a one-off: the rate, and so the
                # ETA, start after it, or a long step-0 evaluation reads as hours of training left
                self.meter = self.meter.restart()
            fit = ", ".join(f"{c} {percent(v, 0)}" for c, v in (event.fit or {}).items())
            self.progress(
                self.meter.update(
                    int(event.step),
                    f"dev EM {percent(event.dev_em)} (best {percent(event.best_dev_em)})" + (f"; fit {fit}" if fit else ""),
                )
            )
        elif isinstance(event, Done):
            self.done = event
        elif isinstance(event, WorkerError):
            self.error = event
        if self.on_event is not None:
            self.on_event(event)


def _raise_worker_error(error: WorkerError, run_id: int, log_path: Path) -> NoReturn:
    """A user error (bad settings, a missing file) as its own ``KnowMixError`` class; a bug as ``TrainingFailed``."""
    message = error.message or "Training failed."
    if error.kind == "user":
        cls = getattr(_errors, str(error.error_type), None)
        if not (isinstance(cls, type) and issubclass(cls, KnowMixError)) or cls is KnowMixError:
            cls = KnowMixError
        raise cls(message)
    raise TrainingFailed(
        f"Training run {run_id} stopped on an unexpected error: {message}. The details are in {log_path}; the run "
        f"can be resumed with `knowmix resume --run {run_id}` once the cause is fixed.",
        run_id,
        error.traceback or "",
    )


def _mark_cancelled_before_start(project: Any, run_id: int) -> None:
    """Cancelled while the worker was still starting (before it could catch the signal): nothing ran."""
    from .runs import CANCELLED, CREATED, RUNNING, STOP_CANCELLED, get_run, update_run

    if get_run(project, run_id).status in (RUNNING, CREATED):
        update_run(project, run_id, status=CANCELLED, stop_reason=STOP_CANCELLED, worker_pid=None)


def _raise_crashed(project: Any, run_id: int, returncode: Optional[int], log_path: Path) -> NoReturn:
    """The worker ended without a ``done`` or ``error`` event: mark the run crashed and say how to resume it."""
    from .runs import CRASHED, RUNNING, get_run, update_run

    row = get_run(project, run_id)
    if row.status == RUNNING:
        update_run(project, run_id, status=CRASHED, worker_pid=None, error=f"The training process {describe_exit(returncode)}.")
    step = row.step
    where = f"its last checkpoint (step {step})" if step else "the start (no checkpoint was saved yet)"
    tail = (torchrun_root_cause(log_path) or log_tail(log_path)) if returncode and returncode > 0 else ""
    raise TrainingCrashed(
        f"The training process of run {run_id} {describe_exit(returncode)} before finishing"
        + (f" ({tail})" if tail else "")
        + f". Nothing is lost up to {where}: continue it with `knowmix resume --run {run_id}`.",
        run_id,
        returncode,
    )


def _send_cancel(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    if os.name == "posix":
        try:
            proc.send_signal(signal.SIGTERM)
            return
        except OSError:
            pass
    try:  # Windows: SIGTERM would kill the child outright, so ask through its stdin
        assert proc.stdin is not None
        proc.stdin.write("cancel\n")
        proc.stdin.flush()
    except (OSError, ValueError, AssertionError):
        pass


def outcome(project_path: str | os.PathLike, run_id: int) -> TrainOutcome:
    """A run's outcome as recorded in the project (any status)."""
    from ..store import Project

    with Project(project_path, create=False) as project:
        return _outcome_in(project, run_id)


def _outcome_in(project: Any, run_id: int) -> TrainOutcome:
    """``outcome`` in a project already open."""
    from .runs import eval_history, get_run

    row = get_run(project, run_id)
    history = eval_history(project, run_id)
    point = row.stopping_point(history)
    return TrainOutcome(
        run_id=run_id,
        status=row.status,
        stop_reason=row.stop_reason or None,
        best_epoch=row.best_epoch,
        best_step=row.best_step,
        best_dev_em=row.best_dev_em,
        fit_at_best=dict(row.fit_at_best),
        adapter_dir=str(row.adapter_dir) if row.adapter_dir else None,
        run_dir=str(row.folder or ""),
        history=history,
        final_step=row.final_step,
        final_epoch=row.final_epoch,
        merged_dir=str(row.merged_dir) if row.merged_dir else None,
        seconds=row.seconds,
        stopping_point=dict(point) if point is not None else None,
    )


def _graded(project: Any, plan: Any, items: list[TrainItem]) -> list[TrainItem]:
    """The items with the probe's grading (keys, shape, matching mode), so early stopping scores a
    dev answer as the probe and the check do."""
    from ..probe import ProbeSettings

    run = project.probe_run(plan.probe_run_id)
    match = ProbeSettings.from_json(run.settings_json).match
    examples = {ex.id: ex for ex in project.examples(int(run.dataset_id or 0), status=None)}
    return with_grading(items, examples, match)
