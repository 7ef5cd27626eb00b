"""Progress events and cancellation shared by every long job (probe, train, export).

Jobs are plain functions that take a ``progress`` callback and a ``CancelToken``. The CLI turns
the events into a progress bar; the GUI job runner forwards them to the UI thread. Keeping the
event a small frozen dataclass means it can cross threads and processes (as JSON) unchanged.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

from .cpu_load import busy_cpu_note
from .errors import Cancelled
from .formats import format_duration  # noqa: F401  (its home is core.formats; kept here for old importers)


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    rate: float  # units per second, smoothed; 0.0 until measurable
    eta_s: Optional[float]  # seconds left, None until measurable
    message: str = ""
    unit: str = "examples"
    busy: Optional[str] = None  # "other programs are using the CPU …" when they are (``core.cpu_load``)
    estimated: bool = False  # rate and ETA come from a calibration on this machine, not yet from this run's work

    def rate_words(self, measuring: str = "measuring") -> str:
        """'0.42 examples/s', or 'about 0.42 examples/s (estimated on this machine)' until the first
        batch is measured: one wording for the CLI's line and the app's progress row."""
        if not self.rate:
            return measuring
        rate = f"{self.rate:.2f} {self.unit}/s"
        return f"about {rate} (estimated on this machine)" if self.estimated else rate

    def to_dict(self) -> dict:
        return asdict(self)


ProgressCallback = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    """Default callback for callers that do not show progress."""


class CancelToken:
    """Thread-safe flag checked by jobs between batches."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self, what: str = "The job") -> None:
        if self._event.is_set():
            raise Cancelled(f"{what} was cancelled; finished work is saved and can be resumed.")


BUSY_CHECK_S = 5.0  # the load average is read at most this often


class RateMeter:
    """Rate and ETA over the work done in *this* session (resumed work does not inflate the rate).

    Start it when the work starts (after the model is loaded), so the rate is the work's own. With
    ``own_threads`` (the cores the job keeps busy), each ``Progress`` says whether other programs
    are using the CPU too (``busy``); without it, nothing is said. Until some work is measured,
    ``prior_rate`` (a calibration's on the loaded model, when one ran) gives rate and ETA, marked
    ``estimated``.
    """

    def __init__(
        self,
        total: int,
        already_done: int = 0,
        unit: str = "examples",
        own_threads: Optional[float] = None,
        prior_rate: float = 0.0,
    ) -> None:
        self.total = total
        self.start_done = already_done
        self.done = already_done
        self.unit = unit
        self.own_threads = own_threads
        self.prior_rate = prior_rate
        self._t0 = time.monotonic()
        self._busy: Optional[str] = None
        self._busy_at: Optional[float] = None

    def restart(self) -> "RateMeter":
        """A meter for the same work that measures from now (after a one-off pause such as an evaluation)."""
        return RateMeter(self.total, self.start_done, self.unit, self.own_threads, self.prior_rate)

    def busy(self) -> Optional[str]:
        """``busy_cpu_note`` for this job, read at most every ``BUSY_CHECK_S``."""
        if self.own_threads is None:
            return None
        now = time.monotonic()
        if self._busy_at is None or now - self._busy_at >= BUSY_CHECK_S:
            self._busy, self._busy_at = busy_cpu_note(self.own_threads), now
        return self._busy

    def update(self, done: int, message: str = "") -> Progress:
        self.done = done
        elapsed = time.monotonic() - self._t0
        fresh = done - self.start_done
        rate = fresh / elapsed if elapsed > 0 and fresh > 0 else 0.0
        estimated = rate == 0 and self.prior_rate > 0
        if estimated:
            rate = self.prior_rate
        eta = (self.total - done) / rate if rate > 0 else None
        return Progress(done, self.total, rate, eta, message, self.unit, self.busy(), estimated)
