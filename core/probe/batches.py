"""Asking the model: a batch's greedy answers and samples, set-major so prompts share their prefix
(``probe_batch``), and a list of questions batch by batch (``probe_examples``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from ..backends.base import Backend, GenRequest
from ..cpu_load import backend_threads
from ..datasets import Example
from ..errors import ModelCrashed
from ..jobs import CancelToken, ProgressCallback, RateMeter, no_progress
from .estimate import GREEDY_BATCH, calibrate
from .exemplars import common_answers, exemplar_pools
from .prompts import chat_renderer
from .settings import ProbeSettings, sample_seed
from .work import _prepare, _Work, score_answers


def probe_batch(
    backend: Backend,
    works: list[_Work],
    settings: ProbeSettings,
    cancel: CancelToken,
    on_step: Callable[[str], None] = lambda _m: None,
    judge: Optional[Backend] = None,
) -> None:
    """Fill greedy and sampled answers for a batch, set-major so that prompts share their prefix.
    ``judge`` answers judge mode's yes/no questions (default: the probed model)."""
    judge = judge or backend
    t0 = time.monotonic()
    for k in range(settings.n_sets):
        cancel.raise_if_cancelled("The probe")
        reqs = [
            # key mode stops a greedy answer once it holds the key; exact mode keeps it whole
            GenRequest(w.prompts[k], max_tokens=w.max_tokens, prune=w.pruner if w.mode != "exact" else None, chat=w.chat)
            for w in works
        ]
        got = backend.generate(reqs)
        verdicts = score_answers(judge, [(w, answers[0]) for w, answers in zip(works, got)])
        for w, answers, v in zip(works, got, verdicts):
            w.greedy.append(answers[0])
            w.greedy_reasons.append(("✓ " if v.right else "✗ ") + v.reason)
            w.greedy_ok += v.right
        on_step(f"greedy answers, exemplar set {k + 1}/{settings.n_sets}")
    for w in works:
        w.samples = [[] for _ in range(settings.n_sets)]
    if settings.samples_per_set:
        for k in range(settings.n_sets):
            if settings.schedule == "full":
                pending = works
            else:  # examples with no correct greedy answer: every sample, so P(T>0) is measured to the end
                pending = [w for w in works if w.greedy_ok == 0]
            if not pending:
                break
            cancel.raise_if_cancelled("The probe")
            reqs = [
                GenRequest(
                    w.prompts[k],
                    n=settings.samples_per_set,
                    temperature=settings.temperature,
                    top_k=settings.top_k,
                    seeds=tuple(sample_seed(settings.seed, w.example.id, k, j) for j in range(settings.samples_per_set)),
                    max_tokens=w.max_tokens,
                    prune=w.pruner,
                    chat=w.chat,
                )
                for w in pending
            ]
            got = backend.generate(reqs)
            verdicts = score_answers(judge, [(w, a) for w, answers in zip(pending, got) for a in answers])
            at = 0
            for w, answers in zip(pending, got):
                w.samples[k] = answers
                w.sampled_n += len(answers)
                w.sampled_ok += sum(v.right for v in verdicts[at : at + len(answers)])
                at += len(answers)
            on_step(f"samples, exemplar set {k + 1}/{settings.n_sets}")
    per_example = (time.monotonic() - t0) / max(1, len(works))
    for w in works:
        w.seconds = per_example


@dataclass
class ProbeJob:
    """What a run tells ``probe_examples`` besides the questions: where the results go, how to report
    and stop, and where the examples stand in the whole run."""

    run_id: int = 0
    on_results: Callable[[list[dict]], None] = lambda _rows: None  # each finished batch (to save it)
    progress: ProgressCallback = no_progress
    cancel: Optional[CancelToken] = None
    already_done: int = 0  # examples of the run finished before these
    total: Optional[int] = None  # examples in the whole run (default: already_done + these)
    judge: Optional[Backend] = None  # judge mode's model (default: the probed one)
    hold_out: bool = False  # the pool is the dataset itself, as ``draw_exemplar_sets`` was told
    calibrate_s: float = 0.0  # time the model this long before the first batch, for an estimate (``estimate``)


def probe_examples(
    backend: Backend,
    examples: Sequence[Example],
    pool: Sequence[Example],
    settings: ProbeSettings,
    exemplar_sets: dict[str, list[list[str]]],
    job: Optional[ProbeJob] = None,
) -> list[dict]:
    """Probe ``examples`` batch by batch with the group's ``exemplar_sets`` drawn from ``pool``;
    ``job.on_results`` gets each finished batch."""
    job = job or ProbeJob()
    settings.validate()
    cancel = job.cancel or CancelToken()
    progress = job.progress
    pool_by_id = {ex.id: ex for ex in pool}
    pools, _ = exemplar_pools(pool, {ex.group for ex in examples}, settings, job.hold_out)
    common = common_answers(pool, pools, settings)
    render = chat_renderer(backend) if settings.chat_template else None
    ordered = sorted(examples, key=lambda ex: ex.group)  # stable: file order within a group
    total = job.total if job.total is not None else job.already_done + len(ordered)
    own = backend_threads(backend.info.device, backend.info.extra)  # so other programs' load is told apart
    meter = RateMeter(total, job.already_done, own_threads=own)
    done = job.already_done
    progress(meter.update(done, "starting"))
    if job.calibrate_s > 0 and ordered:
        # an estimate from this machine before the first batch; its measured rate replaces it
        progress(meter.update(done, f"timing the model on this machine (about {job.calibrate_s:.0f} s) …"))
        first = [ex for ex in ordered[:GREEDY_BATCH] if ex.group == ordered[0].group]
        g = ordered[0].group
        works = [_prepare(ex, exemplar_sets[g], pool_by_id, settings, render, pools[g], common[g]) for ex in first]
        cal = calibrate(backend, works, settings, job.calibrate_s)
        meter = RateMeter(total, done, own_threads=own, prior_rate=cal.rate(settings))  # its clock starts now
        progress(meter.update(done, cal.words(settings, len(ordered))))
    out: list[dict] = []
    i = n_batch = 0
    while i < len(ordered):
        group = ordered[i].group
        batch = [ordered[i]]
        i += 1
        while i < len(ordered) and len(batch) < settings.chunk_size and ordered[i].group == group:
            batch.append(ordered[i])
            i += 1
        n_batch += 1
        works = [
            _prepare(ex, exemplar_sets[ex.group], pool_by_id, settings, render, pools[ex.group], common[ex.group]) for ex in batch
        ]
        try:
            on_step = lambda m, d=done, g=group: progress(meter.update(d, f"{g}: {m}"))  # bound now, called now
            probe_batch(backend, works, settings, cancel, on_step, job.judge)
        except ModelCrashed as exc:  # say where, in the words of the probe, not of the backend
            which = f"question {done + 1}" if len(batch) == 1 else f"questions {done + 1}-{done + len(batch)}"
            raise exc.retold(doing=f"probing group '{group}' (batch {n_batch}, {which} of {total})") from None
        rows = [w.result(job.run_id, settings) for w in works]
        job.on_results(rows)
        out.extend(rows)
        done += len(rows)
        progress(meter.update(done, f"{group}: batch saved"))
    return out
