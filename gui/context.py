"""What every page shares: the open project, the chosen model, the current dataset/probe/plan/run,
the job runner and the settings. Pages talk to each other only through this object's signal, so
a page never needs to know which other pages exist."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from core.paths import settings_dir

from .errors import show_error
from .jobs import JobRunner
from .qt import QtCore, QtWidgets, Signal

MAX_RECENT = 8
STATE_FIELDS = (
    "project_path",
    "model_spec",
    "backend_name",
    "device",
    "backend",
    "model_info",
    "dataset_id",
    "pool_id",
    "probe_run_id",
    "plan_id",
    "train_run_id",
)
_SETTING_KEYS = {"model_spec": "model/spec", "backend_name": "model/backend", "device": "model/device"}


def open_settings() -> QtCore.QSettings:
    """An INI file in the app's data folder (not the registry): tests point it at a temp folder
    with KNOWMIX_HOME, and a user can back it up or delete it like any other file."""
    return QtCore.QSettings(str(settings_dir() / "settings.ini"), QtCore.QSettings.Format.IniFormat)


class AppContext(QtCore.QObject):
    changed = Signal(str)  # the name of the field that changed

    def __init__(self, parent: Optional[QtCore.QObject] = None, settings: Optional[QtCore.QSettings] = None) -> None:
        super().__init__(parent)
        self.settings = settings or open_settings()
        self.window: Optional[QtWidgets.QWidget] = None
        self.runner = JobRunner(self._job_error, self)
        self.project_path: Optional[Path] = None
        self.model_spec: str = str(self.settings.value("model/spec", "default"))
        self.backend_name: str = str(self.settings.value("model/backend", "auto"))
        self.device: str = str(self.settings.value("model/device", "auto"))
        self.backend: Any = None  # a loaded core.backends.Backend, kept between probes
        self.model_info: Any = None  # its ModelInfo
        self.dataset_id: Optional[int] = None
        self.pool_id: Optional[int] = None
        self.probe_run_id: Optional[int] = None
        self.plan_id: Optional[int] = None
        self.train_run_id: Optional[int] = None

    # -- state --------------------------------------------------------------------------------
    def set(self, **fields: Any) -> None:
        for name, value in fields.items():
            if name not in STATE_FIELDS:
                raise AttributeError(name)
            if getattr(self, name) is value or (getattr(self, name) == value and name not in ("backend", "model_info")):
                continue
            setattr(self, name, value)
            if name in _SETTING_KEYS:
                self.settings.setValue(_SETTING_KEYS[name], value)
            self.changed.emit(name)

    @contextmanager
    def project(self) -> Iterator[Any]:
        """A short-lived connection for the UI thread; jobs open their own (SQLite connections
        are per thread)."""
        from core.errors import ProjectError
        from core.store import Project

        if self.project_path is None:
            raise ProjectError("No project is open. Create or open one in the Project step.")
        p = Project(self.project_path, create=False)
        try:
            yield p
        finally:
            p.close()

    def open_project(self, path: str | Path, *, create: bool = False) -> None:
        """Make ``path`` the current project and pick up where it was left: its latest dataset,
        probe, plan and training run."""
        from core.plan import list_plans
        from core.store import Project
        from core.train.runs import list_runs

        path = Path(path).expanduser().resolve()
        with Project(path, create=create) as p:
            datasets = p.datasets()
            runs = p.probe_runs()
            plans = list_plans(p)
            trains = list_runs(p)
        train_ds = [d for d in datasets if d["role"] == "train"]
        pools = [d for d in datasets if d["role"] == "pool"]
        probe = runs[-1] if runs else None
        self.release_model()
        self.set(
            project_path=path,
            dataset_id=(probe["dataset_id"] if probe else (train_ds[-1]["id"] if train_ds else None)),
            pool_id=(probe["pool_dataset_id"] if probe else (pools[-1]["id"] if pools else None)),
            probe_run_id=probe["id"] if probe else None,
            plan_id=plans[-1]["id"] if plans else None,
            train_run_id=trains[-1]["id"] if trains else None,
        )
        if probe and probe.get("model_spec"):
            self.set(model_spec=probe["model_spec"])
        self.add_recent(path)

    def release_model(self) -> None:
        if self.backend is not None:
            try:
                self.backend.close()
            except Exception:  # noqa: BLE001 - freeing memory must not fail the caller
                pass
        self.set(backend=None, model_info=None)

    # -- settings ------------------------------------------------------------------------------
    def recent_projects(self) -> list[str]:
        value = self.settings.value("projects/recent", [])
        if isinstance(value, str):
            value = [value]
        return [v for v in (value or []) if v]

    def add_recent(self, path: Path) -> None:
        items = [str(path)] + [p for p in self.recent_projects() if p != str(path)]
        self.settings.setValue("projects/recent", items[:MAX_RECENT])
        self.settings.sync()

    # -- errors ---------------------------------------------------------------------------------
    def show_error(self, exc: BaseException, tb: str = "") -> QtWidgets.QMessageBox:
        return show_error(self.window, exc, tb)

    def _job_error(self, exc: BaseException, tb: str) -> None:
        self.show_error(exc, tb)
