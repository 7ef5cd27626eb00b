"""Step 7: train a LoRA adapter on the plan, watch its curves live, cancel and resume it, and look back
at earlier runs.

The training itself runs in a child process (``core.train.runner``); this page starts it through the
job runner, draws the worker's events as they arrive (loss per step, dev exact match and train fit
per category per evaluation) and marks the stopping point. torch is never imported on the UI thread:
whether training is possible at all is checked with ``importlib.util.find_spec``, and the GPU is
looked for in a background job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from core.devices import Devices
from core.store import CONVERGENCE, EARLY_STOP, TrainRun
from core.store import DONE as RUN_DONE
from core.train import Checkpoint, Eval, Resume, Start, Step, TrainEvent, missing_training_packages

from ..qt import QtCore, QtWidgets
from ..reflow import Reflow
from .base import BLOCKED, DONE, READY, InlineMessage, Page, ProgressRow, scrolled
from .export import open_run_folder
from .train_check_after import CheckAfterRow
from .train_text import (
    cached_gpu,
    checkpoint_html,
    describe_checkpoint,
    describe_gpu,
    describe_outcome,
    detect_gpu,
    event_text,
    plan_line,
    run_is_resumable,
    run_label,
    training_html,
)
from .train_widgets import RunsBox, TrainCharts, TrainSettingsBox, rich_label


class TrainPage(Page):
    """Step 7: the settings, the project's runs, start/cancel/resume, live status and curves."""

    title = "Train"
    key = "train"

    def __init__(self, ctx: Any, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(ctx, parent)
        self._init_state()
        lay = self._build_scroll_body()
        self._build_header(lay)
        self._build_settings_and_runs(lay)
        self._build_actions(lay)
        self._build_status(lay)
        self._build_charts(lay)
        self._apply_palette()
        self._show_edition()

    def _init_state(self) -> None:
        self._missing = missing_training_packages()
        self._job: Any = None  # the training job while one runs
        self._job_kind = ""  # "start" | "resume"
        self._live_run_id: Optional[int] = None
        self._live_stopping = EARLY_STOP  # the stopping rule of the run being trained
        self._status_base = ""  # the status line without its "checkpoint saved" tail
        self._cancel_requested = False
        self._unloaded_note = ""  # said while training, after the "starting …" banner is gone
        self._plan_model: Optional[str] = None
        self._gpu: Optional[Devices] = None
        self._detecting = False
        self._rows: dict[int, dict] = {}  # this project's runs by id, as last read
        self._rows_project: Optional[Path] = None  # the project they were read from
        self.error_box: Optional[QtWidgets.QMessageBox] = None  # the last error dialog

    def _build_scroll_body(self) -> QtWidgets.QVBoxLayout:
        """The page scrolls as a whole, so a small window still reaches the buttons and the charts."""
        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        body = QtWidgets.QWidget()
        outer.addWidget(scrolled(body))
        return QtWidgets.QVBoxLayout(body)

    def _build_header(self, lay: QtWidgets.QVBoxLayout) -> None:
        lay.addWidget(
            self.heading(
                "Train",
                "A LoRA fine-tune on the plan's training examples. Training runs in its own process: the window "
                "stays responsive, a cancel keeps the last checkpoint and the best adapter, and a stopped run resumes "
                "where it stopped.",
            )
        )
        self.edition_message = InlineMessage()
        self.edition_message.setObjectName("editionMessage")
        lay.addWidget(self.edition_message)
        self.plan_label = QtWidgets.QLabel("")
        self.plan_label.setObjectName("planLabel")
        self.plan_label.setWordWrap(True)
        lay.addWidget(self.plan_label)

    def _build_settings_and_runs(self, lay: QtWidgets.QVBoxLayout) -> None:
        """The form on the left, the runs on the right; their widgets are also the page's attributes."""
        self.form = form = TrainSettingsBox(self.ctx.device)
        self.model_edit, self.browse_button, self.model_note = form.model_edit, form.browse_button, form.model_note
        self.epochs, self.lr, self.batch, self.rank = form.epochs, form.lr, form.batch, form.rank
        self.stopping, self.eval_every, self.device, self.threads = form.stopping, form.eval_every, form.device, form.threads
        self.gpu_label = form.gpu_label
        self.processes = form.processes
        self.runs_box = runs = RunsBox()
        self.runs_combo, self.checkpoint_label, self.open_button = runs.runs_combo, runs.checkpoint_label, runs.open_button
        self.runs_combo.activated.connect(self._run_chosen)
        self.open_button.clicked.connect(self.open_folder)
        runs.stop_button.clicked.connect(lambda: runs.stop_worker(self.ctx, self.runs_combo.currentData(), self.message))
        # side by side where they fit, the runs under the settings in a narrower window
        self.top_row = Reflow((form, runs), (3, 2))
        lay.addWidget(self.top_row)

    def _build_actions(self, lay: QtWidgets.QVBoxLayout) -> None:
        buttons = QtWidgets.QHBoxLayout()
        self.start_button = QtWidgets.QPushButton("Start training")
        self.start_button.setObjectName("startTraining")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelTraining")
        self.cancel_button.setToolTip("Stop after the current step; the last checkpoint and the best adapter are kept.")
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button = QtWidgets.QPushButton("Resume selected run")
        self.resume_button.setObjectName("resumeTraining")
        self.resume_button.setToolTip(
            "Continue a cancelled, failed or killed run from its last checkpoint, with the same data order."
        )
        self.resume_button.clicked.connect(self.resume)
        for b in (self.start_button, self.cancel_button, self.resume_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay.addLayout(buttons)
        self._build_check_after(lay)

    def _build_check_after(self, lay: QtWidgets.QVBoxLayout) -> None:
        """The box that checks a finished run (the Check step) and what that check costs."""
        self.check_row = CheckAfterRow(self.ctx)
        self.check_after, self.check_cost = self.check_row.check_after, self.check_row.check_cost
        lay.addWidget(self.check_row)

    def request_check(self, run_id: int) -> None:
        """Ask the Check step to check the run, once the training job has ended (the runner is free then)."""
        QtCore.QTimer.singleShot(0, lambda: self.ctx.requested.emit("check", int(run_id)))

    def _build_status(self, lay: QtWidgets.QVBoxLayout) -> None:
        """Progress, the live status line, messages and the finished run's outcome, under the buttons."""
        self.progress = ProgressRow()
        self.progress.reset("")
        self.progress.hide()
        lay.addWidget(self.progress)
        self.status_label = QtWidgets.QLabel("")
        self.status_label.setObjectName("trainStatus")
        self.status_label.setWordWrap(True)
        lay.addWidget(self.status_label)
        self.message = InlineMessage()
        self.message.setObjectName("trainMessage")
        lay.addWidget(self.message)
        self.outcome_label = rich_label("trainOutcome")
        lay.addWidget(self.outcome_label)

    def _build_charts(self, lay: QtWidgets.QVBoxLayout) -> None:
        self.charts = charts = TrainCharts()
        self.loss_plot, self.em_plot, self.fit_plot = charts.loss_plot, charts.em_plot, charts.fit_plot
        self.loss_curve, self.em_curve = charts.loss_curve, charts.em_curve
        self.plots = charts.plots
        lay.addWidget(charts, 1)

    # -- Page API ---------------------------------------------------------------------------------
    def watched_fields(self) -> tuple[str, ...]:
        return ("project_path", "plan_id", "train_run_id")

    def step_state(self) -> tuple[str, str]:
        if self.ctx.project_path is None:
            return BLOCKED, "Open a project first (step 1)."
        if self.ctx.plan_id is None:
            return BLOCKED, "No plan yet: make one in the Plan step, then train on it here."
        row = self._current_row()
        if row is not None and row.status == RUN_DONE:
            return DONE, f"Run {row.id} finished; its adapter is in {row.adapter_dir}"
        if self._missing:
            return READY, "Training needs the full edition of KnowMix (torch and peft)."
        return READY, f"Ready to train on plan {self.ctx.plan_id}."

    def primary_action(self) -> None:
        if self.start_button.isEnabled():
            self.start()

    def refresh(self) -> None:
        self._show_edition()
        self._load_plan_info()
        self._reload_runs()
        if not self.training:
            self._show_selected_run()
        if not self._missing and self._gpu is None and not self._detecting:
            self._start_gpu_detection()
        if self.check_after.isChecked():
            self.check_row.show_cost()

    def update_actions(self) -> None:
        busy = self.ctx.runner.busy
        can_train = not self._missing and self.ctx.project_path is not None
        has_plan = self.ctx.plan_id is not None
        self.start_button.setEnabled(can_train and has_plan and not busy)
        self.start_button.setToolTip(self._start_blocker() or "Train a new run on the plan with these settings (Ctrl+Return).")
        self.cancel_button.setEnabled(self.training and not self._cancel_requested)
        row = self._selected_row()
        self.resume_button.setEnabled(can_train and not busy and row is not None and run_is_resumable(row))
        for w in (*self.form.inputs(), self.runs_combo):
            w.setEnabled(not self.training)
        self.open_button.setEnabled(row is not None and row.folder is not None and row.folder.is_dir())
        self.runs_box.show_worker(None if self.training else row)

    @property
    def training(self) -> bool:
        return self._job is not None

    # -- reading the project ------------------------------------------------------------------------
    def _start_blocker(self) -> str:
        if self._missing:
            return "Training needs the full edition of KnowMix."
        if self.ctx.project_path is None:
            return "Open a project first (step 1)."
        if self.ctx.plan_id is None:
            return "There is no plan to train on yet: make one in the Plan step first."
        if self.ctx.runner.busy:
            job = self.ctx.runner.current()
            return f"Wait for '{job.name if job else 'the running job'}' to finish."
        return ""

    def _show_edition(self) -> None:
        if self._missing:
            self.edition_message.show_message(
                "Training needs the full edition of KnowMix: this installation lacks "
                + ", ".join(self._missing)
                + ". The lite edition probes and plans; export the plan (step 9) and train it with the full edition or "
                "any LoRA tool.",
                "warning",
            )
        elif self.ctx.project_path is not None and self.ctx.plan_id is None:
            self.edition_message.show_message(
                "There is no plan to train on yet: make one in the Plan step (step 6) first.", "info"
            )
        else:
            self.edition_message.clear_message()

    def _load_plan_info(self) -> None:
        if self.ctx.project_path is None or self.ctx.plan_id is None:
            line = plan_line(None, None)
        else:
            with self.ctx.project() as p:
                line = plan_line(p, self.ctx.plan_id)
        self._plan_model = line.model
        self.plan_label.setText(line.label)
        self.model_note.setText(line.note)
        self.model_edit.setPlaceholderText(line.placeholder)

    def _reload_runs(self) -> None:
        from core.train import list_runs

        rows: list[TrainRun] = []
        if self.ctx.project_path is not None:
            with self.ctx.project() as p:
                rows = RunsBox.with_claims(p, list_runs(p))
        self._rows = {r.id: r for r in rows}
        self._rows_project = self.ctx.project_path
        want = self.ctx.train_run_id if self.ctx.train_run_id in self._rows else (rows[-1].id if rows else None)
        self.runs_combo.blockSignals(True)
        self.runs_combo.clear()
        for r in rows:
            self.runs_combo.addItem(run_label(r), r.id)
        if want is not None:
            self.runs_combo.setCurrentIndex(self.runs_combo.findData(int(want)))
        self.runs_combo.blockSignals(False)
        if not rows:
            self.runs_combo.addItem("No training runs yet", None)

    def _selected_row(self) -> Optional[TrainRun]:
        run_id = self.runs_combo.currentData()
        return self._rows.get(run_id) if run_id is not None else None

    def _current_row(self) -> Optional[TrainRun]:
        run_id = self.ctx.train_run_id
        if run_id is None or self.ctx.project_path is None:
            return None
        if self._rows_project == self.ctx.project_path and run_id in self._rows and not self.training:
            return self._rows[run_id]  # the navigator asks after every job and context change: no query each time
        try:
            from core.train import get_run

            with self.ctx.project() as p:
                return get_run(p, run_id)
        except Exception:  # noqa: BLE001 - the navigator asks often; a missing run is just "not done"
            return None

    def _run_chosen(self, _index: int) -> None:
        run_id = self.runs_combo.currentData()
        if run_id is not None and run_id != self.ctx.train_run_id:
            self.ctx.set(train_run_id=run_id)  # refreshes the page (a watched field)
        else:
            self._show_selected_run()
            self.update_actions()

    def _show_selected_run(self) -> None:
        row = self._selected_row()
        self.clear_curves()
        if row is None:
            self.checkpoint_label.setText("No training run yet. Start one with the settings above: Start training.")
            self.outcome_label.setText("")
            return
        self.checkpoint_label.setText(describe_checkpoint(row))
        history = self._load_curves(row.id)
        self.outcome_label.setText(describe_outcome(row, history))
        point = row.stopping_point(history)
        self.set_stopping_point(point["step"] if point else None)
        self.redraw()

    def _load_curves(self, run_id: int, up_to: Optional[int] = None) -> list[dict]:
        """Fill the curves from the project (an earlier run, or the part of a resumed one before its checkpoint)."""
        from core.train import eval_history, metric_series

        with self.ctx.project() as p:
            losses = metric_series(p, run_id, "loss")
            history = eval_history(p, run_id)
        if up_to is not None:
            losses = [r for r in losses if r[0] <= up_to]
            history = [h for h in history if h["step"] <= up_to]
        for step, _epoch, value in losses:
            self.charts.add_loss(step, value)
        for h in history:
            self.charts.add_eval(h["step"], h.get("dev_em"), h.get("fit") or {})
        return history

    # -- curves -------------------------------------------------------------------------------------
    def clear_curves(self) -> None:
        self.charts.clear()

    def set_stopping_point(self, step: Optional[int]) -> None:
        self.charts.set_stopping_point(step)

    def redraw(self) -> None:
        self.charts.redraw()

    def _apply_palette(self) -> None:
        self.charts.apply_palette(self.palette())

    def changeEvent(self, event: QtCore.QEvent) -> None:  # noqa: N802 - Qt API
        super().changeEvent(event)
        if event.type() == QtCore.QEvent.Type.PaletteChange:
            self._apply_palette()

    # -- settings -----------------------------------------------------------------------------------
    def settings(self) -> Any:
        """The form as ``TrainSettings``, checked; raises ``SettingsError`` with advice."""
        return self.form.settings()

    def chosen_model(self) -> Optional[str]:
        return self.form.chosen_model()

    # -- GPU ----------------------------------------------------------------------------------------
    def _start_gpu_detection(self) -> None:
        """Look for a GPU on a worker thread: importing torch takes seconds (once per process)."""
        known = cached_gpu()
        if known is not None:
            self._gpu_found(known)
            return
        self._detecting = True
        self.gpu_label.setText("Looking for a GPU …")
        self.ctx.runner.start(
            "Looking for a GPU",
            detect_gpu,
            exclusive=False,
            on_done=self._gpu_found,
            on_error=lambda exc, tb: self.gpu_label.setText(f"Could not check for a GPU: {exc}"),
            on_finally=self._gpu_finished,
        )

    def _gpu_finished(self) -> None:
        self._detecting = False

    def _gpu_found(self, info: Devices) -> None:
        self._gpu = info
        self.form.show_gpu(describe_gpu(info), bool(info.cuda))

    # -- jobs ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start a new run on the plan with the form's settings."""
        from core.errors import KnowMixError

        blocker = self._start_blocker()
        if blocker:
            self.message.show_message(blocker, "error")
            return
        try:
            settings = self.settings()
        except KnowMixError as exc:
            self.message.show_message(str(exc), "error")
            return
        model = self.chosen_model()
        if model is not None and not Path(model).expanduser().exists() and model != "default":
            self.message.show_message(
                f"The model {model} does not exist. Choose a Hugging Face folder or a GGUF file "
                "with Browse…, or leave the field empty to train the plan's model.",
                "error",
            )
            return
        released = self.ctx.backend is not None
        self.ctx.release_model()  # the probe's model would only take memory the training process needs
        self._unloaded_note = "The probe's model was unloaded to free memory for training." if released else ""
        self.message.show_message(
            f"{self._unloaded_note} Starting the training process (it loads torch and the model first) …".strip(), "info"
        )
        project_path, plan_id = self.ctx.project_path, self.ctx.plan_id

        def work(job):
            from core.train import start_training

            return start_training(
                project_path, plan_id, settings, progress=job.progress, on_event=job.send_event, cancel=job.cancel, model=model
            )

        self._begin("start")
        self._live_stopping = settings.stopping
        self._run_job("Training", work)

    def resume(self) -> None:
        """Resume the selected (cancelled, failed or killed) run from its last checkpoint."""
        row = self._selected_row()
        if row is None or not run_is_resumable(row) or self.ctx.runner.busy or self._missing:
            return
        run_id = row.id
        released = self.ctx.backend is not None
        self.ctx.release_model()
        self._unloaded_note = "The probe's model was unloaded to free memory for training." if released else ""
        self.message.show_message(
            f"{self._unloaded_note} Resuming run {run_id} from its last checkpoint (step {row.step}) …".strip(),
            "info",
        )
        project_path = self.ctx.project_path
        self._begin("resume")
        self._live_run_id = run_id
        self._live_stopping = row.stopping
        self._load_curves(run_id, up_to=row.step)
        self.redraw()

        def work(job):
            from core.train import resume_training

            return resume_training(project_path, run_id, progress=job.progress, on_event=job.send_event, cancel=job.cancel)

        self._run_job(f"Training (run {run_id})", work)

    def cancel(self) -> None:
        """Ask the worker to stop after its current step; it saves a checkpoint and keeps the best adapter."""
        if self._job is None or self._cancel_requested:
            return
        self._cancel_requested = True
        self._job.request_cancel()
        self.progress.set_busy("Stopping after the current step …")
        self.message.show_message(
            "Stopping after the current step. The training process saves a checkpoint and keeps "
            "the best adapter so far; Resume continues from there.",
            "info",
        )
        self.update_actions()

    def _begin(self, kind: str) -> None:
        self._job_kind = kind
        self._live_run_id = None
        self._cancel_requested = False
        self.clear_curves()
        self.outcome_label.setText("")
        self.status_label.setText("")
        self._status_base = ""
        self.progress.show()
        self.progress.set_busy("Starting the training process …")

    def _run_job(self, name: str, work) -> None:
        self._job = self.start_long_job(
            name, work, on_done=self._finished, on_error=self._failed, on_event=self.on_event, on_finally=self._ended
        )
        self.update_actions()

    def on_event(self, event: TrainEvent) -> None:
        """One event of the worker (``core.train.events``), on the UI thread."""
        self._follow_run(event.run_id)
        if isinstance(event, Step):
            self.charts.add_loss(event.step, float(event.loss))
            self.charts.schedule_redraw()
            return
        if isinstance(event, Checkpoint):
            self.status_label.setText(" ".join(t for t in (self._status_base, f"Checkpoint saved at step {event.step}.") if t))
            self.checkpoint_label.setText(checkpoint_html(event.run_id, event))
            return
        if isinstance(event, Start):  # the model is loaded: the "starting …" banner is done with
            self._show_start_note()
        elif isinstance(event, Resume):
            self.charts.truncate(int(event.from_step or 0))
            self.charts.schedule_redraw()
        elif isinstance(event, Eval):
            self.charts.add_eval(int(event.step), float(event.dev_em), event.fit or {})
            if self._live_stopping != CONVERGENCE and event.best_step is not None:  # convergence: marked at the end
                self.set_stopping_point(int(event.best_step))
            self.charts.schedule_redraw()
        text = event_text(event)
        if text:
            self._status_base = text
            self.status_label.setText(text)

    def _follow_run(self, run_id: Optional[int]) -> None:
        """The first event of a new run names it: the context follows (other pages show this run)."""
        if run_id is not None and self._live_run_id != run_id:
            self._live_run_id = int(run_id)
            self.ctx.set(train_run_id=int(run_id))  # reloads the runs: the list shows this one
            self.checkpoint_label.setText(training_html(run_id))

    def _show_start_note(self) -> None:
        """Training has started: the "starting"/"resuming" banner goes, the note that the model was unloaded stays."""
        if self.message.kind == "info" and not self._cancel_requested:
            if self._unloaded_note:
                self.message.show_message(self._unloaded_note, "info")
            else:
                self.message.clear_message()

    def _finished(self, outcome) -> None:
        """The run ended normally (done, or cancelled by the user): show where it stopped."""
        self.redraw()
        self.ctx.set(train_run_id=outcome.run_id)
        self._reload_runs()
        row = self._rows.get(outcome.run_id)
        if row is None:
            return
        point = row.stopping_point(outcome.history)
        self.set_stopping_point(point["step"] if point else None)
        self.outcome_label.setText(describe_outcome(row, outcome.history))
        self.checkpoint_label.setText(describe_checkpoint(row))
        if outcome.status == RUN_DONE:
            checking = self.check_after.isChecked()
            self.message.show_message(
                f"Training finished. The adapter is in {outcome.adapter_dir}; export it in the Export step."
                + (" Checking what training did to the model's knowledge now: see the Check step." if checking else ""),
                "ok",
            )
            if checking:
                self.request_check(outcome.run_id)
        else:
            self.message.show_message(
                "Training was cancelled. The last checkpoint and the best adapter so far are kept: "
                "Resume continues the run from its checkpoint.",
                "info",
            )

    def _failed(self, exc: BaseException, tb: str) -> None:
        """Errors get the app's dialog (with details for bugs) and a line on the page."""
        from core.errors import KnowMixError

        self.redraw()
        run_id = getattr(exc, "run_id", None) or self._live_run_id
        hint = ""
        if run_id is not None:
            hint = f" Run {run_id} keeps what it saved; Resume continues it once the cause is fixed."
        text = (
            str(exc) if isinstance(exc, KnowMixError) else f"Training stopped on an unexpected error: {type(exc).__name__}: {exc}"
        )
        self.message.show_message(text + hint, "error")
        # Kept: without a main window as its parent (tests, an embedded page) nothing else holds the dialog.
        self.error_box = self.ctx.show_error(exc, getattr(exc, "child_traceback", "") or tb)
        if run_id is not None:
            self.ctx.set(train_run_id=int(run_id))
        self._reload_runs()
        row = self._selected_row()
        if row is not None:
            self.checkpoint_label.setText(describe_checkpoint(row))

    def _ended(self) -> None:
        self._job = None
        self._cancel_requested = False
        self.progress.hide()
        self.update_actions()
        self.state_changed.emit()

    def open_folder(self) -> None:
        row = self._selected_row()
        if row is None:
            return
        open_run_folder(row.folder, self.ctx.project_path)
