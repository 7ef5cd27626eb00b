"""Rendering the report: jinja2 with autoescape over the templates in ``templates.py``.

jinja2 escapes every value it writes (``autoescape=True``), so user text in the report needs no
escaping by hand. jinja2 comes with llama-cpp-python and torch; it is imported on the first
report, not with ``core.report``.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Iterable

from .. import __version__
from .checks import check_view
from .data import ReportData
from .views import breakdown_view, no_plan_text, no_training_text, plan_view, probe_view, training_view


def num(x: Any) -> str:
    """A coordinate for SVG: short and locale-free ("12", "12.5")."""
    x = float(x)
    if not math.isfinite(x):
        x = 0.0
    s = f"{x:.1f}"
    return s[:-2] if s.endswith(".0") else s


def points(pts: Iterable[tuple[float, float]]) -> str:
    """An SVG polyline's ``points`` attribute."""
    return " ".join(f"{num(x)},{num(y)}" for x, y in pts)


@functools.lru_cache(maxsize=1)
def environment() -> Any:
    """The one jinja2 environment (templates are compiled once per process)."""
    import jinja2

    from .charts import pct
    from .templates import TEMPLATES

    env = jinja2.Environment(
        loader=jinja2.DictLoader(TEMPLATES),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(num=num, points=points, pct=pct)
    return env


def render(data: ReportData) -> str:
    """The report as one HTML page."""
    covers = [f"probe run {data.ids['probe']}"]
    if data.ids.get("plan") is not None:
        covers.append(f"plan {data.ids['plan']}")
    if data.ids.get("train") is not None:
        covers.append(f"training run {data.ids['train']}")
    context = {
        "name": data.project_name,
        "generated": data.generated.strftime("%Y-%m-%d %H:%M"),
        "version": __version__,
        "covers": ", ".join(covers),
        "probe": probe_view(data.probe),
        "bd": breakdown_view(data.probe),
        "plan": plan_view(data.plan, data.plan_note) if data.plan is not None else None,
        "no_plan": no_plan_text(data.probe),
        "train": training_view(data.training) if data.training is not None else None,
        "no_training": no_training_text(data.plan),
        "check": check_view(data.checks, data.check_runs, data.ids.get("train"), data.project_path or data.project_name),
    }
    return environment().get_template("report.html").render(context)
