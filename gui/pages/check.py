"""Step 8: what training did to the model's knowledge (``knowmix check``), for a non-engineer.

For the chosen training run (the latest by default) the page shows what a check costs and starts one
("Check this run") through the app's job runner: the base model and then the model with the run's
adapter answer the plan's held-out test questions, the dev questions and a sample of the training
questions, in child processes. The result is stored in the project, so reopening it shows the check
without running it again. Per split (test first) the page says, big, how many questions answered
right before are answered wrongly now, by the answer and by the probe (each its own count), gives exact match before and after, draws the before -> after
category transitions and lists the questions it broke. When several runs have a check, "Compare
runs" puts them side by side (the paper's comparison: the recommended mix with early stopping against
the natural mix trained to convergence, on the user's own data).

On the UI thread the page only reads the stored checks (their summaries) and the runs' rows; the
cost (which reads the dataset) and the check itself run as jobs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

from core.formats import duration_words
from core.report import (
    SPLIT_TITLES,
    after_columns,
    compare,
    error_rows,
    latest_per_run,
    ordered_splits,
    split_sentences,
    stopping_words,
    transition_rows,
)
from core.store import DONE as RUN_DONE
from core.store import TrainRun

from ..jobs import ProjectOp
from ..qt import Qt, QtWidgets
from ..transition_chart import TransitionBars, after_legend
from .base import BLOCKED, DONE, READY, InlineMessage, Page, ProgressRow, scrolled

ERROR_COLUMNS = ("Question", "Right answer", "Answer before training", "Answer after training", "Category before")
MAX_ROWS_SHOWN = 500  # new-error questions listed per split; the rest are counted


def check_cost_for_plan(project: Any, plan_id: int) -> str:
    """What a check of a run trained on ``plan_id`` will cost, before the run exists (the Train step's
    box): ``core.check.plan_cost_text``. Reads the dataset: run it off the UI thread."""
    from core.check import plan_cost_text

    return plan_cost_text(project, plan_id)


def _has_adapter(row: TrainRun) -> bool:
    """Whether a run may have kept an adapter (finished, or stopped after an evaluation)."""
    return row.status == RUN_DONE or row.best_step is not None


class CheckPage(Page):
    """Step 8: check a training run, show what it did per split, compare checked runs."""

    title = "Check"
    key = "check"
    # Extra keyword arguments for ``core.check.run_check`` (tests pass scripted backends here).
    run_check_options: dict = {}

    def __init__(self, ctx: Any, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(ctx, parent)
        self._job: Any = None
        self._cancel_requested = False
        self._runs: dict[int, dict] = {}
        self._checks: list[Any] = []  # every stored check (core.check.CheckReport), oldest first
        self._project: Optional[Path] = None
        self._cost: dict[tuple, str] = {}  # (project, run id) -> cost text
        self._costing: set[tuple] = set()
        self._shown: tuple = ()

        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        body = QtWidgets.QWidget()
        outer.addWidget(scrolled(body))
        lay = QtWidgets.QVBoxLayout(body)
        lay.addWidget(
            self.heading(
                "Check what training did",
                "The base model and the trained model answer the same questions: the held-out test questions "
                "(never trained on), the dev questions and a sample of the training questions. A new error is a "
                "question answered right before training and wrongly after it, by the same measure: by the answer (the question "
                "alone, in the training format) or by the probe (HighlyKnown or MaybeKnown before, not known after). It is the "
                "cost of teaching a model facts it did not know (Gekhman et al. 2024).",
            )
        )
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Training run:"))
        self.runs_combo = QtWidgets.QComboBox()
        self.runs_combo.setObjectName("checkRuns")
        self.runs_combo.setMinimumContentsLength(30)
        self.runs_combo.activated.connect(self._run_chosen)
        row.addWidget(self.runs_combo, 1)
        lay.addLayout(row)
        self.cost_label = QtWidgets.QLabel("")
        self.cost_label.setObjectName("checkCost")
        self.cost_label.setWordWrap(True)
        lay.addWidget(self.cost_label)
        buttons = QtWidgets.QHBoxLayout()
        self.check_button = QtWidgets.QPushButton("Check this run")
        self.check_button.setObjectName("startCheck")
        self.check_button.setDefault(True)
        self.check_button.clicked.connect(lambda: self.start_check())
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelCheck")
        self.cancel_button.setToolTip("Stop after the current batch; the answers so far are kept and the check resumes.")
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.check_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        lay.addLayout(buttons)
        self.progress = ProgressRow()
        self.progress.hide()
        lay.addWidget(self.progress)
        self.message = InlineMessage()
        self.message.setObjectName("checkMessage")
        lay.addWidget(self.message)

        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setObjectName("checkTabs")
        self.run_view = QtWidgets.QWidget()
        self.run_layout = QtWidgets.QVBoxLayout(self.run_view)
        self.run_layout.setContentsMargins(4, 8, 4, 4)
        self.summary_label = QtWidgets.QLabel("")
        self.summary_label.setObjectName("checkSummary")
        self.summary_label.setWordWrap(True)
        self.run_layout.addWidget(self.summary_label)
        self.splits_box = QtWidgets.QWidget()
        self.splits_layout = QtWidgets.QVBoxLayout(self.splits_box)
        self.splits_layout.setContentsMargins(0, 0, 0, 0)
        self.run_layout.addWidget(self.splits_box)
        self.run_layout.addStretch(1)
        self.tabs.addTab(self.run_view, "This run")

        self.compare_view = QtWidgets.QWidget()
        cl = QtWidgets.QVBoxLayout(self.compare_view)
        cl.setContentsMargins(4, 8, 4, 4)
        self.compare_label = QtWidgets.QLabel("")
        self.compare_label.setObjectName("compareLabel")
        self.compare_label.setWordWrap(True)
        cl.addWidget(self.compare_label)
        self.compare_table = QtWidgets.QTableWidget()
        self.compare_table.setObjectName("compareTable")
        self.compare_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.compare_table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.compare_table.verticalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.compare_table.setWordWrap(True)
        cl.addWidget(self.compare_table, 1)  # the table takes the tab's height: every row shows without scrolling
        self.tabs.addTab(self.compare_view, "Compare runs")
        lay.addWidget(self.tabs, 1)
        ctx_requested = getattr(ctx, "requested", None)
        if ctx_requested is not None:
            ctx_requested.connect(self._requested)

    # -- Page API ---------------------------------------------------------------------------------
    def watched_fields(self) -> tuple[str, ...]:
        return ("project_path", "train_run_id")

    def step_state(self) -> tuple[str, str]:
        if self.ctx.project_path is None:
            return BLOCKED, "Open a project first (step 1)."
        run_id = self.ctx.train_run_id
        if run_id is None:
            return BLOCKED, "No training run yet: train one in the Train step, then check what it did here."
        if self.checking:
            return READY, "Checking …"
        check = self._finished_check(run_id)
        if check is not None:
            return (READY if check.stale else DONE), check.headline()
        return READY, f"Training run {run_id} has no check yet."

    def primary_action(self) -> None:
        if self.check_button.isEnabled():
            self.start_check()

    def refresh(self) -> None:
        self._reload()
        self._show_selected()
        self._show_comparison()

    def update_actions(self) -> None:
        busy = self.ctx.runner.busy
        row = self._selected_row()
        found = self._finished_check(row.id) if row is not None else None
        done = found is not None and not found.stale  # a stale check (an older adapter) can be redone
        can = row is not None and _has_adapter(row) and not busy and not done
        self.check_button.setEnabled(can)
        self.check_button.setText("Checked" if done and not self.checking else "Check this run")
        if row is None:
            tip = "No training run to check yet."
        elif done:
            tip = "This run has a finished check: its results are below."
        elif not _has_adapter(row):
            tip = f"Training run {row.id} kept no adapter yet (it stopped before its first evaluation)."
        elif busy:
            job = self.ctx.runner.current()
            tip = f"Wait for '{job.name if job else 'the running job'}' to finish."
        else:
            tip = "Ask the base model and the trained model the same questions (Ctrl+Return)."
        self.check_button.setToolTip(tip)
        self.cancel_button.setEnabled(self.checking and not self._cancel_requested)
        self.runs_combo.setEnabled(not self.checking)

    @property
    def checking(self) -> bool:
        return self._job is not None

    # -- reading the project ----------------------------------------------------------------------
    def _reload(self) -> None:
        """The runs and the stored checks (their summaries): two short reads."""
        from core.check import list_checks
        from core.train import list_runs

        rows: list[TrainRun] = []
        checks: list[Any] = []
        if self.ctx.project_path is not None:
            with self.ctx.project() as p:
                rows = list_runs(p)
                checks = list_checks(p)
        self._runs = {r.id: r for r in rows}
        self._checks = checks
        self._project = self.ctx.project_path
        want = self.ctx.train_run_id if self.ctx.train_run_id in self._runs else (rows[-1].id if rows else None)
        self.runs_combo.blockSignals(True)
        self.runs_combo.clear()
        for r in rows:
            self.runs_combo.addItem(self._run_label(r), r.id)
        if not rows:
            self.runs_combo.addItem("No training runs yet", None)
        elif want is not None:
            self.runs_combo.setCurrentIndex(self.runs_combo.findData(int(want)))
        self.runs_combo.blockSignals(False)

    def _run_label(self, r: TrainRun) -> str:
        mix = self._plan_mix(r)
        check = self._finished_check(r.id)
        checked = "checked" if check is not None else "not checked"
        return f"Run {r.id} — {r.status or '?'} — {mix}, {stopping_words(r).split(' (')[0]} — {checked}"

    def _plan_mix(self, r: TrainRun) -> str:
        for c in reversed(self._checks):
            if c.train_run_id == r.id and c.mix:
                return f"{c.mix} mix"
        return f"plan {r.plan_id}" if r.plan_id is not None else "no plan"

    def _finished_check(self, run_id: int) -> Optional[Any]:
        if self._project != self.ctx.project_path:
            return self._stored_check(run_id)
        done = [c for c in self._checks if c.train_run_id == run_id and c.status == "finished"]
        return done[-1] if done else None

    def _stored_check(self, run_id: int) -> Optional[Any]:
        """For the navigator before the page was shown: the run's latest finished check, cached."""

        def load() -> Optional[Any]:
            from core.check import list_checks

            try:
                with self.ctx.project() as p:
                    done = [c for c in list_checks(p) if c.train_run_id == run_id and c.status == "finished"]
            except Exception:  # noqa: BLE001 - the navigator only needs a state
                return None
            return done[-1] if done else None

        return self.ctx.cached(("check_done", run_id), load)

    def _latest_check(self, run_id: int) -> Optional[Any]:
        mine = [c for c in self._checks if c.train_run_id == run_id]
        return mine[-1] if mine else None

    def _selected_row(self) -> Optional[dict]:
        run_id = self.runs_combo.currentData()
        return self._runs.get(run_id) if run_id is not None else None

    def _run_chosen(self, _index: int) -> None:
        run_id = self.runs_combo.currentData()
        if run_id is not None and run_id != self.ctx.train_run_id:
            self.ctx.set(train_run_id=run_id)  # a watched field: refreshes the page
        else:
            self._show_selected()
            self.update_actions()

    # -- showing a check ----------------------------------------------------------------------------
    def _show_selected(self) -> None:
        row = self._selected_row()
        if row is None:
            self.cost_label.setText("")
            self._show_check(None, "No training run yet. Train one in the Train step, then check what it did here.")
            return
        run_id = row.id
        self._show_cost(run_id)
        done = self._finished_check(run_id)
        latest = self._latest_check(run_id)
        if done is None:
            why = f"Training run {run_id} has no check yet. “Check this run” asks the questions ({self._cost_words(run_id)})."
            if latest is not None and latest.status in ("cancelled", "failed", "running"):
                why = (
                    f"Check {latest.id} of training run {run_id} is {latest.status}"
                    + (f" ({latest.note})" if latest.note else "")
                    + ". “Check this run” resumes it: the answers already given are kept."
                )
            if not _has_adapter(row):
                why = f"Training run {run_id} kept no adapter (status {row.status}), so there is nothing to check."
            self._show_check(None, why)
        else:
            self._show_check(done, "")

    def _cost_words(self, run_id: int) -> str:
        return self._cost.get((str(self.ctx.project_path), run_id)) or "working out the cost …"

    def _show_check(self, check: Optional[Any], why: str) -> None:
        key = (str(self.ctx.project_path), check.id if check is not None else None, why)
        if key == self._shown:
            return
        self._shown = key
        while self.splits_layout.count():
            item = self.splits_layout.takeAt(0)
            w = item.widget()
            if w is not None:
                w.deleteLater()
        if check is None:
            self.summary_label.setText(why)
            return
        run = self._runs.get(check.train_run_id)
        self.summary_label.setText(
            f"Check {check.id} of training run {check.train_run_id}: {check.mix or '?'} mix, {stopping_words(run)}; "
            f"the adapter of the {check.adapter}, run with {check.backend}"
            + (f", in {duration_words(round(check.seconds))}" if check.seconds else "")
            + "."
            + (f"\nThis check is {check.stale}" if check.stale else "")
            + (f"\nNote: {check.other_model[:1].upper()}{check.other_model[1:]}." if check.other_model else "")
        )
        for split in ordered_splits(check):
            self.splits_layout.addWidget(self._split_box(split))

    def _split_box(self, split: Any) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox(f"{SPLIT_TITLES.get(split.split, split.split)}: {split.n}")
        box.setObjectName(f"split_{split.split}")
        lay = QtWidgets.QVBoxLayout(box)
        words = split_sentences(split)
        head = QtWidgets.QLabel(words["headline"])
        head.setObjectName("newErrorsHeadline")
        head.setWordWrap(True)
        f = head.font()
        f.setPointSizeF(f.pointSizeF() * 1.35)
        f.setBold(True)
        head.setFont(f)
        head.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(head)
        if words["probe"]:  # the probe's count, by its own measure (none for a check stored the old way)
            probe = QtWidgets.QLabel(words["probe"])
            probe.setObjectName("probeNewErrorsHeadline")
            probe.setWordWrap(True)
            probe.setFont(f)
            probe.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            lay.addWidget(probe)
        lines = [words["em"], " ".join(t for t in (words["fixed"], words["lost"]) if t), words["idk"]]
        detail = QtWidgets.QLabel("\n".join(t for t in lines if t))
        detail.setObjectName("splitDetail")
        detail.setWordWrap(True)
        lay.addWidget(detail)
        columns = after_columns([split])
        lay.addWidget(after_legend(columns))
        chart = TransitionBars()
        chart.set_matrix(transition_rows(split), columns)
        chart.setToolTip("One bar per category before training (the first probe), coloured by the category after training.")
        lay.addWidget(chart)
        rows = error_rows(split, MAX_ROWS_SHOWN)
        if rows:
            more = len(split.new_errors) - len(rows)
            title = QtWidgets.QLabel(
                f"The {len(split.new_errors)} question{'s' if len(split.new_errors) != 1 else ''} answered right before "
                "training and wrongly after it, by the answer (the question alone, in the training format)"
                + (f" (the first {len(rows)}; {more} more: knowmix check --json)" if more > 0 else "")
                + ":"
            )
            title.setWordWrap(True)
            lay.addWidget(title)
            lay.addWidget(self._errors_table(rows))
        return box

    def _errors_table(self, rows: list[dict]) -> QtWidgets.QTableWidget:
        table = QtWidgets.QTableWidget(len(rows), len(ERROR_COLUMNS))
        table.setObjectName("newErrors")
        table.setHorizontalHeaderLabels(list(ERROR_COLUMNS))
        table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        table.verticalHeader().setVisible(False)
        for i, r in enumerate(rows):
            for j, key in enumerate(("question", "gold", "before", "after", "category")):
                item = QtWidgets.QTableWidgetItem(str(r[key]))
                item.setToolTip(str(r[key]))
                table.setItem(i, j, item)
        header = table.horizontalHeader()
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        for j in range(1, len(ERROR_COLUMNS)):
            header.setSectionResizeMode(j, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        shown = min(len(rows), 10)
        height = header.sizeHint().height() + shown * table.verticalHeader().defaultSectionSize() + 2 * table.frameWidth() + 2
        table.setMinimumHeight(height)
        if len(rows) <= 10:
            table.setMaximumHeight(height)
        return table

    def _show_comparison(self) -> None:
        checks = latest_per_run(self._checks)
        if len(checks) < 2:
            self.tabs.setTabEnabled(1, False)
            self.tabs.setTabToolTip(1, "Check two or more training runs to compare them side by side.")
            self.compare_label.setText("Check two or more training runs to compare them side by side.")
            self.compare_table.setRowCount(0)
            self.compare_table.setColumnCount(0)
            return
        self.tabs.setTabEnabled(1, True)
        self.tabs.setTabToolTip(1, f"{len(checks)} checked training runs side by side.")
        cmp = compare([(self._runs.get(c.train_run_id), c) for c in checks])
        self.compare_label.setText(
            "Every training run with a check, on the same questions: the paper's comparison (the recommended mix "
            "with early stopping against the natural mix trained to convergence) on this project's data."
        )
        table = self.compare_table
        table.setColumnCount(len(cmp.columns))
        table.setRowCount(len(cmp.rows))
        table.setHorizontalHeaderLabels(cmp.columns)
        table.setVerticalHeaderLabels([what for what, _cells in cmp.rows])
        for i, (_what, cells) in enumerate(cmp.rows):
            for j, text in enumerate(cells):
                table.setItem(i, j, QtWidgets.QTableWidgetItem(text))
        table.resizeRowsToContents()
        height = table.horizontalHeader().sizeHint().height() + sum(table.rowHeight(i) for i in range(len(cmp.rows))) + 6
        table.setMinimumHeight(height)

    # -- the cost ------------------------------------------------------------------------------------
    def _show_cost(self, run_id: int) -> None:
        key = (str(self.ctx.project_path), run_id)
        if key in self._cost:
            self.cost_label.setText(f"A check of training run {run_id} asks {self._cost[key]}.")
            return
        self.cost_label.setText("Working out what a check costs …")
        if key in self._costing or self.ctx.project_path is None:
            return
        self._costing.add(key)
        project_path = self.ctx.project_path

        def work(p: Any, _job: Any) -> str:
            from core.check import plan_check

            return plan_check(p, run_id).cost_text()

        def done(text: str) -> None:
            self._cost[key] = text
            if self._selected_key() == key:
                self.cost_label.setText(f"A check of training run {run_id} asks {text}.")
                if self._shown and self._shown[1] is None:
                    self._shown = ()
                    self._show_selected()

        def failed(exc: BaseException, _tb: str) -> None:
            if self._selected_key() == key:
                self.cost_label.setText(f"Cannot check training run {run_id}: {exc}")

        self.project_op(
            "Working out the check's cost",
            work,
            path=project_path,
            on_done=done,
            on_error=failed,
            on_finally=lambda: self._costing.discard(key),
        )

    def _selected_key(self) -> tuple:
        return (str(self.ctx.project_path), self.runs_combo.currentData())

    # -- the job -----------------------------------------------------------------------------------------
    def _requested(self, step: str, argument: Any) -> None:
        """Another step asks for a check (the Train step, when training finishes with its box ticked)."""
        if step != self.key:
            return
        if self.ctx.runner.busy:
            self.message.show_message("A check could not start: another job is running. Start it here when it ends.", "warning")
            return
        self.refresh_now()
        self.start_check(int(argument) if argument is not None else None)

    def start_check(self, run_id: Optional[int] = None) -> None:
        """Check the run (the selected one by default) on a worker thread."""
        if run_id is None:
            run_id = self.runs_combo.currentData()
        if run_id is None or self.ctx.project_path is None:
            return
        if self.ctx.runner.busy:
            job = self.ctx.runner.current()
            self.message.show_message(f"Wait for '{job.name if job else 'the running job'}' to finish.", "error")
            return
        run_id = int(run_id)
        released = self.ctx.backend is not None
        self.ctx.release_model()  # the check loads the base model and the adapter itself
        project_path = self.ctx.project_path
        options = dict(self.run_check_options)

        def work(p: Any, job: Any) -> Any:
            from core.check import CheckSettings, run_check
            from core.probe import CALIBRATION_S

            # an estimate from this machine before the first batch (a test may pass its own settings)
            options.setdefault("settings", CheckSettings(calibrate_s=CALIBRATION_S))
            return run_check(
                p,
                run_id,
                progress=lambda pr: job.progress(replace(pr, unit="answers")),
                cancel=job.cancel,
                on_status=job.status,
                **options,
            )

        self._cancel_requested = False
        self.progress.show()
        self.progress.set_busy("Starting the check (it loads the base model first) …")
        self.message.show_message(
            ("The probe's model was unloaded to free memory. " if released else "")
            + f"Checking training run {run_id}: first the base model answers, then the model with the adapter.",
            "info",
        )
        self._job = self.start_long_job(
            f"Check (run {run_id})",
            ProjectOp(f"Check (run {run_id})", project_path, work).work,
            on_done=self._finished,
            on_error=self._failed,
            on_status=self._status,
            on_finally=self._ended,
        )
        self.update_actions()
        self.state_changed.emit()

    def _status(self, text: str) -> None:
        if self._job is not None and self._job.last_progress is None:
            self.progress.set_busy(text)
        else:
            self.progress.detail.setText(text)

    def cancel(self) -> None:
        if self._job is None or self._cancel_requested:
            return
        self._cancel_requested = True
        self._job.request_cancel()
        self.progress.set_busy("Stopping after the current batch …")
        self.message.show_message(
            "Stopping after the current batch. The answers so far are kept: “Check this run” resumes.", "info"
        )
        self.update_actions()

    def _finished(self, report: Any) -> None:
        if report.status == "finished":
            self.message.show_message(report.headline(), "ok")
        else:
            self.message.show_message(
                f"The check was {report.status}. The answers so far are kept in the project: “Check this run” resumes it.",
                "info",
            )
        self.ctx.forget_cached()
        self._shown = ()
        self.refresh()

    def _failed(self, exc: BaseException, tb: str) -> None:
        self._shown = ()
        try:
            self.refresh()
        finally:
            self.report_error(exc, tb)

    def _ended(self) -> None:
        self._job = None
        self._cancel_requested = False
        self.progress.hide()
        self.update_actions()
        self.state_changed.emit()
