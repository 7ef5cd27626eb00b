"""Step 3: the fine-tuning dataset. Open or drop a file, check the preview and the detected columns,
change the mapping if the guess is wrong, see every invalid row with its line number, and add it
to the project (optionally a balanced subset, and an exemplar pool for the few-shot prompts)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Optional

from ..qt import Qt, QtCore, QtGui, QtWidgets
from .base import DONE, READY, InlineMessage, Page, ProgressRow

DATA_FILTER = "Datasets (*.jsonl *.ndjson *.json *.csv *.tsv *.parquet);;All files (*)"
MAPPED_ROLES = [
    ("question", "Question"),
    ("answer", "Answer(s)"),
    ("group", "Group (relation/topic)"),
    ("id", "Id"),
    ("input", "Extra input"),
    ("key", "Answer key (optional)"),
]
KEY_HEADER = "Answer key\n(double-click to edit)"
STATUS_HEADER = "Probe status"
SOURCE_LABEL = {
    "answer": "the answer itself (entity-shaped)",
    "column": "your key column",
    "extracted": "extracted by KnowMix from the answer and the question: check it",
    "edited": "edited by you",
}
NONE = "(none)"


def _status_text(row: dict) -> str:
    """ "probed", "not probed: task", "problem: ..." for the preview's status column."""
    if row["status"] == "probed":
        return "probed"
    if row["status"] == "problem":
        return f"invalid: {row['reason']}"
    return f"not probed: {row['reason']}"


def counts_text(n_probed: int, unprobed: dict[str, int]) -> str:
    """ "18 probed; 11 kept but not probed: 9 multi-turn (…), 2 no-answer (…)" for the page."""
    from core.datasets import REASONS

    text = f"{n_probed} probed"
    total = sum(unprobed.values())
    if total:
        parts = [f"{n} {r} ({REASONS.get(r, r)})" for r, n in unprobed.items() if n]
        text += f"; {total} kept but not probed (written back to the training file as they are): " + ", ".join(parts)
    return text


def _cell(value: Any) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 200 else text[:200] + "…"


class DropArea(QtWidgets.QLabel):
    dropped = QtCore.Signal(str)

    def __init__(self) -> None:
        super().__init__("Drop a dataset file here\n(JSONL, JSON, CSV, TSV or Parquet)")
        self.setObjectName("dropArea")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setAcceptDrops(True)
        self.setMinimumHeight(64)
        self.setStyleSheet("QLabel#dropArea { border: 2px dashed palette(mid); border-radius: 6px; padding: 8px; }")

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802 - Qt API
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.dropped.emit(url.toLocalFile())
                event.acceptProposedAction()
                return


class DatasetPage(Page):
    title = "Dataset"
    key = "dataset"

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(ctx, parent)
        self.path: Optional[str] = None
        self.preview = None
        # Answer keys the user edited in the preview, by the record's line; passed to load_dataset.
        self.key_overrides: dict[int, str] = {}
        self._filling = False
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(
            self.heading(
                "Dataset",
                "The questions and answers you plan to fine-tune on. KnowMix detects the usual shapes "
                "(question/answer, Alpaca, prompt/completion, chat messages); change the columns below if it guessed wrong.",
            )
        )
        self.current = QtWidgets.QLabel("")
        self.current.setObjectName("currentDataset")
        self.current.setWordWrap(True)
        lay.addWidget(self.current)
        row = QtWidgets.QHBoxLayout()
        self.open_button = QtWidgets.QPushButton("Open a dataset file…")
        self.open_button.setObjectName("openDataset")
        self.open_button.clicked.connect(self._choose_file)
        self.drop = DropArea()
        self.drop.dropped.connect(self.open_file)
        row.addWidget(self.open_button)
        row.addWidget(self.drop, 1)
        lay.addLayout(row)
        self.file_label = QtWidgets.QLabel("")
        self.file_label.setObjectName("fileLabel")
        self.file_label.setWordWrap(True)
        lay.addWidget(self.file_label)

        mapbox = QtWidgets.QGroupBox("Columns")
        grid = QtWidgets.QGridLayout(mapbox)
        self.map_combos: dict[str, QtWidgets.QComboBox] = {}
        for i, (role, label) in enumerate(MAPPED_ROLES):
            combo = QtWidgets.QComboBox()
            combo.setObjectName(f"map_{role}")
            combo.activated.connect(self._mapping_changed)
            self.map_combos[role] = combo
            grid.addWidget(QtWidgets.QLabel(label + ":"), i // 3, (i % 3) * 2)
            grid.addWidget(combo, i // 3, (i % 3) * 2 + 1)
        lay.addWidget(mapbox)
        self.table = QtWidgets.QTableWidget()
        self.table.setObjectName("previewTable")
        self.table.setEditTriggers(
            QtWidgets.QAbstractItemView.EditTrigger.DoubleClicked | QtWidgets.QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.table.itemChanged.connect(self._key_edited)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        lay.addWidget(self.table, 2)

        opts = QtWidgets.QHBoxLayout()
        self.skip_invalid = QtWidgets.QCheckBox("Skip invalid rows (they are listed below)")
        self.skip_invalid.setObjectName("skipInvalid")
        self.limit_check = QtWidgets.QCheckBox("Use only")
        self.limit_spin = QtWidgets.QSpinBox()
        self.limit_spin.setRange(1, 10_000_000)
        self.limit_spin.setValue(200)
        self.limit_spin.setEnabled(False)
        self.limit_check.toggled.connect(self.limit_spin.setEnabled)
        opts.addWidget(self.skip_invalid)
        opts.addSpacing(20)
        opts.addWidget(self.limit_check)
        opts.addWidget(self.limit_spin)
        opts.addWidget(QtWidgets.QLabel("questions, spread evenly over the groups"))
        opts.addStretch(1)
        lay.addLayout(opts)
        pool_row = QtWidgets.QHBoxLayout()
        self.pool_edit = QtWidgets.QLineEdit()
        self.pool_edit.setObjectName("poolPath")
        self.pool_edit.setPlaceholderText(
            "Optional: a separate file of exemplar questions for the few-shot prompts (default: other questions of this dataset)"
        )
        pool_browse = QtWidgets.QPushButton("Browse…")
        pool_browse.clicked.connect(self._choose_pool)
        pool_row.addWidget(QtWidgets.QLabel("Exemplar pool:"))
        pool_row.addWidget(self.pool_edit, 1)
        pool_row.addWidget(pool_browse)
        lay.addLayout(pool_row)
        act = QtWidgets.QHBoxLayout()
        self.use_button = QtWidgets.QPushButton("Check and add to the project")
        self.use_button.setObjectName("useDataset")
        self.use_button.clicked.connect(self.use_dataset)
        act.addWidget(self.use_button)
        act.addStretch(1)
        lay.addLayout(act)
        self.progress = ProgressRow()
        self.progress.hide()
        lay.addWidget(self.progress)
        self.message = InlineMessage()
        lay.addWidget(self.message)
        self.counts = QtWidgets.QLabel("")
        self.counts.setObjectName("probeCounts")
        self.counts.setWordWrap(True)
        self.counts.hide()
        lay.addWidget(self.counts)
        self.problems = QtWidgets.QListWidget()
        self.problems.setObjectName("problemList")
        self.problems.setMaximumHeight(120)
        self.problems.hide()
        lay.addWidget(self.problems)

    # -- navigator ------------------------------------------------------------------------------
    def watched_fields(self):
        return ("project_path", "dataset_id")

    def step_state(self):
        if self.ctx.project_path is None:
            return "blocked", "Open a project first"
        if self.ctx.dataset_id is not None:
            return DONE, "A dataset is in the project"
        return READY, "Add your dataset"

    def primary_action(self) -> None:
        if self.use_button.isEnabled():
            self.use_dataset()

    # -- view -------------------------------------------------------------------------------------
    def refresh(self) -> None:
        if self.ctx.project_path is None:
            self.current.setText("Open a project first (step 1).")
            return
        if self.ctx.dataset_id is None:
            self.current.setText("This project has no dataset yet.")
            return
        with self.ctx.project() as p:
            d = p.dataset(self.ctx.dataset_id)
            pool = p.dataset(self.ctx.pool_id) if self.ctx.pool_id else None
            n_groups = p.group_count(d["id"])
        extra = []
        if d.get("n_duplicates"):
            extra.append(f"{d['n_duplicates']} duplicates merged")
        if d.get("n_skipped"):
            extra.append(f"{d['n_skipped']} invalid rows skipped")
        text = (
            f"In the project: <b>{html.escape(d['name'])}</b> — {d['n_examples']} questions in {n_groups} group(s), "
            f"{d['format']} / {d['shape']}" + (f" ({', '.join(extra)})" if extra else "") + "."
        )
        text += f" Exemplars from: {html.escape(pool['name'])}." if pool else " Exemplars from: the dataset itself."
        with self.ctx.project() as p:
            unprobed = p.unprobed_counts(d["id"]) if hasattr(p, "unprobed_counts") else {}
        if unprobed:
            text += "<br>" + html.escape(counts_text(d["n_examples"], unprobed)) + "."
        self.current.setText(text)

    def update_actions(self) -> None:
        busy = self.ctx.runner.busy
        self.use_button.setEnabled(
            bool(self.preview is not None and self.preview.shape is not None or self._mapping_complete())
            and self.ctx.project_path is not None
            and not busy
        )
        self.open_button.setEnabled(True)

    # -- file and preview --------------------------------------------------------------------------
    def _choose_file(self) -> None:
        start = str(self.ctx.settings.value("data/last_folder", str(Path.home())))
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open a dataset", start, DATA_FILTER)
        if path:
            self.ctx.settings.setValue("data/last_folder", str(Path(path).parent))
            self.open_file(path)

    def _choose_pool(self) -> None:
        start = str(self.ctx.settings.value("data/last_folder", str(Path.home())))
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Exemplar pool", start, DATA_FILTER)
        if path:
            self.pool_edit.setText(path)

    def open_file(self, path: str) -> None:
        self.path = path
        self.preview = None
        self.key_overrides = {}
        self.counts.hide()
        self.message.clear_message()
        self.problems.hide()
        self.file_label.setText(f"Reading {path} …")
        self._run_preview(None)

    def _mapping(self) -> dict[str, str]:
        out = {}
        for role, combo in self.map_combos.items():
            if combo.currentText() and combo.currentText() != NONE:
                out[role] = combo.currentText()
        return out

    def _mapping_complete(self) -> bool:
        m = self._mapping()
        return "question" in m and "answer" in m

    def _mapping_changed(self) -> None:
        if self.path:
            self._run_preview(self._mapping())

    def _run_preview(self, mapping: Optional[dict]) -> None:
        from core.datasets import read_preview

        path, overrides = self.path, dict(self.key_overrides)
        self.ctx.runner.start(
            "Reading the file",
            lambda job: read_preview(path, 20, mapping=mapping or None, key_overrides=overrides),
            on_done=lambda pv: self._show_preview(pv, mapping),
            on_error=self._preview_failed,
            exclusive=False,
        )

    def _preview_failed(self, exc: BaseException, tb: str) -> None:
        self.file_label.setText("")
        self.report_error(exc, tb)
        self.update_actions()

    def _show_preview(self, pv, requested: Optional[dict] = None) -> None:
        self.preview = pv
        self.file_label.setText(
            f"<b>{html.escape(Path(pv.path).name)}</b>: {pv.format.upper()}, "
            + (f"detected shape <b>{pv.shape}</b>" if pv.shape else "shape not detected")
            + f"; columns: {html.escape(', '.join(map(str, pv.columns)))}. First {len(pv.records)} rows:"
        )
        for role, combo in self.map_combos.items():
            combo.clear()
            combo.addItems([NONE] + [str(c) for c in pv.columns])
            # While the mapping is incomplete the preview has none: keep what the user picked so far,
            # or choosing the answer column would undo the question column chosen just before.
            kept = (requested or {}).get(role)
            combo.setCurrentText(pv.mapping.get(role) or (kept if kept in map(str, pv.columns) else NONE))
        if pv.message:
            self.message.show_message(pv.message.replace("--map", "the Columns boxes above, or --map"), "warning")
        else:
            self.message.clear_message()
        cols = [str(c) for c in pv.columns]
        rows = getattr(pv, "rows", None) or []
        extra = [KEY_HEADER, STATUS_HEADER] if rows else []
        self._filling = True
        try:
            self.table.clear()
            self.table.setColumnCount(len(cols) + len(extra))
            self.table.setRowCount(len(pv.records))
            mapped = {v: k for k, v in pv.mapping.items()}
            self.table.setHorizontalHeaderLabels([f"{c}\n→ {mapped[c]}" if c in mapped else c for c in cols] + extra)
            read_only = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
            for r, rec in enumerate(pv.records):
                for c, col in enumerate(cols):
                    item = QtWidgets.QTableWidgetItem(_cell(rec.get(col, "")))
                    item.setFlags(read_only)
                    self.table.setItem(r, c, item)
                if r < len(rows):
                    self._fill_analysis(r, len(cols), rows[r], read_only)
            self.table.resizeColumnsToContents()
            for c in range(len(cols) + len(extra)):
                self.table.setColumnWidth(c, min(self.table.columnWidth(c), 360))
        finally:
            self._filling = False
        self.update_actions()

    def _fill_analysis(self, r: int, c: int, row: dict, read_only: Any) -> None:
        """The key (editable when the row is probed or long-form) and the status of one record."""
        key = QtWidgets.QTableWidgetItem(row["key"])
        key.setData(Qt.ItemDataRole.UserRole, row["line"])
        editable = row["status"] == "probed" or row["reason"] in ("long-form", "no-key")
        key.setFlags(read_only | Qt.ItemFlag.ItemIsEditable if editable else read_only)
        source = SOURCE_LABEL.get(row["key_source"], "")
        tip = f"Answer key from {source}." if source else ""
        if editable:
            tip += " Double-click to edit: a correct answer must contain this text (use | between aliases)."
        key.setToolTip(tip.strip())
        if row["key_source"] == "extracted":
            key.setForeground(QtGui.QBrush(QtGui.QColor("#8a5a00")))
        self.table.setItem(r, c, key)
        status = QtWidgets.QTableWidgetItem(_status_text(row))
        status.setFlags(read_only)
        from core.datasets import REASONS

        status.setToolTip(REASONS.get(row["reason"], row["reason"]))
        self.table.setItem(r, c + 1, status)

    def _key_edited(self, item: QtWidgets.QTableWidgetItem) -> None:
        """The user changed an answer key: keep it as an override for loading, by the row's line."""
        if self._filling or self.table.horizontalHeaderItem(item.column()) is None:
            return
        if self.table.horizontalHeaderItem(item.column()).text() != KEY_HEADER:
            return
        line = item.data(Qt.ItemDataRole.UserRole)
        if line is None:
            return
        text = item.text().strip()
        if text:
            self.key_overrides[int(line)] = text
        else:
            self.key_overrides.pop(int(line), None)
        item.setToolTip("Answer key edited by you." if text else "")

    # -- adding ------------------------------------------------------------------------------------
    def use_dataset(self) -> None:
        if not self.path:
            self.message.show_message("Open a dataset file first.", "error")
            return
        path, mapping, overrides = self.path, self._mapping(), dict(self.key_overrides)
        skip = self.skip_invalid.isChecked()
        limit = self.limit_spin.value() if self.limit_check.isChecked() else None
        pool_path = self.pool_edit.text().strip() or None
        project_path = self.ctx.project_path
        self.progress.show()
        self.progress.set_busy(f"Reading and checking {Path(path).name} …")
        self.problems.hide()
        self.message.clear_message()

        def job(p, j):
            from core.datasets import load_dataset

            # With a limit only the rows the balanced pick can take are kept (any file size).
            ds = load_dataset(path, mapping=mapping or None, skip_invalid=True, key_overrides=overrides, limit=limit or None)
            if ds.problem_count and not skip:
                return {"problems": ds, "added": False}
            pool = load_dataset(pool_path, skip_invalid=True) if pool_path else None
            j.status("Saving to the project …")
            dataset_id = p.add_dataset(ds, role="train")
            pool_id = p.add_dataset(pool, role="pool") if pool is not None else None
            return {"added": True, "dataset": ds, "dataset_id": dataset_id, "pool_id": pool_id}

        self.project_op(
            "Adding the dataset",
            job,
            path=project_path,
            exclusive=True,
            on_done=self._added,
            on_error=self.report_error,
            on_finally=self.progress.hide,
            on_status=self.progress.set_busy,
        )

    def _list_problems(self, ds) -> None:
        self.problems.clear()
        for pr in ds.problems[:500]:
            self.problems.addItem(pr.describe(ds.path))
        if ds.problem_count > len(ds.problems[:500]):
            self.problems.addItem(f"… and {ds.problem_count - 500} more")
        self.problems.setVisible(bool(ds.problems))

    def _added(self, result: dict) -> None:
        ds = result["dataset"] if result["added"] else result["problems"]
        self._list_problems(ds)
        if not result["added"]:
            n = ds.problem_count
            self.message.show_message(
                f"{n} row{'s' if n != 1 else ''} of {Path(ds.path).name} cannot be used (listed below with their line "
                f"numbers). Fix the file and open it again, or tick “Skip invalid rows” to go on without them.",
                "error",
            )
            return
        self.ctx.set(
            dataset_id=result["dataset_id"], pool_id=result["pool_id"], probe_run_id=None, plan_id=None, train_run_id=None
        )
        self.message.show_message(ds.summary_line().rstrip(".") + ". Added to the project; next, probe it (step 4).", "ok")
        self.counts.setText(counts_text(len(ds.examples), ds.reason_counts()) + ".")
        self.counts.setVisible(bool(ds.unprobed))
        self.refresh()
