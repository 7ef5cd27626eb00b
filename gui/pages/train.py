"""Step 7: train a LoRA adapter on the plan, watch its curves live, cancel and resume it, and look back
at earlier runs.

The training itself runs in a child process (``core.train.runner``); this page starts it through the
job runner, draws the worker's events as they arrive (loss per step, dev exact match and train fit
per category per evaluation) and marks the stopping point. torch is never imported on the UI thread:
whether training is possible at all is checked with ``importlib.util.find_spec``, and the GPU is
looked for in a background job.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Optional

from core.probe import CATEGORIES as CATEGORY_ORDER
from core.store import pid_alive
from core.train.runner import missing_training_packages

from ..charts import CATEGORY_COLORS
from ..qt import Qt, QtCore, QtGui, QtWidgets, pg
from .base import BLOCKED, DONE, READY, InlineMessage, Page, ProgressRow, fmt_seconds, scrolled

LOSS_COLOR = "#1e88e5"
EM_COLOR = "#8e24aa"
RESUMABLE_STATUSES = ("cancelled", "crashed", "failed", "created", "running")  # running/created: only when its process is gone
REDRAW_MS = 100  # curves are redrawn at most this often, however fast the events come

_GPU_CACHE: Optional[dict] = None  # one look per process: importing torch costs seconds


# ---------------------------------------------------------------------------------- helpers (no Qt state)


def detect_gpu(_job: Any = None) -> dict:
    """What torch can train on here. Runs on a worker thread (it imports torch); cached per process."""
    global _GPU_CACHE
    if _GPU_CACHE is not None:
        return _GPU_CACHE
    info: dict = {"cuda": [], "mps": False, "error": None}
    try:
        import torch

        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                info["cuda"].append({"name": props.name, "memory": int(props.total_memory)})
        mps = getattr(torch.backends, "mps", None)
        info["mps"] = bool(mps is not None and mps.is_available())
    except Exception as exc:  # noqa: BLE001 - shown as "could not check"
        info["error"] = f"{type(exc).__name__}: {exc}"
    _GPU_CACHE = info
    return info


def describe_gpu(info: dict) -> str:
    if info.get("error"):
        return f"Could not check for a GPU ({info['error']}); training will try the CPU."
    if info.get("cuda"):
        gpus = "; ".join(f"{g['name']} ({g['memory'] / 1024**3:.0f} GiB)" for g in info["cuda"])
        return f"GPU found: {gpus}. Automatic trains on it."
    if info.get("mps"):
        return "Apple GPU (MPS) found. Automatic trains on it."
    return "No GPU found: training runs on the CPU (fine for small models, slow for large ones)."


def run_is_resumable(row: dict) -> bool:
    status = row.get("status")
    if status not in RESUMABLE_STATUSES:
        return False
    if status in ("running", "created"):
        return not pid_alive(row.get("worker_pid"))  # its worker is gone (killed, crashed, the app closed)
    return True


def pct(x: Optional[float]) -> str:
    return "—" if x is None else f"{x:.1%}"


def fit_text(fit: Optional[dict]) -> str:
    if not fit:
        return ""
    cats = [c for c in CATEGORY_ORDER if c in fit] + sorted(c for c in fit if c not in CATEGORY_ORDER)
    return " · ".join(f"{c} {fit[c]:.0%}" for c in cats)


def run_label(row: dict) -> str:
    best = f"dev EM best {pct(row.get('best_dev_em'))}" if row.get("best_dev_em") is not None else "no evaluation yet"
    status = row.get("status") or "?"
    if status in ("running", "created") and not pid_alive(row.get("worker_pid")) and row.get("worker_pid"):
        status += " (process gone)"
    return f"Run {row['id']} — {status} — {best}"


def stopping_rule(row: dict) -> str:
    try:
        return str(json.loads(row.get("settings") or "{}").get("stopping") or "early_stop")
    except ValueError:
        return "early_stop"


def stopping_point(row: dict, history: list[dict]) -> Optional[dict]:
    """``{"step", "epoch", "dev_em", "fit", "why"}`` of the adapter the run keeps, or None before any evaluation.

    Early stop (and a cancelled run) keeps the best evaluation's adapter; convergence keeps the last step's."""
    if stopping_rule(row) == "convergence" and row.get("status") == "done" and row.get("final_step"):
        step = int(row["final_step"])
        rec = next((h for h in history if h["step"] == step), None)
        return {"step": step, "epoch": row.get("final_epoch"), "dev_em": rec.get("dev_em") if rec else None,
                "fit": (rec or {}).get("fit") or {}, "why": "the last step (trained to convergence)"}
    if row.get("best_step") is None:
        return None
    fit = {}
    if row.get("fit_at_best"):
        try:
            fit = json.loads(row["fit_at_best"]) or {}
        except ValueError:
            fit = {}
    return {"step": int(row["best_step"]), "epoch": row.get("best_epoch"), "dev_em": row.get("best_dev_em"),
            "fit": fit, "why": "the best dev exact match"}


def describe_outcome(row: dict, history: list[dict]) -> str:
    """What a run ended with, in words (HTML)."""
    status = row.get("status")
    point = stopping_point(row, history)
    esc = html.escape
    lines = []
    if status == "done":
        reason = {"early_stop": "stopped early: the dev exact match stopped improving",
                  "max_epochs": f"trained all {row.get('final_epoch') or '?'} epochs"}.get(row.get("stop_reason") or "", "")
        lines.append(f"<b>Run {row['id']} finished</b>" + (f" ({esc(reason)}, in {fmt_seconds(row.get('seconds'))})." if reason else "."))
    elif status == "cancelled":
        lines.append(f"<b>Run {row['id']} was cancelled at step {row.get('step') or 0}.</b> Its last checkpoint and its best "
                     "adapter so far are kept: Resume continues from the checkpoint.")
    else:
        lines.append(f"<b>Run {row['id']}: {esc(str(status))}.</b>"
                     + (f" {esc(str(row['error']))}" if row.get("error") else ""))
    if point is not None:
        epoch = f"epoch {point['epoch']:.2f}, " if isinstance(point.get("epoch"), (int, float)) else ""
        lines.append(f"Stopping point: {epoch}step {point['step']} ({esc(point['why'])}); dev exact match {pct(point['dev_em'])}.")
        if point.get("fit"):
            lines.append(f"Train fit at the stopping point: {esc(fit_text(point['fit']))}.")
    elif status != "done":
        lines.append("No evaluation yet, so no stopping point and no adapter.")
    if row.get("adapter_dir"):
        lines.append(f"Adapter: <code>{esc(str(row['adapter_dir']))}</code>")
    if row.get("merged_dir"):
        lines.append(f"Merged model: <code>{esc(str(row['merged_dir']))}</code>")
    return "<br>".join(lines)


def describe_checkpoint(row: dict) -> str:
    folder = Path(row.get("folder") or "")
    last = folder / "checkpoints" / "last"
    has_ckpt = (last / "state.json").is_file() or (folder / "checkpoints" / "last.old" / "state.json").is_file()
    step, epoch = row.get("step") or 0, row.get("epoch") or 0.0
    esc = html.escape
    parts = [f"<b>{esc(run_label(row))}</b> · model {esc(str(row.get('model_name') or row.get('model_spec') or '?'))} · "
             f"{row.get('n_train') or 0} training / {row.get('n_dev') or 0} dev examples"]
    if has_ckpt:
        parts.append(f"Last checkpoint: step {step} (epoch {float(epoch):.2f}) — <code>checkpoints/last</code> is in the run folder.")
    else:
        parts.append("No checkpoint in the run folder" + (" (removed?)" if step else " yet") + ".")
    adapter = row.get("adapter_dir")
    if adapter:
        which = "final adapter (last step)" if Path(adapter).name == "final-adapter" else "best adapter"
        exists = "" if Path(adapter).is_dir() else " — <i>missing on disk</i>"
        parts.append(f"Adapter ({which}): <code>{esc(str(adapter))}</code>{exists}")
    else:
        parts.append("No adapter yet (one is saved at the first evaluation).")
    if row.get("error") and row.get("status") in ("failed", "crashed"):
        parts.append(f"Error: {esc(str(row['error']))}")
    return "<br>".join(parts)


# ---------------------------------------------------------------------------------- the curves


class CurvePlot(pg.PlotWidget):
    """One live chart: curves by step, a legend, and a dashed vertical line at the stopping point."""

    def __init__(self, title: str, y_label: str, *, percent: bool = False, legend_columns: int = 1) -> None:
        super().__init__()
        self.title = title
        self.percent = percent
        self.setMinimumHeight(240)
        self.setMinimumWidth(260)
        item = self.getPlotItem()
        item.setLabel("bottom", "step")
        item.setLabel("left", y_label)
        item.showGrid(x=True, y=True, alpha=0.2)
        item.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        if percent:
            item.setYRange(-6, 106, padding=0)
            item.enableAutoRange(axis="y", enable=False)
        # The legend sits in its own row under the chart, never over the curves or the stopping-point label.
        self.legend = pg.LegendItem(labelTextSize="8pt", colCount=legend_columns, horSpacing=14, verSpacing=-6)
        item.layout.addItem(self.legend, 4, 1, alignment=Qt.AlignmentFlag.AlignHCenter)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.data: dict[str, tuple[list, list]] = {}
        self.stop_line = pg.InfiniteLine(angle=90, movable=False, label="stopping point",
                                         labelOpts={"position": 0.95, "anchors": [(0, 0.5), (0, 0.5)]})
        self.stop_line.setZValue(-5)
        self.stop_line.hide()
        item.addItem(self.stop_line, ignoreBounds=True)
        self.stop_step: Optional[int] = None

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt API; small, so the page fits and the charts take what is left
        return QtCore.QSize(360, 260)

    def curve(self, key: str, name: str, color: str, *, symbols: bool) -> pg.PlotDataItem:
        if key not in self.curves:
            kw: dict = {"pen": pg.mkPen(color, width=2), "name": name}
            if symbols:
                kw.update(symbol="o", symbolSize=6, symbolBrush=color, symbolPen=pg.mkPen(color))
            c = self.getPlotItem().plot([], [], **kw)
            self.legend.addItem(c, name)
            if not symbols:
                c.setClipToView(True)
                c.setDownsampling(auto=True, method="mean")
            self.curves[key] = c
            self.data[key] = ([], [])
        return self.curves[key]

    def append(self, key: str, x: float, y: float) -> None:
        xs, ys = self.data[key]
        while xs and xs[-1] >= x:  # a resumed run redoes the steps after its checkpoint
            xs.pop()
            ys.pop()
        xs.append(x)
        ys.append(y)

    def truncate(self, step: float) -> None:
        for xs, ys in self.data.values():
            while xs and xs[-1] > step:
                xs.pop()
                ys.pop()

    def redraw(self) -> None:
        for key, c in self.curves.items():
            xs, ys = self.data[key]
            c.setData(xs, ys)

    def clear_data(self) -> None:
        for key in self.data:
            self.data[key] = ([], [])
        self.redraw()
        self.set_stop(None)
        self.getPlotItem().enableAutoRange(axis="x", enable=True)

    def set_stop(self, step: Optional[int]) -> None:
        self.stop_step = step
        if step is None:
            self.stop_line.hide()
        else:
            self.stop_line.setValue(step)
            self.stop_line.show()

    def points(self, key: str) -> int:
        return len(self.data.get(key, ([], []))[0])

    def apply_palette(self, palette: QtGui.QPalette) -> None:
        """Readable in light and dark themes: background, axes, text and the stopping line follow the palette."""
        bg = palette.color(QtGui.QPalette.ColorRole.Base)
        fg = palette.color(QtGui.QPalette.ColorRole.Text)
        self.setBackground(bg)
        item = self.getPlotItem()
        for name in ("left", "bottom"):
            axis = item.getAxis(name)
            axis.setPen(pg.mkPen(fg))
            axis.setTextPen(pg.mkPen(fg))
        item.setTitle(self.title, color=fg.name(), size="10pt")
        self.legend.setLabelTextColor(fg)
        fill = QtGui.QColor(bg)
        fill.setAlpha(210)
        for sample, label in self.legend.items:  # labels added before a palette change keep their old colour otherwise
            label.setText(label.text, color=fg.name())
        self.stop_line.setPen(pg.mkPen(fg, width=1.5, style=Qt.PenStyle.DashLine))
        self.stop_line.label.setColor(fg)
        self.stop_line.label.fill = pg.mkBrush(fill)


# ---------------------------------------------------------------------------------- the page


class TrainPage(Page):
    title = "Train"
    key = "train"

    def __init__(self, ctx, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(ctx, parent)
        from core.train.settings import TrainSettings, physical_cores

        defaults = TrainSettings()
        self._missing = missing_training_packages()
        self._job = None  # the training job while one runs
        self._job_kind = ""  # "start" | "resume"
        self._live_run_id: Optional[int] = None
        self._live_stopping = "early_stop"  # the stopping rule of the run being trained
        self._status_base = ""  # the status line without its "checkpoint saved" tail
        self._cancel_requested = False
        self._plan_model: Optional[str] = None
        self._gpu: Optional[dict] = None
        self._detecting = False
        self._rows: dict[int, dict] = {}  # this project's runs by id, as last read
        self._rows_project: Optional[Path] = None  # the project they were read from
        self.error_box: Optional[QtWidgets.QMessageBox] = None  # the last error dialog

        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        body = QtWidgets.QWidget()
        outer.addWidget(scrolled(body))
        lay = QtWidgets.QVBoxLayout(body)
        lay.addWidget(self.heading(
            "Train", "A LoRA fine-tune on the plan's training examples. Training runs in its own process: the window "
                     "stays responsive, a cancel keeps the last checkpoint and the best adapter, and a stopped run resumes "
                     "where it stopped."))
        self.edition_message = InlineMessage()
        self.edition_message.setObjectName("editionMessage")
        lay.addWidget(self.edition_message)
        self.plan_label = QtWidgets.QLabel("")
        self.plan_label.setObjectName("planLabel")
        self.plan_label.setWordWrap(True)
        lay.addWidget(self.plan_label)

        top = QtWidgets.QHBoxLayout()
        lay.addLayout(top)

        # -- settings
        box = QtWidgets.QGroupBox("Settings")
        grid = QtWidgets.QGridLayout(box)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(4, 1)
        grid.setColumnMinimumWidth(2, 18)

        self.model_edit = QtWidgets.QLineEdit()
        self.model_edit.setObjectName("trainModel")
        self.model_edit.setClearButtonEnabled(True)
        self.browse_button = QtWidgets.QPushButton("Browse…")
        menu = QtWidgets.QMenu(self.browse_button)
        menu.addAction("A Hugging Face model folder…", self._browse_folder)
        menu.addAction("A GGUF file…", self._browse_gguf)
        self.browse_button.setMenu(menu)
        model_row = QtWidgets.QHBoxLayout()
        model_row.addWidget(self.model_edit, 1)
        model_row.addWidget(self.browse_button)
        grid.addWidget(self._label("Model to train:", "The base model the adapter is trained for. Leave empty to train "
                                   "the model the plan's probe used: that is the model whose knowledge the plan is built on."), 0, 0)
        grid.addLayout(model_row, 0, 1, 1, 4)
        self.model_note = QtWidgets.QLabel("")
        self.model_note.setObjectName("modelNote")
        self.model_note.setWordWrap(True)
        grid.addWidget(self.model_note, 1, 1, 1, 4)

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
        self.stopping.addItem("Early stop on the best dev exact match (recommended)", "early_stop")
        self.stopping.addItem("Train to convergence (all epochs, keep the last)", "convergence")
        self.stopping.setCurrentIndex(max(0, self.stopping.findData(defaults.stopping)))
        self.eval_every = QtWidgets.QSpinBox()
        self.eval_every.setRange(0, 1_000_000)
        self.eval_every.setSpecialValueText("every epoch")
        self.eval_every.setSuffix(" steps")
        self.eval_every.setValue(defaults.eval_every_steps or 0)
        self.device = QtWidgets.QComboBox()
        self.device.addItem("Automatic", "auto")
        self.device.addItem("CPU", "cpu")
        self.device.addItem("GPU (CUDA)", "cuda")
        start_device = ctx.device if ctx.device in ("auto", "cpu", "cuda") else defaults.device
        self.device.setCurrentIndex(max(0, self.device.findData(start_device)))
        self.threads = QtWidgets.QSpinBox()
        self.threads.setRange(0, 512)
        self.threads.setSpecialValueText(f"automatic ({physical_cores()})")
        self.threads.setValue(defaults.threads or 0)
        self.gpu_label = QtWidgets.QLabel("")
        self.gpu_label.setObjectName("gpuLabel")
        self.gpu_label.setWordWrap(True)

        rows = [
            (("Epochs:", self.epochs, "The most passes over the training examples. Early stopping usually ends sooner."),
             ("Learning rate:", self.lr, "1e-4 to 3e-4 is usual for LoRA.")),
            (("Batch size:", self.batch, "Examples per step. Lower it if the GPU runs out of memory."),
             ("LoRA rank:", self.rank, "Size of the adapter; alpha is set to twice the rank. 8 to 64 is usual.")),
            (("Stopping:", self.stopping, "Early stop keeps the adapter from the evaluation with the best dev exact "
              "match, as the paper recommends: training on unknown facts to convergence teaches the model to hallucinate."),
             ("Evaluate:", self.eval_every, "How often the dev exact match and the train fit are measured (and a checkpoint saved).")),
            (("Device:", self.device, "Automatic trains on the GPU if there is one."),
             ("CPU threads:", self.threads, "torch threads on the CPU; automatic uses the physical cores.")),
        ]
        for r, pair in enumerate(rows, start=2):
            for c, (text, widget, tip) in zip((0, 3), pair):
                grid.addWidget(self._label(text, tip), r, c)
                widget.setToolTip(tip)
                grid.addWidget(widget, r, c + 1)
        grid.addWidget(self.gpu_label, 6, 1, 1, 4)
        top.addWidget(box, 3)

        # -- runs
        runs_box = QtWidgets.QGroupBox("Runs of this project")
        rl = QtWidgets.QVBoxLayout(runs_box)
        self.runs_combo = QtWidgets.QComboBox()
        self.runs_combo.setObjectName("trainRuns")
        self.runs_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.runs_combo.setMinimumContentsLength(24)
        self.runs_combo.activated.connect(self._run_chosen)
        rl.addWidget(self.runs_combo)
        self.checkpoint_label = QtWidgets.QLabel("No training run yet.")
        self.checkpoint_label.setObjectName("checkpointLabel")
        self.checkpoint_label.setWordWrap(True)
        self.checkpoint_label.setTextFormat(Qt.TextFormat.RichText)
        self.checkpoint_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.checkpoint_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        rl.addWidget(self.checkpoint_label, 1)
        row = QtWidgets.QHBoxLayout()
        self.open_button = QtWidgets.QPushButton("Open folder")
        self.open_button.setToolTip("Open the run's folder (adapters, checkpoints, metrics.jsonl, worker.log)")
        self.open_button.clicked.connect(self.open_folder)
        row.addWidget(self.open_button)
        row.addStretch(1)
        rl.addLayout(row)
        top.addWidget(runs_box, 2)

        # -- actions
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
        self.resume_button.setToolTip("Continue a cancelled, failed or killed run from its last checkpoint, with the same data order.")
        self.resume_button.clicked.connect(self.resume)
        for b in (self.start_button, self.cancel_button, self.resume_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay.addLayout(buttons)

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
        self.outcome_label = QtWidgets.QLabel("")
        self.outcome_label.setObjectName("trainOutcome")
        self.outcome_label.setWordWrap(True)
        self.outcome_label.setTextFormat(Qt.TextFormat.RichText)
        self.outcome_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.outcome_label)

        # -- curves
        plots = QtWidgets.QHBoxLayout()
        self.loss_plot = CurvePlot("Training loss", "loss")
        self.em_plot = CurvePlot("Dev exact match", "exact match (%)", percent=True)
        self.fit_plot = CurvePlot("Train fit by category", "answered correctly (%)", percent=True, legend_columns=2)
        self.loss_curve = self.loss_plot.curve("loss", "loss per step", LOSS_COLOR, symbols=False)
        self.em_curve = self.em_plot.curve("dev_em", "dev exact match", EM_COLOR, symbols=True)
        for cat in CATEGORY_ORDER:
            self.fit_plot.curve(cat, cat, CATEGORY_COLORS.get(cat, "#607d8b"), symbols=True)
        self.plots = (self.loss_plot, self.em_plot, self.fit_plot)
        for p in (self.em_plot, self.fit_plot):  # one step axis for the three charts
            p.setXLink(self.loss_plot)
        for p in self.plots:
            plots.addWidget(p)
        lay.addLayout(plots, 1)

        self._redraw_timer = QtCore.QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(REDRAW_MS)
        self._redraw_timer.timeout.connect(self.redraw)
        self._apply_palette()
        self._show_edition()

    # -- Page API ---------------------------------------------------------------------------------
    def watched_fields(self) -> tuple[str, ...]:
        return ("project_path", "plan_id", "train_run_id")

    def step_state(self) -> tuple[str, str]:
        if self.ctx.project_path is None:
            return BLOCKED, "Open a project first (step 1)."
        if self.ctx.plan_id is None:
            return BLOCKED, "No plan yet: make one in the Plan step, then train on it here."
        row = self._current_row()
        if row is not None and row.get("status") == "done":
            return DONE, f"Run {row['id']} finished; its adapter is in {row.get('adapter_dir')}"
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

    def update_actions(self) -> None:
        busy = self.ctx.runner.busy
        can_train = not self._missing and self.ctx.project_path is not None
        has_plan = self.ctx.plan_id is not None
        self.start_button.setEnabled(can_train and has_plan and not busy)
        self.start_button.setToolTip(self._start_blocker() or "Train a new run on the plan with these settings (Ctrl+Return).")
        self.cancel_button.setEnabled(self.training and not self._cancel_requested)
        row = self._selected_row()
        self.resume_button.setEnabled(can_train and not busy and row is not None and run_is_resumable(row))
        for w in (self.model_edit, self.browse_button, self.epochs, self.lr, self.batch, self.rank, self.stopping,
                  self.eval_every, self.device, self.threads, self.runs_combo):
            w.setEnabled(not self.training)
        self.open_button.setEnabled(row is not None and Path(row.get("folder") or "").is_dir())

    @property
    def training(self) -> bool:
        return self._job is not None

    # -- reading the project ------------------------------------------------------------------------
    def _label(self, text: str, tip: str) -> QtWidgets.QLabel:
        lab = QtWidgets.QLabel(text)
        lab.setToolTip(tip)
        return lab

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
                "Training needs the full edition of KnowMix: this installation lacks " + ", ".join(self._missing)
                + ". The lite edition probes and plans; export the plan (step 8) and train it with the full edition or "
                  "any LoRA tool.", "warning")
        elif self.ctx.project_path is not None and self.ctx.plan_id is None:
            self.edition_message.show_message("There is no plan to train on yet: make one in the Plan step (step 6) first.",
                                              "info")
        else:
            self.edition_message.clear_message()

    def _load_plan_info(self) -> None:
        self._plan_model = None
        if self.ctx.project_path is None or self.ctx.plan_id is None:
            self.plan_label.setText("")
            self.model_note.setText("Default: the model the plan's probe used (no plan yet).")
            self.model_edit.setPlaceholderText("the model the plan's probe used")
            return
        with self.ctx.project() as p:
            plan = p.db.execute("SELECT id, name, n_train, n_dev, probe_run_id FROM plans WHERE id = ?",
                                [self.ctx.plan_id]).fetchone()
            probe = None
            if plan is not None and plan[4] is not None:
                try:
                    probe = p.probe_run(plan[4])
                except Exception:  # noqa: BLE001 - a plan whose probe is gone still trains with a chosen model
                    probe = None
        if plan is None:
            self.plan_label.setText(f"Plan {self.ctx.plan_id} is not in this project.")
            return
        self.plan_label.setText(f"Training on plan {plan[0]} “{plan[1] or ''}”: {plan[2]} training and {plan[3]} dev examples.")
        if probe:
            spec = (probe.get("model_spec") or "").strip()
            self._plan_model = "default" if spec.lower() == "default" else (probe.get("model_path") or spec or None)
            name = probe.get("model_name") or self._plan_model
        if self._plan_model:
            shown = "the built-in model" if self._plan_model == "default" else self._plan_model
            self.model_note.setText(f"Default: the model the plan's probe used — {name} ({shown}).")
            self.model_edit.setPlaceholderText(f"same as the probe: {name}")
        else:
            self.model_note.setText("The plan does not say which model was probed: choose one with Browse….")
            self.model_edit.setPlaceholderText("choose a Hugging Face folder or a GGUF file")

    def _reload_runs(self) -> None:
        from core.train.runs import list_runs

        rows: list[dict] = []
        if self.ctx.project_path is not None:
            with self.ctx.project() as p:
                rows = list_runs(p)
        self._rows = {int(r["id"]): r for r in rows}
        self._rows_project = self.ctx.project_path
        want = self.ctx.train_run_id if self.ctx.train_run_id in self._rows else (rows[-1]["id"] if rows else None)
        self.runs_combo.blockSignals(True)
        self.runs_combo.clear()
        for r in rows:
            self.runs_combo.addItem(run_label(r), int(r["id"]))
        if want is not None:
            self.runs_combo.setCurrentIndex(self.runs_combo.findData(int(want)))
        self.runs_combo.blockSignals(False)
        if not rows:
            self.runs_combo.addItem("No training runs yet", None)

    def _selected_row(self) -> Optional[dict]:
        run_id = self.runs_combo.currentData()
        return self._rows.get(run_id) if run_id is not None else None

    def _current_row(self) -> Optional[dict]:
        run_id = self.ctx.train_run_id
        if run_id is None or self.ctx.project_path is None:
            return None
        if self._rows_project == self.ctx.project_path and run_id in self._rows and not self.training:
            return self._rows[run_id]  # the navigator asks after every job and context change: no query each time
        try:
            from core.train.runs import get_run

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
            self.checkpoint_label.setText("No training run yet. Start one with the settings on the left.")
            self.outcome_label.setText("")
            return
        self.checkpoint_label.setText(describe_checkpoint(row))
        history = self._load_curves(int(row["id"]))
        self.outcome_label.setText(describe_outcome(row, history))
        point = stopping_point(row, history)
        self.set_stopping_point(point["step"] if point else None)
        self.redraw()

    def _load_curves(self, run_id: int, up_to: Optional[int] = None) -> list[dict]:
        """Fill the curves from the project (an earlier run, or the part of a resumed one before its checkpoint)."""
        from core.train.runs import eval_history, metric_series

        with self.ctx.project() as p:
            losses = metric_series(p, run_id, "loss")
            history = eval_history(p, run_id)
        if up_to is not None:
            losses = [r for r in losses if r[0] <= up_to]
            history = [h for h in history if h["step"] <= up_to]
        for step, _epoch, value in losses:
            self.loss_plot.append("loss", step, value)
        for h in history:
            self._add_eval(h["step"], h.get("dev_em"), h.get("fit") or {})
        return history

    # -- curves -------------------------------------------------------------------------------------
    def clear_curves(self) -> None:
        for p in self.plots:
            p.clear_data()

    def _add_eval(self, step: int, dev_em: Optional[float], fit: dict) -> None:
        if dev_em is not None:
            self.em_plot.append("dev_em", step, 100.0 * dev_em)
        for cat, share in fit.items():
            if cat not in self.fit_plot.curves:
                self.fit_plot.curve(cat, cat, CATEGORY_COLORS.get(cat, "#607d8b"), symbols=True)
            self.fit_plot.append(cat, step, 100.0 * share)

    def set_stopping_point(self, step: Optional[int]) -> None:
        for p in self.plots:
            p.set_stop(step)

    def redraw(self) -> None:
        self._redraw_timer.stop()
        for p in self.plots:
            p.redraw()

    def _schedule_redraw(self) -> None:
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def _apply_palette(self) -> None:
        for p in self.plots:
            p.apply_palette(self.palette())

    def changeEvent(self, event: QtCore.QEvent) -> None:  # noqa: N802 - Qt API
        super().changeEvent(event)
        if event.type() == QtCore.QEvent.Type.PaletteChange:
            self._apply_palette()

    # -- settings -----------------------------------------------------------------------------------
    def settings(self):
        """The form as ``TrainSettings``, checked; raises ``SettingsError`` with advice."""
        from core.errors import SettingsError
        from core.train.settings import TrainSettings

        text = self.lr.currentText().strip()
        try:
            lr = float(text)
        except ValueError:
            raise SettingsError(f"The learning rate '{text}' is not a number; 1e-4 to 3e-4 is usual for LoRA.") from None
        rank = self.rank.value()
        return TrainSettings(
            epochs=self.epochs.value(), lr=lr, batch_size=self.batch.value(), lora_r=rank, lora_alpha=2 * rank,
            stopping=self.stopping.currentData(), eval_every_steps=self.eval_every.value() or None,
            device=self.device.currentData(), threads=self.threads.value() or None,
        ).validate()

    def chosen_model(self) -> Optional[str]:
        text = self.model_edit.text().strip()
        return text or None

    def _browse_folder(self) -> None:
        start = self.model_edit.text() or str(Path.home())
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Choose a Hugging Face model folder", start)
        if path:
            self.model_edit.setText(path)

    def _browse_gguf(self) -> None:
        start = self.model_edit.text() or str(Path.home())
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Choose a GGUF model file", start,
                                                        "GGUF models (*.gguf);;All files (*)")
        if path:
            self.model_edit.setText(path)

    # -- GPU ----------------------------------------------------------------------------------------
    def _start_gpu_detection(self) -> None:
        if _GPU_CACHE is not None:
            self._gpu_found(_GPU_CACHE)
            return
        self._detecting = True
        self.gpu_label.setText("Looking for a GPU …")
        self.ctx.runner.start("Looking for a GPU", detect_gpu, exclusive=False, on_done=self._gpu_found,
                              on_error=lambda exc, tb: self.gpu_label.setText(f"Could not check for a GPU: {exc}"),
                              on_finally=self._gpu_finished)

    def _gpu_finished(self) -> None:
        self._detecting = False

    def _gpu_found(self, info: dict) -> None:
        self._gpu = info
        self.gpu_label.setText(describe_gpu(info))
        item = self.device.model().item(self.device.findData("cuda"))
        if item is not None:
            item.setEnabled(bool(info.get("cuda")))
            if not info.get("cuda") and self.device.currentData() == "cuda":
                self.device.setCurrentIndex(self.device.findData("auto"))

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
            self.message.show_message(f"The model {model} does not exist. Choose a Hugging Face folder or a GGUF file "
                                      "with Browse…, or leave the field empty to train the plan's model.", "error")
            return
        released = self.ctx.backend is not None
        self.ctx.release_model()  # the probe's model would only take memory the training process needs
        note = ("The probe's model was unloaded to free memory for training. " if released
                else "")
        self.message.show_message(note + "Starting the training process (it loads torch and the model first) …", "info")
        project_path, plan_id = self.ctx.project_path, self.ctx.plan_id

        def work(job):
            from core.train.runner import start_training

            return start_training(project_path, plan_id, settings, progress=job.progress, on_event=job.send_event,
                                  cancel=job.cancel, model=model)

        self._begin("start")
        self._live_stopping = settings.stopping
        self._run_job("Training", work)

    def resume(self) -> None:
        """Resume the selected (cancelled, failed or killed) run from its last checkpoint."""
        row = self._selected_row()
        if row is None or not run_is_resumable(row) or self.ctx.runner.busy or self._missing:
            return
        run_id = int(row["id"])
        released = self.ctx.backend is not None
        self.ctx.release_model()
        self.message.show_message(
            ("The probe's model was unloaded to free memory for training. " if released else "")
            + f"Resuming run {run_id} from its last checkpoint (step {row.get('step') or 0}) …", "info")
        project_path = self.ctx.project_path
        self._begin("resume")
        self._live_run_id = run_id
        self._live_stopping = stopping_rule(row)
        self._load_curves(run_id, up_to=int(row.get("step") or 0))
        self.redraw()

        def work(job):
            from core.train.runner import resume_training

            return resume_training(project_path, run_id, progress=job.progress, on_event=job.send_event, cancel=job.cancel)

        self._run_job(f"Training (run {run_id})", work)

    def cancel(self) -> None:
        """Ask the worker to stop after its current step; it saves a checkpoint and keeps the best adapter."""
        if self._job is None or self._cancel_requested:
            return
        self._cancel_requested = True
        self._job.request_cancel()
        self.progress.set_busy("Stopping after the current step …")
        self.message.show_message("Stopping after the current step. The training process saves a checkpoint and keeps "
                                  "the best adapter so far; Resume continues from there.", "info")
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
        try:
            self._job = self.ctx.runner.start(name, work, on_done=self._finished, on_error=self._failed,
                                              on_progress=self.progress.set_progress, on_event=self.on_event,
                                              on_finally=self._ended)
        except RuntimeError as exc:  # another job started in between
            self._job = None
            self.progress.hide()
            self.message.show_message(str(exc), "error")
        self.update_actions()

    def on_event(self, event: dict) -> None:
        """One event of the worker (see ``core.train.worker``), on the UI thread."""
        kind = event.get("event")
        run_id = event.get("run_id")
        if run_id is not None and self._live_run_id != run_id:
            self._live_run_id = int(run_id)
            self.ctx.set(train_run_id=int(run_id))
        if kind == "step":
            self.loss_plot.append("loss", event["step"], float(event["loss"]))
            self._schedule_redraw()
            return
        text = ""
        if kind == "resume":
            step = int(event.get("from_step") or 0)
            for p in self.plots:
                p.truncate(step)
            self._schedule_redraw()
            text = f"Resuming from the checkpoint at step {step} …" if event.get("checkpoint") else "No checkpoint: starting over …"
        elif kind == "start":
            n = event.get("threads")
            threads = f", {n} CPU thread{'' if n == 1 else 's'}" if str(event.get("device", "")).startswith("cpu") else ""
            text = (f"Training on {event.get('device')} ({event.get('dtype')}{threads}): {event.get('n_train')} examples, "
                    f"{event.get('n_dev')} dev examples, {event.get('total_steps')} steps "
                    f"({event.get('steps_per_epoch')} per epoch × {event.get('epochs')} epochs)"
                    + (f", from step {event['start_step']}" if event.get("resumed") else "") + ".")
        elif kind == "eval":
            self._add_eval(int(event["step"]), float(event["dev_em"]), event.get("fit") or {})
            if self._live_stopping != "convergence":  # convergence keeps the last step: marked at the end
                self.set_stopping_point(int(event["best_step"]))
            self._schedule_redraw()
            fit = fit_text(event.get("fit"))
            text = (f"Epoch {float(event['epoch']):.2f} (step {event['step']}): dev exact match {pct(event['dev_em'])} "
                    f"(best {pct(event.get('best_dev_em'))} at step {event.get('best_step')})"
                    + (f"; train fit {fit}" if fit else "") + ".")
        elif kind == "checkpoint":
            self.status_label.setText(" ".join(t for t in (self._status_base, f"Checkpoint saved at step {event['step']}.") if t))
            self.checkpoint_label.setText(
                f"<b>Run {run_id} — training</b><br>Last checkpoint: step {event['step']} (epoch {float(event['epoch']):.2f}) "
                f"— <code>checkpoints/last</code> is in the run folder.")
        elif kind == "restored":
            text = f"Kept the best adapter, from step {event.get('step')}."
        elif kind == "merged":
            text = f"Merged model saved in {event.get('path')}."
        elif kind == "done":
            if event.get("status") == "cancelled":
                text = f"Cancelled at step {event.get('final_step')}; the checkpoint and the best adapter are kept."
            else:
                text = f"Finished at step {event.get('final_step')} in {fmt_seconds(event.get('seconds'))}."
        elif kind == "error":
            text = f"Stopped on an error: {event.get('message')}"
        if text:
            self._status_base = text
            self.status_label.setText(text)

    def _finished(self, outcome) -> None:
        """The run ended normally (done, or cancelled by the user): show where it stopped."""
        self.redraw()
        self.ctx.set(train_run_id=outcome.run_id)
        self._reload_runs()
        row = self._rows.get(outcome.run_id)
        if row is None:
            return
        point = stopping_point(row, outcome.history)
        self.set_stopping_point(point["step"] if point else None)
        self.outcome_label.setText(describe_outcome(row, outcome.history))
        self.checkpoint_label.setText(describe_checkpoint(row))
        if outcome.status == "done":
            self.message.show_message(f"Training finished. The adapter is in {outcome.adapter_dir}; export it in the "
                                      "Export step.", "ok")
        else:
            self.message.show_message("Training was cancelled. The last checkpoint and the best adapter so far are kept: "
                                      "Resume continues the run from its checkpoint.", "info")

    def _failed(self, exc: BaseException, tb: str) -> None:
        """Errors get the app's dialog (with details for bugs) and a line on the page."""
        from core.errors import KnowMixError

        self.redraw()
        run_id = getattr(exc, "run_id", None) or self._live_run_id
        hint = ""
        if run_id is not None:
            hint = f" Run {run_id} keeps what it saved; Resume continues it once the cause is fixed."
        text = str(exc) if isinstance(exc, KnowMixError) else f"Training stopped on an unexpected error: {type(exc).__name__}: {exc}"
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
        QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(str(row["folder"])))
