"""The probe's and the check's time estimate comes from this machine (issue 21, item 3): a short
calibration on the loaded model gives it before the first batch, the run's measured rate replaces
it once the first batch ends, and a machine busy with other programs is said."""

from __future__ import annotations

import io
from typing import Sequence

from core import cpu_load
from core.backends.base import GenRequest
from core.cli_shared import ProgressPrinter
from core.jobs import Progress
from core.probe import ProbeJob, ProbeSettings, draw_exemplar_sets, probe_examples
from tests.scripted import ScriptedBackend
from tests.test_probe import make_examples

GREEDY_S = 0.1  # what an answer costs on the fake clock
SAMPLE_S = 0.05


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SlowBackend(ScriptedBackend):
    """A scripted model whose answers take time on a fake clock; ``slowdown`` makes it slower later."""

    def __init__(self, knowledge: dict, clock: Clock, device: str = "cpu") -> None:
        super().__init__(knowledge)
        self.clock = clock
        self.slowdown = 1.0
        self.info.device = device

    def generate(self, requests: Sequence[GenRequest]) -> list[list[str]]:
        for req in requests:
            self.clock.now += self.slowdown * (GREEDY_S if req.greedy else SAMPLE_S * req.n)
        return super().generate(requests)


def probe(monkeypatch, backend: SlowBackend, examples, settings: ProbeSettings, calibrate_s: float = 5.0) -> list[Progress]:
    import time

    monkeypatch.setattr(time, "monotonic", backend.clock)
    events: list[Progress] = []
    backend.seen_at = []  # the fake clock at each event

    def seen(p: Progress) -> None:
        events.append(p)
        backend.seen_at.append(backend.clock.now)
        if p.estimated:
            backend.slowdown = 3.0  # the run turns out slower than the calibration: the measured rate shows it

    sets, _ = draw_exemplar_sets(examples, {e.group for e in examples}, settings)
    probe_examples(backend, examples, examples, settings, sets, ProbeJob(progress=seen, calibrate_s=calibrate_s))
    return events


def test_before_the_first_batch_the_estimate_comes_from_a_timed_generation_then_from_the_measured_rate(monkeypatch):
    examples, knowledge = make_examples(12, groups=1)
    settings = ProbeSettings(n_sets=2, samples_per_set=4, chunk_size=4)
    backend = SlowBackend(knowledge, Clock())
    events = probe(monkeypatch, backend, examples, settings)

    estimated = [e for e in events if e.estimated]
    assert estimated and all(e.done == 0 for e in estimated)
    first = estimated[0]
    # per question: 2 sets x 0.1 s greedy, plus (none known) 2 x 4 samples x 0.05 s: halfway = 0.4 s
    assert abs(first.rate - 1 / 0.4) < 1e-6 and abs(first.eta_s - 12 * 0.4) < 1e-6
    assert "measured on this machine" in first.message and "12 questions" in first.message
    assert first.rate_words().startswith("about 2.50 examples/s (estimated on this machine)")
    assert sum(1 for c in backend.calls) > 12 * 2  # the calibration really asked the model (and the run asked again)

    after = [e for e in events if e.done > 0]
    assert after and not any(e.estimated for e in after)
    # three times slower than calibrated: the first batch's own rate (4 questions since the estimate) replaces it
    took = backend.seen_at[events.index(after[0])] - backend.seen_at[events.index(first)]
    assert abs(after[0].rate - 4 / took) < 1e-6 and after[0].rate < first.rate
    assert "estimated" not in after[0].rate_words()


def test_without_a_calibration_nothing_is_estimated(monkeypatch):
    examples, knowledge = make_examples(8, groups=1)
    backend = SlowBackend(knowledge, Clock())
    events = probe(monkeypatch, backend, examples, ProbeSettings(n_sets=2, samples_per_set=2, chunk_size=4), calibrate_s=0)
    assert not any(e.estimated for e in events) and events[0].rate == 0


def test_the_estimate_says_when_other_programs_are_using_the_cpu_and_the_cli_line_shows_it(monkeypatch):
    monkeypatch.setattr(cpu_load.os, "getloadavg", lambda: (4.0, 4.0, 4.0))
    monkeypatch.setattr(cpu_load.os, "cpu_count", lambda: 2)
    examples, knowledge = make_examples(8, groups=1)
    backend = SlowBackend(knowledge, Clock(), device="cpu (1 threads)")  # as llama.cpp says its threads
    events = probe(monkeypatch, backend, examples, ProbeSettings(n_sets=2, samples_per_set=2, chunk_size=4))
    estimated = next(e for e in events if e.estimated)
    assert estimated.busy is not None and estimated.busy.startswith("other programs are using the CPU")

    out = io.StringIO()
    printer = ProgressPrinter("Probing", out)
    for e in events:
        printer(e)
    text = out.getvalue()
    assert "(estimated on this machine)" in text and "other programs are using the CPU" in text

    monkeypatch.setattr(cpu_load.os, "getloadavg", lambda: (1.0, 1.0, 1.0))  # only the probe's own thread
    quiet = probe(
        monkeypatch,
        SlowBackend(knowledge, Clock(), device="cpu (1 threads)"),
        examples,
        ProbeSettings(n_sets=2, samples_per_set=2),
    )
    assert not any(e.busy for e in quiet)


def test_the_threads_a_loaded_model_keeps_busy():
    assert cpu_load.backend_threads("cpu (4 threads)") == 4.0
    assert cpu_load.backend_threads("cpu", {"cpu_threads": 2}) == 2.0
    assert cpu_load.backend_threads("cuda:0 (NVIDIA H100)") == 1.0
    assert cpu_load.backend_threads("server http://127.0.0.1:8080") is None


def test_the_check_shows_a_calibrated_estimate_then_its_measured_rate_and_the_busy_cpu(monkeypatch, tmp_path):
    import time

    from core.check import CheckModels, CheckSettings, run_check
    from tests.check_fixture import probed_project, trained_run

    project, probe_id, w = probed_project(tmp_path / "p.knowmix", n=60)
    run_id = trained_run(project, probe_id)
    clock = Clock()
    base, adapted = SlowBackend(w[1], clock, device="cpu (1 threads)"), SlowBackend(w[2], clock, device="cpu (1 threads)")
    monkeypatch.setattr(time, "monotonic", clock)
    monkeypatch.setattr(cpu_load.os, "getloadavg", lambda: (4.0, 4.0, 4.0))
    monkeypatch.setattr(cpu_load.os, "cpu_count", lambda: 2)
    events: list[Progress] = []

    def seen(p: Progress) -> None:
        events.append(p)
        if p.estimated:
            base.slowdown = 2.0  # slower than calibrated: the measured rate shows it

    report = run_check(
        project, run_id, CheckSettings(calibrate_s=5.0), models=CheckModels(base=base, adapter=adapted), progress=seen
    )
    assert report.status == "finished"
    estimated = [e for e in events if e.estimated]
    assert estimated and all(e.done == 0 for e in estimated)
    assert abs(estimated[0].rate - 1 / GREEDY_S) < 1e-6  # one zero-shot answer costs 0.1 s on this "machine"
    assert "other programs are using the CPU" in (estimated[0].busy or "")
    measured = [e for e in events if e.done > 0]
    assert measured and not any(e.estimated for e in measured) and measured[0].rate < estimated[0].rate
    # the time it takes changes no result: a check with and one without calibration are the same check
    assert CheckSettings(calibrate_s=5.0).identity() == CheckSettings().identity()
    project.close()
