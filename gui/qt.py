"""The one module that imports Qt. Everything in ``gui`` takes Qt names (and pyqtgraph) from here.

pyqtgraph picks its Qt binding at import time; pinning it to PySide6 here keeps a stray PyQt
install on the user's machine from being mixed into the same process.
"""

import os

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import pyqtgraph as pg  # noqa: E402
from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402
from PySide6.QtCore import Qt, Signal, Slot  # noqa: E402

pg.setConfigOptions(antialias=True, leftButtonPan=False)

__all__ = ["QtCore", "QtGui", "QtWidgets", "Qt", "Signal", "Slot", "pg"]
