"""The time estimate, from this machine (issue 21, item 3): before the first batch, a short
calibration on the loaded model (``calibrate``, about ``CALIBRATION_S`` seconds) times real prompts
of the run, greedy and sampled; the estimate it gives is shown until the first batch ends, then the
run's own measured rate replaces it (``core.jobs.RateMeter``'s ``prior_rate``).

The calibration cannot know how many questions the model already knows: under the lazy schedule a
question with a correct greedy answer draws no samples. So it gives a range (every question known:
greedy answers only; none known: every sample) and an estimate halfway between them. It does not
time a judge model's verdicts (judge mode): the first batch's measured rate includes them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

from ..backends.base import Backend, GenRequest
from ..formats import duration_words
from .settings import ProbeSettings, sample_seed
from .work import _Work

CALIBRATION_S = 5.0  # the probe's and the check's calibration budget on the loaded model
GREEDY_BATCH = 4  # prompts per greedy request, as a batch of the run shares their exemplars


@dataclass(frozen=True)
class Calibration:
    """Seconds per greedy answer and per sampled request (``samples_per_set`` answers), measured."""

    greedy_s: float
    sampled_s: float
    seconds: float  # how long the calibration took

    def per_example(self, settings: ProbeSettings, share_sampled: float) -> float:
        """Seconds one question takes when ``share_sampled`` of the questions need samples."""
        sampled = self.sampled_s if settings.samples_per_set else 0.0
        if settings.schedule == "full":
            share_sampled = 1.0
        return settings.n_sets * (self.greedy_s + share_sampled * sampled)

    def rate(self, settings: ProbeSettings) -> float:
        """Questions per second, halfway between every question known and none known."""
        mid = (self.per_example(settings, 0.0) + self.per_example(settings, 1.0)) / 2
        return 1.0 / mid if mid > 0 else 0.0

    def words(self, settings: ProbeSettings, n: int) -> str:
        """'about 12 min for 180 questions (between 4 min if the model knows them all and 20 min if
        it knows none; measured on this machine in 5 s)'."""
        low, high = (n * self.per_example(settings, s) for s in (0.0, 1.0))
        mid = (low + high) / 2
        spread = ""
        if settings.samples_per_set and settings.schedule == "lazy" and high > low * 1.2:
            spread = f"between {duration_words(low)} if the model knows them all and {duration_words(high)} if it knows none; "
        plural = "s" if n != 1 else ""
        return f"about {duration_words(mid)} for {n} question{plural} ({spread}measured on this machine in {self.seconds:.0f} s)"


def calibrate(backend: Backend, works: Sequence[_Work], settings: ProbeSettings, budget_s: float = CALIBRATION_S) -> Calibration:
    """Time greedy answers (``GREEDY_BATCH`` prompts a request) and sampled requests on the first
    questions' prompts, set by set, until ``budget_s`` has passed or every set was timed (at least
    one of each, so a slow model may take longer). The answers are thrown away: the run asks them
    again, in its own order."""
    t0 = time.monotonic()
    greedy: list[float] = []  # seconds per answer
    sampled: list[float] = []  # seconds per request
    part = list(works[:GREEDY_BATCH])
    for k in range(settings.n_sets if part else 0):
        if greedy and time.monotonic() - t0 >= budget_s:
            break
        t = time.monotonic()
        backend.generate(
            [
                GenRequest(w.prompts[k], max_tokens=w.max_tokens, prune=w.pruner if w.mode != "exact" else None, chat=w.chat)
                for w in part
            ]
        )
        greedy.append((time.monotonic() - t) / len(part))
        if settings.samples_per_set and (not sampled or time.monotonic() - t0 < budget_s):
            w = part[k % len(part)]
            seeds = tuple(sample_seed(settings.seed, w.example.id, k, j) for j in range(settings.samples_per_set))
            req = GenRequest(
                w.prompts[k],
                n=settings.samples_per_set,
                temperature=settings.temperature,
                top_k=settings.top_k,
                seeds=seeds,
                max_tokens=w.max_tokens,
                prune=w.pruner,
                chat=w.chat,
            )
            t = time.monotonic()
            backend.generate([req])
            sampled.append(time.monotonic() - t)
    return Calibration(_mean(greedy), _mean(sampled), time.monotonic() - t0)


def seconds_per_answer(ask: Callable[[], int], budget_s: float = CALIBRATION_S) -> float:
    """Call ``ask`` (it asks the loaded model real questions and returns how many answers it got)
    until ``budget_s`` has passed, at least once: the seconds one answer takes on this machine
    (the check's calibration)."""
    t0 = time.monotonic()
    answers = 0
    while answers == 0 or time.monotonic() - t0 < budget_s:
        got = ask()
        if got <= 0:
            break
        answers += got
    return (time.monotonic() - t0) / answers if answers else 0.0


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0
