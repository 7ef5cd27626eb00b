"""Whether other programs are using the CPU, as the time estimates say it (``core.cpu_load``)."""

from __future__ import annotations

from core import cpu_load, jobs
from core.cpu_load import busy_cpu_note, worker_threads
from core.jobs import RateMeter


def machine(monkeypatch, load: float, cores: int) -> None:
    monkeypatch.setattr(cpu_load.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(cpu_load.os, "cpu_count", lambda: cores)


def test_a_machine_busy_with_other_programs_is_said_and_the_job_alone_is_not(monkeypatch):
    machine(monkeypatch, 4.2, 2)
    note = busy_cpu_note(own_threads=2)
    assert note is not None and note.startswith("other programs are using the CPU") and "2.2 on 2 cores" in note
    machine(monkeypatch, 2.1, 2)
    assert busy_cpu_note(own_threads=2) is None  # only the job's own two threads
    machine(monkeypatch, 7.0, 16)
    assert busy_cpu_note(own_threads=4) is None  # 3 of 16 cores: not enough to slow the job much
    machine(monkeypatch, 14.0, 16)
    assert busy_cpu_note(own_threads=4) is not None


def test_without_a_load_average_nothing_is_said(monkeypatch):
    monkeypatch.delattr(cpu_load.os, "getloadavg")  # Windows
    assert busy_cpu_note(1) is None


def test_a_worker_on_the_gpu_keeps_about_one_core_busy():
    assert worker_threads("cpu", 8) == 8.0 and worker_threads("cuda:0", 8) == 1.0 and worker_threads("cpu", None) == 1.0


def test_the_rate_meter_says_so_in_its_progress_only_when_it_knows_its_own_threads(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(jobs.time, "monotonic", lambda: clock[0])
    machine(monkeypatch, 5.0, 2)
    assert RateMeter(10).update(1).busy is None  # the probe and the check do not say yet what they use
    meter = RateMeter(10, own_threads=1)
    clock[0] += 1
    assert "other programs are using the CPU" in (meter.update(1).busy or "")
    machine(monkeypatch, 1.0, 2)
    clock[0] += 1
    assert meter.update(2).busy is not None  # read at most every few seconds
    clock[0] += jobs.BUSY_CHECK_S
    assert meter.update(3).busy is None  # the other programs have finished
    assert meter.restart().own_threads == 1
