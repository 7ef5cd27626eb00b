"""The training page's parts: the settings form, the runs box and the three live charts.

Each part owns its widgets and what they do on their own (browse for a model, turn the form into
``TrainSettings``, keep the charts on one step axis and redraw them at most every ``REDRAW_MS``),
so the page itself only wires them to the project and the training job.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from core.categories import CATEGORIES as CATEGORY_ORDER
from core.store import CONVERGENCE, EARLY_STOP, TrainRun

from ..charts import CATEGORY_COLORS
from ..curve_plot import CurvePlot
from ..qt import Qt, QtCore, QtGui, QtWidgets
from ..reflow import Reflow

LOSS_COLOR = "#1e88e5"
EM_COLOR = "#8e24aa"
REDRAW_MS = 100  # curves are redrawn at most this often, however fast the events come
_OTHER_COLOR = "#607d8b"  # a category the app does not know (a newer worker's)


def tip_label(text: str, tip: str) -> QtWidgets.QLabel:
    """A form label that explains its field on hover."""
    lab = QtWidgets.QLabel(text)
    lab.setToolTip(tip)
    return lab


def rich_label(name: str, text: str = "") -> QtWidgets.QLabel:
    """A wrapped, selectable HTML label: run folders and errors are copied from it."""
    label = QtWidgets.QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


# ---------------------------------------------------------------------------------- settings


class TrainSettingsBox(QtWidgets.QGroupBox):
    """The model to train and the LoRA settings, with the defaults of ``TrainSettings``."""

    def __init__(self, device: str, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__("Settings", parent)
        from core.train import TrainSettings

        defaults = TrainSettings()
        grid = QtWidgets.QGridLayout(self)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(4, 1)
        grid.setColumnMinimumWidth(2, 18)
        self._build_model_row(grid)
        self._build_numbers(defaults)
        self._build_device(defaults, device)
        self._place_fields(grid)
        self.gpu_label = QtWidgets.QLabel("")
        self.gpu_label.setObjectName("gpuLabel")
        self.gpu_label.setWordWrap(True)
        grid.addWidget(self.gpu_label, grid.rowCount(), 1, 1, 4)  # below the last row of fields

    def _build_model_row(self, grid: QtWidgets.QGridLayout) -> None:
        self.model_edit = QtWidgets.QLineEdit()
        self.model_edit.setObjectName("trainModel")
        self.model_edit.setClearButtonEnabled(True)
        self.browse_button = QtWidgets.QPushButton("Browse…")
        menu = QtWidgets.QMenu(self.browse_button)
        menu.addAction("A Hugging Face model folder…", self._browse_folder)
        menu.addAction("A GGUF file…", self._browse_gguf)
        self.browse_button.setMenu(menu)
        # the plan's categories belong to the probed model: training another one is refused unless
        # the user says so here (knowmix train --other-model), and the check and report then say so
        self.other_model = QtWidgets.QCheckBox("Not the probed model, on purpose")
        self.other_model.setObjectName("otherModel")
        self.other_model.setToolTip(
            "Train this model although the plan's probe asked another one. The plan's categories and the "
            "check's 'before' then belong to the probed model; the check and the report say so."
        )
        model_row = QtWidgets.QHBoxLayout()
        model_row.addWidget(self.model_edit, 1)
        model_row.addWidget(self.browse_button)
        model_row.addWidget(self.other_model)
        grid.addWidget(
            tip_label(
                "Model to train:",
                "The base model the adapter is trained for. Leave empty to train "
                "the model the plan's probe used: that is the model whose knowledge the plan is built on.",
            ),
            0,
            0,
        )
        grid.addLayout(model_row, 0, 1, 1, 4)
        self.model_note = QtWidgets.QLabel("")
        self.model_note.setObjectName("modelNote")
        self.model_note.setWordWrap(True)
        grid.addWidget(self.model_note, 1, 1, 1, 4)

    def _build_numbers(self, defaults: Any) -> None:
        self.epochs = QtWidgets.QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(defaults.epochs)
        self.lr = QtWidgets.QComboBox()
        self.lr.setEditable(True)
        for v in ("5e-05", "0.0001", "0.0002", "0.0003", "0.0005", "0.001"):
            self.lr.addItem(v)
        self.lr.setCurrentText(f"{defaults.lr:g}")
        self.batch = QtWidgets.QSpinBox()
        self.batch.setRange(1, 1024)
        self.batch.setValue(defaults.batch_size)
        self.rank = QtWidgets.QSpinBox()
        self.rank.setRange(1, 1024)
        self.rank.setValue(defaults.lora_r)
        self.stopping = QtWidgets.QComboBox()
        self.stopping.addItem("Early stop on the best dev exact match (recommended)", EARLY_STOP)
        self.stopping.addItem("Train to convergence (all epochs, keep the last)", CONVERGENCE)
        self.stopping.setCurrentIndex(max(0, self.stopping.findData(defaults.stopping)))
        self.eval_every = QtWidgets.QSpinBox()
        self.eval_every.setRange(0, 1_000_000)
        self.eval_every.setSpecialValueText("every epoch")
        self.eval_every.setSuffix(" steps")
        self.eval_every.setValue(defaults.eval_every_steps or 0)

    def _build_device(self, defaults: Any, device: str) -> None:
        from core.train import physical_cores

        self.device = QtWidgets.QComboBox()
        self.device.addItem("Automatic", "auto")
        self.device.addItem("CPU", "cpu")
        self.device.addItem("GPU (CUDA)", "cuda")
        start_device = device if device in ("auto", "cpu", "cuda") else defaults.device
        self.device.setCurrentIndex(max(0, self.device.findData(start_device)))
        self.threads = QtWidgets.QSpinBox()
        self.threads.setRange(0, 512)
        self.threads.setSpecialValueText(f"automatic ({physical_cores()})")
        self.threads.setValue(defaults.threads or 0)
        self.processes = QtWidgets.QSpinBox()
        self.processes.setRange(1, 64)
        self.processes.setValue(defaults.processes)

    def _place_fields(self, grid: QtWidgets.QGridLayout) -> None:
        """Two fields a row, each with a label whose tooltip (also the field's) says what it does."""
        rows = [
            (
                ("Epochs:", self.epochs, "The most passes over the training examples. Early stopping usually ends sooner."),
                ("Learning rate:", self.lr, "1e-4 to 3e-4 is usual for LoRA."),
            ),
            (
                ("Batch size:", self.batch, "Examples per step. Lower it if the GPU runs out of memory."),
                ("LoRA rank:", self.rank, "Size of the adapter; alpha is set to twice the rank. 8 to 64 is usual."),
            ),
            (
                (
                    "Stopping:",
                    self.stopping,
                    "Early stop keeps the adapter from the evaluation with the best dev exact "
                    "match, as the paper recommends: training on unknown facts to convergence teaches the model to hallucinate.",
                ),
                (
                    "Evaluate:",
                    self.eval_every,
                    "How often the dev exact match and the train fit are measured (and a checkpoint saved).",
                ),
            ),
            (
                ("Device:", self.device, "Automatic trains on the GPU if there is one."),
                ("CPU threads:", self.threads, "torch threads on the CPU; automatic uses the physical cores."),
            ),
            (
                (
                    "Processes:",
                    self.processes,
                    "Training processes, data parallel (torchrun): one per GPU, e.g. 4 on a 4-GPU machine. The effective "
                    "batch stays the same, shared between them; it must divide by this number. 1: one process.",
                ),
            ),
        ]
        for r, pair in enumerate(rows, start=2):
            for c, (text, widget, tip) in zip((0, 3), pair):
                grid.addWidget(tip_label(text, tip), r, c)
                widget.setToolTip(tip)
                grid.addWidget(widget, r, c + 1)

    def inputs(self) -> tuple[QtWidgets.QWidget, ...]:
        """Everything a user can change; locked while a run trains, as it trains with what was set."""
        return (
            self.model_edit,
            self.browse_button,
            self.other_model,
            self.epochs,
            self.lr,
            self.batch,
            self.rank,
            self.stopping,
            self.eval_every,
            self.device,
            self.threads,
            self.processes,
        )

    def settings(self) -> Any:
        """The form as ``TrainSettings``, checked; raises ``SettingsError`` with advice."""
        from core.errors import SettingsError
        from core.train import TrainSettings

        text = self.lr.currentText().strip()
        try:
            lr = float(text)
        except ValueError:
            raise SettingsError(f"The learning rate '{text}' is not a number; 1e-4 to 3e-4 is usual for LoRA.") from None
        rank = self.rank.value()
        return TrainSettings(
            epochs=self.epochs.value(),
            lr=lr,
            batch_size=self.batch.value(),
            lora_r=rank,
            lora_alpha=2 * rank,
            stopping=self.stopping.currentData(),
            eval_every_steps=self.eval_every.value() or None,
            device=self.device.currentData(),
            threads=self.threads.value() or None,
            processes=self.processes.value(),
            other_model=self.other_model.isChecked(),
        ).validate()

    def chosen_model(self) -> Optional[str]:
        """The model the user typed or browsed to; None trains the plan's probe model."""
        text = self.model_edit.text().strip()
        return text or None

    def show_gpu(self, text: str, has_cuda: bool) -> None:
        """Say what the GPU look found, and offer CUDA only where there is one."""
        self.gpu_label.setText(text)
        item = self.device.model().item(self.device.findData("cuda"))
        if item is not None:
            item.setEnabled(has_cuda)
            if not has_cuda and self.device.currentData() == "cuda":
                self.device.setCurrentIndex(self.device.findData("auto"))

    def _browse_folder(self) -> None:
        start = self.model_edit.text() or str(Path.home())
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Choose a Hugging Face model folder", start)
        if path:
            self.model_edit.setText(path)

    def _browse_gguf(self) -> None:
        start = self.model_edit.text() or str(Path.home())
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Choose a GGUF model file", start, "GGUF models (*.gguf);;All files (*)"
        )
        if path:
            self.model_edit.setText(path)


# ---------------------------------------------------------------------------------- runs


class RunsBox(QtWidgets.QGroupBox):
    """The project's runs to choose from, what the chosen one's folder holds, and a way to open it."""

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__("Runs of this project", parent)
        rl = QtWidgets.QVBoxLayout(self)
        self.runs_combo = QtWidgets.QComboBox()
        self.runs_combo.setObjectName("trainRuns")
        self.runs_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.runs_combo.setMinimumContentsLength(24)
        rl.addWidget(self.runs_combo)
        self.checkpoint_label = rich_label("checkpointLabel", "No training run yet.")
        self.checkpoint_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        rl.addWidget(self.checkpoint_label, 1)
        row = QtWidgets.QHBoxLayout()
        self.open_button = QtWidgets.QPushButton("Open folder")
        self.open_button.setToolTip("Open the run's folder (adapters, checkpoints, metrics.jsonl, worker.log)")
        row.addWidget(self.open_button)
        self.stop_button = QtWidgets.QPushButton("Stop its worker")
        self.stop_button.setObjectName("stopWorker")
        self.stop_button.setToolTip(
            "This run is being trained by another KnowMix (another window, the command line, or an app that was "
            "closed): ask its worker to stop after the current step and save a checkpoint; then resume it here."
        )
        self.stop_button.hide()
        row.addWidget(self.stop_button)
        row.addStretch(1)
        rl.addLayout(row)

    def show_worker(self, row: Optional[TrainRun]) -> None:
        """Offer "Stop its worker" for a run another KnowMix trains on this computer (``with_claims``)."""
        claim = (row.claim if row is not None else None) or {}
        self.stop_button.setVisible(bool(claim.get("worker")) and claim.get("pid") != os.getpid())

    @staticmethod
    def with_claims(project: Any, rows: list[TrainRun]) -> list[TrainRun]:
        """The runs with ``claim``: the live claim of a run some KnowMix trains now (None for the others)."""
        from core.train import CREATED, RUNNING, live_claim

        return [r.replace(claim=live_claim(project, r.id) if r.status in (RUNNING, CREATED) else None) for r in rows]

    @staticmethod
    def stop_worker(ctx: Any, run_id: int, message: Any) -> None:
        """Stop the worker of a run another KnowMix started, and say so (or why not) in ``message``."""
        from core.errors import KnowMixError
        from core.train import stop_worker

        try:
            with ctx.project() as p:
                pid = stop_worker(p, run_id)
        except (KnowMixError, OSError) as exc:
            message.show_message(str(exc), "error")
            return
        message.show_message(
            f"Asked the worker of run {run_id} (process {pid}) to stop after its current step; resume the run once it has.",
            "warning",
        )


# ---------------------------------------------------------------------------------- charts


class TrainCharts(Reflow):
    """Loss per step, dev exact match and train fit per category, on one step axis: side by side
    where the window is wide enough, on more rows where it is not (``Reflow``).

    Events can come many times a second; points are appended at once and drawn by a single-shot
    timer, so a fast run never makes the window redraw more than every ``REDRAW_MS``.
    """

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        loss = CurvePlot("Training loss", "loss")
        em = CurvePlot("Dev exact match", "exact match (%)", percent=True)
        fit = CurvePlot("Train fit by category", "answered correctly (%)", percent=True, legend_columns=2)
        super().__init__((loss, em, fit), parent=parent)
        self.loss_plot, self.em_plot, self.fit_plot = self.plots = (loss, em, fit)
        self.loss_curve = loss.curve("loss", "loss per step", LOSS_COLOR, symbols=False)
        self.em_curve = em.curve("dev_em", "dev exact match", EM_COLOR, symbols=True)
        for cat in CATEGORY_ORDER:
            fit.curve(cat, cat, CATEGORY_COLORS.get(cat, _OTHER_COLOR), symbols=True)
        for p in (em, fit):  # one step axis for the three charts
            p.setXLink(loss)
        self._redraw_timer = QtCore.QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(REDRAW_MS)
        self._redraw_timer.timeout.connect(self.redraw)

    def clear(self) -> None:
        """Empty all curves and hide the stopping point, before another run is shown."""
        for p in self.plots:
            p.clear_data()

    def add_loss(self, step: int, loss: float) -> None:
        self.loss_plot.append("loss", step, loss)

    def add_eval(self, step: int, dev_em: Optional[float], fit: dict) -> None:
        """One evaluation: the dev exact match and the train fit per category, in percent."""
        if dev_em is not None:
            self.em_plot.append("dev_em", step, 100.0 * dev_em)
        for cat, share in fit.items():
            if cat not in self.fit_plot.curves:
                self.fit_plot.curve(cat, cat, CATEGORY_COLORS.get(cat, _OTHER_COLOR), symbols=True)
            self.fit_plot.append(cat, step, 100.0 * share)

    def truncate(self, step: int) -> None:
        """Forget the points after ``step``: a resumed run redoes them from its checkpoint."""
        for p in self.plots:
            p.truncate(step)

    def set_stopping_point(self, step: Optional[int]) -> None:
        for p in self.plots:
            p.set_stop(step)

    def redraw(self) -> None:
        """Draw now (and cancel a pending timed redraw)."""
        self._redraw_timer.stop()
        for p in self.plots:
            p.redraw()

    def schedule_redraw(self) -> None:
        """Draw within ``REDRAW_MS``, once however many events come until then."""
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def apply_palette(self, palette: QtGui.QPalette) -> None:
        for p in self.plots:
            p.apply_palette(palette)
