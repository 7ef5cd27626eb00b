"""What every page shares: the open project, the chosen model, the current dataset/probe/plan/run,
the job runner and the settings. Pages talk to each other only through this object's signal, so
a page never needs to know which other pages exist."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

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
    "offered_spec",
)
_SETTING_KEYS = {"model_spec": "model/spec", "backend_name": "model/backend", "device": "model/device"}


def open_settings() -> QtCore.QSettings:
    """An INI file in the app's data folder (not the registry): tests point it at a temp folder
    with KNOWMIX_HOME, and a user can back it up or delete it like any other file."""
    return QtCore.QSettings(str(settings_dir() / "settings.ini"), QtCore.QSettings.Format.IniFormat)


class AppContext(QtCore.QObject):
    changed = Signal(str)  # the name of the field that changed
    requested = Signal(str, object)  # a page asks a step to act: (step key, argument), e.g. ("check", run id)

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
        # A server the opened project was probed through: shown on the Model step and used only after
        # the user's click (a project file is data; it never picks where requests and keys go).
        self.offered_spec: Optional[str] = None
        # What the navigator asks the project over and over (a run's status, whether it has results),
        # so that a context change while a job runs reads nothing from the disk: see ``cached``.
        self._cache: dict[tuple, Any] = {}
        self._expiry_queued = False
        self.runner.changed.connect(self._jobs_changed)  # first: the pages' own slots then see the new state

    # -- state --------------------------------------------------------------------------------
    def set(self, **fields: Any) -> None:
        for name, value in fields.items():
            if name not in STATE_FIELDS:
                raise AttributeError(name)
            if getattr(self, name) is value or (getattr(self, name) == value and name not in ("backend", "model_info")):
                continue
            setattr(self, name, value)
            if name == "project_path":
                self.forget_cached()
            if name in _SETTING_KEYS:
                self.settings.setValue(_SETTING_KEYS[name], value)
            self.changed.emit(name)

    # -- what the navigator reads from the project ------------------------------------------------
    # Every context change re-reads each page's step state, and several of those asked the project
    # (a SQLite file: open, PRAGMAs, table introspection) on the UI thread; on a busy machine that
    # is 100+ ms each, right when a probe starts. The answers are kept here, per project: while a
    # job runs until the job ends (the job's page keeps them current with ``remember``), otherwise
    # until control is back in the event loop, so one burst of updates reads the file once and a
    # later look reads it afresh.
    def cached(self, key: tuple, load: Callable[[], Any]) -> Any:
        full = (str(self.project_path), *key)
        if full in self._cache:
            return self._cache[full]
        value = load()
        self._store(full, value)
        return value

    def remember(self, key: tuple, value: Any) -> None:
        """Tell the cache what a page has just read or been told (a job's progress)."""
        self._store((str(self.project_path), *key), value)

    def forget_cached(self) -> None:
        self._cache.clear()

    def _jobs_changed(self) -> None:
        """A job started: forget everything. The last one ended: its page has noted what it left
        (the probe page reads the run once in its done callback), so the answers serve the updates
        this causes and expire when control is back in the event loop."""
        if self.runner.active():
            self.forget_cached()
        elif self._cache and not self._expiry_queued:
            self._expiry_queued = True
            QtCore.QTimer.singleShot(0, self._expire)

    def _store(self, key: tuple, value: Any) -> None:
        self._cache[key] = value
        if not self._expiry_queued and not self.runner.active():
            self._expiry_queued = True
            QtCore.QTimer.singleShot(0, self._expire)

    def _expire(self) -> None:
        self._expiry_queued = False
        if not self.runner.active():
            self._cache.clear()

    def probe_run_status(self, run_id: Optional[int] = None) -> Optional[str]:
        """The status of probe run ``run_id`` (the current one by default); None when there is none
        or the project cannot be read."""
        run_id = self.probe_run_id if run_id is None else run_id
        if run_id is None or self.project_path is None:
            return None

        def load() -> Optional[str]:
            try:
                with self.project() as p:
                    return p.probe_run(run_id).status
            except Exception:  # noqa: BLE001 - the navigator must not fail on a damaged file
                return None

        return self.cached(("probe_status", run_id), load)

    def probe_has_results(self, run_id: Optional[int] = None) -> Optional[bool]:
        """Whether probe run ``run_id`` has saved any result; None when the project cannot be read."""
        run_id = self.probe_run_id if run_id is None else run_id
        if run_id is None or self.project_path is None:
            return False

        def load() -> Optional[bool]:
            from core.store import has_results

            try:
                with self.project() as p:
                    return bool(has_results(p, run_id))  # one row at most
            except Exception:  # noqa: BLE001 - the navigator only needs a state
                return None

        return self.cached(("probe_has_results", run_id), load)

    def note_probe_run(self, run_id: int, *, status: Optional[str] = None, has_results: Optional[bool] = None) -> None:
        """What the probe page learnt about a run (from a job's events or a fresh read)."""
        if status is not None:
            self.remember(("probe_status", run_id), status)
        if has_results is not None:
            self.remember(("probe_has_results", run_id), bool(has_results))

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
        from core.train import clean_run_temps, list_runs

        path = Path(path).expanduser().resolve()
        self.forget_cached()  # the same path may hold another file now
        with Project(path, create=create) as p:
            datasets = p.datasets()
            runs = p.probe_runs()
            plans = list_plans(p)
            trains = list_runs(p)
        clean_run_temps(path)  # temp files and folders a kill left in its runs folder
        train_ds = [d for d in datasets if d["role"] == "train"]
        pools = [d for d in datasets if d["role"] == "pool"]
        probe = runs[-1] if runs else None
        self.release_model()
        self.set(
            project_path=path,
            dataset_id=(probe.dataset_id if probe else (train_ds[-1]["id"] if train_ds else None)),
            pool_id=(probe.pool_dataset_id if probe else (pools[-1]["id"] if pools else None)),
            probe_run_id=probe.id if probe else None,
            plan_id=plans[-1]["id"] if plans else None,
            train_run_id=trains[-1].id if trains else None,
        )
        self.set(offered_spec=None)
        if probe and probe.model_spec:
            self._take_model_from_project(probe.model_spec)
        self.add_recent(path)

    def _take_model_from_project(self, spec: str) -> None:
        """A local model the project was probed with becomes the chosen one (the Model step shows it); a
        server is only offered: its URL is shown and the user decides. The key variable is never taken."""
        from .pages.model import parse_server_spec, server_spec

        server = parse_server_spec(spec)
        url = server.get("url") if server is not None else None
        if url is None and spec.lower().startswith(("http://", "https://")):  # probed with knowmix probe --server
            url, server = spec, {}
        if url is not None:
            self.set(offered_spec=server_spec(str(url), str((server or {}).get("model") or "")))
            return
        self.set(model_spec=spec)

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
