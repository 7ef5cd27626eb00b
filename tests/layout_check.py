"""What a user sees as a broken screen, found by walking the window's visible widgets.

``layout_problems(window)`` lists, in words, each visible widget that lies outside its parent's
area (cut off: the parent is smaller than the widget's minimum), each scroll area that shows a
horizontal scroll bar (something on the page is wider than the window), and a window that is
larger than it was made (a page's minimum size pushed it past the screen). Content inside a
scroll area may be taller than the area (that is what it scrolls), never wider.
"""

from __future__ import annotations

from gui.qt import QtCore, QtWidgets

SLACK_PX = 1  # rounding in layouts


def _name(w: QtWidgets.QWidget) -> str:
    parts = []
    while w is not None:
        parts.append(f"{type(w).__name__}#{w.objectName()}" if w.objectName() else type(w).__name__)
        if w.objectName().startswith("page_"):
            break
        w = w.parentWidget()
    return " < ".join(parts)


def _scrolled_content_of(w: QtWidgets.QWidget) -> QtWidgets.QAbstractScrollArea | None:
    """The scroll area whose viewport ``w`` sits in (its content), else None."""
    viewport = w.parentWidget()
    area = viewport.parentWidget() if viewport is not None else None
    if isinstance(area, QtWidgets.QAbstractScrollArea) and area.viewport() is viewport:
        return area
    return None


def layout_problems(window: QtWidgets.QWidget, size: tuple[int, int] | None = None) -> list[str]:
    problems = []
    if size is not None and (window.width() > size[0] or window.height() > size[1]):
        problems.append(f"the window grew to {window.width()}×{window.height()} from {size[0]}×{size[1]}")
    for area in window.findChildren(QtWidgets.QScrollArea):
        if area.isVisible() and area.horizontalScrollBar().isVisible():
            problems.append(
                f"{_name(area)}: horizontal scroll bar (content {area.widget().width()} px wide in {area.viewport().width()} px)"
            )
    for w in window.findChildren(QtWidgets.QWidget):
        if not w.isVisible() or w.isWindow() or w.parentWidget() is None or w.geometry().isEmpty():
            continue  # an empty widget (a table's corner button) shows nothing to cut off
        geo = w.geometry()
        area = _scrolled_content_of(w)
        if area is not None:
            if isinstance(area, QtWidgets.QScrollArea) and geo.width() > area.viewport().width() + SLACK_PX:
                problems.append(f"{_name(w)}: {geo.width()} px wide in a {area.viewport().width()} px scroll area")
            continue
        inside = w.parentWidget().rect().adjusted(-SLACK_PX, -SLACK_PX, SLACK_PX, SLACK_PX)
        if not inside.contains(geo):
            problems.append(f"{_name(w)}: at {_rect(geo)}, outside its parent's {_rect(w.parentWidget().rect())}")
    return problems


def _rect(r: QtCore.QRect) -> str:
    return f"{r.x()},{r.y()} {r.width()}×{r.height()}"


__all__ = ["layout_problems"]
