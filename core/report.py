"""A self-contained HTML report of a project: probe, category breakdown, plan and training run.

The report is one file a teammate can open in any browser with no network: no scripts, no
external stylesheets or fonts, and every chart is inline SVG drawn here in plain Python (no
plotting library). Every piece of user text (group names, dataset paths, plan names, settings)
is HTML-escaped. Sections that need a step not done yet (a plan, a training run) are replaced by
one sentence saying what is missing and which step produces it.

``CATEGORY_COLORS`` is the one palette of the SliCK categories; the GUI imports it so its charts
match the report's.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from . import __version__
from .errors import ProjectError
from .paths import write_text_atomic
from .probe import CATEGORIES

__all__ = ["CATEGORY_COLORS", "build_report", "write_report", "default_report_path"]

CATEGORY_COLORS: dict[str, str] = {
    "HighlyKnown": "#2e7d32",
    "MaybeKnown": "#9ccc65",
    "WeaklyKnown": "#ffb300",
    "Unknown": "#c62828",
}
# Text drawn on top of a category's colour (dark on the light greens and amber).
_TEXT_ON = {"HighlyKnown": "#ffffff", "MaybeKnown": "#1b1b1b", "WeaklyKnown": "#1b1b1b", "Unknown": "#ffffff"}
_NEUTRAL = "#5c6bc0"
_LOSS_COLOR = "#37474f"
_DEV_COLOR = "#1565c0"
_MAX_GROUP_BARS = 80  # more groups than this: the chart shows the largest, the table lists all
_MAX_LINE_POINTS = 400  # longer series are averaged into this many points

_STOP_WORDS = {
    "early_stop": "stopped early: dev exact match stopped improving (the paper's EARLY_STOP)",
    "max_epochs": "trained every epoch (convergence); the best dev evaluation is kept",
    "cancelled": "cancelled by the user; the best adapter so far is kept",
}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1b1b1b;
 max-width:1000px;margin:0 auto;padding:16px 24px 40px;background:#fff}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
.meta{color:#555}.note{background:#fff8e1;border-left:4px solid #ffb300;padding:6px 10px;margin:8px 0}
.missing{background:#f5f5f5;border-left:4px solid #9e9e9e;padding:6px 10px;margin:8px 0}
.flag{color:#c62828}.warn{background:#ffebee;border-left:4px solid #c62828;padding:6px 10px;margin:8px 0}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#fafafa;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{width:220px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre.explain{white-space:pre-wrap;background:#fafafa;border:1px solid #eee;padding:10px;overflow-x:auto}
.legend{margin:4px 0 8px}.legend span{display:inline-block;margin-right:14px;white-space:nowrap}
.legend i{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px;border:1px solid #0003}
svg{display:block;margin:6px 0 2px;max-width:100%;height:auto}svg text{font-family:inherit}
.caption{color:#555;font-size:12px;margin:0 0 12px}
nav a{margin-right:12px}footer{margin-top:36px;color:#777;font-size:12px;border-top:1px solid #ddd;padding-top:8px}
"""


# --------------------------------------------------------------------------- small helpers


def _e(value: Any) -> str:
    """HTML-escape any value (quotes too, so it is safe in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(x: float) -> str:
    """A coordinate for SVG: short and locale-free."""
    if not math.isfinite(x):
        x = 0.0
    s = f"{x:.1f}"
    return s[:-2] if s.endswith(".0") else s


def _pct(x: Optional[float], digits: int = 1) -> str:
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "-"
    return f"{100 * x:.{digits}f}%"


def _when(ts: Optional[float]) -> str:
    if not ts:
        return "-"
    try:
        return _dt.datetime.fromtimestamp(float(ts)).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError, TypeError):
        return "-"


def _duration(s: Optional[float]) -> str:
    if s is None:
        return "-"
    try:
        s = int(round(float(s)))
    except (TypeError, ValueError):
        return "-"
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h} h {m:02d} min"
    if m:
        return f"{m} min {sec:02d} s"
    return f"{sec} s"


def _json(text: Any) -> Any:
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _natural(name: str) -> list:
    """Sort key that puts g2 before g10."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", name) if t] + [(2, 0, name)]


def _kv_table(rows: Iterable[tuple[str, Any]]) -> str:
    """A two-column table; values are escaped here (pass ``_Raw`` for ready HTML)."""
    out = ['<table class="kv">']
    for key, value in rows:
        cell = value.html if isinstance(value, _Raw) else _e(value)
        out.append(f"<tr><th>{_e(key)}</th><td>{cell}</td></tr>")
    out.append("</table>")
    return "".join(out)


class _Raw:
    """Already-escaped HTML for ``_kv_table``."""

    def __init__(self, html_text: str) -> None:
        self.html = html_text


def _settings_table(text: Any) -> str:
    data = _json(text)
    if data is None:
        return '<p class="meta">No settings recorded.</p>'
    if not isinstance(data, dict):
        return f"<pre>{_e(text)}</pre>"
    rows = []
    for key in sorted(data):
        value = data[key]
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        rows.append((key, _Raw(f"<code>{_e(shown)}</code>")))
    return _kv_table(rows)


def _legend(categories: Sequence[str] = CATEGORIES, colors: Optional[dict[str, str]] = None) -> str:
    colors = colors or CATEGORY_COLORS
    items = "".join(f'<span><i style="background:{colors[c]}"></i>{_e(c)}</span>' for c in categories)
    return f'<div class="legend">{items}</div>'


def _missing(text: str) -> str:
    return f'<p class="missing">{_e(text)}</p>'


def _svg(width: float, height: float, label: str, body: Sequence[str]) -> str:
    return (
        f'<svg width="{_num(width)}" height="{_num(height)}" viewBox="0 0 {_num(width)} {_num(height)}" '
        f'role="img" aria-label="{_e(label)}">' + "".join(body) + "</svg>"
    )


def _nice_step(span: float, target: int = 5) -> float:
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _ticks(lo: float, hi: float, target: int = 5, integer: bool = False) -> list[float]:
    step = _nice_step(hi - lo, target)
    if integer:
        step = max(1.0, float(math.ceil(step)))
    return _ticks_step(lo, hi, step)


def _axis(lo: float, hi: float, target: int = 5, integer: bool = False) -> tuple[float, list[float]]:
    """A rounded top at or above ``hi`` and the ticks from ``lo`` to it."""
    step = _nice_step(hi - lo, target)
    if integer:
        step = max(1.0, float(math.ceil(step)))
    top = math.ceil(hi / step - 1e-9) * step
    return top, _ticks_step(lo, top, step)


def _ticks_step(lo: float, hi: float, step: float) -> list[float]:
    first = math.ceil(lo / step - 1e-9) * step
    out, i = [], 0
    while first + i * step <= hi + 1e-9 * max(1.0, abs(hi)):
        out.append(round(first + i * step, 10))
        i += 1
    return out


def _tick_label(v: float, percent: bool) -> str:
    if percent:
        return f"{100 * v:g}%"
    if abs(v) >= 1000 or v == int(v):
        return f"{int(round(v))}"
    return f"{v:g}"


# --------------------------------------------------------------------------- charts


def _segments(counts: dict[str, int], x0: float, y: float, width: float, height: float, what: str,
              labels: bool = True) -> list[str]:
    """The coloured rects of one 100% stacked bar, each with a tooltip giving its number."""
    total = sum(max(0, int(counts.get(c, 0) or 0)) for c in CATEGORIES)
    out: list[str] = []
    if total <= 0:
        out.append(
            f'<rect x="{_num(x0)}" y="{_num(y)}" width="{_num(width)}" height="{_num(height)}" fill="#eeeeee">'
            f"<title>{_e(what)}: no questions</title></rect>"
        )
        return out
    x = x0
    for c in CATEGORIES:
        n = max(0, int(counts.get(c, 0) or 0))
        if not n:
            continue
        w = width * n / total
        tip = f"{what}: {c} {n} of {total} ({_pct(n / total)})"
        out.append(
            f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(max(w, 0.5))}" height="{_num(height)}" '
            f'fill="{CATEGORY_COLORS[c]}"><title>{_e(tip)}</title></rect>'
        )
        if labels and w >= 38:
            out.append(
                f'<text x="{_num(x + w / 2)}" y="{_num(y + height / 2 + 4)}" font-size="11" text-anchor="middle" '
                f'fill="{_TEXT_ON[c]}" pointer-events="none">{_e(_pct(n / total, 0))}</text>'
            )
        x += w
    return out


def svg_stacked_bar(counts: dict[str, int], *, label: str = "All probed questions", width: int = 720, height: int = 34) -> str:
    """One horizontal 100% stacked bar of category counts."""
    body = _segments(counts, 0, 0, width, height, label)
    return _svg(width, height, f"{label}: share of each category", body)


def svg_group_bars(rows: Sequence[tuple[str, dict[str, int]]], *, what: str = "questions", width: int = 720,
                   row_height: int = 18) -> str:
    """One 100% stacked bar per row (a group, a split...), labelled on the left with the row's total on the right."""
    label_w, count_w, gap = 180, 70, 4
    bar_w = width - label_w - count_w
    height = max(1, len(rows)) * (row_height + gap) + gap
    body: list[str] = []
    for i, (name, counts) in enumerate(rows):
        y = gap + i * (row_height + gap)
        short = name if len(name) <= 26 else name[:25] + "\u2026"
        total = sum(int(counts.get(c, 0) or 0) for c in CATEGORIES)
        body.append(
            f'<text x="{label_w - 6}" y="{_num(y + row_height / 2 + 4)}" font-size="11" text-anchor="end">'
            f"<title>{_e(name)}</title>{_e(short)}</text>"
        )
        body.extend(_segments(counts, label_w, y, bar_w, row_height, name, labels=row_height >= 16))
        body.append(
            f'<text x="{label_w + bar_w + 6}" y="{_num(y + row_height / 2 + 4)}" font-size="11">'
            f"<title>{_e(name)}: {total} {_e(what[:-1] if total == 1 and what.endswith('s') else what)}</title>{total}</text>"
        )
    return _svg(width, height, f"Share of each category per row ({len(rows)} rows)", body)


def svg_histogram(bins: Sequence[int], *, lo: float = 0.0, hi: float = 1.0, x_label: str = "P(T=0)",
                  what: str = "questions", width: int = 720, height: int = 240, color: str = _NEUTRAL) -> str:
    """Vertical bars of ``bins`` counts over equal-width bins from ``lo`` to ``hi``."""
    left, right, top, bottom = 64, 12, 10, 40
    pw, ph = width - left - right, height - top - bottom
    n_bins = max(1, len(bins))
    peak = max([int(b) for b in bins] + [0])
    y_max, ticks = _axis(0.0, float(max(1, peak)), integer=True)
    body: list[str] = []
    for t in ticks:
        y = top + ph - ph * t / y_max
        body.append(f'<line x1="{left}" x2="{left + pw}" y1="{_num(y)}" y2="{_num(y)}" stroke="#e0e0e0"/>')
        body.append(f'<text x="{left - 6}" y="{_num(y + 4)}" font-size="11" text-anchor="end">{_e(_tick_label(t, False))}</text>')
    bw = pw / n_bins
    for i, n in enumerate(bins):
        a, b = lo + (hi - lo) * i / n_bins, lo + (hi - lo) * (i + 1) / n_bins
        close = "]" if i == n_bins - 1 else ")"
        h = ph * int(n) / y_max
        tip = f"{x_label} in [{a:.2g}, {b:.2g}{close}: {int(n)} {what[:-1] if int(n) == 1 and what.endswith('s') else what}"
        body.append(
            f'<rect x="{_num(left + i * bw + 1)}" y="{_num(top + ph - h)}" width="{_num(bw - 2)}" height="{_num(h)}" '
            f'fill="{color}"><title>{_e(tip)}</title></rect>'
        )
        if n:
            body.append(
                f'<text x="{_num(left + (i + 0.5) * bw)}" y="{_num(top + ph - h - 3)}" font-size="10" '
                f'text-anchor="middle">{int(n)}</text>'
            )
    for i in range(n_bins + 1):
        x = left + i * bw
        v = lo + (hi - lo) * i / n_bins
        body.append(f'<text x="{_num(x)}" y="{top + ph + 14}" font-size="11" text-anchor="middle">{v:g}</text>')
    body.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#424242"/>')
    body.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" font-size="12" text-anchor="middle">{_e(x_label)}</text>')
    body.append(
        f'<text transform="translate(13 {top + ph / 2:.1f}) rotate(-90)" font-size="12" text-anchor="middle">{_e(what)}</text>'
    )
    return _svg(width, height, f"Histogram of {x_label}", body)


def _downsample(points: list[tuple[float, float]], limit: int) -> tuple[list[tuple[float, float]], int]:
    """Average consecutive points so at most ``limit`` remain; returns the points and the bucket size."""
    if len(points) <= limit:
        return points, 1
    size = math.ceil(len(points) / limit)
    out = []
    for i in range(0, len(points), size):
        chunk = points[i:i + size]
        out.append((sum(p[0] for p in chunk) / len(chunk), sum(p[1] for p in chunk) / len(chunk)))
    return out, size


def svg_line_chart(series: Sequence[dict], *, y_label: str, percent: bool = False, y_range: Optional[tuple[float, float]] = None,
                   best: Optional[tuple[float, str]] = None, x_label: str = "step", width: int = 720, height: int = 260) -> str:
    """Lines over steps. ``series``: ``{"name", "color", "points": [(x, y)], "markers": bool, "dash": bool}``;
    ``best``: ``(x, tooltip)`` draws the vertical dashed stopping line."""
    left, right, top, bottom = 56, 16, 20, 40
    pw, ph = width - left - right, height - top - bottom
    xs = [p[0] for s in series for p in s["points"]]
    ys = [p[1] for s in series for p in s["points"]]
    if best is not None:
        xs.append(best[0])
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    x_lo = min(0.0, x_lo)
    if x_hi <= x_lo:
        x_hi = x_lo + 1
    if y_range is not None:
        y_lo, y_hi = y_range
    else:
        y_lo = min([0.0] + ys)
        y_hi = max(ys) if ys else 1.0
        if y_hi <= y_lo:
            y_hi = y_lo + 1
        y_hi, _t = _axis(y_lo, y_hi)

    def px(x: float) -> float:
        return left + pw * (x - x_lo) / (x_hi - x_lo)

    def py(y: float) -> float:
        y = min(max(y, y_lo), y_hi)
        return top + ph - ph * (y - y_lo) / (y_hi - y_lo)

    body: list[str] = []
    for t in _ticks(y_lo, y_hi):
        y = py(t)
        body.append(f'<line x1="{left}" x2="{left + pw}" y1="{_num(y)}" y2="{_num(y)}" stroke="#e0e0e0"/>')
        body.append(f'<text x="{left - 6}" y="{_num(y + 4)}" font-size="11" text-anchor="end">{_e(_tick_label(t, percent))}</text>')
    for t in _ticks(x_lo, x_hi, 6, integer=True):
        x = px(t)
        body.append(f'<line x1="{_num(x)}" x2="{_num(x)}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#424242"/>')
        body.append(f'<text x="{_num(x)}" y="{top + ph + 16}" font-size="11" text-anchor="middle">{_e(_tick_label(t, False))}</text>')
    body.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#424242"/>')
    body.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" stroke="#424242"/>')
    body.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" font-size="12" text-anchor="middle">{_e(x_label)}</text>')
    body.append(
        f'<text transform="translate(13 {top + ph / 2:.1f}) rotate(-90)" font-size="12" text-anchor="middle">{_e(y_label)}</text>'
    )
    if best is not None:
        bx = px(best[0])
        body.append(
            f'<line x1="{_num(bx)}" x2="{_num(bx)}" y1="{top}" y2="{top + ph}" stroke="#212121" stroke-width="1.5" '
            f'stroke-dasharray="5 4" class="best"><title>{_e(best[1])}</title></line>'
        )
        anchor = "end" if bx > left + pw - 60 else "start"
        dx = -4 if anchor == "end" else 4
        body.append(f'<text x="{_num(bx + dx)}" y="{top - 6}" font-size="11" text-anchor="{anchor}">stopping point</text>')
    for s in series:
        pts = s["points"]
        if not pts:
            continue
        coords = " ".join(f"{_num(px(x))},{_num(py(y))}" for x, y in pts)
        dash = ' stroke-dasharray="3 3"' if s.get("dash") else ""
        tip = s.get("title") or s["name"]
        body.append(
            f'<polyline points="{coords}" fill="none" stroke="{s["color"]}" stroke-width="2"{dash}>'
            f"<title>{_e(tip)}</title></polyline>"
        )
        if s.get("markers") or len(pts) == 1:
            fmt = (lambda v: _pct(v)) if percent else (lambda v: f"{v:.4g}")
            for x, y in pts:
                body.append(
                    f'<circle cx="{_num(px(x))}" cy="{_num(py(y))}" r="3" fill="{s["color"]}">'
                    f"<title>{_e(s['name'])}, step {int(round(x))}: {_e(fmt(y))}</title></circle>"
                )
    return _svg(width, height, y_label + " by " + x_label, body)


# --------------------------------------------------------------------------- data reads


def _p_greedy_bins(project: Any, run_id: int, n_bins: int = 10) -> tuple[list[int], int]:
    """Counts of P(T=0) in ``n_bins`` equal bins over [0, 1] (the last one closed), and how many are NULL."""
    bins = [0] * n_bins
    rows = project.db.execute(
        "SELECT MIN(?, MAX(0, CAST(p_greedy * ? + 1e-9 AS INTEGER))) AS b, COUNT(*) FROM probe_results "
        "WHERE run_id = ? AND p_greedy IS NOT NULL GROUP BY b",
        [n_bins - 1, n_bins, run_id],
    ).fetchall()
    for b, n in rows:
        bins[int(b)] += int(n)
    null = project.db.execute(
        "SELECT COUNT(*) FROM probe_results WHERE run_id = ? AND p_greedy IS NULL", [run_id]
    ).fetchone()[0]
    return bins, int(null)


def _breakdown(project: Any, run: dict):
    """``(overall, groups, settings or None)``; settings that no longer parse do not break the report."""
    from .summary import breakdown

    try:
        b = breakdown(project, run["id"])
        return b.overall, b.groups, b.settings
    except (TypeError, ValueError):
        groups = project.category_counts(run["id"])
        overall: dict[str, int] = {}
        for counts in groups.values():
            for c, n in counts.items():
                overall[c] = overall.get(c, 0) + n
        return overall, groups, None


def _dataset_row(project: Any, dataset_id: Optional[int]) -> Optional[dict]:
    if dataset_id is None:
        return None
    try:
        return project.dataset(dataset_id)
    except ProjectError:
        return None


def _latest_plan_id(project: Any, probe_run_id: int) -> Optional[int]:
    row = project.db.execute(
        "SELECT id FROM plans WHERE probe_run_id = ? ORDER BY id DESC LIMIT 1", [probe_run_id]
    ).fetchone()
    return int(row[0]) if row else None


def _latest_train_run_id(project: Any, plan_id: int) -> Optional[int]:
    row = project.db.execute(
        "SELECT id FROM train_runs WHERE plan_id = ? ORDER BY id DESC LIMIT 1", [plan_id]
    ).fetchone()
    return int(row[0]) if row else None


def _plan_probe_run(project: Any, plan_id: int) -> Optional[int]:
    row = project.db.execute("SELECT probe_run_id FROM plans WHERE id = ?", [plan_id]).fetchone()
    if row is None:
        raise ProjectError(f"{project.path} has no plan number {plan_id}.")
    return int(row[0]) if row[0] is not None else None


# --------------------------------------------------------------------------- sections


def _header(project: Any, generated: _dt.datetime, ids: dict) -> str:
    name = Path(project.path).name
    parts = [f"<h1>KnowMix report: {_e(name)}</h1>"]
    parts.append(
        f'<p class="meta">Project file <code>{_e(name)}</code> &middot; generated {_e(generated.strftime("%Y-%m-%d %H:%M"))} '
        f"&middot; KnowMix {_e(__version__)}</p>"
    )
    what = [f"probe run {ids['probe']}"]
    if ids.get("plan") is not None:
        what.append(f"plan {ids['plan']}")
    if ids.get("train") is not None:
        what.append(f"training run {ids['train']}")
    parts.append(f'<p class="meta">This report covers {_e(", ".join(what))}.</p>')
    links = ['<a href="#probe">Probe</a>', '<a href="#breakdown">Breakdown</a>', '<a href="#plan">Plan</a>',
             '<a href="#training">Training</a>']
    parts.append(f"<nav>{''.join(links)}</nav>")
    return "<header>" + "".join(parts) + "</header>"


def _probe_section(project: Any, run: dict, n_probed: int, settings: Any) -> str:
    out = ['<section id="probe"><h2>Probe</h2>']
    status = str(run.get("status") or "unknown")
    n_total = int(run.get("n_total") or 0)
    unfinished = status != "finished" or n_probed < n_total
    if unfinished:
        why = {
            "running": "is still running, or was stopped before it finished",
            "cancelled": "was cancelled",
            "failed": "failed",
            "finished": "is marked finished but has fewer results than questions",
        }.get(status, f"is {status}")
        out.append(
            f'<p class="note">This probe is not finished: {n_probed} of {n_total} questions probed (the run {_e(why)}). '
            "The numbers below cover only the probed questions. Run the same probe again to resume it; finished "
            "questions are kept.</p>"
        )
    rows: list[tuple[str, Any]] = [
        ("Probe run", run.get("id")),
        ("Model", run.get("model_name") or run.get("model_spec") or "-"),
        ("Model path", run.get("model_path") or "-"),
        ("Backend", run.get("backend") or "-"),
        ("Model fingerprint", _Raw(f"<code>{_e(run.get('model_fingerprint') or '-')}</code>")),
    ]
    ds = _dataset_row(project, run.get("dataset_id"))
    if ds is not None:
        rows += [
            ("Dataset", f"{ds.get('name')} ({ds.get('n_examples')} questions)"),
            ("Dataset path", ds.get("path") or "-"),
            ("Dataset file sha256", _Raw(f"<code>{_e(ds.get('file_sha256') or '-')}</code>")),
            ("Dataset content sha256", _Raw(f"<code>{_e(ds.get('content_sha256') or '-')}</code>")),
        ]
    else:
        rows.append(("Dataset", f"dataset {run.get('dataset_id')} (not found in the project)"))
    pool = _dataset_row(project, run.get("pool_dataset_id"))
    if pool is not None:
        rows += [
            ("Exemplar pool", f"{pool.get('name')} ({pool.get('n_examples')} questions) at {pool.get('path')}"),
            ("Pool content sha256", _Raw(f"<code>{_e(pool.get('content_sha256') or '-')}</code>")),
        ]
    else:
        rows.append(("Exemplar pool", "the dataset itself (a question never sees itself as an exemplar)"))
    if settings is not None:
        budget = settings.describe()
        flag = "" if settings.is_paper_budget else "<strong class=\"flag\">Not the paper's budget.</strong> "
        rows.append(("Budget", _Raw(f"{flag}{_e(budget)}")))
    else:
        rows.append(("Budget", "unknown: the stored settings could not be read"))
    rows += [
        ("Status", status),
        ("Questions probed", f"{n_probed} of {n_total}"),
        ("Time", _duration(run.get("seconds"))),
        ("Started", _when(run.get("created_at"))),
        ("Finished", _when(run.get("finished_at"))),
    ]
    if run.get("note"):
        rows.append(("Note", run.get("note")))
    out.append(_kv_table(rows))
    out.append("<h3>Probe settings</h3>")
    out.append(_settings_table(run.get("settings")))
    out.append("</section>")
    return "".join(out)


def _count_cells(counts: dict[str, int]) -> str:
    n = sum(counts.get(c, 0) for c in CATEGORIES)
    cells = "".join(
        f'<td class="n">{counts.get(c, 0)}</td><td class="n">{_pct(counts.get(c, 0) / n if n else 0.0)}</td>'
        for c in CATEGORIES
    )
    return f'{cells}<td class="n">{n}</td>'


def _breakdown_section(project: Any, run: dict, overall: dict[str, int], groups: dict[str, dict[str, int]]) -> str:
    out = ['<section id="breakdown"><h2>Category breakdown</h2>']
    total = sum(overall.values())
    if total == 0:
        out.append(_missing(
            "No question has been probed yet, so there is no breakdown. Run (or resume) the probe: "
            "knowmix probe, or the Probe page in the app."
        ))
        out.append("</section>")
        return "".join(out)
    out.append(
        f"<p>{total} probed question{'s' if total != 1 else ''} in {_plural(len(groups), 'group')}. "
        "HighlyKnown: the model always answers right (P(T=0) = 1); MaybeKnown: sometimes (0 &lt; P(T=0) &lt; 1); "
        "WeaklyKnown: only when sampling (P(T=0) = 0, P(T&gt;0) &gt; 0); Unknown: never.</p>"
    )
    out.append(_legend())
    out.append("<h3>All questions</h3>")
    out.append(svg_stacked_bar(overall))
    head = "".join(f'<th colspan="2">{_e(c)}</th>' for c in CATEGORIES)
    out.append(f"<table><tr><th>group</th>{head}<th>total</th></tr>")
    ordered = sorted(groups.items(), key=lambda kv: _natural(str(kv[0])))
    if len(ordered) > 1:
        for g, counts in ordered:
            out.append(f"<tr><td>{_e(g)}</td>{_count_cells(counts)}</tr>")
    out.append(f"<tr><th>all</th>{_count_cells(overall)}</tr></table>")
    out.append(f"<h3>Per group ({len(ordered)})</h3>")
    shown = ordered
    if len(ordered) > _MAX_GROUP_BARS:
        shown = sorted(ordered, key=lambda kv: (-sum(kv[1].values()), _natural(str(kv[0]))))[:_MAX_GROUP_BARS]
        shown.sort(key=lambda kv: _natural(str(kv[0])))
        out.append(f'<p class="caption">The chart shows the {_MAX_GROUP_BARS} largest of {len(ordered)} groups; '
                   "the table above lists all of them.</p>")
    out.append(svg_group_bars(shown))
    out.append('<p class="caption">Each bar is one group, split by category (100%); the number on the right is the '
               "group's probed questions. Hover a segment for its count.</p>")
    bins, null = _p_greedy_bins(project, int(run["id"]))
    out.append("<h3>Greedy accuracy P(T=0)</h3>")
    if sum(bins):
        out.append(svg_histogram(bins))
        skipped = f" {null} question{'s have' if null != 1 else ' has'} no P(T=0) recorded and {'are' if null != 1 else 'is'} left out." if null else ""
        out.append(
            '<p class="caption">Share of greedy answers that were right, per question, in 10 bins (the last holds '
            f"0.9 to 1.0 inclusive). 0 is WeaklyKnown or Unknown, 1 is HighlyKnown.{_e(skipped)}</p>"
        )
    else:
        out.append(_missing("No question has a P(T=0) recorded, so there is no histogram."))
    out.append("</section>")
    return "".join(out)


def _plan_section(plan: Any, note: str) -> str:
    from .plan import MIX_LABELS

    out = ['<section id="plan"><h2>Plan</h2>']
    if note:
        out.append(f'<p class="note">{_e(note)}</p>')
    c = plan.counts()
    rows: list[tuple[str, Any]] = [
        ("Plan", f"{plan.id}: {plan.name}" if plan.name else plan.id),
        ("Mix", MIX_LABELS.get(plan.settings.mix, plan.settings.mix)),
        ("From probe run", plan.probe_run_id),
        ("Created", _when(plan.created_at)),
        ("Training set", f"{c['train']['total']} questions" + (
            f" ({c['relabelled']} Unknown relabelled \"I don't know\")" if c["relabelled"] else "")),
        ("Dev split", f"{c['dev']['total']} questions"),
        ("Dropped", f"{c['dropped']['total']} questions"),
    ]
    out.append(_kv_table(rows))
    out.append("<h3>Plan settings</h3>")
    out.append(_settings_table(json.dumps(plan.settings.to_dict())))
    out.append("<h3>Before and after</h3>")
    out.append(_legend())
    parts = [("All probed", c["before"]), ("Dev split", c["dev"]), ("Training set", c["train"]), ("Dropped", c["dropped"])]
    out.append(svg_group_bars([(label, p["counts"]) for label, p in parts], row_height=22))
    head = "".join(f'<th colspan="2">{_e(label)}</th>' for label, _p in parts)
    out.append(f"<table><tr><th>category</th>{head}</tr>")
    for cat in CATEGORIES:
        cells = "".join(
            f'<td class="n">{p["counts"].get(cat, 0)}</td><td class="n">{_pct(p["shares"].get(cat, 0.0))}</td>' for _l, p in parts
        )
        out.append(f"<tr><td>{_e(cat)}</td>{cells}</tr>")
    totals = "".join(f'<td class="n">{p["total"]}</td><td></td>' for _l, p in parts)
    out.append(f"<tr><th>total</th>{totals}</tr></table>")
    warnings = plan.warnings()
    if warnings:
        out.append("<h3>Warnings</h3>")
        out.extend(f'<p class="warn">{_e(w)}</p>' for w in warnings)
    out.append("<h3>Why this plan</h3>")
    out.append(f'<pre class="explain">{_e(plan.explain())}</pre>')
    out.append("</section>")
    return "".join(out)


def _eval_series(history: list[dict]) -> tuple[list[tuple[float, float]], dict[str, list[tuple[float, float]]], list[tuple[float, float]]]:
    dev: list[tuple[float, float]] = []
    fit: dict[str, list[tuple[float, float]]] = {}
    fit_all: list[tuple[float, float]] = []
    for rec in history:
        step = float(rec["step"])
        v = rec.get("dev_em")
        if isinstance(v, (int, float)) and math.isfinite(v):
            dev.append((step, float(v)))
        for cat, share in (rec.get("fit") or {}).items():
            if isinstance(share, (int, float)) and math.isfinite(share):
                fit.setdefault(cat, []).append((step, float(share)))
        v = rec.get("fit_all")
        if isinstance(v, (int, float)) and math.isfinite(v):
            fit_all.append((step, float(v)))
    return dev, fit, fit_all


def _training_section(project: Any, row: dict, note: str) -> str:
    from .train.runs import eval_history, metric_series

    run_id = int(row["id"])
    out = ['<section id="training"><h2>Training</h2>']
    if note:
        out.append(f'<p class="note">{_e(note)}</p>')
    status = str(row.get("status") or "unknown")
    stop = row.get("stop_reason")
    fit_best = _json(row.get("fit_at_best"))
    fit_text = (
        ", ".join(f"{cat} {_pct(v, 0)}" for cat, v in fit_best.items()) if isinstance(fit_best, dict) and fit_best else "-"
    )
    best_step = row.get("best_step")
    best_epoch = row.get("best_epoch")
    best_em = row.get("best_dev_em")
    rows: list[tuple[str, Any]] = [
        ("Training run", run_id),
        ("Plan", row.get("plan_id") if row.get("plan_id") is not None else "none (items given directly)"),
        ("Model", row.get("model_name") or row.get("model_spec") or "-"),
        ("Model path", row.get("model_path") or "-"),
        ("Status", status),
        ("Stop reason", _STOP_WORDS.get(str(stop), stop) if stop else "-"),
        ("Examples", f"{row.get('n_train') or 0} train, {row.get('n_dev') or 0} dev"),
        ("Progress", f"step {row.get('step') or 0} of {row.get('total_steps') or '?'}, epoch {float(row.get('epoch') or 0):g}"),
        ("Best evaluation (stopping point)",
         f"epoch {float(best_epoch):g}, step {best_step}, dev exact match {_pct(best_em)}" if best_step is not None else "none yet"),
        ("Train fit at best", fit_text),
        ("Adapter", row.get("adapter_dir") or "-"),
    ]
    if row.get("merged_dir"):
        rows.append(("Merged model", row.get("merged_dir")))
    rows += [("Run folder", row.get("folder") or "-"), ("Time", _duration(row.get("seconds"))),
             ("Started", _when(row.get("started_at") or row.get("created_at"))), ("Finished", _when(row.get("finished_at")))]
    if row.get("error"):
        rows.append(("Error", row.get("error")))
    out.append(_kv_table(rows))
    out.append("<h3>Training settings</h3>")
    out.append(_settings_table(row.get("settings")))

    loss = [(float(s), v) for s, _e_, v in metric_series(project, run_id, "loss") if math.isfinite(v)]
    history = eval_history(project, run_id)
    dev, fit, fit_all = _eval_series(history)
    best = None
    if best_step is not None:
        tip = f"Stopping point: step {best_step}"
        if best_epoch is not None:
            tip += f" (epoch {float(best_epoch):g})"
        if best_em is not None:
            tip += f", best dev exact match {_pct(best_em)}"
        best = (float(best_step), tip)
    if not loss and not history:
        out.append(_missing(
            "No metrics recorded yet: the run has not finished its first training step. Start or resume it "
            "(knowmix train / knowmix resume) and make the report again."
        ))
        out.append("</section>")
        return "".join(out)
    out.append("<h3>Training loss</h3>")
    if loss:
        pts, size = _downsample(loss, _MAX_LINE_POINTS)
        avg = f"; each point averages {size} steps" if size > 1 else ""
        out.append(svg_line_chart(
            [{"name": "training loss", "color": _LOSS_COLOR, "points": pts,
              "title": f"training loss over {len(loss)} steps: {loss[0][1]:.4g} at step {int(loss[0][0])}, "
                       f"{loss[-1][1]:.4g} at step {int(loss[-1][0])}"}],
            y_label="loss", best=best,
        ))
        out.append(f'<p class="caption">Loss per optimizer step{_e(avg)}. The dashed line marks the stopping point '
                   "(best dev exact match).</p>")
    else:
        out.append(_missing("No training loss recorded yet."))
    out.append("<h3>Dev exact match</h3>")
    if dev:
        out.append(svg_line_chart(
            [{"name": "dev exact match", "color": _DEV_COLOR, "points": dev, "markers": True}],
            y_label="dev exact match", percent=True, y_range=(0.0, 1.0), best=best,
        ))
        out.append('<p class="caption">Exact match on the held-out dev split at each evaluation; training keeps the '
                   "adapter of the best one (dashed line).</p>")
    else:
        out.append(_missing("No evaluation yet: dev exact match is measured at the end of each epoch."))
    out.append("<h3>Train fit per category</h3>")
    if fit:
        cats = [c for c in CATEGORIES if c in fit] + sorted(c for c in fit if c not in CATEGORIES)
        series = [
            {"name": f"{c} fitted", "color": CATEGORY_COLORS.get(c, _NEUTRAL), "points": fit[c], "markers": True}
            for c in cats
        ]
        if fit_all:
            series.append({"name": "all categories fitted", "color": "#757575", "points": fit_all, "dash": True})
        out.append(_legend([c for c in cats if c in CATEGORY_COLORS]))
        out.append(svg_line_chart(series, y_label="share of training examples fitted", percent=True,
                                  y_range=(0.0, 1.0), best=best))
        out.append('<p class="caption">Share of a sample of training examples of each category the model answers '
                   "exactly (grey dashed: all categories). The paper found Unknown examples fitted much later than "
                   "known ones, and fitting them lowers test accuracy.</p>")
    else:
        out.append(_missing("No train-fit measurement yet: it is taken at each evaluation."))
    out.append("</section>")
    return "".join(out)


# --------------------------------------------------------------------------- public API


def build_report(project: Any, *, probe_run_id: Optional[int] = None, plan_id: Optional[int] = None,
                 train_run_id: Optional[int] = None) -> str:
    """The project's report as one HTML page (text). Defaults: the latest probe run, its latest plan,
    that plan's latest training run. A run or plan number that does not exist raises ``ProjectError``;
    so does a project with no probe at all."""
    from .plan import load_plan
    from .train.runs import get_run

    train_row = get_run(project, train_run_id) if train_run_id is not None else None
    if plan_id is None and train_row is not None and train_row.get("plan_id") is not None:
        plan_id = int(train_row["plan_id"])
    if probe_run_id is None and plan_id is not None:
        probe_run_id = _plan_probe_run(project, plan_id)
    run = project.probe_run(probe_run_id)
    run_id = int(run["id"])
    overall, groups, settings = _breakdown(project, run)
    n_probed = sum(overall.values())

    notes_plan, notes_train = "", ""
    plan = None
    if plan_id is None:
        plan_id = _latest_plan_id(project, run_id)
    if plan_id is not None:
        plan = load_plan(project, plan_id)
        if plan.probe_run_id != run_id:
            notes_plan = f"Plan {plan.id} was made from probe run {plan.probe_run_id}, not from probe run {run_id} shown above."
    if train_row is None and plan is not None:
        tid = _latest_train_run_id(project, int(plan.id))
        train_row = get_run(project, tid) if tid is not None else None
    if train_row is not None and plan is not None and train_row.get("plan_id") != plan.id:
        notes_train = (f"Training run {train_row['id']} was made from "
                       + (f"plan {train_row['plan_id']}" if train_row.get("plan_id") is not None else "items given directly")
                       + f", not from plan {plan.id} shown above.")

    generated = _dt.datetime.now()
    ids = {"probe": run_id, "plan": plan.id if plan is not None else None,
           "train": train_row["id"] if train_row is not None else None}
    body = [_header(project, generated, ids), _probe_section(project, run, n_probed, settings),
            _breakdown_section(project, run, overall, groups)]

    unfinished = str(run.get("status")) != "finished" or n_probed < int(run.get("n_total") or 0)
    if plan is not None:
        body.append(_plan_section(plan, notes_plan))
    else:
        if unfinished:
            why = (f"the probe is not finished ({n_probed} of {int(run.get('n_total') or 0)} questions probed). Resume the "
                   "probe, then make a plan with knowmix plan (or the Plan page in the app).")
        else:
            why = "make one from this probe with knowmix plan (or the Plan page in the app)."
        body.append(f'<section id="plan"><h2>Plan</h2>{_missing(f"No plan for probe run {run_id} yet: {why}")}</section>')
    if train_row is not None:
        body.append(_training_section(project, train_row, notes_train))
    else:
        if plan is not None:
            text = f"No training run for plan {plan.id} yet: knowmix train --plan {plan.id} (or the Train page in the app) runs one."
        else:
            text = "No training run yet: training needs a plan first (knowmix plan, then knowmix train)."
        body.append(f'<section id="training"><h2>Training</h2>{_missing(text)}</section>')
    body.append(f"<footer>Generated offline by KnowMix {_e(__version__)} on {_e(generated.strftime('%Y-%m-%d %H:%M'))}. "
                "This file needs no network: charts are inline SVG; hover a bar or point for its number.</footer>")
    title = f"KnowMix report: {Path(project.path).name}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def default_report_path(project_path: str | os.PathLike) -> Path:
    """``<project folder>/<project stem>-report.html``."""
    p = Path(project_path).expanduser()
    return p.with_name(f"{p.stem}-report.html")


def write_report(project_path: str | os.PathLike, out_path: Optional[str | os.PathLike] = None, *,
                 probe_run_id: Optional[int] = None, plan_id: Optional[int] = None,
                 train_run_id: Optional[int] = None) -> Path:
    """Build the report of the project file and write it atomically (a temp file, then a rename).

    ``out_path`` defaults to ``default_report_path(project_path)``. Returns the written path."""
    from .store import Project

    out = Path(out_path).expanduser() if out_path is not None else default_report_path(project_path)
    with Project(project_path, create=False) as project:
        text = build_report(project, probe_run_id=probe_run_id, plan_id=plan_id, train_run_id=train_run_id)
    if out.is_dir():
        raise ProjectError(f"{out} is a folder; give a file name for the report, for example {out / 'report.html'}.")
    write_text_atomic(out, text, what="the report to ", advice="Pick a folder you can write to.")
    return out
