"""While a job's worker thread runs Python, the garbage collector runs only on the GUI thread: a
collection in a worker that destroys a QObject deadlocks in PySide (gui/gc_guard.py)."""

from __future__ import annotations

import gc
import threading

import pytest

pytest.importorskip("pytestqt")


def test_collections_happen_on_the_gui_thread_while_a_job_runs(qtbot):
    from gui.jobs import JobRunner

    runner = JobRunner(lambda exc, tb: None)
    threads: list[str] = []

    def seen(phase: str, info: dict) -> None:
        if phase == "start":
            threads.append(threading.current_thread().name)

    def work(job) -> int:
        junk = []
        for i in range(300_000):  # cyclic garbage: enough to pass every threshold many times
            a: list = [i]
            a.append(a)
            junk.append(a if i % 1000 == 0 else None)
        return len(junk)

    gc.callbacks.append(seen)
    try:
        assert gc.isenabled()
        job = runner.start("garbage", work)
        assert not gc.isenabled()  # the worker may not collect
        qtbot.waitUntil(lambda: job.done, timeout=60_000)
        qtbot.wait(600)  # one tick of the GUI thread's collector at least
    finally:
        gc.callbacks.remove(seen)
    assert runner.wait_all(10)
    assert gc.isenabled()  # given back when the last job ended
    assert threads and set(threads) == {threading.main_thread().name}


def test_a_misspelt_callback_is_refused_before_the_job_starts(qtbot):
    """``JobRunner.start`` takes its callbacks as one typed record (``JobCallbacks``), so a misspelt one
    fails at once, as a wrong keyword did, instead of being dropped without a word."""
    from gui.jobs import JobRunner

    runner = JobRunner(lambda exc, tb: None)
    ran: list = []
    with pytest.raises(TypeError, match="on_don"):
        runner.start("typo", lambda job: ran.append(1), on_don=print)
    assert not runner.busy and ran == []
    results: list = []
    job = runner.start("fine", lambda job: 42, on_done=results.append, exclusive=False)
    qtbot.waitUntil(lambda: results == [42], timeout=10_000)
    assert job is not None
