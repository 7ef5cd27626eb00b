"""Step 1: create, open or reopen a project (one SQLite file), or try the built-in sample in one click."""

from __future__ import annotations

from pathlib import Path

from core.paths import app_home

from ..qt import Qt, QtWidgets
from .base import DONE, READY, InlineMessage, Page

# The whole starter sample (resources/sample/README.md): questions chosen so that the built-in model
# knows about 60% of them, so the recommended plan has some to train on
SAMPLE_QUESTIONS = 100
PROJECT_FILTER = "KnowMix projects (*.knowmix);;All files (*)"


TRY_SAMPLE_JOB = "Making the sample project"


def sample_project_path() -> Path:
    return app_home() / "projects" / "sample.knowmix"


class ProjectPage(Page):
    title = "Project"
    key = "project"

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(ctx, parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(
            self.heading(
                "Project",
                "A project is one file that keeps your datasets, probe results, plans and training runs. "
                "Everything is saved as it happens, so a crash or a closed window loses nothing finished.",
            )
        )
        self.try_button = QtWidgets.QPushButton("Try it with the built-in model and sample data")
        self.try_button.setObjectName("trySample")
        self.try_button.setMinimumHeight(44)
        self.try_button.setToolTip(
            f"Opens a ready project: {SAMPLE_QUESTIONS} EntityQuestions questions and the built-in "
            "SmolLM2-135M-Instruct model. Nothing is downloaded."
        )
        self.try_button.clicked.connect(self.try_sample)
        row = QtWidgets.QHBoxLayout()
        self.new_button = QtWidgets.QPushButton("New project…")
        self.new_button.clicked.connect(self.new_project)
        self.open_button = QtWidgets.QPushButton("Open project…")
        self.open_button.clicked.connect(self.open_project_dialog)
        row.addWidget(self.try_button, 2)
        row.addWidget(self.new_button, 1)
        row.addWidget(self.open_button, 1)
        lay.addLayout(row)
        self.message = InlineMessage()
        lay.addWidget(self.message)

        lay.addWidget(QtWidgets.QLabel("<b>Recent projects</b> (double-click to open)"))
        self.recent = QtWidgets.QListWidget()
        self.recent.setObjectName("recentProjects")
        self.recent.itemActivated.connect(self._open_recent)
        self.recent.setMaximumHeight(170)
        lay.addWidget(self.recent)

        lay.addWidget(QtWidgets.QLabel("<b>This project</b>"))
        self.summary = QtWidgets.QLabel("No project is open.")
        self.summary.setObjectName("projectSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop)
        lay.addWidget(self.summary)
        self.next_button = QtWidgets.QPushButton("Next: choose the model →")
        self.next_button.clicked.connect(lambda: self._go("model"))
        lay.addWidget(self.next_button, 0, Qt.AlignmentFlag.AlignLeft)
        lay.addStretch(1)

    # -- navigator ------------------------------------------------------------------------------
    def watched_fields(self):
        return ("project_path", "dataset_id", "probe_run_id", "plan_id", "train_run_id")

    def step_state(self):
        if self.ctx.project_path:
            return DONE, f"Open: {self.ctx.project_path}"
        return READY, "Create or open a project"

    def primary_action(self) -> None:
        if not self.ctx.project_path:
            self.try_sample()

    def _go(self, key: str) -> None:
        win = self.ctx.window
        if win is not None and hasattr(win, "go"):
            win.go(key)

    # -- actions -------------------------------------------------------------------------------
    def _busy_refusal(self) -> bool:
        if self.ctx.runner.busy:
            self.message.show_message("Wait for the running job to finish (or cancel it) before switching projects.", "warning")
            return True
        return False

    def open_path(self, path: str | Path, *, create: bool = False) -> bool:
        if self._busy_refusal():
            return False
        try:
            self.ctx.open_project(path, create=create)
        except Exception as exc:  # noqa: BLE001 - shown to the user either way
            self.ctx.show_error(exc)
            return False
        self.message.clear_message()
        self.refresh()
        return True

    def new_project(self) -> None:
        """A new, empty project file. A name that is taken is never deleted: the file may be a project
        with weeks of probes and runs (and its -wal may hold its latest work), so the app offers to
        open it instead, or to choose another name."""
        start = str(Path(self.ctx.settings.value("projects/last_folder", str(Path.home()))) / "my-project.knowmix")
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self,
            "New project",
            start,
            PROJECT_FILTER,
            options=QtWidgets.QFileDialog.Option.DontConfirmOverwrite,  # the question below is the one that counts
        )
        if not path:
            return
        if not path.endswith(".knowmix"):
            path += ".knowmix"
        self.ctx.settings.setValue("projects/last_folder", str(Path(path).parent))
        if Path(path).exists():
            answer = QtWidgets.QMessageBox.question(
                self,
                "Project exists",
                f"{Path(path).name} already exists in {Path(path).parent}. KnowMix never replaces a project: its "
                "datasets, probe results, plans and training runs would be lost.\n\nOpen it instead?",
                QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
                QtWidgets.QMessageBox.StandardButton.No,
            )
            if answer == QtWidgets.QMessageBox.StandardButton.Yes:
                self.open_path(path)
            else:
                self.message.show_message(
                    f"{path} was left as it is. Choose another name for the new project (New project…).", "warning"
                )
            return
        if self.open_path(path, create=True):
            self._go("model")

    def open_project_dialog(self) -> None:
        start = str(self.ctx.settings.value("projects/last_folder", str(Path.home())))
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open project", start, PROJECT_FILTER)
        if path:
            self.ctx.settings.setValue("projects/last_folder", str(Path(path).parent))
            self.open_path(path)

    def _open_recent(self, item: QtWidgets.QListWidgetItem) -> None:
        path = item.data(Qt.ItemDataRole.UserRole)
        if not Path(path).exists():
            self.message.show_message(f"{path} no longer exists (moved or deleted). Open it from its new place.", "warning")
            return
        self.open_path(path)

    def try_sample(self) -> None:
        """The sample project: the starter questions, the exemplar pool and the built-in model, ready to probe."""
        if self._busy_refusal() or self.ctx.runner.is_running(TRY_SAMPLE_JOB):
            return
        path = sample_project_path()

        def fill(p, _job) -> None:
            from core.datasets import load_dataset, take_balanced
            from core.models import resolve_model
            from core.paths import sample_pool, starter_dataset

            resolve_model("default")  # a missing built-in model is said here, not after a click on Probe
            p.add_dataset(take_balanced(load_dataset(starter_dataset()), SAMPLE_QUESTIONS), role="train")
            p.add_dataset(load_dataset(sample_pool()), role="pool")

        def opened(_none: None) -> None:
            if self.open_path(path):
                self.ctx.set(model_spec="default", backend_name="auto")
                self._go("probe")

        # not exclusive: opening the project when it is written checks that no exclusive job runs
        self.project_op(
            TRY_SAMPLE_JOB, fill, path=path, create=True, on_done=opened, on_error=lambda exc, _tb: self.ctx.show_error(exc)
        )

    # -- view -----------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.recent.clear()
        for p in self.ctx.recent_projects():
            item = QtWidgets.QListWidgetItem(p if Path(p).exists() else f"{p}  (missing)")
            item.setData(Qt.ItemDataRole.UserRole, p)
            self.recent.addItem(item)
        first_start = not self.ctx.recent_projects()
        self.try_button.setDefault(first_start)
        if self.ctx.project_path is None:
            self.summary.setText(
                "No project is open."
                + (" New here? Click “Try it with the built-in model and sample data”." if first_start else "")
            )
            self.next_button.hide()
            return
        from core.plan import count_plans
        from core.train import count_runs

        with self.ctx.project() as p:
            datasets = p.datasets()
            n_probe = len(p.probe_runs())
            n_plans = count_plans(p)
            n_train = count_runs(p)
        lines = [f"<b>{self.ctx.project_path.name}</b> — {self.ctx.project_path}"]
        for d in datasets:
            role = "exemplar pool" if d["role"] == "pool" else "dataset"
            lines.append(f"{role}: {d['name']} ({d['n_examples']} questions)")
        lines.append(f"{n_probe} probe run(s), {n_plans} plan(s), {n_train} training run(s)")
        self.summary.setText("<br>".join(lines))
        self.next_button.show()

    def update_actions(self) -> None:
        busy = self.ctx.runner.busy
        for b in (self.try_button, self.new_button, self.open_button):
            b.setEnabled(not busy)
