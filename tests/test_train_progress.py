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
