"""``knowmix --self-check``: proof that an installed or packaged app works on this machine.

Offscreen, it opens the main window, loads the built-in model, probes three sample questions
through the app's own job runner, writes the HTML report to a temp folder and exits 0; any
failure prints one line saying which stage failed and exits 1. Nothing touches the user's data
folder: ``KNOWMIX_HOME`` points at the temp folder for the run.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

QUESTIONS = 3


def _wait(app, cond, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.02)
    return True


def run(timeout_s: float = 600.0) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    folder = Path(tempfile.mkdtemp(prefix="knowmix-self-check-"))
    os.environ["KNOWMIX_HOME"] = str(folder / "home")
    stage = "starting Qt"
    t0 = time.monotonic()
    try:
        from core.datasets import load_dataset, take_balanced
        from core.paths import sample_dataset, sample_pool
        from core.store import Project

        from .app import make_app
        from .window import MainWindow

        app = make_app()
        win = MainWindow()
        win.show()
        stage = "reading the sample data"
        project_path = folder / "self-check.knowmix"
        with Project(project_path) as p:
            p.add_dataset(take_balanced(load_dataset(sample_dataset()), QUESTIONS), role="train")
            p.add_dataset(load_dataset(sample_pool()), role="pool")
        win.by_key["project"].open_path(project_path)
        stage = "loading the built-in model"
        model = win.by_key["model"]
        model.load()
        if not _wait(app, lambda: not win.ctx.runner.busy, timeout_s) or win.ctx.model_info is None:
            raise RuntimeError(model.message.text() or "the model did not load")
        stage = "probing"
        probe = win.by_key["probe"]
        probe.preset_combo.setCurrentIndex(probe.preset_combo.findData("smoke"))
        probe.start()
        if not _wait(app, lambda: not win.ctx.runner.busy, timeout_s) or probe.message.kind != "ok":
            raise RuntimeError(probe.message.text() or "the probe did not finish")
        stage = "writing the report"
        export = win.by_key["export"]
        out = folder / "self-check-report.html"
        export.save_report(out)
        if not _wait(app, lambda: not win.ctx.runner.active(), timeout_s) or not out.is_file():
            raise RuntimeError(export.message.text() or "no report was written")
        win.close()
    except Exception as exc:  # noqa: BLE001 - the self-check reports every failure as one line
        print(f"knowmix self-check: FAILED while {stage}: {exc}", file=sys.stderr)
        return 1
    print(
        f"knowmix self-check: OK — built-in model loaded, {QUESTIONS} questions probed, report at {out} "
        f"({time.monotonic() - t0:.0f} s)"
    )
    return 0
