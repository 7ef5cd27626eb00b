"""A self-contained HTML report of a project: probe, category breakdown, plan and training run.

The report is one file a teammate can open in any browser with no network: no scripts, no
external stylesheets or fonts, and every chart is inline SVG. Sections that need a step not done
yet (a plan, a training run) are replaced by one sentence saying what is missing and which step
produces it.

Modules
    ``data``       what the report shows, read from the project through the store (no SQL here)
    ``views``      each section's words, table rows and charts
    ``charts``     the charts as geometry (bars, lines, ticks)
    ``templates``  the jinja2 templates (strings: no data files to ship)
    ``render``     jinja2 with autoescape: every value is escaped by jinja2, none by hand
    ``build``      ``build_report``, ``write_report``, ``default_report_path``

``CATEGORY_COLORS``, the one palette of the SliCK categories, lives in ``core.categories`` (re-exported
here for old importers); the GUI imports it from there so its charts match the report's.

This module is the package's public face: the app imports the check's words and tables
(``checks``) from here, never from ``core.report.checks`` (an import-linter contract says so).
"""

from __future__ import annotations

from .build import build_report, default_report_path, write_report
from .charts import CATEGORY_COLORS
from .checks import (
    AFTER_COLORS,
    AFTER_TEXT_ON,
    SPLIT_TITLES,
    after_columns,
    category_label,
    compare,
    error_rows,
    latest_per_run,
    ordered_splits,
    split_sentences,
    stopping_words,
    transition_rows,
)

__all__ = [
    "AFTER_COLORS",
    "AFTER_TEXT_ON",
    "CATEGORY_COLORS",
    "SPLIT_TITLES",
    "after_columns",
    "build_report",
    "category_label",
    "compare",
    "default_report_path",
    "error_rows",
    "latest_per_run",
    "ordered_splits",
    "split_sentences",
    "stopping_words",
    "transition_rows",
    "write_report",
]
