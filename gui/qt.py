"""The one module that imports Qt. Everything in ``gui`` takes Qt names from here."""

from PySide6 import QtCore, QtGui, QtWidgets  # noqa: F401

__all__ = ["QtCore", "QtGui", "QtWidgets"]
