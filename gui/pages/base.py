"""What every step page has: the shared context, a title, a state for the navigator, and helpers
for the widgets every page uses (a heading, an inline message, a progress row)."""

from __future__ import annotations

from typing import Optional

from core.formats import format_duration
from core.jobs import Progress

from ..qt import Qt, QtCore, QtWidgets, Signal

DONE, READY, BLOCKED = "done", "ready", "blocked"


def fmt_seconds(s: Optional[float]) -> str:
    """The app's duration ("2m 05s"): ``core.formats``' with a space, which reads better in a sentence."""
    return format_duration(s, sep=" ")


class Page(QtWidgets.QWidget):
    """A step. ``refresh()`` re-reads what it shows from the context and the project; it is called
    when the page is shown and when the context changes while it is visible."""

    title = ""
    key = ""
    state_changed = Signal()  # the navigator re-reads step_state()

    def __init__(self, ctx, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName(f"page_{self.key}")
        self._dirty = True
        ctx.changed.connect(self._context_changed)
        ctx.runner.changed.connect(self.update_actions)

    # -- for subclasses ------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read everything shown."""

    def update_actions(self) -> None:
        """Enable or disable buttons after a job starts or ends."""

    def step_state(self) -> tuple[str, str]:
        """(DONE | READY | BLOCKED, one line for the navigator's tooltip)."""
        return READY, ""

    def primary_action(self) -> None:
        """What Ctrl+Return does on this page."""

    def report_error(self, exc: BaseException, tb: str = "") -> None:
        """A job's failure: a user mistake (a ``KnowMixError``) is said inline, where the user is
        looking; anything else is a bug and gets the dialog with details and the log entry."""
        from ..errors import is_user_error

        message = getattr(self, "message", None)
        if isinstance(message, InlineMessage) and is_user_error(exc):
            message.show_message(str(exc), "error")
        else:
            self.ctx.show_error(exc, tb)

    def start_long_job(self, name: str, work, **callbacks):
        """Start an exclusive job (training, a check) with the page's progress panel; returns the job,
        or None with the reason shown inline when another job started in between."""
        try:
            return self.ctx.runner.start(name, work, on_progress=self.progress.set_progress, **callbacks)
        except RuntimeError as exc:  # pages disable their buttons first; a job can still start in between
            self.progress.hide()
            self.message.show_message(str(exc), "error")
            return None

    def project_op(self, name: str, op, *, path=None, create: bool = False, exclusive: bool = False, changes=None, **callbacks):
        """Run ``op(project, job)`` against the open project (or ``path``) on a worker thread: a
        ``gui.jobs.ProjectOp``, its changed context fields set on ``self.ctx``, its error said by
        ``report_error`` (inline for a user mistake) unless ``on_error`` is given. Returns the job."""
        from ..jobs import ProjectOp

        callbacks.setdefault("on_error", self.report_error)
        project_op = ProjectOp(
            name, path if path is not None else self.ctx.project_path, op, create=create, exclusive=exclusive, changes=changes
        )
        return project_op.run_in(self.ctx.runner, context=self.ctx, **callbacks)

    def watched_fields(self) -> tuple[str, ...]:
        """Context fields whose change makes this page stale."""
        return ("project_path",)

    # -- plumbing ------------------------------------------------------------------------------
    def _context_changed(self, name: str) -> None:
        if name in self.watched_fields():
            self._dirty = True
            if self.isVisible():
                self.refresh_now()
        self.state_changed.emit()

    def refresh_now(self) -> None:
        self._dirty = False
        try:
            self.refresh()
        except Exception as exc:  # noqa: BLE001 - a damaged project must not break navigation
            self.ctx.show_error(exc)
        self.update_actions()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if self._dirty:
            self.refresh_now()

    # -- widgets ---------------------------------------------------------------------------------
    def heading(self, text: str, sub: str = "") -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 6)
        title = QtWidgets.QLabel(text)
        title.setObjectName("pageTitle")
        f = title.font()
        f.setPointSizeF(f.pointSizeF() * 1.5)
        f.setBold(True)
        title.setFont(f)
        lay.addWidget(title)
        if sub:
            s = QtWidgets.QLabel(sub)
            s.setWordWrap(True)
            s.setObjectName("pageSubtitle")
            lay.addWidget(s)
        return box


class InlineMessage(QtWidgets.QLabel):
    """A coloured line under a form: errors and warnings where the user is looking."""

    STYLES = {
        "error": "background:#fdecea; color:#8a1c12; border:1px solid #f5c2bd;",
        "warning": "background:#fff4e5; color:#6b4300; border:1px solid #ffd699;",
        "info": "background:#e8f1fb; color:#0b3d6e; border:1px solid #b9d3f0;",
        "ok": "background:#e9f6ec; color:#1d5e2b; border:1px solid #b7dfc1;",
    }

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hide()
        self.kind = ""

    def show_message(self, text: str, kind: str = "info") -> None:
        self.kind = kind
        if text != self.text():
            self.setText(text)
        style = self.STYLES[kind] + " padding:6px; border-radius:4px;"
        if style != self.styleSheet():  # a new style sheet re-polishes the widget: only when the kind changes
            self.setStyleSheet(style)
        self.setVisible(bool(text))

    def clear_message(self) -> None:
        self.kind = ""
        self.setText("")
        self.hide()


class ProgressRow(QtWidgets.QWidget):
    """A progress bar with done/total, rate and ETA, and the latest status line."""

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.bar = QtWidgets.QProgressBar()
        self.bar.setTextVisible(True)
        self.detail = QtWidgets.QLabel("")
        self.detail.setObjectName("progressDetail")
        lay.addWidget(self.bar)
        lay.addWidget(self.detail)

    def set_progress(self, p: Progress) -> None:
        self.bar.setMaximum(max(1, p.total))
        self.bar.setValue(min(p.done, p.total))
        self.bar.setFormat(f"{p.done} / {p.total} {p.unit}")
        rate = p.rate_words("measuring speed")  # "about … (estimated on this machine)" before the first batch
        eta = f"about {fmt_seconds(p.eta_s)} left" if p.eta_s is not None else "time left: measuring"
        busy = f" ({p.busy})" if p.busy else ""  # other programs are using the CPU: the time left may change
        msg = f" — {p.message}" if p.message else ""
        self.detail.setText(f"{rate}, {eta}{busy}{msg}")

    def set_busy(self, text: str) -> None:
        self.bar.setMaximum(0)  # an indeterminate bar while there is nothing to count yet
        self.bar.setFormat("")
        self.detail.setText(text)

    def reset(self, text: str = "") -> None:
        self.bar.setMaximum(1)
        self.bar.setValue(0)
        self.bar.setFormat("")
        self.detail.setText(text)


def form_row(label: str, widget: QtWidgets.QWidget, tip: str = "") -> tuple[QtWidgets.QLabel, QtWidgets.QWidget]:
    lab = QtWidgets.QLabel(label)
    if tip:
        lab.setToolTip(tip)
        widget.setToolTip(tip)
    return lab, widget


def scrolled(widget: QtWidgets.QWidget) -> QtWidgets.QScrollArea:
    area = QtWidgets.QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
    return area


def set_enabled(enabled: bool, *widgets: QtWidgets.QWidget) -> None:
    for w in widgets:
        w.setEnabled(enabled)


__all__ = [
    "DONE",
    "READY",
    "BLOCKED",
    "Page",
    "InlineMessage",
    "ProgressRow",
    "fmt_seconds",
    "form_row",
    "scrolled",
    "set_enabled",
    "QtCore",
]
