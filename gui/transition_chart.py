"""What training did to the categories, as a chart for the Check step: ``TransitionBars`` (one bar
per category before training, split by the category after it) and its legend, ``after_legend``."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from core.formats import percent

from .charts import X_MAX, ChartBase, LabelLayer
from .qt import QtCore, QtGui, QtWidgets, pg


class TransitionBars(ChartBase):
    """What training did to the categories (``knowmix check``): one 100%-stacked bar per category before
    training, split by the category after training (the SliCK colours, grey for "not known at T=0").

    ``set_matrix(rows, columns)`` with ``rows = [(category before, {category after: count})]`` and
    ``columns`` the after-categories in order. Segments show their count when wide enough, the right
    axis each row's total, and hovering a row lists its counts."""

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        from core.report import AFTER_COLORS, AFTER_TEXT_ON

        super().__init__(parent)
        self.setObjectName("transitionBars")
        self._colors, self._text_on = AFTER_COLORS, AFTER_TEXT_ON
        self.rows: list[tuple[str, dict[str, int]]] = []
        self.columns: list[str] = []
        self._items: list[pg.BarGraphItem] = []
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot, 1)
        self.item.invertY(True)
        self.item.setXRange(0, X_MAX, padding=0)
        self.item.showAxis("right", True)
        bottom = self.item.getAxis("bottom")
        bottom.setTicks([[(v, f"{int(v * 100)}%") for v in (0, 0.25, 0.5, 0.75, 1.0)], []])
        bottom.setStyle(hideOverlappingLabels=False)
        self.labels = LabelLayer((0.5, 0.5))
        self.labels.set_font(self.font())
        self.labels.setZValue(10)  # above the bars, which are made again for each matrix
        self.item.addItem(self.labels, ignoreBounds=True)
        self.item.vb.sigResized.connect(self._place_texts)
        self._apply_palette()

    def set_matrix(self, rows: Sequence[tuple[str, dict[str, int]]], columns: Sequence[str]) -> None:
        from core.report import category_label

        self.rows = [(str(b), {str(a): int(n or 0) for a, n in (c or {}).items()}) for b, c in rows]
        self.columns = list(columns)
        for it in self._items:
            self.item.removeItem(it)
        self._items = []
        n = len(self.rows)
        totals = [sum(max(0, c.get(a, 0)) for a in self.columns) for _b, c in self.rows]
        left = np.zeros(n)
        ys = np.arange(n, dtype=float)
        for col in self.columns:
            share = np.array([c.get(col, 0) / t if t else 0.0 for (_b, c), t in zip(self.rows, totals)])
            bar = pg.BarGraphItem(
                x0=left.copy(),
                y=ys,
                width=share,
                height=0.7,
                brush=pg.mkBrush(self._colors.get(col, "#9e9e9e")),
                pen=pg.mkPen(None),
            )
            self.item.addItem(bar)
            self._items.append(bar)
            left += share
        fm = QtGui.QFontMetrics(self.font())
        names = [category_label(b) for b, _c in self.rows]
        left_axis = self.item.getAxis("left")
        left_axis.setTicks([[(i, name) for i, name in enumerate(names)], []])
        left_axis.setWidth(max([fm.horizontalAdvance(x) for x in names] + [40]) + 16)
        right = self.item.getAxis("right")
        right.setTicks([[(i, f"n={t}") for i, t in enumerate(totals)], []])
        right.setWidth(fm.horizontalAdvance("n=00000") + 12)
        self.item.setYRange(-0.5, max(n, 1) - 0.5, padding=0)
        self.labels.set_bounds(QtCore.QRectF(0.0, -0.5, X_MAX, max(n, 1)))
        height = (fm.height() + 22) + max(1, n) * max(26, fm.height() + 12) + 12
        self.setMinimumHeight(height)
        self.updateGeometry()
        self._place_texts()

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt API
        return QtCore.QSize(480, self.minimumHeight())

    def _place_texts(self, *_args: object) -> None:
        px = max(1.0, self.item.vb.width()) / X_MAX
        fm = QtGui.QFontMetrics(self.font())
        labels = []
        for i, (_b, counts) in enumerate(self.rows):
            total = sum(max(0, counts.get(a, 0)) for a in self.columns)
            left = 0.0
            for col in self.columns:
                k = counts.get(col, 0)
                if k and total:
                    share = k / total
                    if share * px >= fm.horizontalAdvance(str(k)) + 8:
                        labels.append((left + share / 2, float(i), str(k), self._text_on.get(col, "#1b1b1b")))
                    left += share
        self.labels.set_labels(labels)

    def count_labels(self) -> list[str]:
        return self.labels.texts()

    def _restyle(self) -> None:
        self.labels.set_font(self.font())
        if self.rows:
            self.set_matrix(self.rows, self.columns)

    def _tooltip_at(self, x: float, y: float) -> str:
        i = int(math.floor(y + 0.5))
        if not (0 <= i < len(self.rows)):
            return ""
        return self.row_tooltip(i)

    def row_tooltip(self, i: int) -> str:
        from core.report import category_label

        before, counts = self.rows[i]
        total = sum(counts.get(a, 0) for a in self.columns)
        lines = [f"{category_label(before)} before training: {total} questions; after training:"]
        for col in self.columns:
            k = counts.get(col, 0)
            lines.append(f"{category_label(col)}: {k} ({percent(k / total) if total else '-'})")
        return "\n".join(lines)


def after_legend(columns: Sequence[str], parent: Optional[QtWidgets.QWidget] = None) -> QtWidgets.QWidget:
    """The legend of a ``TransitionBars``: the after-training categories' colours."""
    from core.report import AFTER_COLORS, category_label

    box = QtWidgets.QWidget(parent)
    box.setObjectName("afterLegend")
    lay = QtWidgets.QHBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(12)
    lay.addWidget(
        QtWidgets.QLabel("Each bar: the questions of one category before training, coloured by their category after training:")
    )
    size = max(10, box.fontMetrics().height() - 4)
    for col in columns:
        swatch = QtWidgets.QLabel()
        swatch.setFixedSize(size, size)
        swatch.setStyleSheet(
            f"background:{AFTER_COLORS.get(col, '#9e9e9e')}; border:1px solid rgba(0,0,0,60); border-radius:2px;"
        )
        lay.addWidget(swatch)
        lay.addWidget(QtWidgets.QLabel(category_label(col)))
    lay.addStretch(1)
    return box
