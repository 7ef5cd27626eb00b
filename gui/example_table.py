"""The Breakdown step's example table: one probe run's examples as columns, and a Qt table model
that filters and sorts them through an index array.

A run can hold 100k examples. A QSortFilterProxyModel would call back into Python for every row
on every keystroke; here the filters are numpy masks over category and group codes, the search is
one pass over casefolded strings, and every column has a precomputed sort rank, so the table
stays responsive on the UI thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from core.categories import CATEGORIES

from .charts import CATEGORY_COLORS
from .qt import Qt, QtCore, QtGui

DASH = "—"


# -- data --------------------------------------------------------------------------------------------
@dataclass
class ExampleData:
    """One probe run's examples as columns (index i is one example, in file order)."""

    run_id: int
    ids: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    p_greedy: np.ndarray = field(default_factory=lambda: np.zeros(0))
    p_sampled: np.ndarray = field(default_factory=lambda: np.zeros(0))
    haystack: list[str] = field(default_factory=list)  # casefolded question + answers, for the search box
    group_names: list[str] = field(default_factory=list)  # sorted
    cat_code: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    group_code: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    ranks: dict[int, np.ndarray] = field(default_factory=dict)  # column -> sort key

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_rows(cls, run_id: int, rows: Sequence[Sequence[Any]]) -> "ExampleData":
        """Columns, filter codes and sort ranks from ``(example_id, group, category, question, answers
        JSON, p_greedy, p_sampled)`` rows, computed once here (on a worker thread) and not per keystroke."""
        d = cls(run_id=run_id)
        if not rows:
            return d
        ids, groups, cats, questions, answers_raw, pg, ps = (list(c) for c in zip(*rows))
        d.ids = [str(i) for i in ids]
        d.groups = [g if g is not None else "" for g in groups]
        d.categories = [c or "" for c in cats]
        d.questions = [q or "" for q in questions]
        d.answers = [_answers_text(a) for a in answers_raw]
        d.p_greedy = np.array([np.nan if v is None else v for v in pg], dtype=float)
        d.p_sampled = np.array([np.nan if v is None else v for v in ps], dtype=float)
        d.haystack = [f"{q}\x00{a}".casefold() for q, a in zip(d.questions, d.answers)]
        d._index()
        return d

    def _index(self) -> None:
        """Group and category codes for the filters, and a sort rank for every column."""
        self.group_names = sorted(set(self.groups))
        gpos = {g: i for i, g in enumerate(self.group_names)}
        cpos = {c: i for i, c in enumerate(CATEGORIES)}
        self.group_code = np.fromiter((gpos[g] for g in self.groups), dtype=np.int32, count=len(self.groups))
        self.cat_code = np.fromiter(
            (cpos.get(c, len(CATEGORIES)) for c in self.categories), dtype=np.int8, count=len(self.categories)
        )
        self.ranks = {
            0: _rank(self.ids),
            1: self.group_code.astype(np.int64),
            2: self.cat_code.astype(np.int64),
            3: _rank([q.casefold() for q in self.questions]),
            4: _rank([a.casefold() for a in self.answers]),
            5: self.p_greedy,
            6: self.p_sampled,
        }


def _answers_text(raw: Any) -> str:
    """The stored JSON list of aliases as "a; b"; text that is not such a list is shown as it is."""
    try:
        return "; ".join(str(x) for x in json.loads(raw)) if raw else ""
    except (ValueError, TypeError):
        return str(raw)


def _rank(keys: list[Any]) -> np.ndarray:
    """Each item's position in sorted order: sorting by a column is then one numpy argsort."""
    order = sorted(range(len(keys)), key=keys.__getitem__)
    rank = np.empty(len(keys), dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(len(keys), dtype=np.int64)
    return rank


def fmt_p(v: Optional[float]) -> str:
    """A probability with two decimals; a dash when it was not measured (None or NaN)."""
    return DASH if v is None or v != v else f"{v:.2f}"


# -- table model -------------------------------------------------------------------------------------
class ExampleModel(QtCore.QAbstractTableModel):
    """The examples of one run, filtered and sorted through an index array (fast on 100k rows)."""

    COLUMNS = ("id", "group", "category", "question", "answers", "P(T=0)", "P(T>0)")
    COL_P_GREEDY, COL_P_SAMPLED = 5, 6
    filtered = QtCore.Signal()  # the visible rows changed (filter, sort or new data)

    def __init__(self, parent: Optional[QtCore.QObject] = None) -> None:
        super().__init__(parent)
        self.data_ = ExampleData(run_id=0)
        self.view = np.zeros(0, dtype=np.int64)  # visible row -> example index
        self._order = np.zeros(0, dtype=np.int64)  # all examples in the current sort order
        self.sort_column = -1
        self.sort_order = Qt.SortOrder.AscendingOrder
        self.category: Optional[str] = None
        self.group: Optional[str] = None
        self.text = ""
        self._swatches = {c: QtGui.QColor(CATEGORY_COLORS[c]) for c in CATEGORIES}
        self._right = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    # -- public --------------------------------------------------------------------------------
    def set_data(self, data: ExampleData) -> None:
        self.data_ = data
        self._order = self._sorted_order()
        self._rebuild()

    def set_filters(self, category: Optional[str] = None, group: Optional[str] = None, text: str = "") -> None:
        self.category, self.group, self.text = category or None, group or None, text.strip()
        self._rebuild()

    @property
    def total(self) -> int:
        return len(self.data_)

    def example_index(self, row: int) -> int:
        return int(self.view[row])

    def example_id(self, row: int) -> str:
        return self.data_.ids[int(self.view[row])]

    def row_of(self, example_id: str) -> int:
        try:
            i = self.data_.ids.index(example_id)
        except ValueError:
            return -1
        hits = np.nonzero(self.view == i)[0]
        return int(hits[0]) if hits.size else -1

    def column_values(self, column: int) -> list[str]:
        """What the visible rows show in ``column`` (for tests and copying)."""
        return [self._text(int(i), column) for i in self.view]

    # -- filtering and sorting -----------------------------------------------------------------
    def _sorted_order(self) -> np.ndarray:
        n = len(self.data_)
        if self.sort_column < 0 or self.sort_column not in self.data_.ranks or not n:
            return np.arange(n, dtype=np.int64)
        key = self.data_.ranks[self.sort_column]
        if self.sort_order == Qt.SortOrder.DescendingOrder:
            key = -key  # NaN (not measured) stays last either way
        return np.argsort(key, kind="stable").astype(np.int64)

    def _rebuild(self) -> None:
        d = self.data_
        self.beginResetModel()
        order = self._order
        if len(order) != len(d):
            order = self._order = np.arange(len(d), dtype=np.int64)
        mask = None
        if self.category:
            code = CATEGORIES.index(self.category) if self.category in CATEGORIES else -1
            mask = d.cat_code == code
        if self.group:
            try:
                gm = d.group_code == d.group_names.index(self.group)
            except ValueError:
                gm = np.zeros(len(d), dtype=bool)
            mask = gm if mask is None else (mask & gm)
        view = order if mask is None else order[mask[order]]
        if self.text:
            needle = self.text.casefold()
            hay = d.haystack
            view = np.fromiter((i for i in view.tolist() if needle in hay[i]), dtype=np.int64)
        self.view = view
        self.endResetModel()
        self.filtered.emit()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:  # noqa: D401 - Qt API
        self.sort_column, self.sort_order = column, order
        self._order = self._sorted_order()
        self._rebuild()

    # -- Qt model API --------------------------------------------------------------------------
    def rowCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.view)

    def columnCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return self.COLUMNS[section]
            if role == Qt.ItemDataRole.ToolTipRole:
                return {
                    5: "P(T=0): share of correct greedy answers over the exemplar sets",
                    6: "P(T>0): share of correct sampled answers; — when the lazy schedule stopped sampling early",
                }.get(section)
        elif role == Qt.ItemDataRole.DisplayRole:
            return str(section + 1)
        return None

    def _text(self, i: int, col: int) -> str:
        d = self.data_
        if col == 0:
            return d.ids[i]
        if col == 1:
            return d.groups[i]
        if col == 2:
            return d.categories[i]
        if col == 3:
            return d.questions[i]
        if col == 4:
            return d.answers[i]
        if col == 5:
            return fmt_p(float(d.p_greedy[i]))
        return fmt_p(float(d.p_sampled[i]))

    def data(self, index: QtCore.QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        if row >= len(self.view):
            return None
        i = int(self.view[row])
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(i, col)
        if role == Qt.ItemDataRole.ToolTipRole and col in (3, 4):
            return self._text(i, col)
        if role == Qt.ItemDataRole.DecorationRole and col == 2:
            return self._swatches.get(self.data_.categories[i])
        if role == Qt.ItemDataRole.TextAlignmentRole and col >= 5:
            return self._right
        if role == Qt.ItemDataRole.UserRole:
            return self.data_.ids[i]
        return None
