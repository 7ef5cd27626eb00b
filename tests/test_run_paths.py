"""A project file is data, never instructions: where a training run writes, and whether pickle
weights load, come from the project's own place on disk and from the user, never from its rows.

* A run's folder is stored relative to the project's runs folder, so a copy ``b.knowmix`` of
  ``a.knowmix`` trains into ``b-runs/``, never into ``a-runs/``.
* Rows from before (absolute paths) are read inside the project's own runs folder; one that points
  into another project's runs folder, or leaves the runs folder by ``..`` or a symlink, is refused
  before anything starts.
* ``allow_pickle`` stored in a run's settings does not let the worker load pickle weights.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from core.errors import ProjectError
from core.store import Project
from core.train.data import TrainItem
from core.train.runs import FAILED, RunModel, create_run, get_run, list_runs, run_dir, runs_root, update_run
from core.train.settings import TrainSettings

ITEM = TrainItem("q1", "Where is Paris?", "France", ("France",), "Unknown", "P17")


def new_run(project_path: Path, **settings) -> int:
    with Project(project_path) as project:
        run_id, _ = create_run(
            project,
            plan_id=None,
            settings=TrainSettings(**settings),
            train=[ITEM],
            dev=[ITEM],
            model=RunModel("default", "test", "default", "f" * 64),
        )
    return run_id


def stored(project_path: Path, column: str, run_id: int) -> str:
    conn = sqlite3.connect(str(project_path))
    try:
        return conn.execute(f"SELECT {column} FROM train_runs WHERE id = ?", [run_id]).fetchone()[0]
    finally:
        conn.close()


def store_raw(project_path: Path, run_id: int, **fields: str) -> None:
    conn = sqlite3.connect(str(project_path))
    try:
        for column, value in fields.items():
            conn.execute(f"UPDATE train_runs SET {column} = ? WHERE id = ?", [value, run_id])
        conn.commit()
    finally:
        conn.close()


def test_a_run_folder_is_stored_relative_to_the_project(tmp_path: Path) -> None:
    a = tmp_path / "a.knowmix"
    run_id = new_run(a)
    assert stored(a, "folder", run_id) == f"run-{run_id}"
    with Project(a) as project:
        update_run(project, run_id, adapter_dir=str(runs_root(a) / f"run-{run_id}" / "adapter"))
        row = get_run(project, run_id)
    assert stored(a, "adapter_dir", run_id) == f"run-{run_id}/adapter"
    assert row.folder == tmp_path / "a-runs" / f"run-{run_id}"
    assert row.adapter_dir == tmp_path / "a-runs" / f"run-{run_id}" / "adapter"


def test_a_copied_project_trains_into_its_own_runs_folder(tmp_path: Path) -> None:
    a = tmp_path / "a.knowmix"
    run_id = new_run(a)
    shutil.copy(a, tmp_path / "b.knowmix")
    with Project(tmp_path / "b.knowmix") as project:
        assert run_dir(get_run(project, run_id)) == tmp_path / "b-runs" / f"run-{run_id}"


def legacy_copy(tmp_path: Path) -> tuple[Path, Path, int]:
    """``a.knowmix`` as an older KnowMix wrote it (absolute paths), with a finished adapter, copied to ``b.knowmix``."""
    a = tmp_path / "a.knowmix"
    run_id = new_run(a)
    folder = tmp_path / "a-runs" / f"run-{run_id}"
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"a's adapter")
    store_raw(a, run_id, folder=str(folder), adapter_dir=str(folder / "adapter"))
    shutil.copy(a, tmp_path / "b.knowmix")
    return a, tmp_path / "b.knowmix", run_id


def test_an_old_absolute_folder_inside_the_projects_runs_folder_still_reads(tmp_path: Path) -> None:
    a, _b, run_id = legacy_copy(tmp_path)
    with Project(a) as project:
        row = get_run(project, run_id)
    assert run_dir(row) == tmp_path / "a-runs" / f"run-{run_id}"
    assert row.adapter_dir == tmp_path / "a-runs" / f"run-{run_id}" / "adapter"


def test_a_copy_of_an_old_project_never_writes_into_the_originals_runs(tmp_path: Path) -> None:
    from core.train.runner import run_worker

    a, b, run_id = legacy_copy(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "a-runs").rglob("*"))
    with Project(b) as project:
        row = get_run(project, run_id)
        assert [r.id for r in list_runs(project)] == [run_id]  # listing still works
    assert row.folder is None and row.adapter_dir is None
    with pytest.raises(ProjectError) as err:
        run_worker(b, run_id, resume=True)
    text = str(err.value)
    assert "outside this project's runs folder" in text and str(tmp_path / "b-runs") in text
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "a-runs").rglob("*")) == before
    assert (tmp_path / "a-runs" / f"run-{run_id}" / "adapter" / "adapter_model.safetensors").read_bytes() == b"a's adapter"
    assert not (tmp_path / "b-runs").exists()


def test_a_copied_run_folder_is_used_once_the_user_copies_it_in(tmp_path: Path) -> None:
    _a, b, run_id = legacy_copy(tmp_path)
    shutil.copytree(tmp_path / "a-runs", tmp_path / "b-runs")
    with Project(b) as project:
        row = get_run(project, run_id)
    assert run_dir(row) == tmp_path / "b-runs" / f"run-{run_id}"
    assert row.adapter_dir == tmp_path / "b-runs" / f"run-{run_id}" / "adapter"


def test_a_project_moved_with_its_runs_folder_reads_them_where_they_are_now(tmp_path: Path) -> None:
    a, _b, run_id = legacy_copy(tmp_path)
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(str(a), moved / "a.knowmix")
    shutil.move(str(tmp_path / "a-runs"), moved / "a-runs")
    with Project(moved / "a.knowmix") as project:
        assert run_dir(get_run(project, run_id)) == moved / "a-runs" / f"run-{run_id}"


@pytest.mark.parametrize("folder", ["../../elsewhere", "run-1/../../outside", "/tmp/knowmix-elsewhere/run-9"])
def test_a_folder_that_leaves_the_runs_folder_is_refused(tmp_path: Path, folder: str) -> None:
    a = tmp_path / "a.knowmix"
    run_id = new_run(a)
    store_raw(a, run_id, folder=folder)
    with Project(a) as project:
        with pytest.raises(ProjectError, match="runs folder"):
            run_dir(get_run(project, run_id))


def test_a_symlink_out_of_the_runs_folder_is_refused(tmp_path: Path) -> None:
    a = tmp_path / "a.knowmix"
    run_id = new_run(a)
    outside = tmp_path / "precious"
    outside.mkdir()
    shutil.rmtree(tmp_path / "a-runs" / f"run-{run_id}")
    os.symlink(outside, tmp_path / "a-runs" / f"run-{run_id}")
    with Project(a) as project:
        with pytest.raises(ProjectError, match="runs folder"):
            run_dir(get_run(project, run_id))
        with pytest.raises(ProjectError, match="outside the project's runs folder"):
            update_run(project, run_id, adapter_dir=str(outside / "adapter"))


def test_allow_pickle_stored_in_a_project_does_not_load_pickle_weights(tmp_path: Path) -> None:
    """A crafted project asks for pickle weights; the worker, run without the user's --allow-pickle, refuses them."""
    from core.train import worker

    model = tmp_path / "pickled-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    (model / "pytorch_model.bin").write_bytes(b"not really a pickle")
    a = tmp_path / "a.knowmix"
    run_id = new_run(a, allow_pickle=True)
    store_raw(a, run_id, model_path=str(model), model_spec=str(model))
    out = io.StringIO()
    assert worker.run(str(a), run_id, False, out, should_stop=lambda: False) != 0
    events = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    assert any("pickle" in str(e.get("message", "")).lower() for e in events), events
    with Project(a) as project:
        assert get_run(project, run_id).status == FAILED


def test_the_worker_is_told_allow_pickle_only_by_the_user() -> None:
    from core.train.worker_launch import worker_command

    assert "--allow-pickle" not in worker_command("x.knowmix", 1, True)
    assert "--allow-pickle" in worker_command("x.knowmix", 1, True, allow_pickle=True)
