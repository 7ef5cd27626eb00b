"""The Qt binding itself must not leak or drop references: PySide6 6.12.0 on Python 3.11 drops a
reference to None on every void call (and to True on every signal emit), and the app then dies
with "Fatal Python error: deallocating None" after a few minutes. This guards the pin."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("pytestqt")


def test_void_calls_and_emits_keep_reference_counts(qtbot):
    from gui.qt import QtCore, QtWidgets, Signal

    class Sender(QtCore.QObject):
        ping = Signal(object)

    label = QtWidgets.QLabel()
    qtbot.addWidget(label)
    sender = Sender()
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(500):
        label.setText("x")
        sender.ping.emit(1)
    # a little slack for objects created meanwhile; the broken binding loses 500 of each
    assert sys.getrefcount(None) - none_before > -50
    assert sys.getrefcount(True) - true_before > -50
