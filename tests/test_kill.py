"""SIGKILL at random points, for real: the project opens, nothing finished is lost, the resumed
job completes, and its results equal an uninterrupted run's.

* The probe: ``python -m core probe`` (built-in model, smoke preset, 24 sample questions, one
  thread) is killed at two seeded-random points after some batches are saved, then the same
  command resumes it. tests/test_cli.py checks the messages of one kill/resume; here the final
  results are compared row by row with an uninterrupted run (the probe is deterministic for a
  seed: exemplars and sample seeds are derived from it, and a batch is one group's questions, so
  the resumed run asks the model exactly what the uninterrupted one asked).
* The training child: the worker is killed at a seeded-random step (between checkpoints, so
  steps after the checkpoint are redone), resumed, killed again at a later random step, and
  resumed to the end. Loss per step, the dev exact match history and the final adapter weights
  are compared with an uninterrupted run of the same seed. Resuming restores the model, the
  optimizer, the scheduler and the RNG state from the checkpoint and the data order is a function
  of (seed, epoch), so the runs do the same arithmetic; the comparison still allows float
  rounding noise (1e-4 relative on losses, 1e-5 absolute on weights) because a resumed process
  re-creates its thread pool and kernels, which the test does not want to depend on.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest

from core.store import Project
from tests.test_cli import probe_args, read_only, run_cli, saved_results, start_cli, wait_for_saved_results

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")

N_QUESTIONS = 24
COMPARED = (
    "group_name",
    "category",
    "greedy_correct",
    "greedy_total",
    "sampled_correct",
    "sampled_total",
    "greedy_answers",
    "sampled_answers",
    "exemplar_ids",
)


def result_rows(path: Path) -> dict[str, tuple]:
    conn = read_only(path)
    try:
        rows = conn.execute(f"SELECT example_id, {', '.join(COMPARED)} FROM probe_results").fetchall()
    finally:
        conn.close()
    return {r[0]: tuple(r[1:]) for r in rows}


def check_intact(path: Path) -> None:
    conn = read_only(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM probe_runs").fetchone()[0] == 1
        n, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT example_id) FROM probe_results").fetchone()
        assert n == distinct
        assert conn.execute("SELECT n_done FROM probe_runs").fetchone()[0] == n  # the counter matches the rows
    finally:
        conn.close()


@pytest.mark.slow
def test_probe_killed_at_random_points_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    reference = tmp_path / "reference.knowmix"
    done = run_cli(*probe_args(reference, N_QUESTIONS), "--threads", "2", cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    expected = result_rows(reference)
    assert len(expected) == N_QUESTIONS

    rng = random.Random(20261124)
    for attempt in range(2):
        project = tmp_path / f"killed-{attempt}.knowmix"
        args = [*probe_args(project, N_QUESTIONS), "--threads", "2"]
        at_least = rng.randint(2, N_QUESTIONS * 2 // 3)
        extra_delay = rng.uniform(0.0, 1.0)  # not right at a batch boundary: somewhere inside the next batch
        proc, _out, err = start_cli(*args, cwd=tmp_path)
        try:
            wait_for_saved_results(project, proc, err, at_least=at_least)
            time.sleep(extra_delay)
            assert proc.poll() is None, "the probe finished before the kill; lower the kill point"
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
        assert proc.returncode == -signal.SIGKILL

        with Project(project, create=False) as opened:  # the project opens (and is writable) right after the kill
            assert opened.probe_run().status == "running"
        check_intact(project)
        survived = result_rows(project)
        assert at_least <= len(survived) < N_QUESTIONS
        assert survived == {k: expected[k] for k in survived}  # what was saved is what an uninterrupted run saves

        resumed = run_cli(*args, cwd=tmp_path, timeout=600)
        assert resumed.returncode == 0, resumed.stderr
        assert f"{len(survived)} of {N_QUESTIONS} examples already done" in resumed.stderr
        check_intact(project)
        final = result_rows(project)
        assert {k: final[k] for k in survived} == survived  # nothing finished was touched
        assert final == expected, f"kill point {attempt} (after {len(survived)} saved) changed the results"
        assert saved_results(project) == saved_results(reference)  # the categories, as the summary reads them


# ------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def facts():
    """The facts tests/test_train.py trains on (40 train + 10 dev one-token facts), built the same way."""
    pytest.importorskip("peft")
    return _make_facts()


def _make_facts():
    from core.train import TrainItem
    from tests.tiny_models import _WORDS, make_tiny_tokenizer

    cats = ("HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown")
    tok = make_tiny_tokenizer()
    words = list(dict.fromkeys(_WORDS))
    one = [w for w in words if len(tok(" " + w)["input_ids"]) == 1]
    two = [w for w in words if len(tok(" " + w)["input_ids"]) == 2]
    rng = random.Random(0)
    items = []
    for i, key in enumerate((one + two)[:50]):
        answer = rng.choice(one)
        items.append(TrainItem(f"ex{i:02d}", f"What is the name of {key}?", answer, (answer,), cats[i % 4], "names"))
    return items[:40], items[40:]


@pytest.mark.usefixtures("one_cpu_thread")
def test_training_worker_killed_twice_at_random_steps_ends_like_an_uninterrupted_run(tmp_path, tiny_folder, facts) -> None:
    from safetensors.torch import load_file

    from core.models import resolve_model
    from core.train import TrainingCrashed
    from core.train.events import Eval, Start, Step
    from core.train.loop import LoopHooks, train_loop
    from core.train.runner import resume_training, run_worker
    from core.train.runs import get_run, metric_series
    from tests.test_train import fast_settings, make_run, step_losses

    settings = fast_settings(epochs=8, lr=1e-2, stopping="convergence", seed=3)
    reference: list = []
    ref_result = train_loop(
        tmp_path / "reference", resolve_model(tiny_folder), settings, *facts, LoopHooks(emit=reference.append)
    )
    total = max(step_losses(reference))
    assert total == 40  # 40 facts, batch 8, 8 epochs; a checkpoint after every epoch (5 steps)

    rng = random.Random(7)
    first = rng.choice([s for s in range(6, 20) if s % 5])  # between checkpoints: some steps are redone
    second = rng.choice([s for s in range(first + 6, total - 2) if s % 5])
    project_path, run_id, folder = make_run(tmp_path, tiny_folder, facts, settings)

    def killer(at_step: int, seen: list):
        def on_event(event: object) -> None:
            seen.append(event)
            if isinstance(event, Step) and event.step == at_step:
                conn = read_only(project_path)  # the worker's pid, as any other process would find it
                try:
                    pid = conn.execute("SELECT worker_pid FROM train_runs WHERE id = ?", [run_id]).fetchone()[0]
                finally:
                    conn.close()
                assert pid and pid != os.getpid()
                os.kill(pid, signal.SIGKILL)

        return on_event

    all_losses: dict[int, float] = {}
    seen1: list = []
    with pytest.raises(TrainingCrashed) as err:
        run_worker(project_path, run_id, on_event=killer(first, seen1))
    assert err.value.returncode == -signal.SIGKILL and err.value.run_id == run_id
    assert "SIGKILL" in str(err.value) and "knowmix resume" in str(err.value)
    all_losses.update(step_losses(seen1))
    with Project(project_path, create=False) as project:
        row = get_run(project, run_id)
        assert row.status == "crashed" and row.step < first  # the steps after the checkpoint are lost
        assert project.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    seen2: list = []
    with pytest.raises(TrainingCrashed):
        resume_training(project_path, run_id, on_event=killer(second, seen2))
    start = next(e for e in seen2 if isinstance(e, Start))
    assert start.resumed and start.start_step == row.step
    all_losses.update(step_losses(seen2))

    seen3: list = []
    outcome = resume_training(project_path, run_id, on_event=seen3.append)
    assert outcome.status == "done" and outcome.final_step == total
    all_losses.update(step_losses(seen3))

    ref_losses = step_losses(reference)
    assert sorted(all_losses) == list(range(1, total + 1))
    for step in range(1, total + 1):  # steps redone after a kill equal the uninterrupted run's too
        assert all_losses[step] == pytest.approx(ref_losses[step], rel=1e-4, abs=1e-6), step
    ref_history = [(e.step, e.dev_em, e.fit) for e in reference if isinstance(e, Eval)]
    assert [(h["step"], h["dev_em"], h["fit"]) for h in outcome.history] == ref_history
    with Project(project_path, create=False) as project:
        assert len(metric_series(project, run_id, "loss")) == total
        assert get_run(project, run_id).status == "done"

    mine = load_file(str(Path(outcome.adapter_dir) / "adapter_model.safetensors"))
    theirs = load_file(str(Path(ref_result.final_adapter_dir) / "adapter_model.safetensors"))
    assert mine.keys() == theirs.keys() and mine
    for name in mine:
        assert (mine[name] - theirs[name]).abs().max().item() <= 1e-5, name
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "resume" for e in lines) == 2
