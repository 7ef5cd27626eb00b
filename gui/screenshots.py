"""Screenshots of every step with real data, for the README: ``make screenshots``.

It drives the app the way a newcomer does (the sample project, the built-in model, the paper's
budget, the recommended plan, a short LoRA run, the report) in a throw-away data folder, and
grabs the main window at each step. It takes about ten minutes on a laptop CPU, most of it the
paper-budget probe of the 100 starter questions and the training run.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

SIZE = (1280, 840)


def _wait(app, cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for: {what}")
        app.processEvents()
        time.sleep(0.02)
    for _ in range(10):  # let the last repaints land
        app.processEvents()
        time.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = Path(argv[0] if argv else "docs/screenshots").resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["KNOWMIX_HOME"] = tempfile.mkdtemp(prefix="knowmix-shots-")

    from .app import make_app
    from .window import MainWindow

    app = make_app()
    win = MainWindow()
    win.resize(*SIZE)
    win.show()
    runner = win.ctx.runner
    idle = lambda: not runner.active()  # noqa: E731

    def shot(name: str) -> None:
        app.processEvents()
        path = out / f"{name}.png"
        win.grab().save(str(path))
        print(f"wrote {path}", flush=True)

    t0 = time.monotonic()
    project = win.by_key["project"]
    project.try_sample()  # the first-start button
    _wait(app, idle, 60, "the sample project")
    win.go("project")
    shot("1-project")

    win.go("model")
    model = win.by_key["model"]
    model.load()
    _wait(app, lambda: idle() and win.ctx.model_info is not None and model.hardware is not None, 180, "the model")
    shot("2-model")

    win.go("dataset")
    dataset = win.by_key["dataset"]
    from core.paths import sample_pool, starter_dataset

    from .pages.project import SAMPLE_QUESTIONS

    dataset.open_file(str(starter_dataset()))
    _wait(app, lambda: dataset.preview is not None, 60, "the preview")
    # The starter sample as "Try it" probes it, all of it.
    dataset.limit_check.setChecked(False)
    dataset.pool_edit.setText(str(sample_pool()))
    dataset.use_dataset()
    _wait(app, idle, 120, "adding the dataset")
    shot("3-dataset")

    win.go("probe")
    probe = win.by_key["probe"]
    probe.start()
    _wait(app, lambda: probe.progress.bar.value() >= SAMPLE_QUESTIONS // 2 or idle(), 1800, "half the probe")
    shot("4-probe")
    _wait(app, idle, 1800, "the probe")

    win.go("breakdown")
    breakdown = win.by_key["breakdown"]
    _wait(app, lambda: not breakdown.loading and breakdown.model.rowCount() > 0, 60, "the example table")
    breakdown.table.selectRow(0)
    _wait(app, lambda: True, 1, "")
    shot("5-breakdown")

    win.go("plan")
    plan = win.by_key["plan"]
    plan.build()
    _wait(app, lambda: idle() and win.ctx.plan_id is not None, 120, "the plan")
    shot("6-plan")

    win.go("train")
    train = win.by_key["train"]
    train.epochs.setValue(8)
    train.batch.setValue(4)
    train.start()
    _wait(app, lambda: not train.training, 1800, "training")
    shot("7-train")

    win.go("export")
    export = win.by_key["export"]
    export.save_report(out.parent / "sample-report.html")
    _wait(app, idle, 1200, "the check the Train step starts, then the report")
    shot("8-export")
    print(f"done in {time.monotonic() - t0:.0f} s", flush=True)
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
