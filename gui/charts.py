"""Reusable charts (pyqtgraph): the SliCK category bars and a histogram of P(T=0), with the pieces
the other charts share (``ChartBase``, ``LabelLayer``). The training page's live curves are in
``gui.curve_plot``, the check's transition bars in ``gui.transition_chart``.

All of them are built once and then only *updated*: ``set_rows`` / ``set_values`` change the data
of existing graphics items (``BarGraphItem.setOpts``, the label layer), so the probe page can
call them several times a second while a probe runs without rebuilding a plot (the numbers on the
bars are one ``LabelLayer`` item per chart, not a text item each). Colours are the
report's (``core.categories``); background and text follow the widget's palette, so the charts
look right in light and dark themes.
"""

from __future__ import annotations

import math
from html import escape as html_escape
from typing import Iterable, Optional, Sequence

import numpy as np

from core.categories import CATEGORIES, CATEGORY_COLORS
from core.categories import TEXT_ON as _ON_COLOR  # text drawn on a bar segment, as in the report
from core.formats import percent

from .qt import Qt, QtCore, QtGui, QtWidgets, pg

LABEL_MAX_PX = 240
X_MAX = 1.04  # longer row labels are elided (the tooltip has them in full)


def _palette_colors(widget: QtWidgets.QWidget) -> tuple[QtGui.QColor, QtGui.QColor]:
    pal = widget.palette()
    return pal.color(QtGui.QPalette.ColorRole.Base), pal.color(QtGui.QPalette.ColorRole.Text)


def _style_axis(axis: pg.AxisItem, fg: QtGui.QColor, font: QtGui.QFont) -> None:
    axis.setPen(pg.mkPen(fg))
    axis.setTextPen(pg.mkPen(fg))
    axis.setTickFont(font)


class LabelLayer(QtWidgets.QGraphicsItem):
    """Many short texts at data positions, drawn by one graphics item in screen pixels.

    A chart used to hold one ``pg.TextItem`` per label: each costs milliseconds to create and to
    update (a QGraphicsTextItem with its own document), and a probe page with a dozen groups made
    dozens of them at once. This item keeps plain tuples and paints them all in one ``paint()``:
    each label's data point is mapped through the view's transform and the text drawn unscaled,
    ``anchor`` giving the point's place in the text's box ((0.5, 0.5): centred). ``set_labels``
    repaints only when a label changed. ``bounds`` is the data rectangle the labels are drawn in
    (the owner sets it; the view clips to its own area anyway).
    """

    def __init__(self, anchor: tuple[float, float] = (0.5, 0.5)) -> None:
        super().__init__()
        self.anchor = anchor
        self.labels: list[tuple[float, float, str, str]] = []  # x, y (data), text, colour
        self._font = QtGui.QFont()
        self._bounds = QtCore.QRectF(0.0, 0.0, 1.0, 1.0)

    def set_font(self, font: QtGui.QFont) -> None:
        if font != self._font:
            self._font = QtGui.QFont(font)
            self.update()

    def set_bounds(self, rect: QtCore.QRectF) -> None:
        if rect != self._bounds:
            self.prepareGeometryChange()
            self._bounds = QtCore.QRectF(rect)

    def set_labels(self, labels: list[tuple[float, float, str, str]]) -> None:
        if labels != self.labels:
            self.labels = labels
            self.update()

    def texts(self) -> list[str]:
        return [text for _x, _y, text, _c in self.labels]

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802 - Qt API
        return self._bounds

    def paint(self, painter: QtGui.QPainter, option: object, widget: object = None) -> None:
        if not self.labels:
            return
        to_device = painter.transform()
        painter.save()
        painter.resetTransform()
        painter.setFont(self._font)
        fm = QtGui.QFontMetricsF(self._font)
        h = fm.height()
        ax, ay = self.anchor
        color = ""
        for x, y, text, c in self.labels:
            p = to_device.map(QtCore.QPointF(x, y))
            w = fm.horizontalAdvance(text) + 2
            if c != color:
                painter.setPen(QtGui.QColor(c))
                color = c
            painter.drawText(QtCore.QRectF(p.x() - w * ax, p.y() - h * ay, w, h), Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()


def legend_row(parent: Optional[QtWidgets.QWidget] = None) -> QtWidgets.QWidget:
    """A row of coloured squares with the category names, in CATEGORIES order."""
    box = QtWidgets.QWidget(parent)
    box.setObjectName("categoryLegend")
    lay = QtWidgets.QHBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(12)
    size = max(10, box.fontMetrics().height() - 4)
    for cat in CATEGORIES:
        item = QtWidgets.QWidget()
        il = QtWidgets.QHBoxLayout(item)
        il.setContentsMargins(0, 0, 0, 0)
        il.setSpacing(4)
        swatch = QtWidgets.QLabel()
        swatch.setFixedSize(size, size)
        swatch.setStyleSheet(f"background:{CATEGORY_COLORS[cat]}; border:1px solid rgba(0,0,0,60); border-radius:2px;")
        il.addWidget(swatch)
        il.addWidget(QtWidgets.QLabel(cat))
        lay.addWidget(item)
    lay.addStretch(1)
    return box


class ChartBase(QtWidgets.QWidget):
    """A PlotWidget with no mouse pan/zoom, styled from the palette (and restyled when it changes)."""

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        self.plot.setAccessibleName("chart")
        self.item: pg.PlotItem = self.plot.getPlotItem()
        self.item.setMouseEnabled(False, False)
        self.item.hideButtons()
        self.item.setMenuEnabled(False)
        self.item.vb.setMenuEnabled(False)
        self.plot.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.plot.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.plot.scene().sigMouseMoved.connect(self._mouse_moved)
        self._fg = QtGui.QColor("black")

    def _apply_palette(self) -> None:
        bg, fg = _palette_colors(self)
        self._fg = fg
        self.plot.setBackground(bg)
        font = QtGui.QFont(self.font())
        for name in ("left", "bottom", "right", "top"):
            _style_axis(self.item.getAxis(name), fg, font)

    def changeEvent(self, event: QtCore.QEvent) -> None:  # noqa: N802 - Qt API
        super().changeEvent(event)
        if event.type() in (QtCore.QEvent.Type.PaletteChange, QtCore.QEvent.Type.FontChange):
            self._apply_palette()
            self._restyle()

    def _restyle(self) -> None:
        """Re-apply data-dependent styling after a palette or font change."""

    def _mouse_moved(self, pos: QtCore.QPointF) -> None:
        if not self.item.vb.sceneBoundingRect().contains(pos):
            self.plot.setToolTip("")
            return
        p = self.item.vb.mapSceneToView(pos)
        text = self._tooltip_at(p.x(), p.y())
        if text != self.plot.toolTip():
            self.plot.setToolTip(text)
            if text:
                QtWidgets.QToolTip.showText(QtGui.QCursor.pos(), text, self.plot)
            else:
                QtWidgets.QToolTip.hideText()

    def _tooltip_at(self, x: float, y: float) -> str:
        return ""


class CategoryBars(ChartBase):
    """Horizontal 100%-stacked bars, one row per label, in CATEGORIES order from left to right.

    ``set_rows([(label, {category: count}), ...])`` may be called often: the four bar items and the
    text items are reused. Each segment shows its count when it is wide enough, the right axis
    shows each row's total, and hovering a row shows counts and shares in a tooltip. The widget's
    minimum height grows with the number of rows (put it in a scroll area for many groups).
    """

    def __init__(
        self,
        parent: Optional[QtWidgets.QWidget] = None,
        *,
        show_legend: bool = True,
        show_totals: bool = True,
        empty_text: str = "No results yet",
    ) -> None:
        super().__init__(parent)
        self.setObjectName("categoryBars")
        self.rows: list[tuple[str, dict[str, int]]] = []
        self._shares = np.zeros((0, len(CATEGORIES)))
        self._counts = np.zeros((0, len(CATEGORIES)), dtype=np.int64)
        self._show_totals = show_totals
        self._empty_text = empty_text
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        self.legend: Optional[QtWidgets.QWidget] = None
        if show_legend:
            self.legend = legend_row()
            lay.addWidget(self.legend)
        lay.addWidget(self.plot, 1)

        self.item.invertY(True)
        self.item.setXRange(0, X_MAX, padding=0)  # a little room right of 100% for its axis label
        self.item.showAxis("right", show_totals)
        bottom = self.item.getAxis("bottom")
        bottom.setTicks([[(v, f"{int(v * 100)}%") for v in (0, 0.25, 0.5, 0.75, 1.0)], []])
        bottom.setStyle(hideOverlappingLabels=False)  # keep "0%" and "100%" at the ends
        self.bars: dict[str, pg.BarGraphItem] = {}
        for cat in CATEGORIES:
            bar = pg.BarGraphItem(
                x0=[], y=[], width=[], height=0.72, brush=pg.mkBrush(CATEGORY_COLORS[cat]), pen=pg.mkPen(None), name=cat
            )
            self.item.addItem(bar)
            self.bars[cat] = bar
        self.labels = LabelLayer((0.5, 0.5))
        self.labels.set_font(self.font())
        self.item.addItem(self.labels, ignoreBounds=True)
        self._empty = pg.TextItem("", anchor=(0.5, 0.5))
        self._empty_state: tuple = ()
        self.item.addItem(self._empty)
        self._totals_ticks: list = []
        # No rows yet: no row names and no totals, rather than pyqtgraph's numeric ticks (-0.4 … 0.4).
        self.item.getAxis("left").setTicks([[], []])
        self.item.getAxis("right").setTicks([[], []])
        self._y_rows = -1
        self.item.vb.sigResized.connect(self._place_texts)
        self._apply_palette()
        self.set_rows([])

    # -- public ----------------------------------------------------------------------------------
    def set_rows(self, rows: Sequence[tuple[str, dict[str, int]]]) -> None:
        rows = [(str(label), dict(counts or {})) for label, counts in rows]
        same_labels = [r[0] for r in rows] == [r[0] for r in self.rows]
        self.rows = rows
        n = len(rows)
        counts = np.array([[max(0, int(c.get(cat, 0) or 0)) for cat in CATEGORIES] for _, c in rows], dtype=np.int64)
        counts = counts.reshape(n, len(CATEGORIES))
        totals = counts.sum(axis=1)
        shares = np.divide(counts, totals[:, None], out=np.zeros(counts.shape, dtype=float), where=totals[:, None] > 0)
        self._counts, self._shares = counts, shares
        left = np.zeros(n)
        ys = np.arange(n, dtype=float)
        for j, cat in enumerate(CATEGORIES):
            self.bars[cat].setOpts(x0=left.copy(), y=ys, width=shares[:, j].copy(), height=0.72)
            left += shares[:, j]
        if not same_labels:
            self._set_labels()
        if self._show_totals:
            ticks = [(i, f"n={int(t)}") for i, t in enumerate(totals)]
            if ticks != self._totals_ticks:  # an axis redraws itself on every setTicks
                self._totals_ticks = ticks
                self.item.getAxis("right").setTicks([ticks, []])
        if max(n, 1) != self._y_rows:
            self._y_rows = max(n, 1)
            self.item.setYRange(-0.5, self._y_rows - 0.5, padding=0)
            self.labels.set_bounds(QtCore.QRectF(0.0, -0.5, X_MAX, self._y_rows))
        empty = ("" if n and totals.sum() else self._empty_text, self._fg.rgba(), (max(n, 1) - 1) / 2)
        if empty != self._empty_state:  # a TextItem re-lays out its text on every setText
            self._empty_state = empty
            self._empty.setText(empty[0], color=self._fg)
            self._empty.setPos(0.5, empty[2])
        self._place_texts()
        self._update_height()

    def row_height(self) -> int:
        return max(22, self.fontMetrics().height() + 10)

    # -- internals ---------------------------------------------------------------------------------
    def _set_labels(self) -> None:
        fm = QtGui.QFontMetrics(self.font())
        labels = [fm.elidedText(label, Qt.TextElideMode.ElideMiddle, LABEL_MAX_PX) for label, _ in self.rows]
        left = self.item.getAxis("left")
        left.setTicks([[(i, lab) for i, lab in enumerate(labels)], []])
        width = max([fm.horizontalAdvance(lab) for lab in labels] + [fm.horizontalAdvance("All")]) + 16
        left.setWidth(width)
        if self._show_totals:
            right = self.item.getAxis("right")
            right.setWidth(fm.horizontalAdvance("n=000000") + 12)

    def _update_height(self) -> None:
        n = max(1, len(self.rows))
        legend = (self.legend.sizeHint().height() + 4) if self.legend is not None else 0
        axis = self.fontMetrics().height() + 22
        h = legend + axis + n * self.row_height() + 12
        if self.minimumHeight() != h:
            self.setMinimumHeight(h)
            self.updateGeometry()

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt API
        return QtCore.QSize(480, self.minimumHeight())

    def _place_texts(self, *_args: object) -> None:
        """Counts inside the segments that are wide enough for them; the rest get none."""
        px = max(1.0, self.item.vb.width()) / X_MAX
        fm = QtGui.QFontMetrics(self.font())
        labels = []
        for i in range(len(self.rows)):
            left = 0.0
            for j, cat in enumerate(CATEGORIES):
                share = float(self._shares[i, j])
                count = int(self._counts[i, j])
                if count:
                    text = str(count)
                    if share * px >= fm.horizontalAdvance(text) + 8:
                        labels.append((left + share / 2, float(i), text, _ON_COLOR[cat]))
                left += share
        self.labels.set_labels(labels)

    def count_labels(self) -> list[str]:
        """The counts drawn inside the segments, row by row."""
        return self.labels.texts()

    def _restyle(self) -> None:
        self.labels.set_font(self.font())
        self._empty_state = ()
        self._set_labels()
        self.set_rows(self.rows)

    def _tooltip_at(self, x: float, y: float) -> str:
        i = int(math.floor(y + 0.5))
        if not (0 <= i < len(self.rows)):
            return ""
        return self.row_tooltip(i)

    def row_tooltip(self, i: int) -> str:
        label, _ = self.rows[i]
        total = int(self._counts[i].sum())
        lines = [f"{label}: {total} examples"]
        for j, cat in enumerate(CATEGORIES):
            lines.append(f"{cat}: {int(self._counts[i, j])} ({percent(float(self._shares[i, j]))})")
        return "\n".join(lines)


class Histogram(ChartBase):
    """A bar histogram (of P(T=0)): ``set_values(values, bins=10, range=(0, 1), title=...)``.

    The bar item and the count labels are reused between calls. None and NaN values are skipped.
    """

    def __init__(
        self,
        parent: Optional[QtWidgets.QWidget] = None,
        *,
        x_label: str = "P(T=0)",
        y_label: str = "examples",
        color: Optional[str] = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("histogram")
        self.counts = np.zeros(0, dtype=np.int64)
        self.edges = np.zeros(1)
        self.title = ""
        self._color = color
        self._x_label, self._y_label = x_label, y_label
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)
        self.bar = pg.BarGraphItem(x0=[], width=[], height=[], y0=0)
        self.item.addItem(self.bar)
        self.labels = LabelLayer((0.5, 1.0))  # each count sits on its bar
        self.labels.set_font(self.font())
        self.item.addItem(self.labels, ignoreBounds=True)
        self.setMinimumHeight(200)
        self._apply_palette()
        self._restyle()

    def _bar_color(self) -> QtGui.QColor:
        if self._color:
            return QtGui.QColor(self._color)
        return self.palette().color(QtGui.QPalette.ColorRole.Highlight)

    def _restyle(self) -> None:
        fg = self._fg
        self.item.setLabel("bottom", self._x_label, **{"color": fg.name()})
        self.item.setLabel("left", self._y_label, **{"color": fg.name()})
        self.item.getAxis("bottom").label.setFont(QtGui.QFont(self.font()))
        self.item.getAxis("left").label.setFont(QtGui.QFont(self.font()))
        self._set_title()
        color = self._bar_color()
        self.bar.setOpts(brush=pg.mkBrush(color), pen=pg.mkPen(color.darker(130)))
        self.labels.set_font(self.font())
        self._place_texts()

    def _set_title(self) -> None:
        """The title, elided to the widget's width (a long title would widen the plot past its edge)."""
        fm = QtGui.QFontMetrics(self.font())
        text = fm.elidedText(self.title, Qt.TextElideMode.ElideRight, max(60, self.width() - 24)) if self.title else ""
        self.item.setTitle(html_escape(text) or None, color=self._fg.name(), size=f"{max(8, self.font().pointSize())}pt")
        self.plot.setToolTip(self.title)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if self.title:
            self._set_title()

    def set_values(
        self,
        values: Iterable[Optional[float]],
        bins: int = 10,
        range: tuple[float, float] = (0.0, 1.0),  # noqa: A002
        title: Optional[str] = None,
    ) -> None:
        arr = np.asarray(
            [np.nan if v is None else v for v in values] if not isinstance(values, np.ndarray) else values, dtype=float
        )
        arr = arr[np.isfinite(arr)]
        counts, edges = np.histogram(arr, bins=max(1, int(bins)), range=range)
        self.counts, self.edges = counts, edges
        if title is not None and title != self.title:
            self.title = title
            self._set_title()
        widths = np.diff(edges)
        self.bar.setOpts(x0=edges[:-1] + widths * 0.06, width=widths * 0.88, height=counts.astype(float), y0=0)
        top = max(1, int(counts.max()) if counts.size else 1)
        self.item.setXRange(edges[0], edges[-1], padding=0.02)
        self.item.setYRange(0, top * 1.18, padding=0)
        span = float(edges[-1] - edges[0])
        self.labels.set_bounds(QtCore.QRectF(float(edges[0]) - 0.1 * span, 0.0, 1.2 * span, top * 1.25))
        self._place_texts()

    def _place_texts(self) -> None:
        widths = np.diff(self.edges)
        color = self._fg.name(QtGui.QColor.NameFormat.HexArgb)
        self.labels.set_labels(
            [(float(self.edges[i] + widths[i] / 2), float(c), str(int(c)), color) for i, c in enumerate(self.counts) if c > 0]
        )

    def _tooltip_at(self, x: float, y: float) -> str:
        if not len(self.counts):
            return ""
        i = int(np.searchsorted(self.edges, x, side="right")) - 1
        if not (0 <= i < len(self.counts)):
            return ""
        return f"{self._x_label} {self.edges[i]:.2f}–{self.edges[i + 1]:.2f}: {int(self.counts[i])} {self._y_label}"


__all__ = ["CATEGORY_COLORS", "ChartBase", "CategoryBars", "Histogram", "LabelLayer", "X_MAX", "legend_row"]
