"""The check's time estimate, from this machine (issue 21, item 3): before a pass's first batch,
when nothing of this session is measured yet, the loaded model answers the pass's first questions
alone (as the pass asks them) for about ``settings.calibrate_s`` seconds; the seconds per answer it
takes give the rate shown, marked estimated, until the first batch ends and its measured rate
replaces it. The adapter pass asks the probe's exemplar prompts too, which cost more per answer,
so the estimate there is a low one until the first batch is measured."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from ..backends.base import Backend
from ..cpu_load import backend_threads
from ..datasets import Example
from ..jobs import RateMeter
from ..probe import seconds_per_answer

if TYPE_CHECKING:
    from .run import _Asking

CALIBRATION_PART = 4  # questions per timed request
CALIBRATION_QUESTIONS = 16  # at most this many of the pass's first questions are timed


def pass_meter(meter: RateMeter, backend: Backend, asking: "_Asking", questions: Sequence[Example], budget_s: float) -> RateMeter:
    """The meter for a pass on ``backend``: it knows the model's threads (so other programs' load is
    said) and, when nothing is measured yet and ``budget_s`` > 0, a calibration's rate."""
    from .run import zero_shot_answers

    own = backend_threads(backend.info.device, backend.info.extra)
    if budget_s <= 0 or meter.done > meter.start_done or not questions:
        meter.own_threads = own
        return meter
    parts = iter(
        [
            list(questions[i : i + CALIBRATION_PART])
            for i in range(0, min(len(questions), CALIBRATION_QUESTIONS), CALIBRATION_PART)
        ]
    )

    def ask() -> int:
        part = next(parts, None)
        return len(zero_shot_answers(backend, part, asking.prompt_format, asking.max_tokens)) if part else 0

    seconds = seconds_per_answer(ask, budget_s)
    return RateMeter(meter.total, meter.done, meter.unit, own, 1.0 / seconds if seconds > 0 else 0.0)  # its clock starts now
