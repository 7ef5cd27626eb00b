"""How the app shows and records what went wrong.

A ``KnowMixError`` is a user mistake or a state the user can fix: it gets a plain dialog with the
message core wrote, no traceback. Anything else is a bug: a dialog says so, offers the details to
copy into a bug report, and the traceback goes to the log file in the app's data folder.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import traceback
from pathlib import Path
from typing import Optional

from core.errors import KnowMixError
from core.paths import logs_dir

from .qt import QtWidgets

log = logging.getLogger("knowmix.gui")


def log_path() -> Path:
    return logs_dir() / "knowmix-app.log"


def setup_logging() -> Path:
    """Log to a rotating file; a read-only home only costs the log, never the app."""
    path = log_path()
    root = logging.getLogger("knowmix")
    if any(getattr(h, "_knowmix", False) for h in root.handlers):
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    except OSError:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._knowmix = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return path


def is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, KnowMixError)


def show_error(
    parent: Optional[QtWidgets.QWidget], exc: BaseException, tb: str = "", title: str = "KnowMix"
) -> QtWidgets.QMessageBox:
    """Show ``exc`` as a dialog (non-blocking: ``open()``, so tests and running jobs go on)."""
    box = QtWidgets.QMessageBox(parent)
    box.setWindowTitle(title)
    if is_user_error(exc):
        log.info("user error: %s", exc)
        box.setIcon(QtWidgets.QMessageBox.Icon.Warning)
        box.setText(str(exc))
    else:
        details = tb or "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.error("unexpected error: %s\n%s", exc, details)
        box.setIcon(QtWidgets.QMessageBox.Icon.Critical)
        box.setText(
            f"Something went wrong inside KnowMix: {type(exc).__name__}: {exc}\n\n"
            f"Your saved work is kept. The details are in {log_path()}; please send them with a bug report."
        )
        box.setDetailedText(details)
    box.setObjectName("errorDialog")
    box.setStandardButtons(QtWidgets.QMessageBox.StandardButton.Ok)
    box.open()
    return box


def install_excepthook(get_parent) -> None:
    """Exceptions escaping a Qt slot would otherwise print to a console nobody sees."""

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        try:
            show_error(get_parent(), exc, text)
        except Exception:  # noqa: BLE001 - the hook must never raise
            log.error("unexpected error (no dialog): %s", text)

    sys.excepthook = hook
