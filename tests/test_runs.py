"""The rules about a training run's outcome (``TrainRun`` in core.store.records) and about which model a
plan's probe used (core.plan): the one place the training loop, the report, the Train page and the CLI ask."""

from __future__ import annotations

import json
import os

from core.plan import probe_model_spec
from core.store import ProbeRun, TrainRun
from core.train.runs import (
    CANCELLED,
    CRASHED,
    CREATED,
    DONE,
    FAILED,
    RUNNING,
    is_resumable,
    keeps_final_adapter,
)

HISTORY = [
    {"step": 10 * e, "epoch": float(e), "dev_em": em, "fit": {"Unknown": e / 4}}
    for e, em in enumerate((0.25, 0.5, 0.45, 0.4), start=1)
]


def run_row(stopping: str = "early_stop", status: str = DONE, **fields) -> TrainRun:
    row = {
        "id": 1,
        "status": status,
        "settings": json.dumps({"stopping": stopping}),
        "best_step": 20,
        "best_epoch": 2.0,
        "best_dev_em": 0.5,
        "fit_at_best": json.dumps({"Unknown": 0.5}),
        "final_step": 40,
        "final_epoch": 4.0,
    }
    return TrainRun.from_row({**row, **fields})


def test_only_a_finished_convergence_run_keeps_its_final_adapter() -> None:
    assert keeps_final_adapter("convergence", DONE)
    for stopping, status in (
        ("early_stop", DONE),
        ("convergence", CANCELLED),
        ("convergence", CRASHED),
        ("early_stop", CANCELLED),
    ):
        assert not keeps_final_adapter(stopping, status), (stopping, status)


def test_the_adapter_a_run_keeps_is_found_in_its_folder_by_one_rule(tmp_path) -> None:
    """The kept adapter's folder has one name per rule (``TrainRun.kept_adapter``), which the loop writes,
    the worker records and the GGUF export looks for: a finished convergence run's is the final
    one, any other run's the best dev step's, even when the row lost its ``adapter_dir``."""
    from core.train.gguf_lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS, _adapter_dir
    from core.train.runs import BEST_ADAPTER, FINAL_ADAPTER

    assert (BEST_ADAPTER, FINAL_ADAPTER) == ("adapter", "final-adapter")  # existing run folders use these names
    for name in (BEST_ADAPTER, FINAL_ADAPTER):
        (tmp_path / name).mkdir()
        (tmp_path / name / ADAPTER_CONFIG).write_text("{}")
        (tmp_path / name / ADAPTER_WEIGHTS).write_bytes(b"")
    cases = {("convergence", DONE): FINAL_ADAPTER, ("convergence", CANCELLED): BEST_ADAPTER, ("early_stop", DONE): BEST_ADAPTER}
    for (stopping, status), expected in cases.items():
        row = run_row(stopping, status, folder=str(tmp_path), adapter_dir=None)
        assert row.kept_adapter == expected, (stopping, status)
        assert _adapter_dir(row) == tmp_path / expected, (stopping, status)


def test_the_stopping_rule_is_read_from_the_run_settings_and_defaults_to_early_stop() -> None:
    assert run_row("convergence").stopping == "convergence"
    assert run_row("early_stop").stopping == "early_stop"
    for settings in (None, "", "not json", json.dumps({"stopping": "sometime"}), json.dumps([1])):
        assert TrainRun.from_row({"id": 1, "settings": settings}).stopping == "early_stop", settings


def test_the_stopping_point_is_the_final_epoch_for_convergence_and_the_best_one_otherwise() -> None:
    final = run_row("convergence").stopping_point(HISTORY)
    assert final is not None and final["final"]
    assert (final["step"], final["epoch"], final["dev_em"], final["fit"]) == (40, 4.0, 0.4, {"Unknown": 1.0})
    for row in (run_row("early_stop"), run_row("convergence", status=CANCELLED, final_step=None)):
        best = row.stopping_point(HISTORY)
        assert best is not None and not best["final"]
        assert (best["step"], best["epoch"], best["dev_em"], best["fit"]) == (20, 2.0, 0.5, {"Unknown": 0.5})
    assert run_row(status=RUNNING, best_step=None, final_step=None).stopping_point([]) is None


def test_which_runs_can_resume() -> None:
    def run(status: str, pid=None) -> TrainRun:
        return TrainRun(id=1, status=status, worker_pid=pid)

    for status in (CANCELLED, FAILED, CRASHED):
        assert is_resumable(run(status))
    assert not is_resumable(run(DONE))
    assert not is_resumable(run("something else"))
    # created or running: only when the worker is gone
    assert not is_resumable(run(RUNNING, os.getpid()))
    assert is_resumable(run(RUNNING))
    assert is_resumable(run(CREATED))


def test_the_model_a_probe_used() -> None:
    def probe(spec: str, path) -> ProbeRun:
        return ProbeRun.from_row({"id": 1, "status": "finished", "model_spec": spec, "model_path": path})

    assert probe_model_spec(probe(" Default ", "/models/builtin.gguf")) == "default"
    assert probe_model_spec(probe("~/m.gguf", "/home/a/m.gguf")) == "/home/a/m.gguf"
    assert probe_model_spec(probe("scripted", "")) == "scripted"
    assert probe_model_spec(probe("", None)) is None


def test_the_store_hands_out_typed_runs_with_their_settings_read(tmp_path) -> None:
    """``Project.probe_run`` and ``get_run`` return ``ProbeRun``/``TrainRun`` (core.store.records): a typo in a
    field is an AttributeError at once, not a silent None from ``row.get``."""
    from pathlib import Path

    from core.store import CONVERGENCE, PROBE_FINISHED, Project
    from core.train.runs import RunModel, create_run, get_run, list_runs
    from core.train.settings import TrainSettings

    with Project(tmp_path / "p.knowmix") as project:
        probe_id = project.create_probe_run(dataset_id=None, pool_dataset_id=None, settings='{"n_sets": 2}', n_total=3)
        project.update_probe_run(probe_id, status=PROBE_FINISHED, n_done=3)
        run_id, folder = create_run(
            project,
            plan_id=None,
            settings=TrainSettings(stopping=CONVERGENCE),
            train=[],
            dev=[],
            model=RunModel("m", "m", "/models/m", "fp"),
        )
        probe, run = project.probe_run(probe_id), get_run(project, run_id)
        assert isinstance(probe, ProbeRun) and probe.finished and probe.settings == {"n_sets": 2} and probe.n_done == 3
        assert isinstance(run, TrainRun) and run.status == CREATED and run.stopping == CONVERGENCE
        assert isinstance(run.folder, Path) and run.folder == folder and run.model_ref == "/models/m"
        assert [r.id for r in list_runs(project)] == [run_id] and project.probe_runs() == [probe]


def test_the_stop_reason_reads_the_same_wherever_it_is_shown() -> None:
    """One home for the stop-reason words (``core.store.stop_reason_words``): the report and the Train page
    both say them; "max_epochs" depends on which adapter the run keeps."""
    from core.store import stop_reason_words
    from core.store.records import STOP_CANCELLED, STOP_EARLY, STOP_MAX_EPOCHS

    assert stop_reason_words(STOP_EARLY, False).startswith("stopped early")
    assert "last step is kept" in stop_reason_words(STOP_MAX_EPOCHS, True)
    assert "best dev evaluation is kept" in stop_reason_words(STOP_MAX_EPOCHS, False)
    assert "cancelled by the user" in stop_reason_words(STOP_CANCELLED, False)
    assert stop_reason_words(None, False) == "-"
