"""The main window: a step navigator on the left, the current step on the right, a status bar
with the running job, and the shortcuts. Closing it while a job runs asks first, then cancels the
job cleanly (the probe keeps finished batches, training keeps its checkpoint and best adapter)."""

from __future__ import annotations

from typing import Optional

from .context import AppContext
from .pages.base import BLOCKED, DONE, Page
from .qt import Qt, QtCore, QtGui, QtWidgets

STEP_MARK = {DONE: "✓", "ready": "•", BLOCKED: "○"}


def build_pages(ctx: AppContext) -> list[Page]:
    from .pages.breakdown import BreakdownPage
    from .pages.check import CheckPage
    from .pages.dataset import DatasetPage
    from .pages.export import ExportPage
    from .pages.model import ModelPage
    from .pages.plan import PlanPage
    from .pages.probe import ProbePage
    from .pages.project import ProjectPage
    from .pages.train import TrainPage

    return [
        cls(ctx)
        for cls in (ProjectPage, ModelPage, DatasetPage, ProbePage, BreakdownPage, PlanPage, TrainPage, CheckPage, ExportPage)
    ]


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, ctx: Optional[AppContext] = None) -> None:
        super().__init__()
        self.ctx = ctx or AppContext(self)
        self.ctx.window = self
        self.setWindowTitle("KnowMix")
        self.setObjectName("mainWindow")
        self.pages = build_pages(self.ctx)
        self.by_key = {p.key: p for p in self.pages}

        self.nav = QtWidgets.QListWidget()
        self.nav.setObjectName("stepNavigator")
        self.nav.setMinimumWidth(170)
        self.nav.setMaximumWidth(260)
        self.nav.setSpacing(2)
        self.nav.setStyleSheet(
            "QListWidget#stepNavigator { font-size: 11pt; padding: 4px; }QListWidget#stepNavigator::item { padding: 6px 4px; }"
        )
        self.nav.setAccessibleName("Steps")
        self.stack = QtWidgets.QStackedWidget()
        for i, page in enumerate(self.pages):
            item = QtWidgets.QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, page.key)
            self.nav.addItem(item)
            self.stack.addWidget(page)
            page.state_changed.connect(self.schedule_nav)
        self.nav.currentRowChanged.connect(self._show_row)

        split = QtWidgets.QSplitter()
        split.setObjectName("mainSplitter")
        split.addWidget(self.nav)
        split.addWidget(self.stack)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        split.setSizes([200, 1000])
        self.setCentralWidget(split)

        # One context change makes every page emit state_changed: the navigator re-reads the step
        # states once, when control is back in the event loop, not once per page.
        self._nav_timer = QtCore.QTimer(self)
        self._nav_timer.setSingleShot(True)
        self._nav_timer.setInterval(0)
        self._nav_timer.timeout.connect(self.update_nav)

        self.job_label = QtWidgets.QLabel("")
        self.job_label.setObjectName("jobLabel")
        self.statusBar().addPermanentWidget(self.job_label)
        self.ctx.runner.changed.connect(self._jobs_changed)
        self.ctx.changed.connect(self._context_changed)
        self._build_menu()
        self.update_nav()
        self.nav.setCurrentRow(0)
        self._restore_layout()

    # -- navigation --------------------------------------------------------------------------
    def go(self, key: str) -> None:
        self.nav.setCurrentRow([p.key for p in self.pages].index(key))

    def current_page(self) -> Page:
        return self.stack.currentWidget()  # type: ignore[return-value]

    def _show_row(self, row: int) -> None:
        if row >= 0:
            self.stack.setCurrentIndex(row)

    def schedule_nav(self) -> None:
        """Re-read the step states soon (once for any number of calls before then)."""
        if not self._nav_timer.isActive():
            self._nav_timer.start()

    def update_nav(self) -> None:
        self._nav_timer.stop()
        for i, page in enumerate(self.pages):
            try:
                state, tip = page.step_state()
            except Exception:  # noqa: BLE001 - a broken page must not hide the others
                state, tip = BLOCKED, ""
            item = self.nav.item(i)
            color = self.palette().color(
                QtGui.QPalette.ColorRole.PlaceholderText if state == BLOCKED else QtGui.QPalette.ColorRole.Text
            )
            shown = f"{state}\n{color.rgba()}\n{tip}"
            if item.data(Qt.ItemDataRole.UserRole + 2) == shown:
                continue  # unchanged: each setter below makes the list re-lay out and repaint
            item.setData(Qt.ItemDataRole.UserRole + 2, shown)
            item.setText(f"{STEP_MARK.get(state, '•')}  {i + 1}. {page.title}")
            item.setToolTip(tip)
            item.setData(Qt.ItemDataRole.UserRole + 1, state)
            font = item.font()
            font.setBold(state == DONE)
            item.setFont(font)
            item.setForeground(color)

    def step_states(self) -> dict[str, str]:
        return {p.key: p.step_state()[0] for p in self.pages}

    def _context_changed(self, name: str) -> None:
        if name == "project_path":
            path = self.ctx.project_path
            self.setWindowTitle(f"KnowMix — {path.name}" if path else "KnowMix")

    def _jobs_changed(self) -> None:
        job = self.ctx.runner.current()
        self.job_label.setText(f"Running: {job.name}" if job else "")
        self.schedule_nav()

    # -- menu and shortcuts --------------------------------------------------------------------
    def _build_menu(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        project = self.by_key["project"]
        self.act_new = file_menu.addAction("&New project…", project.new_project, QtGui.QKeySequence.StandardKey.New)
        self.act_open = file_menu.addAction("&Open project…", project.open_project_dialog, QtGui.QKeySequence.StandardKey.Open)
        file_menu.addSeparator()
        file_menu.addAction("&Quit", self.close, QtGui.QKeySequence.StandardKey.Quit)
        go_menu = bar.addMenu("&Steps")
        for i, page in enumerate(self.pages):
            act = go_menu.addAction(f"{i + 1}. {page.title}", lambda k=page.key: self.go(k))
            act.setShortcut(QtGui.QKeySequence(f"Ctrl+{i + 1}"))
        go_menu.addSeparator()
        act = go_menu.addAction("Run this step", lambda: self.current_page().primary_action())
        act.setShortcut(QtGui.QKeySequence("Ctrl+Return"))
        act = go_menu.addAction("Cancel the running job", self.cancel_job)
        act.setShortcut(QtGui.QKeySequence("Ctrl+."))
        help_menu = bar.addMenu("&Help")
        help_menu.addAction("&About KnowMix", self._about)
        help_menu.addAction("Open the &log folder", self._open_logs)

    def cancel_job(self) -> None:
        self.ctx.runner.cancel_all()

    def _about(self) -> None:
        from core import __version__

        QtWidgets.QMessageBox.about(
            self,
            "About KnowMix",
            f"<b>KnowMix {__version__}</b><p>Finds which fine-tuning examples a local model already knows "
            "(the SliCK categories of Gekhman et al. 2024), plans the training mix and runs a LoRA fine-tune. "
            "Everything runs on this computer; nothing is sent over the network.</p>",
        )

    def _open_logs(self) -> None:
        from .errors import log_path

        folder = log_path().parent
        folder.mkdir(parents=True, exist_ok=True)
        QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(str(folder)))

    # -- layout and closing --------------------------------------------------------------------
    def _restore_layout(self) -> None:
        geo = self.ctx.settings.value("window/geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        else:
            self.resize(1200, 800)
        split = self.ctx.settings.value("window/splitter")
        if split is not None:
            self.centralWidget().restoreState(split)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt API
        runner = self.ctx.runner
        if runner.active():
            names = ", ".join(j.name for j in runner.active())
            answer = QtWidgets.QMessageBox.question(
                self,
                "Stop and quit?",
                f"{names} is still running. Stop it and quit?\n\nFinished work is saved: a probe resumes where it "
                "stopped, and training keeps its last checkpoint and best adapter.",
                QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
                QtWidgets.QMessageBox.StandardButton.No,
            )
            if answer != QtWidgets.QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.statusBar().showMessage("Stopping the running job …")
            runner.cancel_all()
            runner.wait_all(timeout_s=90)
        self.ctx.settings.setValue("window/geometry", self.saveGeometry())
        self.ctx.settings.setValue("window/splitter", self.centralWidget().saveState())
        self.ctx.settings.sync()
        self.ctx.release_model()
        event.accept()
