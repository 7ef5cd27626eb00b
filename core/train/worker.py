"""The training child process: ``python -m core.train.worker --project P --run-id N [--resume]``.

It reads the run (settings, frozen plan, model) from the project, runs ``train_loop`` and
reports every event twice: as one JSON object per line on stdout, for the parent that started
it, and into the project itself (status and best point in ``train_runs``, values in ``metrics``,
in small WAL transactions) and the run folder's ``metrics.jsonl``, so nothing is lost if the
parent dies. Anything else the libraries print goes to stderr (the parent sends it to the run's
``worker.log``), never into the event stream.

The events are the classes of ``core.train.events`` (resume, start, step, eval, checkpoint, restored,
merged, done, error), each written by its one encoder as a JSON line ``{"event", "run_id", ...}``.

Under torchrun (``--processes N``) every process runs this module: rank 0 does all of the above,
the others (``run_other_rank``) only train their share and write nothing.

On SIGTERM or SIGINT (or a ``cancel`` line on stdin, for platforms without signals) the worker
finishes the current step, saves a checkpoint, keeps the best adapter and ends with a ``done``
event whose status is ``cancelled``; a second signal stops it at once. Exit status: 0 after
``done``, 1 after ``error``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, TextIO

from .events import Checkpoint, Done, Eval, Resume, Step, TrainEvent, WorkerError, encode

STEP_FLUSH_S = 2.0  # step metrics are written to the project at most this often (and at every evaluation)


class _StopFlag:
    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def __call__(self) -> bool:
        return self._event.is_set()


def _install_signals(flag: _StopFlag) -> None:
    def handler(signum, frame):  # noqa: ARG001
        if flag():
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        flag.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(sig, handler)
        except (ValueError, OSError):
            pass


def _watch_stdin(flag: _StopFlag) -> None:
    def read() -> None:
        try:
            for line in sys.stdin:
                if line.strip().lower() == "cancel":
                    flag.set()
        except (OSError, ValueError):
            pass

    threading.Thread(target=read, name="knowmix-cancel-reader", daemon=True).start()


class Recorder:
    """Sends each event to the parent (stdout), the run folder (metrics.jsonl) and the project."""

    def __init__(self, project: Any, run_id: int, run_dir: Path, out: Optional[TextIO], prior_seconds: float) -> None:
        self.project = project
        self.run_id = run_id
        self.run_dir = run_dir
        self.out = out
        self.jsonl = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")
        self.pending: list[dict] = []
        self.last_flush = time.monotonic()
        self.t0 = time.monotonic()
        self.prior_seconds = prior_seconds

    def seconds(self) -> float:
        return self.prior_seconds + time.monotonic() - self.t0

    def send(self, event: TrainEvent) -> None:
        """One event, naming this run, as a JSON line to the parent and into ``metrics.jsonl``."""
        line = encode(event.with_run(self.run_id))
        if self.out is not None:
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except (OSError, ValueError):
                self.out = None  # the parent is gone: keep training, keep recording into the project
        try:
            self.jsonl.write(line + "\n")
            self.jsonl.flush()
        except OSError:
            pass

    def __call__(self, event: TrainEvent) -> None:
        """The loop's ``emit``: record what the project keeps (metrics, the best point), then send."""
        if isinstance(event, Step):
            self._record_step(event)
        elif isinstance(event, Eval):
            self._record_eval(event)
        elif isinstance(event, Checkpoint):
            from .runs import update_run

            self.flush()
            update_run(self.project, self.run_id, step=event.step, epoch=event.epoch, seconds=self.seconds())
        self.send(event)

    def _record_step(self, event: Step) -> None:
        now = time.time()
        for name in ("loss", "lr", "tokens_per_s"):
            value = getattr(event, name)
            if value is not None:
                self.pending.append({"name": name, "step": event.step, "epoch": event.epoch, "value": float(value), "at": now})
        if time.monotonic() - self.last_flush >= STEP_FLUSH_S:
            self.flush()

    def _record_eval(self, event: Eval) -> None:
        from .runs import BEST_ADAPTER, update_run

        now = time.time()
        step, epoch = event.step, event.epoch
        rows = [{"name": "dev_em", "step": step, "epoch": epoch, "value": float(event.dev_em), "at": now}]
        for cat, share in (event.fit or {}).items():
            rows.append({"name": f"fit/{cat}", "step": step, "epoch": epoch, "value": float(share), "at": now})
        if event.fit_all is not None:
            rows.append({"name": "fit_all", "step": step, "epoch": epoch, "value": float(event.fit_all), "at": now})
        self.pending.extend(rows)
        self.flush()
        if event.best:
            update_run(
                self.project,
                self.run_id,
                best_epoch=epoch,
                best_step=step,
                best_dev_em=event.dev_em,
                fit_at_best=json.dumps(event.fit or {}),
                adapter_dir=str(self.run_dir / BEST_ADAPTER),
            )

    def flush(self) -> None:
        from .runs import write_metrics

        if self.pending:
            rows, self.pending = self.pending, []
            write_metrics(self.project, self.run_id, rows)
        self.last_flush = time.monotonic()

    def close(self) -> None:
        try:
            self.jsonl.close()
        except OSError:
            pass


def _error_event(exc: BaseException) -> WorkerError:
    from ..errors import KnowMixError

    if isinstance(exc, KnowMixError):
        return WorkerError(message=str(exc), kind="user", error_type=type(exc).__name__)
    return WorkerError(
        kind="bug",
        error_type=type(exc).__name__,
        message=f"{type(exc).__name__}: {exc}".strip(),
        traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    )


def run(project_path: str, run_id: int, resume: bool, out: Optional[TextIO], should_stop: Any, allow_pickle: bool = False) -> int:
    """The worker's body, separate from ``main`` so it can also be called in-process.

    ``allow_pickle`` is the user's (the caller's flag), never the run's stored settings: a project
    file is data and cannot switch on loading pickle weights."""
    from ..models import resolve_model
    from ..store import Project
    from .loop import LoopHooks, find_checkpoint, train_loop
    from .runs import (
        CANCELLED,
        DONE,
        FAILED,
        RUNNING,
        clean_run_folder_temps,
        delete_metrics_after,
        get_run,
        run_dir,
        run_items,
        run_settings,
        update_run,
    )

    recorder: Optional[Recorder] = None
    project = None
    try:
        project = Project(project_path, create=False)
        row = get_run(project, run_id)
        folder = run_dir(row)
        folder.mkdir(parents=True, exist_ok=True)
        clean_run_folder_temps(folder)  # what a killed session of this run left half-written
        settings = replace(run_settings(row), allow_pickle=allow_pickle)
        train, dev = run_items(row)
        ckpt = find_checkpoint(folder) if resume else None
        start_step = 0
        if ckpt is not None:
            start_step = int(json.loads((ckpt / "state.json").read_text(encoding="utf-8"))["step"])
        prior = row.seconds if ckpt is not None else 0.0
        recorder = Recorder(project, run_id, folder, out, prior)
        delete_metrics_after(project, run_id, start_step)
        if resume:
            recorder.send(Resume(from_step=start_step, checkpoint=str(ckpt) if ckpt else None))
        update_run(
            project,
            run_id,
            status=RUNNING,
            worker_pid=os.getpid(),
            error=None,
            started_at=row.started_at or time.time(),
            finished_at=None,
        )
        ref = resolve_model(row.model_ref, allow_pickle=settings.allow_pickle)
        meta = {
            "run_id": run_id,
            "plan_id": row.plan_id,
            "model_name": row.model_name or None,
            "model_fingerprint": row.model_fingerprint or None,
        }
        result = train_loop(
            folder,
            ref,
            settings,
            train,
            dev,
            LoopHooks(emit=recorder, should_stop=should_stop),
            resume=ckpt is not None,
            meta=meta,
        )
        recorder.flush()
        best = result.best or {}
        status, seconds = (DONE if result.status == "done" else CANCELLED), recorder.seconds()
        final = {
            "status": status,
            "stop_reason": result.stop_reason,
            "steps_per_epoch": result.steps_per_epoch,
            "total_steps": result.total_steps,
            "final_step": result.final_step,
            "final_epoch": result.final_epoch,
            "best_epoch": best.get("epoch"),
            "best_step": best.get("step"),
            "best_dev_em": best.get("dev_em"),
            "fit_at_best": json.dumps(best.get("fit")) if best else None,
            "adapter_dir": result.adapter_dir,
            "merged_dir": result.merged_dir,
            "seconds": seconds,
            "step": result.final_step,
            "epoch": result.final_epoch,
            "worker_pid": None,
        }
        if result.status == "done":
            final["finished_at"] = time.time()
        update_run(project, run_id, **final)
        recorder.send(
            Done(
                status=status,
                stop_reason=result.stop_reason,
                best_epoch=best.get("epoch"),
                best_step=best.get("step"),
                best_dev_em=best.get("dev_em"),
                fit_at_best=best.get("fit"),
                final_step=result.final_step,
                final_epoch=result.final_epoch,
                adapter_dir=result.adapter_dir,
                final_adapter_dir=result.final_adapter_dir,
                merged_dir=result.merged_dir,
                seconds=seconds,
                tokens=result.tokens,
                train_seconds=result.train_seconds,
            )
        )
        return 0
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, then the process ends
        event = _error_event(exc)
        if event.kind == "bug":
            print(event.traceback, file=sys.stderr, flush=True)
        if project is not None:
            try:
                if recorder is not None:
                    recorder.flush()
                update_run(project, run_id, status=FAILED, error=event.message[:2000], worker_pid=None)
            except Exception:  # noqa: BLE001 - the project itself may be the problem
                pass
        if recorder is not None:
            recorder.send(event)
        elif out is not None:
            try:
                out.write(encode(event.with_run(run_id)) + "\n")
                out.flush()
            except (OSError, ValueError):
                pass
        if isinstance(exc, KeyboardInterrupt):
            raise
        return 1
    finally:
        if recorder is not None:
            recorder.close()
        if project is not None:
            project.close()


def run_other_rank(project_path: str, run_id: int, resume: bool, should_stop: Any, allow_pickle: bool = False) -> int:
    """A process other than rank 0, when torchrun started several: it trains its share of every step and
    writes nothing (rank 0 records, reports and saves). Its errors go to stderr, the run's ``worker.log``."""
    from ..models import resolve_model
    from ..store import Project
    from .distributed import launched_rank
    from .loop import LoopHooks, train_loop
    from .runs import get_run, run_dir, run_items, run_settings

    try:
        with Project(project_path, create=False) as project:
            row = get_run(project, run_id)
        settings = replace(run_settings(row), allow_pickle=allow_pickle)
        train, dev = run_items(row)
        ref = resolve_model(row.model_ref, allow_pickle=settings.allow_pickle)
        train_loop(run_dir(row), ref, settings, train, dev, LoopHooks(should_stop=should_stop), resume=resume)
        return 0
    except BaseException as exc:  # noqa: BLE001 - rank 0 reports the run's end; this is for the log
        print(f"Training process {launched_rank()} of run {run_id} stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        if isinstance(exc, KeyboardInterrupt):
            raise
        return 1


def _watch_parent(flag: _StopFlag) -> None:
    """Under torchrun: if the launcher dies (killed), stop after the current step rather than train on alone."""
    parent = os.getppid()

    def watch() -> None:
        while not flag():
            if os.getppid() != parent:
                flag.set()
                return
            time.sleep(1.0)

    threading.Thread(target=watch, name="knowmix-parent-watch", daemon=True).start()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.train.worker", description="KnowMix training worker (started by KnowMix)."
    )
    parser.add_argument("--project", required=True)
    parser.add_argument("--run-id", type=int, required=True)
    parser.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    parser.add_argument("--allow-pickle", action="store_true", help="the user allowed pickle weights (never the project)")
    args = parser.parse_args(argv)

    from .distributed import launched_rank, launched_world

    if launched_rank() != 0:  # under torchrun: only rank 0 speaks to the parent
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        sys.stdout = sys.stderr
        from ..processes import lower_priority

        lower_priority()
        other = _StopFlag()
        _install_signals(other)
        _watch_parent(other)
        return run_other_rank(args.project, args.run_id, args.resume, other, args.allow_pickle)

    # The event stream gets a private copy of stdout; fd 1 itself now points at stderr, so whatever a
    # library prints can never corrupt the JSON lines the parent reads.
    events = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr

    from ..processes import lower_priority

    lower_priority()
    flag = _StopFlag()
    _install_signals(flag)
    _watch_stdin(flag)
    if launched_world() > 1:
        _watch_parent(flag)
    return run(args.project, args.run_id, args.resume, events, flag, args.allow_pickle)


if __name__ == "__main__":
    sys.exit(main())
