"""The training bar's rate and ETA, as the user sees them while the worker runs."""

from __future__ import annotations

import subprocess
import sys

from core import jobs
from core.jobs import CancelToken
from core.train.events import Eval, Start, Step
from core.train.runner import _Follower


def test_the_eta_starts_after_the_evaluation_before_the_first_step(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(jobs.time, "monotonic", lambda: clock[0])
    proc = subprocess.Popen([sys.executable, "-c", "pass"], stdout=subprocess.PIPE, text=True)
    seen = []
    follower = _Follower(proc, 1, seen.append, None, CancelToken())
    follower._handle(Start(total_steps=100, steps_per_epoch=10, epochs=10, start_step=0))
    clock[0] += 600  # step 0: dev exact match and train fit before training, ten minutes on a slow machine
    follower._handle(Eval(step=0, epoch=0.0, dev_em=0.0))
    clock[0] += 5
    follower._handle(Step(step=1, epoch=0.1, loss=2.0))
    # one step in 5 s: 99 steps left are about 8 minutes, not the 16 hours the evaluation's time would give
    assert seen[-1].rate == 0.2 and round(seen[-1].eta_s) == 495
    clock[0] += 5
    follower._handle(Eval(step=1, epoch=0.1, dev_em=0.1))  # later evaluations count: they recur every epoch
    clock[0] += 5
    follower._handle(Step(step=2, epoch=0.2, loss=1.9))
    assert round(seen[-1].eta_s) == 98 * 7.5
    proc.wait(10)


def test_the_eta_leaves_out_the_model_loading_and_says_when_other_programs_use_the_cpu(monkeypatch):
    from core import cpu_load

    clock = [1000.0]
    monkeypatch.setattr(jobs.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(cpu_load.os, "getloadavg", lambda: (3.0, 3.0, 3.0))
    monkeypatch.setattr(cpu_load.os, "cpu_count", lambda: 2)
    proc = subprocess.Popen([sys.executable, "-c", "pass"], stdout=subprocess.PIPE, text=True)
    seen = []
    follower = _Follower(proc, 1, seen.append, None, CancelToken())
    clock[0] += 300  # the worker imports torch and loads the model: five minutes, and no event yet
    follower._handle(Start(total_steps=50, steps_per_epoch=10, epochs=5, start_step=0, device="cpu", threads=2))
    clock[0] += 2
    follower._handle(Step(step=1, epoch=0.1, loss=2.0))
    assert seen[-1].rate == 0.5 and round(seen[-1].eta_s) == 98  # 49 steps at 2 s each, not at 302 s
    assert "other programs are using the CPU" in (seen[-1].busy or "")  # a load of 3 on 2 cores, 2 of them the worker's
    monkeypatch.setattr(cpu_load.os, "getloadavg", lambda: (2.0, 2.0, 2.0))
    clock[0] += jobs.BUSY_CHECK_S
    follower._handle(Step(step=2, epoch=0.2, loss=1.9))
    assert seen[-1].busy is None  # the worker alone
    proc.wait(10)
