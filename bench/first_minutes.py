"""Time the first ten minutes (issue 21): the app's whole path on the starter sample, by its buttons.

"Try it" -> probe (the paper's budget, as the app opens) -> breakdown -> plan (recommended mix) ->
train (early stop; the check runs when it finishes) -> check -> export, in a real window. Prints each
step's wall-clock seconds and the total, and what the Check step says. Run it under a display (Xvfb
on a server) with an empty KnowMix home, so it is a first start:

    H=$(mktemp -d); nice -n 10 xvfb-run -a -s "-screen 0 1920x1080x24" \
        env KNOWMIX_HOME=$H PYTHONPATH=. .venv/bin/python bench/first_minutes.py

``--preset smoke`` gives a quick rehearsal of the same path. The figures: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable


def wait(app: Any, ready: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Run the event loop until ``ready()``, as a user waits in front of the window."""
    end = time.monotonic() + timeout_s
    while not ready():
        app.processEvents()
        if time.monotonic() > end:
            raise SystemExit(f"{what}: not done after {timeout_s:.0f} s")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="paper", help="probe preset (paper: the app's default)")
    ap.add_argument("--epochs", type=int, default=0, help="training epochs (0: the app's default)")
    ap.add_argument("--json", type=Path, help="write the times here too")
    args = ap.parse_args(argv)

    from gui.qt import QtWidgets
    from gui.window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv)
    win = MainWindow()
    win.resize(1280, 800)
    win.show()
    idle = lambda: not win.ctx.runner.active()  # noqa: E731
    times: dict[str, float] = {}
    t_all = time.monotonic()

    def step(name: str, t0: float) -> None:
        times[name] = round(time.monotonic() - t0, 1)
        print(f"{name:<10} {times[name]:7.1f} s", flush=True)

    t0 = time.monotonic()
    win.by_key["project"].try_button.click()
    probe = win.by_key["probe"]
    wait(app, lambda: idle() and probe.start_button.isEnabled(), 120, "the sample project")  # as the user sees it
    if args.preset != "paper":
        probe.preset_combo.setCurrentIndex(probe.preset_combo.findData(args.preset))
    step("try it", t0)

    t0 = time.monotonic()
    probe.start_button.click()
    wait(app, lambda: not idle(), 30, "the probe's start")
    wait(app, idle, 3600, "the probe")
    step("probe", t0)
    print(f"           {probe.live_counts.text()}", flush=True)

    t0 = time.monotonic()
    win.go("breakdown")
    wait(app, idle, 120, "the breakdown")
    step("breakdown", t0)

    t0 = time.monotonic()
    win.go("plan")
    plan = win.by_key["plan"]
    plan.build_button.click()
    wait(app, lambda: win.ctx.plan_id is not None and idle(), 300, "the plan")
    step("plan", t0)
    print(f"           {plan.counts.text()}", flush=True)

    t0 = time.monotonic()
    win.go("train")
    train = win.by_key["train"]
    if args.epochs:
        train.epochs.setValue(args.epochs)
    train.check_after.setChecked(True)
    train.start_button.click()
    wait(app, lambda: not train.training, 3600, "training")
    step("train", t0)
    print(f"           {train.outcome_label.text()}", flush=True)

    t0 = time.monotonic()
    win.go("check")
    wait(app, idle, 3600, "the check")
    step("check", t0)
    check = win.by_key["check"]
    print(f"           {check.message.text()}", flush=True)
    box = check.findChild(QtWidgets.QGroupBox, "split_test")
    for name in ("newErrorsHeadline", "splitDetail"):  # each direction, in the step's words
        label = box.findChild(QtWidgets.QLabel, name) if box is not None else None
        print(f"           {label.text() if label is not None else '(no test split shown)'}", flush=True)

    t0 = time.monotonic()
    win.go("export")
    out = Path(tempfile.mkdtemp(prefix="knowmix-first-minutes-"))
    export = win.by_key["export"]
    export.copy_adapter_to(out / "adapter")
    wait(app, idle, 120, "the adapter's export")
    export.save_report(out / "report.html")
    wait(app, idle, 120, "the report")
    step("export", t0)
    times["total"] = round(time.monotonic() - t_all, 1)
    print(f"{'total':<10} {times['total']:7.1f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(times, indent=1) + "\n", encoding="utf-8")
    win.ctx.runner.cancel_all()
    win.ctx.runner.wait_all(60)
    win.ctx.release_model()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
