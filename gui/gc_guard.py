"""Python's garbage collector runs on the GUI thread while jobs run on worker threads.

Why: a job's worker allocates, the cyclic collector then runs *in that thread*, and may destroy a
QObject left in a reference cycle (a closed page's widget, a finished job). Qt's destructor calls
back into PySide, which waits for the GIL from inside the collector, and the worker hangs for ever
(seen: the Breakdown step's 100k-row load, stuck in ``gc_collect_main`` -> ``QObject::~QObject`` ->
``Shiboken::GilState``). pyqtgraph's ``GarbageCollector`` answers the same hazard the same way:
while any job runs, automatic collection is off and a timer on the GUI thread collects instead,
generation by generation as the thresholds say.
"""

from __future__ import annotations

import gc
from typing import Optional

from .qt import QtCore

_holders = 0
_timer: Optional[QtCore.QTimer] = None
INTERVAL_MS = 500


def hold() -> None:
    """A worker thread starts (call on the GUI thread): collect only on the GUI thread until it ends."""
    global _holders, _timer
    _holders += 1
    if _holders > 1:
        return
    app = QtCore.QCoreApplication.instance()
    if app is None:
        return
    gc.disable()
    if _timer is None:
        _timer = QtCore.QTimer(app)
        _timer.setInterval(INTERVAL_MS)
        _timer.timeout.connect(collect)
    _timer.start()


def release() -> None:
    """A worker thread ended (on the GUI thread); the last one gives collection back to Python."""
    global _holders
    _holders = max(0, _holders - 1)
    if _holders:
        return
    if _timer is not None:
        _timer.stop()
    gc.enable()


def collect() -> None:
    """The young generations' collections automatic collection would have done by now, here on the
    GUI thread. A full (generation 2) collection walks the whole heap and can stall the event loop
    for hundreds of milliseconds, so it waits until the last job ends and Python collects again."""
    t0, t1, _t2 = gc.get_threshold()
    n0, n1, _n2 = gc.get_count()
    if n0 > t0:
        gc.collect(0)
        if n1 > t1:
            gc.collect(1)
