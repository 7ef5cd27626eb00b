"""The Breakdown page and the charts, offscreen: what a user sees after a probe, and 100k rows stay fast."""

from __future__ import annotations

import json
import os
import random
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from core.datasets import Example  # noqa: E402
from core.probe import CATEGORIES, ProbeRequest, ProbeSettings, run_probe  # noqa: E402
from core.scoring import is_correct  # noqa: E402
from core.store import Project  # noqa: E402
from core.summary import breakdown  # noqa: E402
from gui.charts import CATEGORY_COLORS, CategoryBars, Histogram  # noqa: E402
from gui.context import AppContext  # noqa: E402
from gui.pages.base import BLOCKED, DONE, READY  # noqa: E402
from gui.pages.breakdown import ALL_CATEGORIES, BreakdownPage, ExampleModel  # noqa: E402
from gui.qt import Qt, QtCore, QtWidgets  # noqa: E402
from tests.scripted import FakeDataset, ScriptedBackend  # noqa: E402

PROFILES = [(1.0, 0.0), (0.0, 0.0), (0.0, 0.05), (0.5, 0.5), (0.0, 0.01), (0.3, 0.0), (0.9, 0.3)]


def make_examples(n: int, groups: int = 3, seed: int = 0) -> tuple[list[Example], dict]:
    rng = random.Random(seed)
    examples, knowledge = [], {}
    for i in range(n):
        q = f"Who wrote book number {i}?"
        gold = f"Author {i}"
        knowledge[q] = (gold, *PROFILES[rng.randrange(len(PROFILES))])
        examples.append(
            Example(id=f"ex{i:04d}", question=q, answers=(gold, f"alias {i}"), group=f"G{i % groups}", line=i + 1, raw={})
        )
    return examples, knowledge


def probed_project(path, examples, knowledge, settings=None) -> int:
    settings = settings or ProbeSettings(n_sets=4, samples_per_set=4, preset="quick", chunk_size=8)
    with Project(path) as p:
        dataset_id = p.add_dataset(FakeDataset(examples))
        out = run_probe(
            p,
            ProbeRequest(dataset_id=dataset_id, pool_dataset_id=None, model_spec="scripted", settings=settings),
            backend=ScriptedBackend(knowledge),
        )
    return out.run_id


@pytest.fixture
def ctx(qtbot):
    c = AppContext()
    yield c
    c.runner.cancel_all()
    c.runner.wait_all(10)


def open_page(qtbot, ctx, path) -> BreakdownPage:
    ctx.open_project(path)
    page = BreakdownPage(ctx)
    qtbot.addWidget(page)
    page.resize(1200, 800)
    page.show()
    wait_loaded(qtbot, page)
    return page


def wait_loaded(qtbot, page, timeout=10_000) -> None:
    qtbot.waitUntil(
        lambda: not page.loading and page.model.total == (page.breakdown.total if page.breakdown else 0), timeout=timeout
    )


@pytest.fixture
def page40(qtbot, ctx, tmp_path):
    examples, knowledge = make_examples(40)
    path = tmp_path / "p.knowmix"
    probed_project(path, examples, knowledge)
    return open_page(qtbot, ctx, path)


def test_without_a_probe_the_page_points_to_the_probe_step(qtbot, ctx, tmp_path):
    path = tmp_path / "p.knowmix"
    with Project(path) as p:
        p.add_dataset(FakeDataset(make_examples(5)[0]))
    page = open_page(qtbot, ctx, path)
    assert ctx.probe_run_id is None
    assert page.message.isVisible() and "Probe step" in page.message.text()
    assert page.step_state()[0] == BLOCKED
    assert page.model.rowCount() == 0


def test_counts_and_headline_match_core_summary(page40, ctx):
    page = page40
    with ctx.project() as p:
        b = breakdown(p, ctx.probe_run_id)
    assert page.headline.text() == b.headline()
    assert page.step_state()[0] == DONE
    assert sum(b.overall.values()) == 40 and len([c for c in CATEGORIES if b.overall.get(c)]) >= 3
    for cat in CATEGORIES:
        n = b.overall.get(cat, 0)
        assert page.count_cell("All", cat) == f"{n} ({100 * n / 40:.1f}%)"
        for g, counts in b.groups.items():
            assert page.count_cell(g, cat).split()[0] == str(counts.get(cat, 0))
    assert page.count_cell("All", "total") == "40"
    assert page.count_label.text() == "40 of 40 examples"
    # the charts hold the same numbers
    assert page.overall_bars.rows == [("All", b.overall)]
    assert [label for label, _ in page.group_bars.rows] == sorted(b.groups)
    assert int(page.histogram.counts.sum()) == 40
    assert len(page.histogram.counts) == b.settings.n_sets + 1  # one bar per possible P(T=0)


def test_filter_by_category_and_group(qtbot, page40, ctx):
    page = page40
    b = page.breakdown
    cat = max(CATEGORIES, key=lambda c: b.overall.get(c, 0))
    page.category_combo.setCurrentText(cat)
    n = b.overall[cat]
    assert page.model.rowCount() == n
    assert set(page.model.column_values(2)) == {cat}
    assert page.count_label.text() == f"{n} of 40 examples"
    page.group_combo.setCurrentText("G1")
    assert page.model.rowCount() == b.groups["G1"].get(cat, 0)
    assert set(page.model.column_values(1)) <= {"G1"}
    page.category_combo.setCurrentText(ALL_CATEGORIES)
    assert page.model.rowCount() == sum(b.groups["G1"].values())
    assert page.count_label.text() == f"{sum(b.groups['G1'].values())} of 40 examples"


def test_search_is_debounced_and_case_insensitive(qtbot, page40):
    page = page40
    qtbot.keyClicks(page.search, "BOOK NUMBER 1")
    assert page.model.rowCount() == 40  # not yet: the search waits for the typing to pause
    qtbot.waitUntil(lambda: page.model.rowCount() < 40, timeout=2000)
    # "book number 1", "10".."19"
    assert sorted(page.model.column_values(0)) == ["ex0001"] + [f"ex{i:04d}" for i in range(10, 20)]
    assert page.count_label.text() == "11 of 40 examples"
    page.search.setText("author 23")  # answers are searched too
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=2000)
    assert page.model.column_values(0) == ["ex0023"]
    page.search.clear()
    qtbot.waitUntil(lambda: page.model.rowCount() == 40, timeout=2000)


def _click_header(qtbot, page, column):
    header = page.table.horizontalHeader()
    x = header.sectionViewportPosition(column) + header.sectionSize(column) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QtCore.QPoint(x, header.height() // 2))


def test_clicking_a_header_sorts(qtbot, page40):
    page = page40
    col = ExampleModel.COL_P_GREEDY
    _click_header(qtbot, page, col)
    values = [float(v) for v in page.model.column_values(col)]
    first_order = page.table.horizontalHeader().sortIndicatorOrder()
    assert values == sorted(values, reverse=first_order == Qt.SortOrder.DescendingOrder)
    assert len(set(values)) > 2
    _click_header(qtbot, page, col)
    again = [float(v) for v in page.model.column_values(col)]
    assert again == sorted(values, reverse=first_order != Qt.SortOrder.DescendingOrder)
    # sorting survives a filter
    page.category_combo.setCurrentText("MaybeKnown")
    vals = [float(v) for v in page.model.column_values(col)]
    assert vals == sorted(vals, reverse=first_order != Qt.SortOrder.DescendingOrder)
    # P(T>0) is "—" where the lazy schedule stopped sampling, and sorts last
    page.category_combo.setCurrentText(ALL_CATEGORIES)
    _click_header(qtbot, page, ExampleModel.COL_P_SAMPLED)
    ps = page.model.column_values(ExampleModel.COL_P_SAMPLED)
    assert "—" in ps and ps[-1] == "—"


def test_selecting_a_row_shows_the_answers_per_exemplar_set(qtbot, page40, ctx):
    page = page40
    page.category_combo.setCurrentText("MaybeKnown")
    assert page.model.rowCount() > 0
    rect = page.table.visualRect(page.model.index(0, 3))
    qtbot.mouseClick(page.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    ex_id = page.model.example_id(0)
    with ctx.project() as p:
        row = next(r for r in p.probe_results(ctx.probe_run_id) if r["example_id"] == ex_id)
    greedy = json.loads(row["greedy_answers"])
    text = page.detail.toPlainText()
    i = int(ex_id[2:])
    assert f"Who wrote book number {i}?" in text
    assert f"Author {i}; alias {i}" in text and "MaybeKnown" in text
    for g in greedy:
        assert g in text
    marks = [line.split("\t") for line in text.splitlines()]
    assert text.count("✓") >= sum(is_correct(g, [f"Author {i}"]) for g in greedy) >= 1
    assert any("✗" in "".join(m) for m in marks)
    exemplar_ids = json.loads(row["exemplar_ids"])
    assert all(e in text for e in exemplar_ids[0])


def test_reload_and_a_new_run_refresh_the_page(qtbot, ctx, tmp_path):
    examples, knowledge = make_examples(20)
    path = tmp_path / "p.knowmix"
    first = probed_project(path, examples[:10], knowledge)
    page = open_page(qtbot, ctx, path)
    assert page.model.total == 10
    with Project(path) as p:  # a second dataset, probed: as the probe page would, then tell the context
        ds = p.add_dataset(FakeDataset(examples, path="more.jsonl"))
        second = run_probe(
            p,
            ProbeRequest(
                dataset_id=ds,
                pool_dataset_id=None,
                model_spec="scripted",
                settings=ProbeSettings(n_sets=2, samples_per_set=2, preset="smoke"),
            ),
            backend=ScriptedBackend(knowledge),
        ).run_id
    assert second != first
    ctx.set(probe_run_id=second)
    wait_loaded(qtbot, page)
    assert page.model.total == 20 and page.count_cell("All", "total") == "20"
    assert f"Probe run {second}" in page.headline.text()
    with Project(path) as p:
        p.db.execute("DELETE FROM probe_results WHERE run_id = ? AND example_id = 'ex0000'", [second])
    page.reload()
    wait_loaded(qtbot, page)
    assert page.model.total == 19 and page.count_label.text() == "19 of 19 examples"
    with Project(path) as p:
        p.db.execute("DELETE FROM probe_results WHERE run_id = ?", [second])
    assert page.step_state()[0] == READY
    ctx.set(probe_run_id=None)
    assert page.step_state()[0] == BLOCKED and "Probe step" in page.message.text()


def test_category_bars_update_in_place(qtbot):
    bars = CategoryBars()
    qtbot.addWidget(bars)
    bars.resize(600, 300)
    bars.show()
    items = dict(bars.bars)
    bars.set_rows([("a", {"HighlyKnown": 3, "Unknown": 1}), ("b", {}), ("c", {"MaybeKnown": 2})])
    h3 = bars.minimumHeight()
    t0 = time.perf_counter()
    for k in range(30):
        bars.set_rows([("a", {"HighlyKnown": 3 + k, "Unknown": 1}), ("b", {}), ("c", {"MaybeKnown": 2})])
        QtWidgets.QApplication.processEvents()
    per_update = (time.perf_counter() - t0) / 30
    print(f"CategoryBars.set_rows + repaint: {per_update * 1000:.1f} ms")
    assert per_update < 0.05
    assert bars.bars == items  # the same graphics items, updated
    assert "HighlyKnown: 32 (97.0%)" in bars.row_tooltip(0)
    assert "b: 0 examples" in bars.row_tooltip(1)
    n_items = len(bars.item.items)
    assert bars.count_labels() == ["32", "2"]  # drawn by one label layer; 1 of 33 is too narrow for its count
    bars.set_rows([(f"g{i}", {"HighlyKnown": i + 1, "MaybeKnown": 1, "WeaklyKnown": 1, "Unknown": 1}) for i in range(12)])
    QtWidgets.QApplication.processEvents()
    assert len(bars.item.items) == n_items and "12" in bars.count_labels()
    bars.set_rows([(f"group {i}", {"Unknown": i}) for i in range(60)])
    assert bars.minimumHeight() > 10 * h3
    assert CATEGORY_COLORS["HighlyKnown"] == "#2e7d32" and list(CATEGORY_COLORS) == list(CATEGORIES)


def test_histogram_counts(qtbot):
    h = Histogram()
    qtbot.addWidget(h)
    h.set_values([0.0, 0.0, 0.5, 1.0, None, float("nan")], bins=5, range=(0, 1), title="P(T=0)")
    assert h.counts.tolist() == [2, 0, 1, 0, 1] and h.title == "P(T=0)"
    h.set_values([])
    assert h.counts.sum() == 0


def _big_project(path, n: int) -> int:
    """A project with ``n`` probe results written straight through SQL (a probe would take hours)."""
    rng = random.Random(1)
    settings = ProbeSettings()
    with Project(path) as p:
        conn = p.db.conn
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO datasets (id, name, path, role, format, shape, mapping, file_sha256, content_sha256, n_examples, "
            "n_duplicates, n_skipped, created_at) VALUES (1, 'big.jsonl', '/big.jsonl', 'train', 'jsonl', 'qa', '{}', '', 'x', ?, 0, 0, 0)",
            [n],
        )
        groups = [f"P{g}" for g in range(12)]
        conn.executemany(
            "INSERT INTO examples (dataset_id, example_id, idx, line, question, answers, group_name, raw) VALUES (1, ?, ?, ?, ?, ?, ?, '{}')",
            (
                (f"e{i:06d}", i, i + 1, f"What is the capital of place {i}?", json.dumps([f"City {i}"]), groups[i % 12])
                for i in range(n)
            ),
        )
        conn.execute(
            "INSERT INTO probe_runs (id, dataset_id, model_spec, model_name, model_path, model_fingerprint, backend, preset, "
            "settings, status, n_total, n_done, created_at, updated_at, seconds) "
            "VALUES (1, 1, 'm', 'model', '/m', 'fp', 'scripted', 'paper', ?, 'finished', ?, ?, 0, 0, 0)",
            [settings.identity(), n, n],
        )
        greedy = json.dumps(["City"] * 10)

        def rows():
            for i in range(n):
                g_ok = rng.choice((0, 0, 3, 10, 10))
                s_ok = 0 if g_ok else rng.choice((0, 1))
                cat = "HighlyKnown" if g_ok == 10 else "MaybeKnown" if g_ok else "WeaklyKnown" if s_ok else "Unknown"
                yield (
                    f"e{i:06d}",
                    groups[i % 12],
                    cat,
                    g_ok / 10,
                    None if s_ok or g_ok else 0.0,
                    g_ok,
                    10,
                    s_ok,
                    160,
                    greedy,
                    "[]",
                    "[]",
                )

        conn.executemany(
            "INSERT INTO probe_results (run_id, example_id, group_name, category, p_greedy, p_sampled, greedy_correct, "
            "greedy_total, sampled_correct, sampled_total, greedy_answers, sampled_answers, exemplar_ids, seconds) "
            "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            rows(),
        )
        conn.execute("COMMIT")
    return 1


def test_100k_examples_load_filter_and_sort_fast(qtbot, ctx, tmp_path):
    n = 100_000
    path = tmp_path / "big.knowmix"
    t0 = time.perf_counter()
    _big_project(path, n)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    page = open_page(qtbot, ctx, path)
    t_open = time.perf_counter() - t0
    assert page.model.total == n and page.count_label.text() == f"{n} of {n} examples"

    t0 = time.perf_counter()
    page.category_combo.setCurrentText("MaybeKnown")
    QtWidgets.QApplication.processEvents()  # and the repaint
    t_filter = time.perf_counter() - t0
    shown = page.model.rowCount()
    assert 0 < shown < n and set(page.model.column_values(2)[:50]) == {"MaybeKnown"}

    t0 = time.perf_counter()
    _click_header(qtbot, page, ExampleModel.COL_P_GREEDY)
    _click_header(qtbot, page, 3)  # question text
    QtWidgets.QApplication.processEvents()
    t_sort = time.perf_counter() - t0

    page.category_combo.setCurrentText(ALL_CATEGORIES)
    t0 = time.perf_counter()
    page.search.setText("place 9999")
    page.apply_filters()  # what the debounce timer calls
    t_search = time.perf_counter() - t0
    assert page.model.rowCount() == 11  # 9999 and 99990..99999
    print(
        f"\n100k rows: build {t_build:.2f}s, open+load {t_open:.2f}s (job {page.last_load_seconds:.2f}s), "
        f"filter {t_filter * 1000:.0f} ms, two sorts {t_sort * 1000:.0f} ms, search {t_search * 1000:.0f} ms"
    )
    assert t_open < 15
    assert t_filter < 3 and t_sort < 3 and t_search < 3


def test_the_detail_ticks_sentence_answers_by_their_key_and_lists_replaced_exemplars(tmp_path):
    """A sentence-answer row is scored by its key: "It is Author 3." is right although it is not the
    exact gold sentence, and the detail must tick it as the probe counted it; exemplars replaced
    because they were the question itself appear with the reason."""
    from gui.pages.breakdown import example_html

    examples = [
        Example(
            id=f"s{i}",
            question=f"Who wrote book number {i}?",
            answers=(f"The book was written by Author {i}.",),
            group="G0",
            line=i + 1,
            raw={},
            keys=(f"Author {i}",),
            key_source="extracted",
        )
        for i in range(8)
    ]
    knowledge = {ex.question: (f"It is Author {i}.", 1.0, 0.0) for i, ex in enumerate(examples)}
    path = tmp_path / "p.knowmix"
    run_id = probed_project(path, examples, knowledge, ProbeSettings(n_sets=4, samples_per_set=0, preset="quick"))
    with Project(path) as p:
        rows = {r["example_id"]: r for r in p.probe_results(run_id)}
        with_swap = next(i for i, r in rows.items() if json.loads(r["exemplar_swaps"]))
        assert rows[with_swap]["category"] == "HighlyKnown"
        text = example_html(p, run_id, with_swap)
    assert "✗" not in text and text.count("✓") == 4
    assert text.count("why: key &#x27;Author") == 4 and "stated" in text  # the verdict's reason under each answer
    assert "Exemplars replaced" in text and "the question itself" in text
