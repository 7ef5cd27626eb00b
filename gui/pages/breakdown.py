"""Step 5, Breakdown: what the probe found, overall and per group, and every example with its answers.

The counts come straight from SQL (``core.summary.breakdown``), so the headline, the count table
and the bars appear at once. The example table can hold 100k rows: a background job reads them
into plain lists and numpy arrays, and ``ExampleModel`` (``gui.example_table``) filters and sorts an
index array itself (no per-row Python callbacks as a QSortFilterProxyModel would make). Selecting an example reads
its answers per exemplar set from the project and shows which were correct.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Optional

from core.categories import CATEGORIES
from core.formats import percent
from core.probe import SWAP_REASONS, ProbeSettings
from core.scoring import scorer_for

from ..charts import CATEGORY_COLORS, CategoryBars, Histogram
from ..example_table import DASH, ExampleData, ExampleModel, fmt_p
from ..qt import Qt, QtCore, QtGui, QtWidgets
from .base import BLOCKED, DONE, READY, InlineMessage, Page

ALL_CATEGORIES = "All categories"
ALL_GROUPS = "All groups"
SEARCH_DEBOUNCE_MS = 200
RELOAD_INTERVAL_MS = 500  # reload() re-reads at most twice a second (each read redraws the charts and table)
OK_COLOR, BAD_COLOR = "#2e7d32", "#c62828"


# -- data --------------------------------------------------------------------------------------------
def load_example_data(project: Any, run_id: int) -> ExampleData:
    """Read a run's examples (a ``ProjectOp``'s work: on a worker thread, with its own connection)."""
    from core.store import example_rows

    run = project.probe_run(run_id)
    return ExampleData.from_rows(run_id, example_rows(project, run_id, run.dataset_id))


# -- the page ------------------------------------------------------------------------------------------
class BreakdownPage(Page):
    """Step 5: the counts and bars at once (SQL), the example table when its background load ends."""

    title = "Breakdown"
    key = "breakdown"

    def __init__(self, ctx: Any, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(ctx, parent)
        self.breakdown: Any = None  # the core.summary.Breakdown shown
        self._generation = 0
        self._load_job: Any = None
        self._reload_pending = False
        self._selected_id: Optional[str] = None
        self.last_load_seconds: Optional[float] = None
        self._sized_top = False
        self._since_refresh = QtCore.QElapsedTimer()
        self._reload_timer = QtCore.QTimer(self)
        self._reload_timer.setSingleShot(True)
        self._reload_timer.timeout.connect(self.reload)

        root = QtWidgets.QVBoxLayout(self)
        self._build_header(root)
        self.body = QtWidgets.QSplitter(Qt.Orientation.Vertical)
        self.body.setObjectName("breakdownSplitter")
        self.body.setChildrenCollapsible(False)
        root.addWidget(self.body, 1)
        self.body.addWidget(self._build_charts())
        self.body.addWidget(self._build_examples())
        self.body.setStretchFactor(0, 4)
        self.body.setStretchFactor(1, 5)
        self._connect_filters()
        self._show_empty(self._no_run_text())

    def _build_header(self, root: QtWidgets.QVBoxLayout) -> None:
        root.addWidget(
            self.heading(
                "Breakdown",
                "Which training examples the model already knows (SliCK categories, from the Probe step), overall and per "
                "group. Select an example to see the model's answers for each exemplar set.",
            )
        )
        self.message = InlineMessage()
        self.message.setObjectName("breakdownMessage")
        root.addWidget(self.message)
        self.headline = QtWidgets.QLabel("")
        self.headline.setObjectName("breakdownHeadline")
        self.headline.setWordWrap(True)
        self.headline.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        root.addWidget(self.headline)

    def _build_charts(self) -> QtWidgets.QSplitter:
        """The top half: the count table, the category bars (overall, then per group) and the histogram."""
        top = QtWidgets.QSplitter(Qt.Orientation.Horizontal)
        top.setObjectName("chartSplitter")
        top.setChildrenCollapsible(False)
        self.top_split = top
        top.addWidget(self._build_count_table())
        top.addWidget(self._build_bars())
        self.histogram = Histogram()
        self.histogram.setObjectName("pGreedyHistogram")
        self.histogram.setMinimumWidth(240)
        top.addWidget(self.histogram)
        top.setStretchFactor(1, 1)
        return top

    def _build_count_table(self) -> QtWidgets.QTableWidget:
        self.count_table = QtWidgets.QTableWidget(0, len(CATEGORIES) + 2)
        self.count_table.setObjectName("countTable")
        # "Highly\nKnown": two-line headers keep the columns as narrow as their numbers, so the table
        # fits beside the charts at 1280 px (with short group names) without a scroll bar of its own
        self.count_table.setHorizontalHeaderLabels(["group", *(_two_lines(c) for c in CATEGORIES), "total"])
        self.count_table.verticalHeader().hide()
        self.count_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.count_table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
        self.count_table.setAlternatingRowColors(True)
        self.count_table.setToolTip("Examples per category: count (share of the row)")
        return self.count_table

    def _build_bars(self) -> QtWidgets.QWidget:
        """One bar for the whole run with the legend, then one per group in a scroll area (there may be many)."""
        bars_box = QtWidgets.QWidget()
        bars_lay = QtWidgets.QVBoxLayout(bars_box)
        bars_lay.setContentsMargins(0, 0, 0, 0)
        self.overall_bars = CategoryBars(show_legend=True)
        self.overall_bars.setObjectName("overallBars")
        bars_lay.addWidget(self.overall_bars)
        self.group_bars = CategoryBars(show_legend=False)
        self.group_bars.setObjectName("groupBars")
        self.group_scroll = QtWidgets.QScrollArea()
        self.group_scroll.setWidget(self.group_bars)
        self.group_scroll.setWidgetResizable(True)
        self.group_scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.group_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        bars_lay.addWidget(self.group_scroll, 1)
        return bars_box

    def _build_examples(self) -> QtWidgets.QWidget:
        """The bottom half: the filters, then the example table beside the selected example's answers."""
        bottom = QtWidgets.QWidget()
        bot_lay = QtWidgets.QVBoxLayout(bottom)
        bot_lay.setContentsMargins(0, 4, 0, 0)
        bot_lay.addLayout(self._build_filters())
        split = QtWidgets.QSplitter(Qt.Orientation.Horizontal)
        self.example_split = split
        split.setObjectName("exampleSplitter")
        split.setChildrenCollapsible(False)
        split.addWidget(self._build_table())
        self.detail = QtWidgets.QTextBrowser()
        self.detail.setObjectName("exampleDetail")
        self.detail.setOpenLinks(False)
        self.detail.setPlaceholderText("Select an example to see its answers for each exemplar set.")
        split.addWidget(self.detail)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        bot_lay.addWidget(split, 1)
        return bottom

    def _build_filters(self) -> QtWidgets.QHBoxLayout:
        filters = QtWidgets.QHBoxLayout()
        self.category_combo = QtWidgets.QComboBox()
        self.category_combo.setObjectName("categoryFilter")
        self.category_combo.addItems([ALL_CATEGORIES, *CATEGORIES])
        self.category_combo.setAccessibleName("Filter by category")
        self.group_combo = QtWidgets.QComboBox()
        self.group_combo.setObjectName("groupFilter")
        self.group_combo.addItem(ALL_GROUPS)
        self.group_combo.setAccessibleName("Filter by group")
        self.group_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.search = QtWidgets.QLineEdit()
        self.search.setObjectName("exampleSearch")
        self.search.setPlaceholderText("Search questions and answers")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search questions and answers")
        self.count_label = QtWidgets.QLabel("")
        self.count_label.setObjectName("exampleCount")
        filters.addWidget(QtWidgets.QLabel("Examples:"))
        filters.addWidget(self.category_combo)
        filters.addWidget(self.group_combo)
        filters.addWidget(self.search, 1)
        filters.addWidget(self.count_label)
        return filters

    def _build_table(self) -> QtWidgets.QTableView:
        self.model = ExampleModel(self)
        self.table = QtWidgets.QTableView()
        self.table.setObjectName("exampleTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        vh = self.table.verticalHeader()
        vh.hide()
        vh.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Fixed)  # never measures 100k rows
        vh.setDefaultSectionSize(self.fontMetrics().height() + 8)
        self._size_columns()
        self.table.setSortingEnabled(True)
        return self.table

    def _size_columns(self) -> None:
        """Fixed widths from sample texts (measuring 100k rows would freeze the page); the question stretches."""
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Interactive)
        hh.setStretchLastSection(False)
        hh.setHighlightSections(False)
        fm = self.fontMetrics()
        for col, sample in enumerate(("01234567", "P1234", "WeaklyKnown", "", "answer; alias", "P(T=0) ", "P(T>0) ")):
            if sample:
                icon = self.table.iconSize().width() + 10 if col == 2 else 0  # the category's colour swatch
                self.table.setColumnWidth(col, fm.horizontalAdvance(sample) + 28 + icon)
        hh.setSectionResizeMode(3, QtWidgets.QHeaderView.ResizeMode.Stretch)
        hh.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)

    def _connect_filters(self) -> None:
        """Combos filter at once; the search box waits until typing pauses (``SEARCH_DEBOUNCE_MS``)."""
        self._search_timer = QtCore.QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DEBOUNCE_MS)
        self._search_timer.timeout.connect(self.apply_filters)
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        self.category_combo.currentIndexChanged.connect(lambda _i: self.apply_filters())
        self.group_combo.currentIndexChanged.connect(lambda _i: self.apply_filters())
        self.model.filtered.connect(self._after_filter)
        self.table.selectionModel().currentRowChanged.connect(self._current_changed)

    # -- Page API -----------------------------------------------------------------------------------
    def watched_fields(self) -> tuple[str, ...]:
        return ("project_path", "probe_run_id")

    def step_state(self) -> tuple[str, str]:
        if self.ctx.project_path is None:
            return BLOCKED, "Open a project first."
        run_id = self.ctx.probe_run_id
        if run_id is None:
            return BLOCKED, "Probe a dataset first (Probe step)."
        has = self.ctx.probe_has_results(run_id)  # kept by the context while a probe runs: no disk read per update
        if has is None:
            return BLOCKED, "The project cannot be read."
        if has:
            return DONE, f"Probe run {run_id} has results."
        return READY, f"Probe run {run_id} has no results yet."

    def refresh(self) -> None:
        self._since_refresh.start()
        self._generation += 1
        run_id = self.ctx.probe_run_id
        if self.ctx.project_path is None or run_id is None:
            self._show_empty(self._no_run_text())
            return
        from core.summary import breakdown

        with self.ctx.project() as p:
            b = breakdown(p, run_id)
        self.breakdown = b
        self.ctx.note_probe_run(run_id, status=b.run.status, has_results=b.total > 0)
        self.message.clear_message()
        self.body.show()
        self.headline.setText(b.headline())
        self._fill_counts(b)
        self.overall_bars.set_rows([("All", b.overall)])
        self.group_bars.set_rows([(g, b.groups[g]) for g in sorted(b.groups)])
        if not b.total:
            self.message.show_message("This probe run has no results yet. Start or resume it in the Probe step.", "info")
        self._start_load(self.ctx.project_path, run_id)

    def reload(self) -> None:
        """Re-read the breakdown and the examples (the probe page calls this when a probe ends).

        A hidden page only marks itself stale (it re-reads when shown), and a visible one re-reads
        at most every ``RELOAD_INTERVAL_MS``: a later call in between is folded into one re-read."""
        if not self.isVisible():
            self._reload_timer.stop()
            self._dirty = True
            return
        wait = RELOAD_INTERVAL_MS - self._since_refresh.elapsed() if self._since_refresh.isValid() else 0
        if wait > 0:
            if not self._reload_timer.isActive():
                self._reload_timer.start(int(wait))
            return
        self._reload_timer.stop()
        self.refresh_now()

    # -- loading ------------------------------------------------------------------------------------------
    def _no_run_text(self) -> str:
        if self.ctx.project_path is None:
            return "No project is open. Open or create one in the Project step, then probe a dataset in the Probe step."
        return "No probe results yet. Run a probe in the Probe step; its breakdown appears here."

    def _show_empty(self, text: str) -> None:
        self.breakdown = None
        self.message.show_message(text, "info")
        self.headline.setText("")
        self.count_table.setRowCount(0)
        self.overall_bars.set_rows([])
        self.group_bars.set_rows([])
        self.histogram.set_values([])
        self.model.set_data(ExampleData(run_id=0))
        self.detail.clear()
        self.body.hide()

    def _start_load(self, path: Path, run_id: int) -> None:
        if self._load_job is not None and self._load_job.running:
            self._reload_pending = True  # one load at a time; the newest request runs when it ends
            return
        gen = self._generation
        self.count_label.setText("Loading examples…")
        t0 = QtCore.QElapsedTimer()
        t0.start()

        def done(data: ExampleData) -> None:
            if gen != self._generation:
                return
            self.last_load_seconds = t0.elapsed() / 1000
            self._set_examples(data)

        def finished() -> None:
            self._load_job = None
            if self._reload_pending:
                self._reload_pending = False
                if self.ctx.project_path is not None and self.ctx.probe_run_id is not None:
                    self._start_load(self.ctx.project_path, self.ctx.probe_run_id)

        self._load_job = self.project_op(
            "Load examples",
            lambda project, _job: load_example_data(project, run_id),
            path=path,
            on_done=done,
            on_finally=finished,
        )

    @property
    def loading(self) -> bool:
        return self._load_job is not None or self._reload_pending or self._reload_timer.isActive()

    def _set_examples(self, data: ExampleData) -> None:
        keep = self.group_combo.currentText()
        self.group_combo.blockSignals(True)
        self.group_combo.clear()
        self.group_combo.addItems([ALL_GROUPS, *data.group_names])
        self.group_combo.setCurrentIndex(max(0, self.group_combo.findText(keep)))
        self.group_combo.blockSignals(False)
        self.model.sort_column = self.table.horizontalHeader().sortIndicatorSection()
        self.model.sort_order = self.table.horizontalHeader().sortIndicatorOrder()
        self.model.category, self.model.group, self.model.text = self._filter_values()
        self.model.set_data(data)
        n_sets = self.breakdown.settings.n_sets if self.breakdown is not None else 10
        half = 0.5 / max(1, n_sets)
        self.histogram.set_values(
            data.p_greedy, bins=n_sets + 1, range=(-half, 1 + half), title=f"P(T=0) of {len(data)} examples"
        )

    # -- filters ------------------------------------------------------------------------------------------
    def _filter_values(self) -> tuple[Optional[str], Optional[str], str]:
        cat = self.category_combo.currentText()
        group = self.group_combo.currentText()
        return (None if cat == ALL_CATEGORIES else cat, None if group == ALL_GROUPS else group, self.search.text())

    def apply_filters(self) -> None:
        self._search_timer.stop()
        self.model.set_filters(*self._filter_values())

    def _after_filter(self) -> None:
        shown, total = self.model.rowCount(), self.model.total
        self.count_label.setText(f"{shown} of {total} examples")
        if self._selected_id is not None:
            row = self.model.row_of(self._selected_id)
            if row >= 0:
                self.table.selectionModel().blockSignals(True)
                self.table.selectRow(row)
                self.table.selectionModel().blockSignals(False)
                self.table.viewport().update()
                self.table.scrollTo(self.model.index(row, 0))

    # -- counts ---------------------------------------------------------------------------------------------
    def _fill_counts(self, b: Any) -> None:
        rows = [("All", b.overall)]
        if len(b.groups) > 1:
            rows += [(g, b.groups[g]) for g in sorted(b.groups)]
        t = self.count_table
        t.setRowCount(len(rows))
        bold = QtGui.QFont(t.font())
        bold.setBold(True)
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        for r, (name, counts) in enumerate(rows):
            total = sum(counts.values())
            cells = (
                [name]
                + [f"{counts.get(c, 0)} ({percent(counts.get(c, 0) / total if total else 0)})" for c in CATEGORIES]
                + [str(total)]
            )
            for col, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                if col:
                    item.setTextAlignment(right)
                if r == 0:
                    item.setFont(bold)
                t.setItem(r, col, item)
        t.resizeColumnsToContents()
        t.resizeRowsToContents()
        self._size_top()

    def _size_top(self) -> None:
        """Give the count table the width of its columns (no horizontal scroll bar), the histogram
        a fixed share and the bars the rest; once, so a user's own splitter sizes stay."""
        m = self.layout().contentsMargins()
        total = self.width() - m.left() - m.right() - 2 * self.top_split.handleWidth()
        if self._sized_top or total < 600 or not self.isVisible():  # a hidden page's width is not the real one
            return
        t = self.count_table
        table_w = sum(t.columnWidth(c) for c in range(t.columnCount())) + 2 * t.frameWidth()
        table_w += t.verticalScrollBar().sizeHint().width() + 2
        hist_w = max(260, int(total * 0.24))
        table_w = min(table_w, max(200, total - hist_w - 360))
        self.top_split.setSizes([table_w, total - table_w - hist_w, hist_w])
        detail_w = max(320, int(total * 0.36))
        self.example_split.setSizes([total - detail_w, detail_w])
        self._sized_top = True

    def showEvent(self, event: QtGui.QShowEvent) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if not self._sized_top and self.count_table.rowCount():
            QtCore.QTimer.singleShot(0, self._size_top)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if not self._sized_top and self.count_table.rowCount():
            QtCore.QTimer.singleShot(0, self._size_top)

    def count_cell(self, group: str, category: str) -> str:
        """The text the count table shows for ``group`` ("All" for the whole run) and a category or "total"."""
        col = 1 + CATEGORIES.index(category) if category in CATEGORIES else len(CATEGORIES) + 1
        for r in range(self.count_table.rowCount()):
            if self.count_table.item(r, 0).text() == group:
                return self.count_table.item(r, col).text()
        raise KeyError(group)

    # -- detail -----------------------------------------------------------------------------------------------
    def _current_changed(self, current: QtCore.QModelIndex, _previous: QtCore.QModelIndex) -> None:
        if not current.isValid():
            return
        self.show_example(self.model.example_id(current.row()))

    def show_example(self, example_id: str) -> None:
        self._selected_id = example_id
        run_id = self.ctx.probe_run_id
        if run_id is None:
            return
        try:
            with self.ctx.project() as p:
                self.detail.setHtml(example_html(p, run_id, example_id, self.palette()))
        except Exception as exc:  # noqa: BLE001 - a damaged row must not break the table
            self.detail.setPlainText(f"Cannot show example {example_id}: {exc}")


def _answers_html(answers: list[str], matcher: Callable[[str], bool]) -> str:
    """Distinct answers in order with ✓/✗ and a count when repeated."""
    counts = Counter(answers)
    seen: list[str] = []
    for a in answers:
        if a not in seen:
            seen.append(a)
    parts = []
    for a in seen:
        ok = matcher(a)
        mark = f'<span style="color:{OK_COLOR if ok else BAD_COLOR}">{"✓" if ok else "✗"}</span>'
        times = f" ×{counts[a]}" if counts[a] > 1 else ""
        parts.append(f"<span style='white-space:nowrap'>{mark}&nbsp;{html.escape(a.strip()) or '<i>(empty)</i>'}{times}</span>")
    return " · ".join(parts)


def example_html(project: Any, run_id: int, example_id: str, palette: Optional[QtGui.QPalette] = None) -> str:
    """The detail pane: question, accepted answers, category, and each exemplar set's answers."""
    from core.store import example_detail

    run = project.probe_run(run_id)
    row = example_detail(project, run_id, run.dataset_id, example_id)
    if row is None:
        return f"<p>Example {html.escape(example_id)} has no probe result in run {run_id}.</p>"
    (cat, p_g, p_s, g_ok, g_n, s_ok, s_n, greedy_json, sampled_json, exemplars_json, question, answers_json, group) = row[:13]
    keys_json, key_source, swaps_json, reasons_json = row[13:17]
    aliases = json.loads(answers_json) if answers_json else []
    greedy = json.loads(greedy_json or "[]")
    sampled = json.loads(sampled_json or "[]")
    exemplars = json.loads(exemplars_json or "[]")
    swaps = json.loads(swaps_json or "[]")
    # the ticks follow the run's own grading (core.scoring): the stored verdicts of the greedy
    # answers (with the judge's, in judge mode), the rules for the samples
    settings = ProbeSettings.from_json(run.settings_json)
    gold = SimpleNamespace(
        answers=tuple(aliases),
        answer_keys=tuple(json.loads(keys_json or "[]")) or tuple(aliases),
        question=question or "",
        entity_shaped=(key_source or "answer") == "answer",
    )
    scorer = scorer_for(gold, settings.match)
    matcher: Callable[[str], bool] = scorer.right
    reasons = json.loads(reasons_json or "[]")
    muted = palette.color(QtGui.QPalette.ColorRole.PlaceholderText).name() if palette is not None else "#777777"
    color = CATEGORY_COLORS.get(cat, "#888888")
    if s_n:
        p_s_text = f"{fmt_p(p_s)} ({s_ok}/{s_n} samples correct" + (", sampling stopped early)" if p_s is None else ")")
    else:
        p_s_text = f"{DASH} (not sampled: a correct greedy answer already settles the category)"
    out = [
        f"<h3 style='margin-bottom:4px'>{html.escape(question or '')}</h3>",
        f"<p style='color:{muted}; margin-top:0'>id {html.escape(example_id)} · group {html.escape(group or '')}</p>",
        f"<p><b>Accepted answers:</b> {html.escape('; '.join(map(str, aliases))) or DASH}</p>",
        f"<p><b>Category:</b> <span style='color:{color}; font-size:large'>■</span> <b>{html.escape(cat or '')}</b>"
        f"<br>P(T=0) {fmt_p(p_g)} ({g_ok}/{g_n} greedy answers correct)<br>P(T&gt;0) {html.escape(p_s_text)}</p>",
        "<table cellspacing='0' cellpadding='4' border='1' style='border-collapse:collapse; border-color:#888888'>",
        "<tr><th align='left'>set</th><th align='left'>greedy answer</th><th align='left'>sampled answers</th></tr>",
    ]
    if settings.match == "judge":
        out.insert(
            -2,
            f"<p style='color:{muted}'>Judge mode: the judge graded the greedy answers the rules could not decide; "
            "the samples' ticks show the rules only.</p>",
        )
    if swaps:
        lines = "; ".join(
            f"set {int(s.get('set', 0)) + 1}: {html.escape(str(s.get('dropped')))} ({html.escape(SWAP_REASONS.get(s.get('why'), str(s.get('why'))))})"
            + (f" → {html.escape(str(s['by']))}" if s.get("by") else " → none left")
            for s in swaps
        )
        out.insert(-2, f"<p style='color:{muted}; font-size:small'><b>Exemplars replaced:</b> {lines}</p>")
    n = max(len(greedy), len(sampled), len(exemplars))
    for k in range(n):
        g = greedy[k] if k < len(greedy) else None
        samples = sampled[k] if k < len(sampled) else []
        ids = exemplars[k] if k < len(exemplars) else []
        why = (
            reasons[k] if k < len(reasons) else (("✓ " if scorer(g).right else "✗ ") + scorer(g).reason if g is not None else "")
        )
        out.append(_set_row_html(k, g, samples, ids, matcher, muted, why))
    out.append("</table>")
    return "\n".join(out)


def _set_row_html(
    k: int,
    greedy: Optional[str],
    samples: list[str],
    ids: list[Any],
    matcher: Callable[[str], bool],
    muted: str,
    why: str = "",
) -> str:
    """One exemplar set's row: its greedy answer (✓/✗, and why) and exemplar ids, and its sampled answers."""
    if greedy is None:
        g_html = DASH
    else:
        ok = why.startswith("✓") if why else matcher(greedy)
        reason = why[2:] if why[:1] in ("✓", "✗") else why
        g_html = (
            f'<span style="color:{OK_COLOR if ok else BAD_COLOR}">{"✓" if ok else "✗"}</span>&nbsp;'
            f"{html.escape(greedy.strip()) or '<i>(empty)</i>'}"
            + (f"<br><span style='color:{muted}; font-size:small'>why: {html.escape(reason)}</span>" if reason else "")
        )
    if samples:
        n_ok = sum(matcher(a) for a in samples)
        s_html = f"<b>{n_ok}/{len(samples)}</b> correct: " + _answers_html(samples, matcher)
    else:
        s_html = f"<span style='color:{muted}'>not sampled</span>"
    ids_html = (
        f"<br><span style='color:{muted}; font-size:small'>exemplars: {html.escape(', '.join(map(str, ids)))}</span>"
        if ids
        else ""
    )
    return f"<tr><td>{k + 1}</td><td>{g_html}{ids_html}</td><td>{s_html}</td></tr>"


# ExampleModel, ExampleData and fmt_p live in gui.example_table now; importers of this module keep working.
__all__ = ["BreakdownPage", "ExampleModel", "ExampleData", "load_example_data", "example_html", "fmt_p", "DASH"]


def _two_lines(category: str) -> str:
    """ "HighlyKnown" -> "Highly\nKnown" (a column header)."""
    return category.replace("Known", "\nKnown", 1) if category.endswith("Known") and category != "Known" else category
