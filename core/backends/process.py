"""Model work in a child process, so that a native crash costs the child, not the CLI or the app.

llama.cpp and torch are native code: a segmentation fault, an illegal instruction on an old CPU, an
abort or the out-of-memory killer end the whole process they run in, with a "Fatal Python error"
dump and no chance to say what was saved. ``ProcessBackend`` loads the real backend
(``core.backends.load_backend``) in a child started with ``core.processes.child_command`` and
forwards ``generate`` to it; when the child dies the caller gets a one-line ``ModelCrashed``.

The protocol is length-prefixed pickles over the pipes the child was started with. The child moves
them to private descriptors before it imports anything heavy and points fd 1 and fd 2 at a log
file, so what native libraries print can never corrupt a message (and never reaches the
terminal). One request at a time: ``(op, payload)`` in, ``("ok", value)`` or ``("error", details)``
out. The child exits when its input pipe closes, i.e. when the parent closes it or dies.
"""

from __future__ import annotations

import argparse
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
import weakref
from dataclasses import astuple, fields
from pathlib import Path
from typing import IO, Any, Optional, Sequence

from .. import errors as _errors
from ..errors import KnowMixError, ModelCrashed, ModelError
from ..models import ModelRef, resolve_model
from ..processes import child_command, child_env, describe_exit, lower_priority
from .base import Backend, GenRequest, GenStats

MODULE = "core.backends.process"
_HEADER = struct.Struct("!Q")
CLOSE_GRACE_S = 5.0  # an idle child exits at once on EOF; a busy one is killed after this
CRASH_WAIT_S = 5.0  # after EOF on the pipe, how long the child may take to finish dying
LOG_MAX_BYTES = 2_000_000


# -- framing ----------------------------------------------------------------------------------------


def write_message(stream: IO[bytes], obj: Any) -> None:
    """Pickle first, then write: an object that cannot be pickled fails before a byte is sent."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_message(stream: IO[bytes]) -> Any:
    """The next message; ``EOFError`` when the other side is gone (also in the middle of one)."""
    (size,) = _HEADER.unpack(_read_exact(stream, _HEADER.size))
    return pickle.loads(_read_exact(stream, size))


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the other process closed the pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# -- the parent side --------------------------------------------------------------------------------


class ChildTraceback(Exception):
    """The child's traceback of an unexpected error, chained as the cause so bug reports carry it."""


class ModelProcessError(RuntimeError):
    """An unexpected error (a bug, not a user mistake) inside the model process."""


def model_log_path() -> Path:
    """Where the model process's own output goes: the logs folder next to the app's log."""
    from ..paths import logs_dir

    return logs_dir() / "model-process.log"


def _open_log(path: Path) -> Any:
    """An append handle for the child's fd 1/2; a folder we cannot write costs the log, not the model."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size > LOG_MAX_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
        return open(path, "ab")
    except OSError:
        return subprocess.DEVNULL


def _log_tail(path: Path, lines: int = 2) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:] if line.strip())[:300]


def _append_log(path: Path, line: str) -> None:
    """The child cannot write how it died; the parent adds it, for a bug report."""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    except OSError:
        pass


def _stop(proc: subprocess.Popen, grace: float) -> None:
    """End the child: EOF first (it closes the model and exits), then a kill if it does not."""
    try:
        if proc.stdin is not None:
            proc.stdin.close()
    except (OSError, ValueError):
        pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class ProcessBackend(Backend):
    """A backend whose model lives in a child process; ``generate``, ``info``, ``stats``,
    ``reset_cache`` and ``close`` behave like the in-process backend's."""

    name = "process"  # replaced by the loaded backend's name ("llama.cpp", "torch")

    def __init__(
        self,
        model: str | ModelRef,
        backend: str = "auto",
        *,
        allow_pickle: bool = False,
        log_path: Optional[Path] = None,
        **options: object,
    ) -> None:
        from . import backend_for

        super().__init__()
        ref = model if isinstance(model, ModelRef) else resolve_model(model, allow_pickle=allow_pickle)
        self.name = backend_for(ref, backend)  # the wrapped backend's name
        self.log_path = log_path or model_log_path()
        self._lock = threading.Lock()
        self._closing = False
        self._proc: Optional[subprocess.Popen] = self._start()
        # An app or CLI that exits without close() (an uncaught error) must not leave the child behind.
        self._finalizer = weakref.finalize(self, _stop, self._proc, 0.5)
        try:
            loaded = self._call(
                "load",
                {"model": ref, "backend": self.name, "allow_pickle": allow_pickle, "options": options},
                f"loading {ref.display_name} ({self.name})",
            )
        except BaseException:
            self.close()
            raise
        self.name = loaded["name"]
        self.info = loaded["info"]

    def _start(self) -> subprocess.Popen:
        log = _open_log(self.log_path)
        # Its own session / process group: a Ctrl-C in the terminal reaches only the parent, which
        # stops between batches; the child must not die of it in the middle of one.
        detach: dict[str, Any] = (
            {"start_new_session": True}
            if os.name == "posix"
            else {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
        )
        try:
            return subprocess.Popen(
                child_command(MODULE, "--parent", str(os.getpid())),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=child_env(),
                **detach,
            )
        except OSError as exc:
            raise ModelError(f"The model process cannot start: {exc.strerror or exc}. Reinstall KnowMix.") from None
        finally:
            if log is not subprocess.DEVNULL:
                log.close()

    # -- state ----------------------------------------------------------------------------------
    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        """False once the child has died or was closed: the app then loads a fresh one."""
        return self._proc is not None and self._proc.poll() is None

    # -- calls ----------------------------------------------------------------------------------
    def _call(self, op: str, payload: Any, doing: str) -> Any:
        with self._lock:
            proc = self._proc
            if proc is None:
                raise ModelError("The model is not loaded any more (it was unloaded or its process ended). Load it again.")
            try:
                write_message(proc.stdin, (op, payload))  # type: ignore[arg-type]
                status, value = read_message(proc.stdout)  # type: ignore[arg-type]
            except (EOFError, OSError, ValueError):  # ValueError: a pipe closed by close() on another thread
                raise self._ended(proc, doing) from None
        if status == "ok":
            return value
        raise _child_error(value)

    def _ended(self, proc: subprocess.Popen, doing: str) -> ModelError:
        """The pipe broke: wait for the child's exit status and say how it ended."""
        try:
            code = proc.wait(timeout=CRASH_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        if self._proc is proc:
            self._proc = None
        self._finalizer.detach()
        if self._closing:
            return ModelError("The model was unloaded while it was working; finished work is saved.")
        exit_text = describe_exit(code)
        if code is not None and code > 0:
            tail = _log_tail(self.log_path)
            exit_text += f" ({tail})" if tail else f" (its output is in {self.log_path})"
        _append_log(self.log_path, f"[{proc.pid}] {time.strftime('%Y-%m-%d %H:%M:%S')} {exit_text} while {doing}")
        return ModelCrashed(exit_text, doing=doing, backend=self.name, returncode=code)

    def generate(self, requests: Sequence[GenRequest]) -> list[list[str]]:
        reqs = list(requests)
        answers, delta = self._call("generate", reqs, f"answering {len(reqs)} prompt{'s' if len(reqs) != 1 else ''}")
        for f, added in zip(fields(GenStats), delta):  # the child's counts, so stats.reset() works as before
            setattr(self.stats, f.name, getattr(self.stats, f.name) + added)
        return answers

    def reset_cache(self) -> None:
        """Forget the child backend's cached prefixes (the benchmark's naive baseline uses this)."""
        self._call("reset_cache", None, "clearing its cache")

    def close(self) -> None:
        """Stop the child. Safe from another thread while a call is in flight: that call then fails
        with a ModelError instead of waiting for the model."""
        self._closing = True
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self._finalizer.detach()
        idle = self._lock.acquire(blocking=False)
        try:
            _stop(proc, CLOSE_GRACE_S if idle else 0.5)
            if idle and proc.stdout is not None:
                proc.stdout.close()
        finally:
            if idle:
                self._lock.release()


def _child_error(details: dict) -> BaseException:
    """The child's error as the parent's: a KnowMixError keeps its class and message."""
    if details.get("user"):
        cls = getattr(_errors, str(details.get("type")), None)
        if isinstance(cls, type) and issubclass(cls, KnowMixError) and cls is not ModelCrashed:
            try:
                return cls(details["message"])
            except TypeError:
                pass
        return ModelError(details["message"])
    err = ModelProcessError(f"{details.get('type')}: {details.get('message')}")
    err.__cause__ = ChildTraceback("in the model process:\n" + str(details.get("traceback") or ""))
    return err


# -- the child side ---------------------------------------------------------------------------------


def _take_pipes() -> tuple[IO[bytes], IO[bytes]]:
    """Move the protocol off fds 0/1 and point fd 1 at the log (fd 2, from the parent) and fd 0 at
    nothing, before llama.cpp or torch can print a byte."""
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    sys.stdout.flush()
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return proto_in, proto_out


def _watch_parent(parent: int) -> None:
    """Exit when the parent is gone, even in the middle of a long generate (EOF comes only between calls)."""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.name == "posix":
                gone = os.getppid() != parent
            else:
                from ..store import pid_alive

                gone = not pid_alive(parent)
            if gone:
                os._exit(0)

    threading.Thread(target=watch, name="knowmix-parent-watch", daemon=True).start()


def _handle(backend: Optional[Backend], op: str, payload: Any) -> tuple[Optional[Backend], Any]:
    if op == "load":
        from . import load_backend

        print(
            f"[{os.getpid()}] {time.strftime('%Y-%m-%d %H:%M:%S')} loading {payload['model'].path} ({payload['backend']})",
            flush=True,
        )
        backend = load_backend(payload["model"], payload["backend"], allow_pickle=payload["allow_pickle"], **payload["options"])
        return backend, {"name": backend.name, "info": backend.info}
    if backend is None:
        raise ModelError("No model is loaded in the model process.")
    if op == "generate":
        before = astuple(backend.stats)
        answers = backend.generate(payload)
        return backend, (answers, tuple(a - b for a, b in zip(astuple(backend.stats), before)))
    if op == "reset_cache":
        reset = getattr(backend, "reset_cache", None)
        if reset is not None:
            reset()
        return backend, None
    raise ValueError(f"unknown request {op!r}")


def serve(proto_in: IO[bytes], proto_out: IO[bytes]) -> int:
    """Answer requests until the parent closes the pipe."""
    backend: Optional[Backend] = None
    try:
        while True:
            try:
                op, payload = read_message(proto_in)
            except EOFError:
                return 0
            try:
                backend, value = _handle(backend, op, payload)
                reply: tuple = ("ok", value)
            except KnowMixError as exc:
                reply = ("error", {"type": type(exc).__name__, "message": str(exc), "user": True})
            except Exception as exc:  # noqa: BLE001 - a bug: the parent shows it with this traceback
                tb = traceback.format_exc()
                print(tb, file=sys.stderr, flush=True)
                reply = ("error", {"type": type(exc).__name__, "message": str(exc), "user": False, "traceback": tb})
            try:
                write_message(proto_out, reply)
            except (BrokenPipeError, OSError):
                return 0
    finally:
        if backend is not None:
            backend.close()


def main(argv: list[str]) -> int:
    """``python -m core.backends.process --parent PID`` (or ``knowmix -m ...`` in a packaged app)."""
    proto_in, proto_out = _take_pipes()
    args = _parse(argv)
    if hasattr(signal, "SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    import faulthandler

    faulthandler.disable()  # a crash is reported by the parent in one line, not as a dump
    lower_priority()  # the app's window stays responsive while the model keeps the cores busy
    if args.parent:
        _watch_parent(args.parent)
    return serve(proto_in, proto_out)


def _parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=MODULE, description="KnowMix's model process (started by KnowMix itself).")
    ap.add_argument("--parent", type=int, default=0, help="exit when this process is gone")
    return ap.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
