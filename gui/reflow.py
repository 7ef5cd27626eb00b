"""A row of widgets that wraps onto more rows when the window is too narrow for it (``Reflow``).

A plain ``QHBoxLayout`` asks for the sum of its widgets' minimum widths: in a scrolling page that
sum becomes the page's width, and a window narrower than it shows a horizontal scroll bar with the
right-hand widgets behind it (the Train step's runs box and third chart did, at 1280×800). A
``Reflow`` asks only for its widest widget's minimum width and, whenever it is resized, puts as
many widgets side by side as fit, the others on the rows below. So it never makes a page wider
than the window, and a wide window still shows everything on one row.
"""

from __future__ import annotations

from typing import Optional, Sequence

from .qt import QtCore, QtGui, QtWidgets


def min_width(widget: QtWidgets.QWidget) -> int:
    """The narrowest ``widget`` may be made: its own minimum or its layout's, whichever is larger."""
    return max(widget.minimumWidth(), widget.minimumSizeHint().width())


class Reflow(QtWidgets.QWidget):
    """``widgets`` in a grid of as many columns as fit (at most ``len(widgets)``), in order.

    ``stretches`` gives each widget's share of the width when they sit side by side (all equal if
    left out). ``columns`` is the number of columns now.
    """

    def __init__(
        self,
        widgets: Sequence[QtWidgets.QWidget],
        stretches: Optional[Sequence[int]] = None,
        parent: Optional[QtWidgets.QWidget] = None,
    ) -> None:
        super().__init__(parent)
        self.items = list(widgets)
        self.stretches = list(stretches or [1] * len(self.items))
        self.grid = QtWidgets.QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.columns = 0
        self._arrange(len(self.items))

    def fitting_columns(self, width: int) -> int:
        """The most columns whose rows all fit in ``width`` pixels (1 at least)."""
        spacing = max(0, self.grid.horizontalSpacing())
        for n in range(len(self.items), 1, -1):
            rows = [self.items[i : i + n] for i in range(0, len(self.items), n)]
            if all(sum(min_width(w) for w in row) + spacing * (len(row) - 1) <= width for row in rows):
                return n
        return 1

    def _arrange(self, n: int) -> None:
        if n == self.columns:
            return
        for w in self.items:
            self.grid.removeWidget(w)
        for c in range(max(self.columns, len(self.items))):
            self.grid.setColumnStretch(c, 0)
        for i, w in enumerate(self.items):
            self.grid.addWidget(w, i // n, i % n)
        for c in range(n):
            self.grid.setColumnStretch(c, self.stretches[c] if n > 1 else 1)
        self.columns = n
        self.updateGeometry()  # the height changes with the number of rows

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt API
        """As narrow as the widest widget (one column); as tall as the rows are now."""
        return QtCore.QSize(max((min_width(w) for w in self.items), default=0), self.grid.minimumSize().height())

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt API
        return QtCore.QSize(self.grid.sizeHint().width(), self.grid.sizeHint().height())

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._arrange(self.fitting_columns(event.size().width()))
