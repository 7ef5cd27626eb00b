"""What every `knowmix` command shares: the progress bar, status lines on stderr, Ctrl-C as a polite
stop (the first asks the job to stop, a second stops at once), and which project a command means
when none is given."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any, Optional

from .formats import format_duration as _fmt_seconds
from .jobs import CancelToken, Progress


class ProgressPrinter:
    """A one-line progress bar on a terminal; periodic plain lines when output is a file or pipe."""

    def __init__(self, label: str, stream=None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0
        self._last_done = -1
        self._estimate_shown = False  # a calibration's estimate is printed once, as soon as it comes

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if self.tty:
            if now - self._last < 0.1 and p.done != p.total:
                return
            width = 24
            filled = int(width * p.done / p.total) if p.total else width
            bar = "#" * filled + "." * (width - filled)
            rate = p.rate_words("measuring") + (f" ({p.busy})" if p.busy else "")
            line = f"\r{self.label} [{bar}] {p.done}/{p.total} {rate} ETA {_fmt_seconds(p.eta_s)}  {p.message[:40]:<40}"
            self.stream.write(line)
            self.stream.flush()
        elif (p.estimated and not self._estimate_shown) or (
            p.done != self._last_done and (now - self._last > 15 or p.done == p.total)
        ):
            self._estimate_shown = self._estimate_shown or p.estimated
            rate = p.rate_words("rate not yet measured") + (f" ({p.busy})" if p.busy else "")
            self.stream.write(f"{self.label}: {p.done}/{p.total} {p.unit}, {rate}, ETA {_fmt_seconds(p.eta_s)}\n")
            self.stream.flush()
            self._last_done = p.done
        else:
            return
        self._last = now

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _status(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _CtrlC:
    """First Ctrl-C asks the job to stop after the current batch; a second one stops at once."""

    def __init__(
        self, token: CancelToken, what: str = "Finished batches are saved; the batch in progress is redone on resume"
    ) -> None:
        self.token = token
        self.what = what
        self._old: Any = None  # the SIGINT handler to put back

    def __enter__(self) -> "_CtrlC":
        def handler(signum, frame):
            if self.token.cancelled:
                raise KeyboardInterrupt
            self.token.cancel()
            _status(f"\nStopping (press Ctrl-C again to stop at once). {self.what} ...")

        try:
            self._old = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not in the main thread
            self._old = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _find_project(arg: Optional[str]) -> Path:
    from .errors import ProjectError

    if arg:
        return Path(arg)
    found = sorted(Path.cwd().glob("*.knowmix"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not found:
        raise ProjectError("No project given and no *.knowmix file in this folder. Pass --project FILE.")
    if len(found) > 1:
        _status(f"Using the most recent project here: {found[0].name} (pass --project to choose another).")
    return found[0]
