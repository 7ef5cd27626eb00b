"""Per-example results as a file (`knowmix results`): one row per example, probed or not, in
JSON Lines, CSV and Parquet, the same rows whatever the format."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from core.categories import CATEGORIES
from core.cli import main
from core.datasets import load_dataset
from core.results import COLUMNS, result_rows
from tests.test_plan import P40, move_not_probed, scripted_probe_project, team_rows, write_rows


@pytest.fixture
def project_path(tmp_path: Path) -> Path:
    """A project whose dataset has 25 probed rows (a finished scripted probe) and 5 kept without a probe."""
    ds = move_not_probed(load_dataset(write_rows(tmp_path / "team.jsonl", team_rows(), "jsonl")))
    project, _ = scripted_probe_project(tmp_path, ds)
    project.close()
    return tmp_path / "p.knowmix"


def jsonl_rows(project: Path, capsys, *extra: str) -> list[dict]:
    assert main(["results", "--project", str(project), *extra]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_results_as_jsonl_have_one_row_per_example_in_file_order(project_path: Path, capsys) -> None:
    rows = jsonl_rows(project_path, capsys)
    assert len(rows) == 30
    assert all(list(r) == list(COLUMNS) for r in rows)
    assert [r["question"] for r in rows] == [f"What is fact number {i}?" for i in range(30)]
    not_probed = [r for r in rows if r["probe_status"] == "not-probed"]
    assert [(r["question"], r["reason"]) for r in not_probed] == [
        ("What is fact number 3?", "task"),
        ("What is fact number 7?", "long-form"),
        ("What is fact number 12?", "multi-turn"),
        ("What is fact number 18?", "task"),
        ("What is fact number 21?", "no-answer"),
    ]
    for r in not_probed:
        assert r["category"] == "" and r["p_greedy"] is None and r["p_sampled"] is None
        assert r["exemplar_ids"] == [] and r["greedy_answers"] == [] and r["sampled_answers"] == []
    probed = [r for r in rows if r["probe_status"] == "probed"]
    assert len(probed) == 25
    for r in probed:
        assert r["category"] in CATEGORIES and r["reason"] == ""
        assert 0.0 <= r["p_greedy"] <= 1.0
        assert r["p_sampled"] is None or 0.0 <= r["p_sampled"] <= 1.0  # None: the lazy schedule skipped the samples
        assert len(r["exemplar_ids"]) == 2 and all(len(s) == 2 for s in r["exemplar_ids"])  # 2 sets of 2 shots
        assert len(r["greedy_answers"]) == 2
        assert r["key"] == r["answers"]  # entity answers are their own keys
    assert any(r["p_sampled"] is not None for r in probed) and any(r["sampled_answers"] for r in probed)
    # the scripted model knows every third question: its greedy answers are the gold answer
    first = probed[0]
    assert first["category"] == "HighlyKnown" and first["greedy_answers"] == ["Answer0", "Answer0"]
    assert first["greedy_reasons"] == ["✓ matches 'Answer0'"] * 2  # why, for every greedy answer
    wrong = next(r for r in probed if r["category"] == "Unknown")
    assert all(why.startswith("✗ not 'Answer") for why in wrong["greedy_reasons"])
    assert rows[0]["answers"] == ["Answer0", "Alias0"]
    # the same rows as the function the app calls
    from core.store import Project

    with Project(project_path, create=False) as p:
        assert result_rows(p) == rows


def test_results_as_csv_and_parquet_hold_the_same_rows(project_path: Path, tmp_path: Path, capsys) -> None:
    rows = jsonl_rows(project_path, capsys)

    assert main(["results", "--project", str(project_path), "--format", "csv"]) == 0
    table = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert table[0] == list(COLUMNS) and len(table) == 31
    lists = ("answers", "key", "exemplar_ids", "greedy_answers", "sampled_answers")
    for cells, want in zip(table[1:], rows):
        got = dict(zip(COLUMNS, cells))
        for col in lists:
            assert json.loads(got[col]) == want[col]  # lists as JSON text
        for col in ("p_greedy", "p_sampled"):
            assert (float(got[col]) if got[col] else None) == want[col]
        assert [got[c] for c in ("id", "group", "question", "probe_status", "reason", "category")] == [
            want[c] for c in ("id", "group", "question", "probe_status", "reason", "category")
        ]

    out = tmp_path / "results.csv"
    assert main(["results", "--project", str(project_path), "--format", "csv", "--out", str(out)]) == 0
    assert "wrote 30 rows" in capsys.readouterr().err
    assert list(csv.reader(io.StringIO(out.read_text(encoding="utf-8")))) == table

    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "results.parquet"
    assert main(["results", "--project", str(project_path), "--format", "parquet", "--out", str(out)]) == 0
    assert pq.read_table(out).to_pylist() == rows


def test_parquet_to_the_terminal_is_refused_with_what_to_do(project_path: Path, capsys) -> None:
    assert main(["results", "--project", str(project_path), "--format", "parquet"]) == 2
    err = capsys.readouterr().err
    assert "knowmix: error: --format parquet writes a binary file, so it needs --out FILE" in err


def test_results_of_a_missing_run_say_which(project_path: Path, capsys) -> None:
    assert main(["results", "--project", str(project_path), "--run", "7"]) != 0
    assert "no probe run number 7" in capsys.readouterr().err


def test_the_apps_export_step_saves_the_same_file(qtbot, window, project_path: Path, tmp_path: Path, capsys) -> None:
    rows = jsonl_rows(project_path, capsys)
    assert window.by_key["project"].open_path(project_path)
    window.go("export")
    export = window.by_key["export"]
    assert window.ctx.probe_run_id is not None and export.results_button.isEnabled()
    assert [export.results_format.itemData(i) for i in range(export.results_format.count())] == ["jsonl", "csv", "parquet"]
    out = tmp_path / "from-app.jsonl"
    export.save_results_to(out, "jsonl")
    qtbot.waitUntil(lambda: not window.ctx.runner.active(), timeout=30_000)
    assert [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] == rows
    assert "Per-example results saved" in export.message.text() and "30 rows" in export.message.text()


def test_the_breakdown_counts_the_rows_not_probed_by_reason(project_path: Path, capsys) -> None:
    """The summary (CLI and the app's Breakdown step) says how many rows were not probed and why."""
    from core.store import Project
    from core.summary import breakdown

    with Project(project_path, create=False) as p:
        b = breakdown(p)
    assert b.total == 25
    assert b.not_probed == {"multi-turn": 1, "long-form": 1, "task": 2, "no-answer": 1}
    assert "5 rows not probed (" in b.headline() and "2 task" in b.headline()
    assert b.to_dict()["not_probed"]["task"] == 2
    assert main(["summary", "--project", str(project_path)]) == 0
    assert "5 rows not probed" in capsys.readouterr().out


def test_the_plan_step_says_how_many_rows_were_not_probed_and_why(project_path: Path) -> None:
    from core.plan import PlanSettings, build_plan
    from core.store import Project
    from gui.pages.plan import not_probed_words

    with Project(project_path, create=False) as p:
        kept = build_plan(p, settings=PlanSettings(dev_fraction=0.2)).counts()
        dropped = build_plan(p, settings=PlanSettings(dev_fraction=0.2, not_probed="drop")).counts()
    assert not_probed_words(kept).startswith(", <b>5</b> rows not probed, kept as they are (")
    assert "2 task" in not_probed_words(kept) and "1 multi-turn" in not_probed_words(kept)
    assert "left out" in not_probed_words(dropped)


def test_the_probe_step_offers_the_matching_modes_and_the_chat_template(qtbot, window) -> None:
    probe = window.by_key["probe"]
    modes = [probe.match_combo.itemData(i) for i in range(probe.match_combo.count())]
    assert modes == ["auto", "exact", "key", "judge"]
    assert probe.settings().match == "auto" and probe.settings().chat_template is False
    probe.match_combo.setCurrentIndex(modes.index("key"))
    probe.chat_template.setChecked(True)
    s = probe.settings()
    assert (s.match, s.chat_template, s.preset) == ("key", True, "paper")  # not a budget change
    assert "key match" in s.describe() and "chat template" in s.describe()


@pytest.mark.skipif(not P40.exists(), reason="needs ../shared/data/entityquestions")
def test_questions_with_several_true_answers_are_flagged_in_results_breakdown_and_report(tmp_path: Path, capsys) -> None:
    """Real child (P40) rows: 10 of 30 list two or more children; results, summary and report say so."""
    from core.report import build_report
    from core.store import Project
    from core.summary import breakdown
    from tests.test_plan import multi_answer_project

    project, ds = multi_answer_project(tmp_path)
    project.close()
    rows = jsonl_rows(tmp_path / "p.knowmix", capsys)
    assert list(COLUMNS).index("multi_answer") == list(COLUMNS).index("answers") + 1
    flagged = {r["question"] for r in rows if r["multi_answer"]}
    assert len(flagged) == 10
    assert flagged == {ex.question for ex in ds.examples if len(ex.answers) > 1}
    assert all(r["multi_answer"] is False for r in rows if len(r["answers"]) == 1)
    with Project(tmp_path / "p.knowmix", create=False) as p:
        b = breakdown(p)
        html = build_report(p)
    assert sum(b.multi_answer.values()) == 10 and b.to_dict()["multi_answer"] == 10
    assert "10 of them list several different true answers (" in b.headline()
    assert "10 of 30 probed questions list two or more different true answers" in html
    assert main(["summary", "--project", str(tmp_path / "p.knowmix")]) == 0
    assert "10 of them list several different true answers" in capsys.readouterr().out


@pytest.mark.skipif(not P40.exists(), reason="needs ../shared/data/entityquestions")
def test_the_plan_step_offers_to_leave_out_questions_with_several_true_answers(qtbot, window, tmp_path: Path) -> None:
    from tests.test_plan import multi_answer_project

    project, _ = multi_answer_project(tmp_path)
    project.close()
    assert window.by_key["project"].open_path(tmp_path / "p.knowmix")
    window.go("plan")
    plan = window.by_key["plan"]
    box = plan.drop_multi
    assert box.text() == "Leave out questions with several different true answers (10)"
    assert box.isEnabled() and not box.isChecked() and plan.settings().multi_answer == "keep"
    box.setChecked(True)
    plan.dev_fraction.setValue(0.2)
    plan.build_button.click()
    qtbot.waitUntil(lambda: window.ctx.plan_id is not None, timeout=30_000)
    assert "This plan leaves them out (10 dropped before the dev split" in plan.explain.toPlainText()
    assert plan.drop_multi.isChecked()
