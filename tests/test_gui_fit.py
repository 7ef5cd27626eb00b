"""Every step fits a 1280×800 and a 1920×1080 window, offscreen, with real data on every page: no
widget cut off, no horizontal scroll bar, a window that never grows (issue 21, item 4). A
screenshot of each step is saved next to the test's files, to look at when one fails."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from core.probe import ProbeRequest, ProbeSettings, run_probe  # noqa: E402
from core.store import Project  # noqa: E402
from tests.check_fixture import check_run, trained_run, world  # noqa: E402
from tests.layout_check import layout_problems  # noqa: E402
from tests.scripted import FakeDataset, ScriptedBackend  # noqa: E402

SIZES = [(1280, 800), (1920, 1080)]
GROUPS = 24  # a dataset with many relations: the probe and breakdown charts get a row each


def full_project(path: Path) -> Path:
    """A project with something on every step: a probe of 120 questions in ``GROUPS`` groups (scripted
    model), a plan, a finished training run and its check."""
    examples, before, after = world(120)
    examples = [replace(e, group=f"relation number {i % GROUPS}") for i, e in enumerate(examples)]
    with Project(path) as project:
        dataset_id = project.add_dataset(FakeDataset(examples))
        probe = run_probe(
            project,
            ProbeRequest(
                dataset_id=dataset_id,
                pool_dataset_id=None,
                model_spec="scripted",
                settings=ProbeSettings(n_sets=3, samples_per_set=4, preset="quick"),
            ),
            backend=ScriptedBackend(before),
        )
        run_id = trained_run(project, probe.run_id)
        check_run(project, run_id, (examples, before, after))
    return path


def settle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.ctx.runner.active(), timeout=30_000)
    qtbot.wait(100)  # the last layouts and repaints


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_step_fits_the_window_without_clipping_or_a_horizontal_scroll_bar(qtbot, window, tmp_path, size):
    path = full_project(tmp_path / "p.knowmix")
    window.resize(*size)
    window.ctx.open_project(path)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    seen = []
    for page in window.pages:
        window.go(page.key)
        settle(qtbot, window)
        window.grab().save(str(shots / f"{page.key}.png"))
        problems = layout_problems(window, size)
        assert not problems, f"step {page.title} at {size[0]}×{size[1]}:\n" + "\n".join(problems)
        seen.append(page.key)
    assert seen == ["project", "model", "dataset", "probe", "breakdown", "plan", "train", "check", "export"]
    assert window.by_key["train"].top_row.columns == 2  # the settings and the runs side by side: there is room
    assert len(window.by_key["breakdown"].group_bars.rows) == GROUPS  # the charts had many rows to fit


def test_the_probe_chart_scrolls_with_many_groups_and_never_grows_the_window(qtbot, window):
    window.resize(1280, 800)
    window.go("probe")
    page = window.by_key["probe"]
    qtbot.wait(50)
    rows = [(f"relation {i}", {"HighlyKnown": i, "MaybeKnown": 2, "WeaklyKnown": 1, "Unknown": 3}) for i in range(60)]
    for n in (1, 12, 60):  # the groups arrive as the probe runs
        page.live_chart.set_rows(rows[:n])
        qtbot.wait(50)
        assert (window.width(), window.height()) == (1280, 800)
        assert not layout_problems(window, (1280, 800))
    assert page.live_scroll.verticalScrollBar().isVisible()  # 60 rows: the chart scrolls in its own area
    assert page.live_chart.height() >= page.live_chart.minimumHeight()  # every row and the % axis drawn, none squeezed


def test_the_train_step_puts_the_runs_under_the_settings_in_a_narrow_window(qtbot, window, tmp_path):
    window.ctx.open_project(full_project(tmp_path / "p.knowmix"))
    window.go("train")
    page = window.by_key["train"]
    window.resize(1000, 800)
    settle(qtbot, window)
    assert (window.width(), window.height()) == (1000, 800)
    assert not layout_problems(window, (1000, 800))
    assert page.top_row.columns == 1 and page.runs_box.geometry().top() > page.form.geometry().bottom()
    window.resize(1920, 1080)
    settle(qtbot, window)
    assert page.top_row.columns == 2 and page.charts.columns == 3


def axis_texts(axis) -> list[str]:
    """The tick labels an axis draws now."""
    from gui.qt import QtGui

    image = QtGui.QImage(400, 400, QtGui.QImage.Format.Format_ARGB32)
    painter = QtGui.QPainter(image)
    try:
        specs = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [text for _rect, _flags, text in specs[2]] if specs else []


def test_the_empty_breakdown_chart_has_no_number_ticks_before_the_first_result(qtbot, window, tmp_path):
    from core.datasets import load_dataset
    from core.paths import sample_dataset

    path = tmp_path / "empty.knowmix"
    with Project(path) as project:
        project.add_dataset(load_dataset(sample_dataset()))
    window.ctx.open_project(path)
    window.go("breakdown")
    settle(qtbot, window)
    page = window.by_key["breakdown"]
    for chart in (page.overall_bars, page.group_bars, window.by_key["probe"].live_chart):
        assert axis_texts(chart.item.getAxis("left")) == [] and axis_texts(chart.item.getAxis("right")) == []
        assert axis_texts(chart.item.getAxis("bottom")) == ["0%", "25%", "50%", "75%", "100%"]


def test_the_progress_line_says_when_other_programs_use_the_cpu(qtbot):
    from core.jobs import Progress
    from gui.pages.base import ProgressRow

    row = ProgressRow()
    qtbot.addWidget(row)
    busy = "other programs are using the CPU (a load of 2.2 on 2 cores besides this job), so this may change"
    row.set_progress(Progress(3, 50, 0.5, 94.0, "epoch 0.30, loss 2.000", "steps", busy))
    assert "about 1m 34s left (other programs are using the CPU" in row.detail.text()
    row.set_progress(Progress(4, 50, 0.5, 92.0, "epoch 0.40, loss 1.900", "steps"))
    assert "other programs" not in row.detail.text()
