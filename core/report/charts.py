"""The report's charts as geometry: rectangles, lines and text placed in an SVG canvas.

The report has no plotting library and no scripts, so charts are inline SVG. This module only
computes where things go (scales, ticks, bars, points) and returns a ``Chart`` of plain shapes;
the template (``templates.py``, macro ``svg``) writes the markup, and jinja2 escapes every piece
of text, so a group name can never break out of a ``<title>``. Every bar, point and line has a
tooltip (``title``) giving its number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

from ..categories import CATEGORIES, CATEGORY_COLORS, TEXT_ON  # noqa: F401  (the palette's home; re-exported)
from ..formats import percent as pct  # the one percentage format ("12.5%", "-" when missing)

NEUTRAL = "#5c6bc0"
GRID, AXIS, EMPTY = "#e0e0e0", "#424242", "#eeeeee"


# --------------------------------------------------------------------------- shapes


@dataclass
class Rect:
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str
    kind: str = "rect"


@dataclass
class Text:
    x: float
    y: float
    text: str
    size: int = 11
    anchor: str = ""  # text-anchor: "", "middle" or "end"
    fill: str = ""  # set: drawn on a bar (and ignores the mouse, so the bar keeps its tooltip)
    title: str = ""
    rotate: bool = False  # a vertical axis label, centred on (x, y)
    kind: str = "text"


@dataclass
class Line:
    x1: float
    x2: float
    y1: float
    y2: float
    stroke: str
    width: float = 0.0  # 0: the default (1)
    dash: str = ""
    css: str = ""
    title: str = ""
    kind: str = "line"


@dataclass
class Polyline:
    points: list[tuple[float, float]]
    stroke: str
    title: str
    dash: str = ""
    kind: str = "polyline"


@dataclass
class Circle:
    cx: float
    cy: float
    fill: str
    title: str
    r: float = 3
    kind: str = "circle"


Shape = Union[Rect, Text, Line, Polyline, Circle]


@dataclass
class Chart:
    width: float
    height: float
    label: str  # what a screen reader says
    shapes: list[Shape] = field(default_factory=list)


# --------------------------------------------------------------------------- words and numbers


def _count_of(n: int, what: str) -> str:
    """``"1 question"`` / ``"2 questions"`` for ``what="questions"``."""
    return f"{n} {what[:-1] if n == 1 and what.endswith('s') else what}"


# --------------------------------------------------------------------------- axes


def _nice_step(span: float, target: int = 5) -> float:
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _step(lo: float, hi: float, target: int, integer: bool) -> float:
    step = _nice_step(hi - lo, target)
    return max(1.0, float(math.ceil(step))) if integer else step


def ticks(lo: float, hi: float, target: int = 5, integer: bool = False) -> list[float]:
    return _ticks_step(lo, hi, _step(lo, hi, target, integer))


def axis(lo: float, hi: float, target: int = 5, integer: bool = False) -> tuple[float, list[float]]:
    """A rounded top at or above ``hi`` and the ticks from ``lo`` to it."""
    step = _step(lo, hi, target, integer)
    top = math.ceil(hi / step - 1e-9) * step
    return top, _ticks_step(lo, top, step)


def _ticks_step(lo: float, hi: float, step: float) -> list[float]:
    first = math.ceil(lo / step - 1e-9) * step
    out, i = [], 0
    while first + i * step <= hi + 1e-9 * max(1.0, abs(hi)):
        out.append(round(first + i * step, 10))
        i += 1
    return out


def tick_label(v: float, percent: bool) -> str:
    if percent:
        return f"{100 * v:g}%"
    if abs(v) >= 1000 or v == int(v):
        return f"{int(round(v))}"
    return f"{v:g}"


# --------------------------------------------------------------------------- category bars


def segments(
    counts: dict[str, int], x0: float, y: float, width: float, height: float, what: str, labels: bool = True
) -> list[Shape]:
    """The coloured rectangles of one 100% stacked bar, each with a tooltip giving its number."""
    total = sum(max(0, int(counts.get(c, 0) or 0)) for c in CATEGORIES)
    if total <= 0:
        return [Rect(x0, y, width, height, EMPTY, f"{what}: no questions")]
    out: list[Shape] = []
    x = x0
    for c in CATEGORIES:
        n = max(0, int(counts.get(c, 0) or 0))
        if not n:
            continue
        w = width * n / total
        out.append(Rect(x, y, max(w, 0.5), height, CATEGORY_COLORS[c], f"{what}: {c} {n} of {total} ({pct(n / total)})"))
        if labels and w >= 38:
            out.append(Text(x + w / 2, y + height / 2 + 4, pct(n / total, 0), anchor="middle", fill=TEXT_ON[c]))
        x += w
    return out


def stacked_bar(counts: dict[str, int], *, label: str = "All probed questions", width: int = 720, height: int = 34) -> Chart:
    """One horizontal 100% stacked bar of category counts."""
    return Chart(width, height, f"{label}: share of each category", segments(counts, 0, 0, width, height, label))


def group_bars(
    rows: Sequence[tuple[str, dict[str, int]]], *, what: str = "questions", width: int = 720, row_height: int = 18
) -> Chart:
    """One 100% stacked bar per row (a group, a split...), labelled on the left with the row's total on the right."""
    label_w, count_w, gap = 180, 70, 4
    bar_w = width - label_w - count_w
    chart = Chart(width, max(1, len(rows)) * (row_height + gap) + gap, f"Share of each category per row ({len(rows)} rows)")
    for i, (name, counts) in enumerate(rows):
        y = gap + i * (row_height + gap)
        short = name if len(name) <= 26 else name[:25] + "\u2026"
        total = sum(int(counts.get(c, 0) or 0) for c in CATEGORIES)
        chart.shapes.append(Text(label_w - 6, y + row_height / 2 + 4, short, anchor="end", title=name))
        chart.shapes.extend(segments(counts, label_w, y, bar_w, row_height, name, labels=row_height >= 16))
        chart.shapes.append(
            Text(label_w + bar_w + 6, y + row_height / 2 + 4, str(total), title=f"{name}: {_count_of(total, what)}")
        )
    return chart


# --------------------------------------------------------------------------- histogram


def histogram(
    bins: Sequence[int],
    *,
    lo: float = 0.0,
    hi: float = 1.0,
    x_label: str = "P(T=0)",
    what: str = "questions",
    width: int = 720,
    height: int = 240,
    color: str = NEUTRAL,
) -> Chart:
    """Vertical bars of ``bins`` counts over equal-width bins from ``lo`` to ``hi``."""
    left, right, top, bottom = 64, 12, 10, 40
    pw, ph = width - left - right, height - top - bottom
    n_bins = max(1, len(bins))
    y_max, y_ticks = axis(0.0, float(max(1, max([int(b) for b in bins] + [0]))), integer=True)
    chart = Chart(width, height, f"Histogram of {x_label}")
    for t in y_ticks:
        y = top + ph - ph * t / y_max
        chart.shapes += [Line(left, left + pw, y, y, GRID), Text(left - 6, y + 4, tick_label(t, False), anchor="end")]
    bw = pw / n_bins
    for i, n in enumerate(int(b) for b in bins):
        a, b = lo + (hi - lo) * i / n_bins, lo + (hi - lo) * (i + 1) / n_bins
        close = "]" if i == n_bins - 1 else ")"
        h = ph * n / y_max
        chart.shapes.append(
            Rect(
                left + i * bw + 1, top + ph - h, bw - 2, h, color, f"{x_label} in [{a:.2g}, {b:.2g}{close}: {_count_of(n, what)}"
            )
        )
        if n:
            chart.shapes.append(Text(left + (i + 0.5) * bw, top + ph - h - 3, str(n), size=10, anchor="middle"))
    for i in range(n_bins + 1):
        chart.shapes.append(Text(left + i * bw, top + ph + 14, f"{lo + (hi - lo) * i / n_bins:g}", anchor="middle"))
    chart.shapes += [
        Line(left, left + pw, top + ph, top + ph, AXIS),
        Text(left + pw / 2, height - 6, x_label, size=12, anchor="middle"),
        Text(13, top + ph / 2, what, size=12, anchor="middle", rotate=True),
    ]
    return chart


# --------------------------------------------------------------------------- line chart


@dataclass
class _Frame:
    """The plot area of a line chart and its data ranges: maps data to canvas coordinates."""

    left: float
    top: float
    pw: float
    ph: float
    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float

    def px(self, x: float) -> float:
        return self.left + self.pw * (x - self.x_lo) / (self.x_hi - self.x_lo)

    def py(self, y: float) -> float:
        y = min(max(y, self.y_lo), self.y_hi)
        return self.top + self.ph - self.ph * (y - self.y_lo) / (self.y_hi - self.y_lo)


def _frame(
    series: Sequence[dict],
    best: Optional[tuple[float, str, str]],
    y_range: Optional[tuple[float, float]],
    width: int,
    height: int,
) -> _Frame:
    left, right, top, bottom = 56, 16, 20, 40
    xs = [p[0] for s in series for p in s["points"]] + ([best[0]] if best is not None else [])
    ys = [p[1] for s in series for p in s["points"]]
    x_lo, x_hi = (min(min(xs), 0.0), max(xs)) if xs else (0.0, 1.0)
    if x_hi <= x_lo:
        x_hi = x_lo + 1
    if y_range is not None:
        y_lo, y_hi = y_range
    else:
        y_lo, y_hi = min([0.0] + ys), (max(ys) if ys else 1.0)
        if y_hi <= y_lo:
            y_hi = y_lo + 1
        y_hi, _t = axis(y_lo, y_hi)
    return _Frame(left, top, width - left - right, height - top - bottom, x_lo, x_hi, y_lo, y_hi)


def line_chart(
    series: Sequence[dict],
    *,
    y_label: str,
    percent: bool = False,
    y_range: Optional[tuple[float, float]] = None,
    best: Optional[tuple[float, str, str]] = None,
    x_label: str = "step",
    width: int = 720,
    height: int = 260,
) -> Chart:
    """Lines over steps. ``series``: ``{"name", "color", "points": [(x, y)], "markers": bool, "dash": bool, "title"}``;
    ``best``: ``(x, tooltip, label)`` draws a vertical dashed line (the stopping point, or the best dev
    step of a run that keeps another adapter: the caller words it) with its label above the plot."""
    f = _frame(series, best, y_range, width, height)
    chart = Chart(width, height, y_label + " by " + x_label)
    chart.shapes += _grid(f, percent)
    chart.shapes += [
        Line(f.left, f.left + f.pw, f.top + f.ph, f.top + f.ph, AXIS),
        Line(f.left, f.left, f.top, f.top + f.ph, AXIS),
        Text(f.left + f.pw / 2, height - 6, x_label, size=12, anchor="middle"),
        Text(13, f.top + f.ph / 2, y_label, size=12, anchor="middle", rotate=True),
    ]
    if best is not None:
        chart.shapes += _stopping_line(f, best)
    for s in series:
        chart.shapes += _series(f, s, percent)
    return chart


def _grid(f: _Frame, percent: bool) -> list[Shape]:
    """Horizontal grid lines with their values, and the ticks of the step axis."""
    out: list[Shape] = []
    for t in ticks(f.y_lo, f.y_hi):
        y = f.py(t)
        out += [Line(f.left, f.left + f.pw, y, y, GRID), Text(f.left - 6, y + 4, tick_label(t, percent), anchor="end")]
    bottom = f.top + f.ph
    for t in ticks(f.x_lo, f.x_hi, 6, integer=True):
        x = f.px(t)
        out += [Line(x, x, bottom, bottom + 4, AXIS), Text(x, bottom + 16, tick_label(t, False), anchor="middle")]
    return out


def _stopping_line(f: _Frame, best: tuple[float, str, str]) -> list[Shape]:
    bx = f.px(best[0])
    anchor = "end" if bx > f.left + f.pw - 60 else ""
    return [
        Line(bx, bx, f.top, f.top + f.ph, "#212121", width=1.5, dash="5 4", css="best", title=best[1]),
        Text(bx - 4 if anchor else bx + 4, f.top - 6, best[2], anchor=anchor or "start"),
    ]


def _series(f: _Frame, s: dict, percent: bool) -> list[Shape]:
    pts = s["points"]
    if not pts:
        return []
    out: list[Shape] = [
        Polyline(
            [(f.px(x), f.py(y)) for x, y in pts], s["color"], s.get("title") or s["name"], dash="3 3" if s.get("dash") else ""
        )
    ]
    if s.get("markers") or len(pts) == 1:
        for x, y in pts:
            value = pct(y) if percent else f"{y:.4g}"
            out.append(Circle(f.px(x), f.py(y), s["color"], f"{s['name']}, step {int(round(x))}: {value}"))
    return out


def downsample(points: list[tuple[float, float]], limit: int) -> tuple[list[tuple[float, float]], int]:
    """Average consecutive points so at most ``limit`` remain; returns the points and the bucket size."""
    if len(points) <= limit:
        return points, 1
    size = math.ceil(len(points) / limit)
    out = []
    for i in range(0, len(points), size):
        chunk = points[i : i + size]
        out.append((sum(p[0] for p in chunk) / len(chunk), sum(p[1] for p in chunk) / len(chunk)))
    return out, size


# --------------------------------------------------------------------------- a check's transitions


def transition_bars(
    rows: Sequence[tuple[str, dict[str, int]]],
    columns: Sequence[str],
    colors: dict[str, str],
    text_on: dict[str, str],
    *,
    names: Optional[dict[str, str]] = None,
    width: int = 720,
    row_height: int = 24,
) -> Chart:
    """One 100% stacked bar per category before training, split by category after training; each
    segment shows its count when wide enough, the row's total is on the right (``check`` section)."""
    names = names or {}
    label_w, count_w, gap = 130, 60, 6
    bar_w = width - label_w - count_w
    chart = Chart(
        width, max(1, len(rows)) * (row_height + gap) + gap, "Category before training (rows) and after training (colours)"
    )
    for i, (before, counts) in enumerate(rows):
        y = gap + i * (row_height + gap)
        total = sum(max(0, int(counts.get(c, 0) or 0)) for c in columns)
        shown = names.get(before, before)
        chart.shapes.append(Text(label_w - 6, y + row_height / 2 + 4, shown, anchor="end", title=f"{shown} before training"))
        x = float(label_w)
        for c in columns:
            n = max(0, int(counts.get(c, 0) or 0))
            if not n or not total:
                continue
            w = bar_w * n / total
            after = names.get(c, c)
            title = f"{shown} before, {after} after: {n} of {total} ({pct(n / total)})"
            chart.shapes.append(Rect(x, y, max(w, 0.5), row_height, colors.get(c, NEUTRAL), title))
            if w >= 8 * len(str(n)) + 8:
                chart.shapes.append(
                    Text(x + w / 2, y + row_height / 2 + 4, str(n), anchor="middle", fill=text_on.get(c, "#1b1b1b"))
                )
            x += w
        chart.shapes.append(Text(label_w + bar_w + 6, y + row_height / 2 + 4, f"n={total}", title=_count_of(total, "questions")))
    return chart
