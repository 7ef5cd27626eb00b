"""Step 8: take the results away: the adapter folder, the planned dataset in the input's own shape,
and a self-contained HTML report a teammate can open offline."""

from __future__ import annotations

import html
import shutil
from pathlib import Path
from typing import Optional

from core.formats import percent

from ..qt import Qt, QtCore, QtGui, QtWidgets
from .base import BLOCKED, DONE, READY, InlineMessage, Page


def open_path(path: str | Path) -> None:
    QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(str(path)))


def open_run_folder(path: Optional[str | Path], project_path: Optional[str | Path]) -> bool:
    """Open a run's folder in the file manager; only a folder (never a file the desktop would run) inside
    the project's own runs folder, whatever the project file says. Returns whether it was opened."""
    from core.train import runs_root

    if not path or project_path is None:
        return False
    folder, root = Path(path).resolve(), runs_root(project_path).resolve()
    if not folder.is_dir() or not (folder == root or root in folder.parents):
        return False
    open_path(folder)
    return True


class ExportPage(Page):
    title = "Export"
    key = "export"

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(ctx, parent)
        self.report_path: Optional[Path] = None
        self.export_paths: dict[str, Path] = {}
        self.adapter_dir: Optional[str] = None
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.heading("Export", "Everything you need to use the result elsewhere or to show it to a teammate."))
        self.message = InlineMessage()
        lay.addWidget(self.message)

        box = QtWidgets.QGroupBox("1. The LoRA adapter")
        v = QtWidgets.QVBoxLayout(box)
        self.adapter_label = QtWidgets.QLabel("")
        self.adapter_label.setObjectName("adapterLabel")
        self.adapter_label.setWordWrap(True)
        self.adapter_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        v.addWidget(self.adapter_label)
        row = QtWidgets.QHBoxLayout()
        self.open_adapter = QtWidgets.QPushButton("Open the adapter folder")
        self.open_adapter.clicked.connect(lambda: open_run_folder(self.adapter_dir, self.ctx.project_path))
        self.copy_adapter = QtWidgets.QPushButton("Copy the adapter to…")
        self.copy_adapter.setObjectName("copyAdapter")
        self.copy_adapter.clicked.connect(self._copy_adapter_dialog)
        self.gguf_button = QtWidgets.QPushButton("Save for llama.cpp / Ollama…")
        self.gguf_button.setObjectName("saveGguf")
        self.gguf_button.setToolTip(
            "Write the adapter as a llama.cpp GGUF LoRA, with an Ollama Modelfile and the llama-server line"
        )
        self.gguf_button.clicked.connect(self._gguf_dialog)
        self.gguf_merged = QtWidgets.QCheckBox("with a merged model")
        self.gguf_merged.setObjectName("ggufMerged")
        self.gguf_merged.setToolTip(
            "Also write the base GGUF with the adapter applied, as one file for tools that take a single model.\n"
            "The adapted weights are stored in F16, so it is larger than a quantized base."
        )
        row.addWidget(self.open_adapter)
        row.addWidget(self.copy_adapter)
        row.addWidget(self.gguf_button)
        row.addWidget(self.gguf_merged)
        row.addStretch(1)
        v.addLayout(row)
        lay.addWidget(box)

        box = QtWidgets.QGroupBox("2. The planned dataset")
        v = QtWidgets.QVBoxLayout(box)
        self.plan_label = QtWidgets.QLabel("")
        self.plan_label.setWordWrap(True)
        self.plan_label.setObjectName("planExportLabel")
        self.plan_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        v.addWidget(self.plan_label)
        row = QtWidgets.QHBoxLayout()
        self.export_plan_button = QtWidgets.QPushButton("Export the planned dataset to…")
        self.export_plan_button.setObjectName("exportPlan")
        self.export_plan_button.clicked.connect(self._export_plan_dialog)
        row.addWidget(self.export_plan_button)
        row.addStretch(1)
        v.addLayout(row)
        lay.addWidget(box)

        box = QtWidgets.QGroupBox("3. Per-example results")
        v = QtWidgets.QVBoxLayout(box)
        self.results_label = QtWidgets.QLabel(
            "One row per example of the probe's dataset: its category, P(greedy) and P(sampled), the exemplars of each "
            "set and the model's answers; rows that were not probed have their reason. The same file as "
            "<code>knowmix results</code>, to filter the data in your own pipeline."
        )
        self.results_label.setWordWrap(True)
        self.results_label.setObjectName("resultsLabel")
        self.results_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        v.addWidget(self.results_label)
        row = QtWidgets.QHBoxLayout()
        self.results_format = QtWidgets.QComboBox()
        self.results_format.setObjectName("resultsFormat")
        for fmt, label in (("jsonl", "JSON Lines"), ("csv", "CSV (lists as JSON text)"), ("parquet", "Parquet")):
            self.results_format.addItem(label, fmt)
        self.results_button = QtWidgets.QPushButton("Save per-example results…")
        self.results_button.setObjectName("saveResults")
        self.results_button.clicked.connect(self._results_dialog)
        row.addWidget(self.results_format)
        row.addWidget(self.results_button)
        row.addStretch(1)
        v.addLayout(row)
        lay.addWidget(box)

        box = QtWidgets.QGroupBox("4. The HTML report")
        v = QtWidgets.QVBoxLayout(box)
        self.report_label = QtWidgets.QLabel(
            "One HTML file with the breakdown charts, the plan, the training curves, the settings and the fingerprints "
            "of the model and the data. It needs no network and no KnowMix to open."
        )
        self.report_label.setWordWrap(True)
        self.report_label.setObjectName("reportLabel")
        self.report_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        v.addWidget(self.report_label)
        row = QtWidgets.QHBoxLayout()
        self.report_button = QtWidgets.QPushButton("Save the HTML report…")
        self.report_button.setObjectName("saveReport")
        self.report_button.clicked.connect(self._report_dialog)
        self.open_report = QtWidgets.QPushButton("Open it in the browser")
        self.open_report.clicked.connect(lambda: self.report_path and open_path(self.report_path))
        row.addWidget(self.report_button)
        row.addWidget(self.open_report)
        row.addStretch(1)
        v.addLayout(row)
        lay.addWidget(box)
        lay.addStretch(1)

    # -- navigator -----------------------------------------------------------------------------------
    def watched_fields(self):
        return ("project_path", "probe_run_id", "plan_id", "train_run_id")

    def step_state(self):
        if self.ctx.probe_run_id is None:
            return BLOCKED, "Probe first"
        if self.report_path is not None:
            return DONE, f"Report: {self.report_path}"
        return READY, "Export the adapter, the dataset and the report"

    def primary_action(self) -> None:
        if self.report_button.isEnabled():
            self._report_dialog()

    # -- view ---------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        from core.train import eval_history, get_run

        self.adapter_dir = None
        text = "No training run yet: train in step 7 to get an adapter."
        if self.ctx.train_run_id is not None and self.ctx.project_path is not None:
            with self.ctx.project() as p:
                run = get_run(p, self.ctx.train_run_id)
                point = run.stopping_point(eval_history(p, self.ctx.train_run_id))  # a convergence run: its last step
            if run.adapter_dir is not None and run.adapter_dir.is_dir():
                self.adapter_dir = str(run.adapter_dir)
                best = (
                    f" (stopping point: epoch {point['epoch']:g}, dev exact match {percent(point['dev_em'])})"
                    if point and point.get("epoch") is not None and point.get("dev_em") is not None
                    else ""
                )
                text = (
                    f"Training run {run.id} ({run.status}){best}:<br><code>{html.escape(self.adapter_dir)}</code><br>"
                    "Load it with <code>PeftModel.from_pretrained(base_model, folder)</code>."
                )
            else:
                text = f"Training run {run.id} is {run.status} and has no adapter yet."
        self.adapter_label.setText(text)
        if self.ctx.plan_id is None:
            self.plan_label.setText("No plan yet: make one in step 6.")
        else:
            self.plan_label.setText(
                f"Plan {self.ctx.plan_id}: train, dev and test files in your data's own format (JSON Lines, JSON, CSV, "
                "TSV or Parquet, as it came) with your records' own fields (the answer replaced where the plan "
                "relabelled it); the training file also holds the rows that were not probed, when the plan keeps them. "
                "Never train or stop on the test file: it measures what training did. train_qa.jsonl, dev_qa.jsonl "
                "and test_qa.jsonl are plain question/answer rows, and plan.json explains the mix. "
                "Ready for Axolotl, LLaMA-Factory or Unsloth." + self._listing(self.export_paths)
            )
        if self.report_path is not None:
            self.report_label.setText(f"Saved: <code>{html.escape(str(self.report_path))}</code>")

    @staticmethod
    def _listing(paths: dict[str, Path]) -> str:
        if not paths:
            return ""
        return "<br>Written: " + ", ".join(f"<code>{html.escape(str(p))}</code>" for p in paths.values())

    def update_actions(self) -> None:
        busy = self.ctx.runner.busy
        self.open_adapter.setEnabled(self.adapter_dir is not None)
        self.copy_adapter.setEnabled(self.adapter_dir is not None and not busy)
        self.gguf_button.setEnabled(self.adapter_dir is not None and not busy)
        self.gguf_merged.setEnabled(self.adapter_dir is not None and not busy)
        self.export_plan_button.setEnabled(self.ctx.plan_id is not None)
        self.report_button.setEnabled(self.ctx.probe_run_id is not None)
        self.results_button.setEnabled(self.ctx.probe_run_id is not None)
        self.open_report.setEnabled(self.report_path is not None and self.report_path.exists())

    def _start_folder(self) -> str:
        return str(self.ctx.project_path.parent) if self.ctx.project_path else str(Path.home())

    # -- actions ------------------------------------------------------------------------------------------
    def _copy_adapter_dialog(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Copy the adapter into", self._start_folder())
        if folder:
            self.copy_adapter_to(Path(folder) / f"{self.ctx.project_path.stem}-adapter-run{self.ctx.train_run_id}")

    def copy_adapter_to(self, dest: Path) -> None:
        src = self.adapter_dir

        def job(_j):
            from core.errors import ProjectError

            if dest.exists():
                raise ProjectError(f"{dest} already exists. Choose another folder, or remove it first.")
            tmp = dest.with_name(dest.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                shutil.copytree(src, tmp)
                tmp.rename(dest)
            except OSError as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                raise ProjectError(f"Cannot copy the adapter to {dest}: {exc.strerror or exc}.") from None
            return dest

        self.ctx.runner.start(
            "Copying the adapter",
            job,
            exclusive=False,
            on_error=self.report_error,
            on_done=lambda d: self.message.show_message(f"Adapter copied to {d}.", "ok"),
        )

    def _gguf_dialog(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Save the GGUF LoRA into", self._start_folder())
        if folder:
            self.save_gguf_to(Path(folder))

    def save_gguf_to(self, folder: Path) -> None:
        """Write the run's adapter as a GGUF LoRA plus Modelfile and llama-server line (``core.train.gguf_lora``),
        and the merged model when its box is ticked."""
        path, run_id, merged = self.ctx.project_path, self.ctx.train_run_id, self.gguf_merged.isChecked()

        def job(_j):
            from core.train import export_gguf

            return export_gguf(path, folder, run_id, merged=merged)

        self.ctx.runner.start(
            "Writing the GGUF files" if merged else "Writing the GGUF LoRA",
            job,
            exclusive=False,
            on_error=self.report_error,
            on_done=self._gguf_saved,
        )

    def _gguf_saved(self, result) -> None:
        self.message.show_message("<br>".join(html.escape(line) for line in result.lines()), "ok")

    def _export_plan_dialog(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export the planned dataset into", self._start_folder())
        if folder:
            self.export_plan_to(Path(folder) / f"{self.ctx.project_path.stem}-plan{self.ctx.plan_id}")

    def export_plan_to(self, folder: Path) -> None:
        path, plan_id = self.ctx.project_path, self.ctx.plan_id

        def job(p, _j):
            from core.plan import export_plan, load_plan

            plan = load_plan(p, plan_id)
            # refused inline (report_error) when the folder holds a file KnowMix did not write there
            return export_plan(plan, folder, dataset_row=p.dataset(plan.dataset_id), project=p)

        self.project_op("Exporting the plan", job, path=path, on_done=self._exported)

    def _exported(self, paths: dict) -> None:
        self.export_paths = paths
        self.message.show_message(f"Planned dataset written to {Path(paths['train']).parent}.", "ok")
        self.refresh()

    def _results_dialog(self) -> None:
        from core.results import EXTENSIONS

        fmt = str(self.results_format.currentData())
        ext = EXTENSIONS[fmt]
        start = str(Path(self._start_folder()) / f"{self.ctx.project_path.stem}-results-run{self.ctx.probe_run_id}{ext}")
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Save per-example results", start, f"{self.results_format.currentText()} (*{ext})"
        )
        if path:
            self.save_results_to(Path(path), fmt)

    def save_results_to(self, out: Path, fmt: str) -> None:
        """Write the probe run's per-example results (``core.results``) on the job runner."""
        path, run_id = self.ctx.project_path, self.ctx.probe_run_id

        def job(p, _j):
            from core.results import write_results

            return out, write_results(p, fmt, out, run_id)

        self.project_op("Writing the per-example results", job, path=path, on_done=self._results_saved)

    def _results_saved(self, done: tuple) -> None:
        out, n = done
        self.message.show_message(f"Per-example results saved: {out} ({n} row{'s' if n != 1 else ''}).", "ok")

    def _report_dialog(self) -> None:
        start = str(Path(self._start_folder()) / f"{self.ctx.project_path.stem}-report.html")
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save the HTML report", start, "HTML (*.html)")
        if path:
            self.save_report(Path(path))

    def save_report(self, out: Path) -> None:
        path = self.ctx.project_path
        ids = dict(probe_run_id=self.ctx.probe_run_id, plan_id=self.ctx.plan_id, train_run_id=self.ctx.train_run_id)

        def job(_j):
            from core.report import write_report

            return write_report(path, out, **ids)

        self.ctx.runner.start("Writing the report", job, exclusive=False, on_error=self.report_error, on_done=self._reported)

    def _reported(self, out: Path) -> None:
        self.report_path = Path(out)
        self.message.show_message(f"Report saved: {out}. Open it in any browser, no network needed.", "ok")
        self.refresh()
        self.update_actions()
        self.state_changed.emit()
