"""The desktop app's entry point.

The full point-and-click flow (project, model, dataset, probe, breakdown, plan, train, export)
is the desktop-app issue; until it lands this window says what the command line offers.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from .qt import QtCore, QtWidgets


def build_window() -> QtWidgets.QMainWindow:
    window = QtWidgets.QMainWindow()
    window.setWindowTitle("KnowMix")
    label = QtWidgets.QLabel(
        "<h2>KnowMix</h2><p>The desktop app is not built yet. Use the command line:</p>"
        "<pre>knowmix demo\nknowmix probe --model default --data FILE\nknowmix summary</pre>"
    )
    label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
    label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
    window.setCentralWidget(label)
    window.resize(640, 360)
    return window


def main(argv: Optional[Sequence[str]] = None) -> int:
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(list(argv or sys.argv))
    window = build_window()
    window.show()
    return app.exec()
