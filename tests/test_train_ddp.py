"""Training on several processes (``--processes N``: torchrun, gloo on this CPU) on the tiny model.

Two processes must train what one process trains: the same steps with the same effective batch, the
same loss curve (up to float summation order), the same evaluations, an adapter peft loads, and a
cancel and a resume that work as with one process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from core.errors import SettingsError  # noqa: E402
from core.models import resolve_model  # noqa: E402
from core.store import Project  # noqa: E402
from core.train import TrainSettings  # noqa: E402
from core.train.events import Checkpoint, Eval, Start  # noqa: E402
from core.train.runs import get_run  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_train import facts, fast_settings, make_run, step_losses  # noqa: E402,F401 - facts is a fixture

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning"),
    pytest.mark.usefixtures("one_cpu_thread"),
]

# Two processes sum the same per-example gradients as one, in another order (each process sums its share,
# then gloo adds the two parts), so float32 rounding differs. Measured on this tiny model over these 20 steps
# (lr 5e-3, batch 4 x accumulation 2): the largest relative loss difference was 1.2e-7, i.e. float32 rounding.
# 1e-5 leaves a margin of ~80x and still catches a wrong shard, a missing all-reduce (each process would step
# on its half of the batch) or a changed effective batch or data order.
LOSS_RTOL = 1e-5


def test_processes_must_share_the_effective_batch_equally():
    with pytest.raises(SettingsError) as err:
        TrainSettings(batch_size=6, grad_accum=1, processes=4).validate()
    text = str(err.value)
    assert "4 processes" in text and "effective batch of 6" in text and "1, 2, 3, 6" in text and "batch size 8" in text
    with pytest.raises(SettingsError):
        TrainSettings(processes=0).validate()
    # processes x micro-batch x accumulation is the one-process effective batch
    for bs, acc, n in ((8, 1, 2), (4, 3, 2), (3, 4, 2), (2, 4, 4), (16, 2, 8)):
        micro, accum = TrainSettings(batch_size=bs, grad_accum=acc, processes=n).validate().per_process_batch()
        assert n * micro * accum == bs * acc and micro <= bs
    assert TrainSettings(threads=2, processes=2).threads_per_process(on_cpu=True) == 1
    assert TrainSettings(threads=2, processes=4).threads_per_process(on_cpu=True) == 1
    assert TrainSettings(threads=8, processes=2).threads_per_process(on_cpu=False) == 8


def test_two_processes_train_like_one_and_resume_after_a_cancel(tmp_path, tiny_folder, facts):  # noqa: F811
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from core.jobs import CancelToken
    from core.train.loop import LoopHooks, train_loop
    from core.train.runner import resume_training, run_worker

    # 40 examples, effective batch 8: 5 steps an epoch, 20 in all; dropout off so both runs draw nothing at random.
    common = dict(epochs=4, batch_size=4, grad_accum=2, lora_dropout=0.0, stopping="convergence", eval_every_steps=5)
    reference: list = []
    train_loop(tmp_path / "one", resolve_model(tiny_folder), fast_settings(**common), *facts, LoopHooks(emit=reference.append))

    settings = fast_settings(**common, processes=2, threads=2)
    project_path, run_id, folder = make_run(tmp_path, tiny_folder, facts, settings)
    token = CancelToken()
    first: list = []

    def cancel_after_first_eval(event):
        first.append(event)
        if isinstance(event, Eval) and event.step > 0:
            token.cancel()

    cancelled = run_worker(project_path, run_id, on_event=cancel_after_first_eval, cancel=token)
    assert cancelled.status == "cancelled" and 5 <= cancelled.final_step < 20
    start = next(e for e in first if isinstance(e, Start))
    assert start.total_steps == 20 and start.threads == 1  # 2 threads shared by 2 processes
    state = json.loads((folder / "checkpoints" / "last" / "state.json").read_text())
    assert state["step"] == cancelled.final_step  # rank 0 saved where every process stopped
    assert sum(isinstance(e, Checkpoint) and e.step == cancelled.final_step for e in first) == 1
    import torch

    rngs = torch.load(folder / "checkpoints" / "last" / "rng.pt", weights_only=True)["ranks"]
    assert len(rngs) == 2 and not torch.equal(rngs[0]["torch"], rngs[1]["torch"])  # each process's own dropout stream

    second: list = []
    outcome = resume_training(project_path, run_id, on_event=second.append)
    assert outcome.status == "done" and outcome.final_step == 20
    resumed = next(e for e in second if isinstance(e, Start))
    assert resumed.resumed and resumed.start_step == cancelled.final_step
    with Project(project_path) as project:
        assert get_run(project, run_id).status == "done"

    one, two = step_losses(reference), {**step_losses(first), **step_losses(second)}
    assert sorted(two) == sorted(one) == list(range(1, 21))
    worst = max(abs(two[s] - one[s]) / abs(one[s]) for s in one)
    assert worst <= LOSS_RTOL, f"largest relative loss difference {worst:.2e}"
    assert one[20] < 0.8 * one[1]  # it learned: the comparison is not between two flat curves

    # The same evaluations (rank 0 evaluates), and an adapter that peft loads with the same weights.
    ref_evals = [(e.step, e.dev_em) for e in reference if isinstance(e, Eval)]
    assert [(h["step"], h["dev_em"]) for h in outcome.history] == ref_evals
    base = AutoModelForCausalLM.from_pretrained(str(tiny_folder))
    PeftModel.from_pretrained(base, outcome.adapter_dir)
    mine = load_file(str(Path(outcome.adapter_dir) / "adapter_model.safetensors"))
    theirs = load_file(str(tmp_path / "one" / "final-adapter" / "adapter_model.safetensors"))
    assert mine.keys() == theirs.keys()
    for name, w in theirs.items():
        assert (mine[name] - w).abs().max().item() <= 1e-4 * max(1.0, w.abs().max().item()), name


def test_the_train_steps_processes_field_is_in_the_runs_settings(qtbot):
    pytest.importorskip("PySide6")
    from gui.pages.train_widgets import TrainSettingsBox

    form = TrainSettingsBox("cpu")
    qtbot.addWidget(form)
    assert form.settings().processes == 1
    form.processes.setValue(2)
    form.batch.setValue(8)
    assert form.settings().processes == 2
    form.batch.setValue(3)
    with pytest.raises(SettingsError, match="2 processes cannot share the effective batch of 3"):
        form.settings()


def test_a_killed_training_process_is_named_in_the_crash_message(tmp_path):
    """torchrun's failure summary (its format, as written into worker.log) becomes one line in words."""
    from core.train.worker_launch import torchrun_root_cause

    log = tmp_path / "worker.log"
    log.write_text(
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
        "============================================================\ncore.train.worker FAILED\n"
        "------------------------------------------------------------\nFailures:\n[1]:\n"
        "  rank      : 1 (local_rank: 1)\n  exitcode  : 1 (pid: 24750) \n"
        "------------------------------------------------------------\nRoot Cause (first observed failure):\n[0]:\n"
        "  time      : 2026-11-30_17:20:41\n  host      : localhost\n  rank      : 0 (local_rank: 0)\n"
        "  exitcode  : -9 (pid: 24749)  (SIGKILL)\n  error_file: <N/A>\n"
        "  traceback : Signal 9 (SIGKILL) received by PID 24749\n"
        "============================================================\n"
    )
    assert (
        torchrun_root_cause(log) == "training process 0 was killed by SIGKILL (killed, often by the system running out of memory)"
    )
    log.write_text("an ordinary worker log\n")
    assert torchrun_root_cause(log) == ""


def test_the_packaged_app_refuses_several_processes_before_a_run_exists(tmp_path, monkeypatch):
    from core.train.runner import check_processes

    check_processes(TrainSettings(processes=2))  # from source: torchrun is there
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    check_processes(TrainSettings(processes=1))
    with pytest.raises(SettingsError, match="packaged app trains in one process; 2 processes need torchrun"):
        check_processes(TrainSettings(processes=2))


def test_a_rank_left_in_the_environment_does_not_make_one_process_wait_for_peers(monkeypatch):
    """RANK/WORLD_SIZE from a cluster or an outer torchrun are ignored unless KnowMix started the processes."""
    from core.train.distributed import LAUNCHED_ENV, Dist
    from core.train.worker_launch import worker_env

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv(LAUNCHED_ENV, "1")
    env = worker_env(TrainSettings(processes=1))
    assert LAUNCHED_ENV not in env
    monkeypatch.delenv(LAUNCHED_ENV)
    d = Dist.from_env()
    assert (d.rank, d.world, d.several, d.is_main) == (0, 1, False, True)
    assert worker_env(TrainSettings(processes=2))[LAUNCHED_ENV] == "1"
