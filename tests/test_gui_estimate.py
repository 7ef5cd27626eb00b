"""The app's Probe step shows the estimate a calibration on the loaded model gives before the first
batch, then the measured rate (issue 21, item 3), offscreen with a slow scripted model."""

from __future__ import annotations

import time
from typing import Sequence

import pytest

pytest.importorskip("pytestqt")

from core.backends.base import GenRequest  # noqa: E402
from tests.scripted import ScriptedBackend  # noqa: E402
from tests.test_gui_app import open_project, sample_project  # noqa: E402


class KnowsNothing(ScriptedBackend):
    """A model that knows none of the sample's questions and takes real time to say so."""

    def __init__(self) -> None:
        super().__init__({})
        self.info.device = "cpu (1 threads)"

    def _answer(self, prompt: str, seed) -> str:
        return "no idea"

    def generate(self, requests: Sequence[GenRequest]) -> list[list[str]]:
        time.sleep(0.05 * len(requests))
        return super().generate(requests)


def test_the_probe_step_shows_the_calibrated_estimate_then_the_measured_rate(qtbot, window, tmp_path):
    project = sample_project(tmp_path / "estimate.knowmix", 8)
    open_project(window, project)
    window.go("probe")
    page = window.by_key["probe"]
    page.preset_combo.setCurrentIndex(page.preset_combo.findData("smoke"))
    backend = KnowsNothing()
    window.ctx.set(backend=backend, model_info=backend.info)
    shown: list[tuple[bool, str]] = []
    set_progress = page.progress.set_progress

    def record(p) -> None:
        set_progress(p)
        shown.append((p.estimated, page.progress.detail.text()))

    page.progress.set_progress = record
    page.start_button.click()
    qtbot.waitUntil(lambda: not window.ctx.runner.active(), timeout=120_000)
    assert page.message.kind == "ok", page.message.text()

    estimates = [text for estimated, text in shown if estimated]
    assert estimates, shown
    assert estimates[0].startswith("about ") and "(estimated on this machine)" in estimates[0] and "left" in estimates[0]
    measured = [text for estimated, text in shown if not estimated and "examples/s" in text]
    assert measured and "estimated" not in measured[-1]
    assert shown.index((False, measured[0])) > shown.index((True, estimates[0]))  # the estimate comes first
    timed = [r for r in backend.calls if r.greedy]
    assert len(timed) > 8 * page.settings().n_sets  # the calibration asked the model too, besides the probe's questions


class SlowScripted(ScriptedBackend):
    def __init__(self, knowledge: dict) -> None:
        super().__init__(knowledge)
        self.info.device = "cpu (1 threads)"

    def generate(self, requests: Sequence[GenRequest]) -> list[list[str]]:
        time.sleep(0.02 * len(requests))
        return super().generate(requests)


def test_the_check_step_shows_the_calibrated_estimate_then_the_measured_rate(qtbot, window, tmp_path):
    from core.check import CheckModels
    from tests.check_fixture import probed_project, trained_run

    project, probe_id, w = probed_project(tmp_path / "p.knowmix", n=60)
    trained_run(project, probe_id)
    project.close()
    window.ctx.open_project(tmp_path / "p.knowmix")
    window.go("check")
    page = window.by_key["check"]
    qtbot.waitUntil(lambda: not window.ctx.runner.active(), timeout=30_000)  # the cost is worked out in a job
    page.run_check_options = {"models": CheckModels(base=SlowScripted(w[1]), adapter=SlowScripted(w[2]))}
    shown: list[tuple[bool, str]] = []
    set_progress = page.progress.set_progress

    def record(p) -> None:
        set_progress(p)
        shown.append((p.estimated, page.progress.detail.text()))

    page.progress.set_progress = record
    page.check_button.click()
    qtbot.waitUntil(lambda: not window.ctx.runner.active(), timeout=60_000)
    assert page.message.kind == "ok", page.message.text()
    assert shown and shown[0][0] and "answers/s (estimated on this machine)" in shown[0][1], shown
    assert any(not estimated and "answers/s" in text for estimated, text in shown)
