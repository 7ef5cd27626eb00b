"""The training page's live chart (``CurvePlot``): curves by step, a legend under the chart and a
dashed line at the stopping point. Points are kept in lists and drawn when the page's redraw timer
says so, so a fast run never redraws the window on every event."""

from __future__ import annotations

from typing import Optional

from .qt import Qt, QtCore, QtGui, pg


class CurvePlot(pg.PlotWidget):
    """One live chart: curves by step, a legend, and a dashed vertical line at the stopping point."""

    def __init__(self, title: str, y_label: str, *, percent: bool = False, legend_columns: int = 1) -> None:
        super().__init__()
        self.title = title
        self.percent = percent
        self.setMinimumHeight(240)
        self.setMinimumWidth(260)
        item = self.getPlotItem()
        item.setLabel("bottom", "step")
        item.setLabel("left", y_label)
        item.showGrid(x=True, y=True, alpha=0.2)
        item.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        if percent:
            item.setYRange(-6, 106, padding=0)
            item.enableAutoRange(axis="y", enable=False)
        # The legend sits in its own row under the chart, never over the curves or the stopping-point label.
        self.legend = pg.LegendItem(labelTextSize="8pt", colCount=legend_columns, horSpacing=14, verSpacing=-6)
        item.layout.addItem(self.legend, 4, 1, alignment=Qt.AlignmentFlag.AlignHCenter)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.data: dict[str, tuple[list, list]] = {}
        self.stop_line = pg.InfiniteLine(
            angle=90, movable=False, label="stopping point", labelOpts={"position": 0.95, "anchors": [(0, 0.5), (0, 0.5)]}
        )
        self.stop_line.setZValue(-5)
        self.stop_line.hide()
        item.addItem(self.stop_line, ignoreBounds=True)
        self.stop_step: Optional[int] = None

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt API; small, so the page fits and the charts take what is left
        return QtCore.QSize(360, 260)

    def curve(self, key: str, name: str, color: str, *, symbols: bool) -> pg.PlotDataItem:
        """The curve ``key``, made on first use; per-step curves (no symbols) downsample, as they get long."""
        if key not in self.curves:
            kw: dict = {"pen": pg.mkPen(color, width=2), "name": name}
            if symbols:
                kw.update(symbol="o", symbolSize=6, symbolBrush=color, symbolPen=pg.mkPen(color))
            c = self.getPlotItem().plot([], [], **kw)
            self.legend.addItem(c, name)
            if not symbols:
                c.setClipToView(True)
                c.setDownsampling(auto=True, method="mean")
            self.curves[key] = c
            self.data[key] = ([], [])
        return self.curves[key]

    def append(self, key: str, x: float, y: float) -> None:
        """Add a point (drawn at the next ``redraw``); a step at or before the last one replaces what follows."""
        xs, ys = self.data[key]
        while xs and xs[-1] >= x:  # a resumed run redoes the steps after its checkpoint
            xs.pop()
            ys.pop()
        xs.append(x)
        ys.append(y)

    def truncate(self, step: float) -> None:
        """Drop the points after ``step``: a resumed run starts again from its checkpoint."""
        for xs, ys in self.data.values():
            while xs and xs[-1] > step:
                xs.pop()
                ys.pop()

    def redraw(self) -> None:
        for key, c in self.curves.items():
            xs, ys = self.data[key]
            c.setData(xs, ys)
        self._place_stop_label()

    def _place_stop_label(self) -> None:
        """The "stopping point" label at the top of its line, or at the bottom when a curve passes
        high there (train fit near 100%): never over a curve's points."""
        if self.stop_step is None:
            return
        low, high = self.getPlotItem().viewRange()[1]
        near = [ys[min(range(len(xs)), key=lambda i: abs(xs[i] - self.stop_step))] for xs, ys in self.data.values() if xs]
        top_taken = high > low and any((y - low) / (high - low) > 0.6 for y in near)
        self.stop_line.label.setPosition(0.08 if top_taken else 0.95)

    def clear_data(self) -> None:
        for key in self.data:
            self.data[key] = ([], [])
        self.redraw()
        self.set_stop(None)
        self.getPlotItem().enableAutoRange(axis="x", enable=True)

    def set_stop(self, step: Optional[int]) -> None:
        """Mark the stopping point (the step whose adapter the run keeps), or hide the mark."""
        self.stop_step = step
        if step is None:
            self.stop_line.hide()
        else:
            self.stop_line.setValue(step)
            self.stop_line.show()
            self._place_stop_label()

    def points(self, key: str) -> int:
        return len(self.data.get(key, ([], []))[0])

    def apply_palette(self, palette: QtGui.QPalette) -> None:
        """Readable in light and dark themes: background, axes, text and the stopping line follow the palette."""
        bg = palette.color(QtGui.QPalette.ColorRole.Base)
        fg = palette.color(QtGui.QPalette.ColorRole.Text)
        self.setBackground(bg)
        item = self.getPlotItem()
        for name in ("left", "bottom"):
            axis = item.getAxis(name)
            axis.setPen(pg.mkPen(fg))
            axis.setTextPen(pg.mkPen(fg))
        item.setTitle(self.title, color=fg.name(), size="10pt")
        self.legend.setLabelTextColor(fg)
        fill = QtGui.QColor(bg)
        fill.setAlpha(210)
        for _sample, label in self.legend.items:  # labels added before a palette change keep their old colour otherwise
            label.setText(label.text, color=fg.name())
        self.stop_line.setPen(pg.mkPen(fg, width=1.5, style=Qt.PenStyle.DashLine))
        self.stop_line.label.setColor(fg)
        self.stop_line.label.fill = pg.mkBrush(fill)
