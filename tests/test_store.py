"""Tests for core.store: the one-file project (SQLite through sqlite-utils).

What a user relies on: a project keeps their datasets exactly, survives being reopened, refuses
files it does not understand with a message, and a kill or an error loses at most the batch
that was being written.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.datasets import take_balanced
from core.errors import ProjectError
from core.store import MIGRATIONS, PROJECT_SUFFIX, SCHEMA_VERSION, Project

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project_path(tmp_path: Path) -> Path:
    return tmp_path / f"test{PROJECT_SUFFIX}"


@pytest.fixture
def small_ds(sample_dataset_loaded):
    return take_balanced(sample_dataset_loaded, 24)


def result_row(run_id: int, example_id: str, category: str = "Unknown", group: str = "P17") -> dict:
    return {
        "run_id": run_id,
        "example_id": example_id,
        "group_name": group,
        "category": category,
        "p_greedy": 0.0,
        "p_sampled": None,
        "greedy_correct": 0,
        "greedy_total": 2,
        "sampled_correct": 0,
        "sampled_total": 4,
        "greedy_answers": "[]",
        "sampled_answers": "[]",
        "exemplar_ids": "[]",
        "seconds": 0.1,
    }


def make_run(project: Project, dataset_id: int, n_total: int = 10) -> int:
    return project.create_probe_run(
        dataset_id=dataset_id,
        pool_dataset_id=None,
        model_spec="default",
        model_name="test",
        model_path="/x",
        model_fingerprint="f" * 64,
        backend="llama.cpp",
        preset="smoke",
        settings="{}",
        n_total=n_total,
    )


def count(path: Path, sql: str, args: tuple = ()) -> int:
    conn = sqlite3.connect(str(path))
    try:
        return int(conn.execute(sql, args).fetchone()[0])
    finally:
        conn.close()


# ----------------------------------------------------------------------------- datasets


def test_dataset_round_trips_through_a_reopened_project(project_path: Path, sample_dataset_loaded) -> None:
    ds = sample_dataset_loaded
    with Project(project_path) as project:
        dataset_id = project.add_dataset(ds)
    assert project_path.is_file()

    with Project(project_path, create=False) as project:
        back = project.examples(dataset_id)
        info = project.dataset(dataset_id)
        listed = project.datasets()

    assert [ex.id for ex in back] == [ex.id for ex in ds.examples]  # same ids, same order
    assert [ex.answers for ex in back] == [ex.answers for ex in ds.examples]
    assert [ex.group for ex in back] == [ex.group for ex in ds.examples]
    assert [ex.question for ex in back] == [ex.question for ex in ds.examples]
    assert [ex.line for ex in back] == [ex.line for ex in ds.examples]
    assert [ex.raw for ex in back] == [ex.raw for ex in ds.examples]
    assert back == ds.examples
    assert all(isinstance(ex.answers, tuple) for ex in back)

    assert info["name"] == "entityquestions_sample.jsonl"
    assert info["n_examples"] == len(ds.examples) == 600
    assert info["content_sha256"] == ds.content_sha256
    assert info["role"] == "train"
    assert json.loads(info["mapping"]) == ds.mapping
    assert [d["id"] for d in listed] == [dataset_id]


def test_non_ascii_text_round_trips(project_path: Path, tmp_path: Path) -> None:
    from core.datasets import load_dataset

    data = tmp_path / "intl.jsonl"
    rows = [
        {"question": "Wo liegt Grímsstaðir?", "answers": ["Ísland", "Iceland"], "relation": "Orte"},
        {"question": "東京はどこの首都ですか？", "answers": ["日本"], "relation": "首都"},
    ]
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    ds = load_dataset(data)
    with Project(project_path) as project:
        dataset_id = project.add_dataset(ds)
    with Project(project_path) as project:
        back = project.examples(dataset_id)
    assert [(ex.question, ex.answers, ex.group) for ex in back] == [
        ("Wo liegt Grímsstaðir?", ("Ísland", "Iceland"), "Orte"),
        ("東京はどこの首都ですか？", ("日本",), "首都"),
    ]


def test_adding_the_same_dataset_twice_returns_the_same_id(project_path: Path, sample_dataset_loaded, small_ds) -> None:
    with Project(project_path) as project:
        first = project.add_dataset(sample_dataset_loaded)
        assert project.add_dataset(sample_dataset_loaded) == first
        as_pool = project.add_dataset(sample_dataset_loaded, role="pool")
        subset = project.add_dataset(small_ds)
    assert as_pool != first  # another role is another dataset
    assert subset not in (first, as_pool)  # other content is another dataset
    with Project(project_path) as project:
        assert project.add_dataset(sample_dataset_loaded) == first  # also after reopening
        assert len(project.datasets()) == 3
    assert count(project_path, "SELECT COUNT(*) FROM examples WHERE dataset_id = ?", (first,)) == 600


def test_unknown_dataset_number_is_a_project_error(project_path: Path) -> None:
    with Project(project_path) as project:
        with pytest.raises(ProjectError, match="no dataset number 42"):
            project.dataset(42)
        with pytest.raises(ProjectError, match="no probe yet"):
            project.probe_run()
        with pytest.raises(ProjectError, match="no probe run number 7"):
            project.probe_run(7)


# ----------------------------------------------------------------------------- file format


def test_new_project_uses_wal_and_the_current_schema(project_path: Path) -> None:
    with Project(project_path) as project:
        assert project.journal_mode == "wal"
        assert project.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
        meta = {r["key"]: r["value"] for r in project.db["meta"].rows}
        assert meta["written_by"].startswith("KnowMix ")
        for table in ("datasets", "examples", "probe_runs", "probe_results", "exemplar_sets", "plans", "train_runs", "metrics"):
            assert table in project.db.table_names()
    # the journal mode is stored in the file: a plain sqlite3 connection sees it too
    conn = sqlite3.connect(str(project_path))
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


def test_reopening_does_not_migrate_again(project_path: Path, small_ds) -> None:
    with Project(project_path) as project:
        project.add_dataset(small_ds)
    with Project(project_path) as project:
        assert project.schema_version == SCHEMA_VERSION
        assert len(project.datasets()) == 1


def test_project_from_a_newer_knowmix_is_refused(project_path: Path) -> None:
    Project(project_path).close()
    conn = sqlite3.connect(str(project_path))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(ProjectError) as exc:
        Project(project_path)
    text = str(exc.value)
    assert "newer KnowMix" in text
    assert str(project_path) in text
    assert "Update KnowMix" in text
    # and the file was not downgraded or altered
    assert count(project_path, "PRAGMA user_version") == SCHEMA_VERSION + 1


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.knowmix"
    path.write_text("my shopping list\neggs\nmilk\n", encoding="utf-8")
    with pytest.raises(ProjectError) as exc:
        Project(path)
    assert "not a KnowMix project" in str(exc.value)
    assert "x.knowmix" in str(exc.value)
    assert path.read_text(encoding="utf-8").startswith("my shopping list")  # untouched


def test_an_sqlite_file_of_another_app_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.knowmix"
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('Ada', '555')")
    conn.commit()
    conn.close()
    with pytest.raises(ProjectError) as exc:
        Project(path)
    assert "not a KnowMix project" in str(exc.value)
    conn = sqlite3.connect(str(path))
    try:  # no KnowMix tables were added to the other app's file
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    assert tables == {"contacts"}


def test_a_damaged_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "damaged.knowmix"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    with pytest.raises(ProjectError) as exc:
        Project(path)
    assert "damaged.knowmix" in str(exc.value)


def test_a_folder_is_not_a_project(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="is a folder"):
        Project(tmp_path)


def test_opening_a_missing_project_without_create(tmp_path: Path) -> None:
    path = tmp_path / "missing.knowmix"
    with pytest.raises(ProjectError) as exc:
        Project(path, create=False)
    assert "No project at" in str(exc.value) and "missing.knowmix" in str(exc.value)
    assert not path.exists()


def test_project_in_a_read_only_folder_gets_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)  # 0o555
    try:
        if not os.access(folder, os.W_OK):
            with pytest.raises(ProjectError) as exc:
                Project(folder / "p.knowmix")
            text = str(exc.value)
            assert "read-only" in text and str(folder) in text
            assert "folder you can write to" in text
            assert not (folder / "p.knowmix").exists()
        else:
            # Running as root: permission bits do not stop us. A place nobody can create a folder in
            # must still give a ProjectError that names the folder, not a traceback.
            with pytest.raises(ProjectError) as exc:
                Project("/proc/knowmix-test-nonexistent/p.knowmix")
            text = str(exc.value)
            assert "Cannot create the folder" in text
            assert "/proc/knowmix-test-nonexistent" in text
    finally:
        folder.chmod(0o755)


def test_writing_to_a_read_only_project_gets_a_clear_error(project_path: Path, small_ds) -> None:
    with Project(project_path) as project:
        project.db.conn.execute("PRAGMA query_only = ON")  # what a read-only file or mount looks like to SQLite
        with pytest.raises(ProjectError) as exc:
            project.add_dataset(small_ds)
        assert "read-only" in str(exc.value)
        assert str(project_path) in str(exc.value)


def test_missing_parent_folders_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "p.knowmix"
    with Project(path) as project:
        assert project.schema_version == SCHEMA_VERSION
    assert path.is_file()


# ----------------------------------------------------------------------------- transactions


def test_transaction_keeps_nothing_of_a_failed_batch(project_path: Path, small_ds) -> None:
    with Project(project_path) as project:
        dataset_id = project.add_dataset(small_ds)
        run_id = make_run(project, dataset_id)
        ids = [ex.id for ex in small_ds.examples]
        project.save_probe_results(run_id, [result_row(run_id, i) for i in ids[:4]], n_done=4, seconds=1.0)

        with pytest.raises(RuntimeError, match="boom"):
            with project.transaction():
                # sqlite-utils writes (its own atomic()/savepoints must not commit early) ...
                project.db["probe_results"].insert_all([result_row(run_id, i) for i in ids[4:12]], replace=True)
                project.db["probe_runs"].update(run_id, {"n_done": 12, "status": "half-written"})
                project.db["plans"].insert(
                    {"probe_run_id": run_id, "name": "p", "settings": "{}", "summary": "", "created_at": 0.0}
                )
                # ... and plain SQL, nested transactions included
                with project.transaction():
                    project.db.execute("UPDATE probe_runs SET note = 'should vanish' WHERE id = ?", [run_id])
                assert project.db.conn.in_transaction  # the nested block did not commit
                raise RuntimeError("boom")

        assert not project.db.conn.in_transaction
        assert project.done_example_ids(run_id) == set(ids[:4])
        run = project.probe_run(run_id)
        assert run.n_done == 4 and run.status == "running" and not run.note
        assert project.db["plans"].count == 0

    # a fresh connection agrees: nothing of the failed batch reached the file
    assert count(project_path, "SELECT COUNT(*) FROM probe_results") == 4
    assert count(project_path, "SELECT n_done FROM probe_runs WHERE id = ?", (run_id,)) == 4


def test_save_probe_results_is_all_or_nothing(project_path: Path, small_ds) -> None:
    with Project(project_path) as project:
        dataset_id = project.add_dataset(small_ds)
        run_id = make_run(project, dataset_id)
        good = [result_row(run_id, ex.id) for ex in small_ds.examples[:5]]
        bad = result_row(run_id + 100, "orphan")  # no such run: the foreign key refuses it
        with pytest.raises(sqlite3.IntegrityError):
            project.save_probe_results(run_id, good + [bad], n_done=6, seconds=2.0)
        assert project.done_example_ids(run_id) == set()
        assert project.probe_run(run_id).n_done == 0
        project.save_probe_results(run_id, good, n_done=5, seconds=2.0)  # the connection is usable again
        assert len(project.done_example_ids(run_id)) == 5


def test_sqlite_errors_inside_a_transaction_become_project_errors(project_path: Path) -> None:
    with Project(project_path) as project:
        with pytest.raises(ProjectError) as exc:
            with project.transaction():
                project.db.execute("INSERT INTO no_such_table VALUES (1)")
        assert "Cannot write to" in str(exc.value)
        assert not project.db.conn.in_transaction


_KILL_SCRIPT = r"""
import json, os, signal, sys
from core.store import Project
project = Project({path!r})
run_id = {run_id}
ids = {ids!r}
template = json.loads({row!r})
rows = lambda some: [dict(template, example_id=i) for i in some]
project.save_probe_results(run_id, rows(ids[:3]), n_done=3, seconds=1.0)
with project.transaction():
    project.db["probe_results"].insert_all(rows(ids[3:]), replace=True)
    project.db["probe_runs"].update(run_id, {{"n_done": len(ids)}})
    sys.stdout.write("in flight\n"); sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_kill_loses_only_the_batch_in_flight(project_path: Path, small_ds) -> None:
    with Project(project_path) as project:
        dataset_id = project.add_dataset(small_ds)
        run_id = make_run(project, dataset_id)
    ids = [ex.id for ex in small_ds.examples[:9]]
    script = _KILL_SCRIPT.format(path=str(project_path), run_id=run_id, ids=ids, row=json.dumps(result_row(run_id, "")))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "in flight" in proc.stdout

    with Project(project_path, create=False) as project:  # opens fine after the kill
        assert project.done_example_ids(run_id) == set(ids[:3])
        assert project.probe_run(run_id).n_done == 3
        assert project.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ----------------------------------------------------------------------------- two connections


def test_two_projects_on_one_file_can_both_read(project_path: Path, small_ds) -> None:
    with Project(project_path) as a:
        dataset_id = a.add_dataset(small_ds)
        with Project(project_path) as b:
            assert [ex.id for ex in b.examples(dataset_id)] == [ex.id for ex in a.examples(dataset_id)]
            with a.transaction():  # a holds the write lock; b still reads the last committed state
                a.db["datasets"].update(dataset_id, {"name": "renamed.jsonl"})
                assert b.dataset(dataset_id)["name"] == Path(small_ds.path).name
                assert len(b.examples(dataset_id)) == len(small_ds.examples)
            assert b.dataset(dataset_id)["name"] == "renamed.jsonl"


def test_a_second_writer_gets_busy_while_the_lock_is_held(project_path: Path, small_ds) -> None:
    with Project(project_path) as a, Project(project_path) as b:
        dataset_id = a.add_dataset(small_ds)
        run_id = make_run(a, dataset_id)
        # The real timeout is 10 s; shorten it for the test (the behaviour is the same).
        b.db.conn.execute("PRAGMA busy_timeout = 300")
        with a.transaction():
            a.db["probe_runs"].update(run_id, {"note": "writing"})
            t0 = time.monotonic()
            with pytest.raises(ProjectError) as exc:
                b.update_probe_run(run_id, status="cancelled")
            waited = time.monotonic() - t0
        text = str(exc.value)
        assert "busy" in text
        assert str(project_path) in text
        assert "another KnowMix window or command" in text
        assert 0.2 <= waited < 5
        assert not b.db.conn.in_transaction
        # once the lock is released the second writer gets through, and nothing was lost
        b.update_probe_run(run_id, status="cancelled")
        assert a.probe_run(run_id).note == "writing"
        assert a.probe_run(run_id).status == "cancelled"


def test_projects_wait_for_a_short_write_lock_instead_of_failing(project_path: Path, small_ds) -> None:
    with Project(project_path) as a, Project(project_path) as b:
        assert b.db.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
        dataset_id = a.add_dataset(small_ds)
        run_id = make_run(a, dataset_id)
        holding = threading.Event()

        def hold_lock() -> None:
            with a.transaction():
                a.db["probe_runs"].update(run_id, {"note": "held"})
                holding.set()
                time.sleep(0.5)

        t = threading.Thread(target=hold_lock)
        t.start()
        assert holding.wait(10)
        b.update_probe_run(run_id, status="finished")  # waits for a, then writes
        t.join(10)
        run = b.probe_run(run_id)
        assert run.note == "held" and run.status == "finished"
