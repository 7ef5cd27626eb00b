"""The desktop app's entry point: ``knowmix`` with no arguments, or ``python -m gui``."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from .errors import install_excepthook, setup_logging
from .qt import QtCore, QtGui, QtWidgets


def no_display_message() -> Optional[str]:
    """Qt aborts the process without a display or without the system libraries its platform plugin
    needs; say so in words before it gets the chance (``gui.platform_check``)."""
    from .platform_check import startup_problem

    return startup_problem()


def make_app(argv: Optional[Sequence[str]] = None) -> QtWidgets.QApplication:
    app = QtWidgets.QApplication.instance()
    if app is None:
        QtGui.QGuiApplication.setHighDpiScaleFactorRoundingPolicy(QtCore.Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QtWidgets.QApplication(list(argv or sys.argv[:1]))
    app.setApplicationName("KnowMix")
    app.setOrganizationName("KnowMix")
    app.setStyle("Fusion")  # Fusion follows the system's light or dark scheme on every platform
    return app  # type: ignore[return-value]


def build_window():
    from .window import MainWindow

    return MainWindow()


def main(argv: Optional[Sequence[str]] = None) -> int:
    message = no_display_message()
    if message:
        print(f"knowmix: error: {message}", file=sys.stderr)
        return 2
    setup_logging()
    app = make_app(argv)
    window = build_window()
    install_excepthook(lambda: window)
    window.show()
    return app.exec()
