"""The rules about a training run's outcome (core.train.runs) and about which model a plan's probe used
(core.plan): the one place the training loop, the report, the Train page and the CLI ask."""

from __future__ import annotations

import json
import os

from core.plan import probe_model_spec
from core.train.runs import (
    CANCELLED,
    CRASHED,
    CREATED,
    DONE,
    FAILED,
    RUNNING,
    is_resumable,
    keeps_final_adapter,
    stopping_point,
    stopping_rule,
)

HISTORY = [
    {"step": 10 * e, "epoch": float(e), "dev_em": em, "fit": {"Unknown": e / 4}}
    for e, em in enumerate((0.25, 0.5, 0.45, 0.4), start=1)
]


def run_row(stopping: str = "early_stop", status: str = DONE, **fields) -> dict:
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
    return {**row, **fields}


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
    """The kept adapter's folder has one name per rule (``kept_adapter_name``), which the loop writes,
    the worker records and the GGUF export looks for: a finished convergence run's is the final
    one, any other run's the best dev step's, even when the row lost its ``adapter_dir``."""
    from core.train.gguf_lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS, _adapter_dir
    from core.train.runs import BEST_ADAPTER, FINAL_ADAPTER, kept_adapter_name

    assert (BEST_ADAPTER, FINAL_ADAPTER) == ("adapter", "final-adapter")  # existing run folders use these names
    for name in (BEST_ADAPTER, FINAL_ADAPTER):
        (tmp_path / name).mkdir()
        (tmp_path / name / ADAPTER_CONFIG).write_text("{}")
        (tmp_path / name / ADAPTER_WEIGHTS).write_bytes(b"")
    cases = {("convergence", DONE): FINAL_ADAPTER, ("convergence", CANCELLED): BEST_ADAPTER, ("early_stop", DONE): BEST_ADAPTER}
    for (stopping, status), expected in cases.items():
        row = run_row(stopping, status, folder=str(tmp_path), adapter_dir=None)
        assert kept_adapter_name(row) == expected, (stopping, status)
        assert _adapter_dir(row) == tmp_path / expected, (stopping, status)


def test_the_stopping_rule_is_read_from_the_run_settings_and_defaults_to_early_stop() -> None:
    assert stopping_rule(run_row("convergence")) == "convergence"
    assert stopping_rule(run_row("early_stop")) == "early_stop"
    for settings in (None, "", "not json", json.dumps({"stopping": "sometime"}), json.dumps([1])):
        assert stopping_rule({"settings": settings}) == "early_stop", settings


def test_the_stopping_point_is_the_final_epoch_for_convergence_and_the_best_one_otherwise() -> None:
    final = stopping_point(run_row("convergence"), HISTORY)
    assert final is not None and final["final"]
    assert (final["step"], final["epoch"], final["dev_em"], final["fit"]) == (40, 4.0, 0.4, {"Unknown": 1.0})
    for row in (run_row("early_stop"), run_row("convergence", status=CANCELLED, final_step=None)):
        best = stopping_point(row, HISTORY)
        assert best is not None and not best["final"]
        assert (best["step"], best["epoch"], best["dev_em"], best["fit"]) == (20, 2.0, 0.5, {"Unknown": 0.5})
    assert stopping_point(run_row(status=RUNNING, best_step=None, final_step=None), []) is None


def test_which_runs_can_resume() -> None:
    for status in (CANCELLED, FAILED, CRASHED):
        assert is_resumable({"status": status})
    assert not is_resumable({"status": DONE})
    assert not is_resumable({"status": "something else"})
    # created or running: only when the worker is gone
    assert not is_resumable({"status": RUNNING, "worker_pid": os.getpid()})
    assert is_resumable({"status": RUNNING, "worker_pid": None})
    assert is_resumable({"status": CREATED, "worker_pid": None})


def test_the_model_a_probe_used() -> None:
    assert probe_model_spec({"model_spec": " Default ", "model_path": "/models/builtin.gguf"}) == "default"
    assert probe_model_spec({"model_spec": "~/m.gguf", "model_path": "/home/a/m.gguf"}) == "/home/a/m.gguf"
    assert probe_model_spec({"model_spec": "scripted", "model_path": ""}) == "scripted"
    assert probe_model_spec({"model_spec": "", "model_path": None}) is None
