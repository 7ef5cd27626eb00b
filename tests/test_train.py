"""Training: LoRA on the tiny model, in-process and through the worker process.

Facts the tiny random Llama can learn: "Q: What is the name of <key>?" / "A: <word>", where key
and answer are single tokens of the tiny tokenizer and the mapping is random, so a correct
answer means the adapter memorised it. Subprocess tests (kill/resume, cancel) pay ~5 s each for
the worker's imports of torch, transformers and peft.
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

pytest.importorskip("torch")
pytest.importorskip("peft")

from core.errors import KnowMixError, SettingsError  # noqa: E402
from core.models import resolve_model  # noqa: E402
from core.store import Project  # noqa: E402
from core.train import TrainingCrashed, TrainItem, TrainSettings, items_from_plan  # noqa: E402
from core.train.data import PromptFormat, fit_sample  # noqa: E402
from core.train.events import Checkpoint, Done, Eval, Restored, Start, Step  # noqa: E402
from core.train.runs import RunModel, create_run, eval_history, get_run, metric_series  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import _WORDS, make_tiny_tokenizer  # noqa: E402

CATS = ("HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown")
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning"),
    pytest.mark.usefixtures("one_cpu_thread"),
]


@pytest.fixture(scope="module")
def facts() -> tuple[list[TrainItem], list[TrainItem]]:
    """40 train + 10 dev facts with one-token keys and answers (the answer of a key is random)."""
    tok = make_tiny_tokenizer()
    words = list(dict.fromkeys(_WORDS))
    one = [w for w in words if len(tok(" " + w)["input_ids"]) == 1]
    two = [w for w in words if len(tok(" " + w)["input_ids"]) == 2]
    keys = (one + two)[:50]
    rng = random.Random(0)
    items = []
    for i, key in enumerate(keys):
        answer = rng.choice(one)
        items.append(TrainItem(f"ex{i:02d}", f"What is the name of {key}?", answer, (answer,), CATS[i % 4], "names"))
    return items[:40], items[40:]


def fast_settings(**kw) -> TrainSettings:
    base = dict(
        lr=5e-3,
        epochs=2,
        batch_size=8,
        threads=1,
        warmup_ratio=0.0,
        fit_sample_per_category=10,
        eval_batch_size=16,
        max_new_tokens=4,
    )
    base.update(kw)
    return TrainSettings(**base)


def make_run(tmp_path, tiny_folder, facts, settings, name="p.knowmix") -> tuple[Path, int, Path]:
    project_path = tmp_path / name
    ref = resolve_model(tiny_folder)
    with Project(project_path) as project:
        run_id, folder = create_run(
            project,
            plan_id=None,
            settings=settings,
            train=facts[0],
            dev=facts[1],
            model=RunModel(str(tiny_folder), ref.display_name, str(ref.path), ""),
        )
    return project_path, run_id, folder


def greedy_answers(model, tok, items) -> list[str]:
    from core.backends.base import GenRequest
    from core.backends.torch_backend import TorchBackend

    fmt = PromptFormat(tok, "qa")
    be = TorchBackend.from_model(model, tok, "cpu", "float32")
    return [a[0] for a in be.generate([GenRequest(fmt.prompt(it.question), max_tokens=4) for it in items])]


def step_losses(events: list) -> dict[int, float]:
    return {e.step: e.loss for e in events if isinstance(e, Step)}


# ---------------------------------------------------------------------------------- settings and data


@pytest.mark.parametrize(
    "bad",
    [
        {"lora_r": 0},
        {"lr": 0.0},
        {"lr": -1e-4},
        {"epochs": 0},
        {"batch_size": 0},
        {"grad_accum": 0},
        {"stopping": "sometimes"},
        {"patience": 0},
        {"lora_dropout": 1.0},
        {"prompt_format": "xml"},
        {"threads": 0},
    ],
)
def test_bad_settings_are_settings_errors(bad):
    with pytest.raises(SettingsError):
        TrainSettings(**bad).validate()


def test_bad_settings_and_data_are_refused_before_anything_loads(tmp_path, tiny_folder, facts, monkeypatch):
    import core.backends.torch_backend as tb
    from core.train.runner import prepare_run

    def no_loading(*a, **k):
        raise AssertionError("a model was loaded before the settings were checked")

    monkeypatch.setattr(tb, "load_hf_model", no_loading)
    project = tmp_path / "p.knowmix"
    Project(project).close()
    train, dev = facts
    cases = [
        (TrainSettings(lora_r=0), train, dev, "rank"),
        (TrainSettings(lr=0), train, dev, "learning rate"),
        (TrainSettings(epochs=0), train, dev, "Epochs"),
        (TrainSettings(), [], dev, "no training examples"),
        (TrainSettings(), train, [], "dev split is empty"),
    ]
    for settings, tr, dv, words in cases:
        with pytest.raises(SettingsError, match=words):
            prepare_run(project, None, settings, train=tr, dev=dv, model=str(tiny_folder))
    with Project(project) as p:
        assert p.db["train_runs"].count == 0


def test_settings_round_trip_through_json():
    s = TrainSettings(lora_r=8, eval_every_steps=50, stopping="convergence", threads=3)
    assert TrainSettings.from_json(s.to_json()) == s
    with pytest.raises(SettingsError, match="Unknown training setting"):
        TrainSettings.from_dict({"lora_rank": 8})
    assert TrainSettings().lora_r == 16 and TrainSettings().lora_alpha == 32 and TrainSettings().lora_dropout == 0.05


def test_items_from_plan_reads_plan_examples_duck_typed():
    class PE:  # what core.plan's PlanExample looks like
        def __init__(self, i, split, target=None):
            self.example_id, self.question, self.answers = f"e{i}", f"q{i}?", (f"a{i}", f"alias{i}")
            self.group, self.category, self.split, self.target, self.reason, self.raw = "g", "Unknown", split, target, "", {}

    class Plan:
        def train(self):
            return [PE(1, "train", "I don't know"), PE(2, "train", "a2")]

        def dev(self):
            return [PE(3, "dev")]

    train, dev = items_from_plan(Plan())
    assert [t.target for t in train] == ["I don't know", "a2"]
    assert dev[0].target == "a3" and dev[0].answers == ("a3", "alias3")
    assert train[0].category == "Unknown" and train[0].group == "g"


def test_fit_sample_is_fixed_by_seed_and_capped(facts):
    train = facts[0]
    a, b = fit_sample(train, 4, seed=1), fit_sample(train, 4, seed=1)
    assert list(a) == list(CATS)
    assert all(len(v) == 4 for v in a.values()) and a == b
    assert fit_sample(train, 4, seed=2) != a
    assert all(len(v) == 10 for v in fit_sample(train, 200, seed=0).values())


def test_prompt_masks_everything_but_the_answer(tiny_folder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_folder))
    fmt = PromptFormat(tok, "qa")
    ids, n_prompt = fmt.encode("What is the capital of France?", "Paris", 128)
    assert tok.decode(ids[:n_prompt]) == "Q: What is the capital of France?\nA:"
    assert tok.decode(ids[n_prompt:]) == " Paris\n"
    assert ids[:n_prompt] == tok(fmt.prompt("What is the capital of France?"))["input_ids"]  # as evaluation encodes it
    with pytest.raises(SettingsError, match="chat template"):
        PromptFormat(tok, "chat")


def test_a_training_command_opens_the_project_once(tmp_path, tiny_folder, facts, probed_project, monkeypatch):
    """``start_training`` opens the project file once and hands it along (prepare, claim, follow, outcome),
    not once per step: the worker process has its own connection; this process has one. (The worker
    here is a stand-in that reports the end at once: what is counted is this process's opening.)"""
    import subprocess

    import core.store
    from core.datasets import Example
    from core.plan import PlanSettings, build_plan, save_plan
    from core.train import runner
    from core.train.events import encode
    from core.train.runner import start_training
    from tests.probed import ProbedModel

    def stand_in(_path, run_id, *_args, **_kwargs):
        line = encode(Done(run_id=run_id, status="done"))
        code = f"import sys; sys.stdout.write({line!r} + chr(10))"
        return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    monkeypatch.setattr(runner, "_start_worker", stand_in)

    items = facts[0] + facts[1]
    examples = [Example(it.example_id, it.question, it.answers, it.group, i, {}) for i, it in enumerate(items)]
    project, probe = probed_project(
        examples, {it.example_id: it.category for it in items}, model=ProbedModel.of_folder(tiny_folder, "tiny")
    )
    with project:
        plan_id = save_plan(project, build_plan(project, probe, PlanSettings(mix="natural", dev_fraction=0.2)))
    opened: list[str] = []
    real = core.store.Project

    def counting(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(core.store, "Project", counting)
    start_training(tmp_path / "p.knowmix", plan_id, fast_settings(epochs=1))
    assert len(opened) == 1, opened


def test_a_saved_plan_trains_the_model_its_probe_used(tmp_path, tiny_folder, facts, probed_project):
    """The whole path from a saved plan: items and model come from the store, the worker trains them."""
    import io

    from core.datasets import Example
    from core.plan import PlanSettings, build_plan, load_plan, save_plan
    from core.train import worker
    from core.train.runner import outcome, prepare_run
    from tests.probed import ProbedModel

    all_items = facts[0] + facts[1]
    examples = [Example(it.example_id, it.question, it.answers, it.group, i, {}) for i, it in enumerate(all_items)]
    project_path = tmp_path / "p.knowmix"
    cats = {it.example_id: it.category for it in all_items}
    # the probe asked the model it trains
    project, probe = probed_project(examples, cats, model=ProbedModel.of_folder(tiny_folder, "tiny"))
    with project:
        plan_id = save_plan(project, build_plan(project, probe, PlanSettings(mix="natural", dev_fraction=0.2)))
        plan = load_plan(project, plan_id)

    run_id = prepare_run(project_path, plan_id, fast_settings(epochs=1))
    with Project(project_path) as project:
        row = get_run(project, run_id)
    assert row.plan_id == plan_id and row.model_path == str(tiny_folder) and row.status == "created"
    assert (row.n_train, row.n_dev) == (len(plan.train()), len(plan.dev()))
    folder = Path(row.folder)
    assert folder == tmp_path / "p-runs" / f"run-{run_id}"
    frozen = json.loads((folder / "plan.json").read_text())
    assert [d["example_id"] for d in frozen["dev"]] == [e.example_id for e in plan.dev()]
    assert json.loads((folder / "settings.json").read_text())["epochs"] == 1

    assert worker.run(str(project_path), run_id, False, io.StringIO(), lambda: False) == 0
    result = outcome(project_path, run_id)
    assert result.status == "done" and result.best_step == result.final_step
    assert set(result.fit_at_best) <= set(CATS) and Path(result.adapter_dir, "adapter_model.safetensors").is_file()


def test_backend_decodes_an_already_loaded_or_peft_wrapped_model(tiny_folder):
    """Evaluation reuses the torch backend's decoding loop on the model being trained."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.backends.base import GenRequest
    from core.backends.torch_backend import TorchBackend

    reqs = [
        GenRequest("Q: What is the name of 7?\nA:", max_tokens=6),
        GenRequest("Q: Who wrote it?\nA:", n=3, temperature=1.0, top_k=20, seeds=(1, 2, 3), max_tokens=6),
    ]
    with TorchBackend(resolve_model(tiny_folder), device="cpu") as loaded:
        expected = loaded.generate(reqs)
    tok = AutoTokenizer.from_pretrained(str(tiny_folder))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_folder)).eval()
    assert TorchBackend.from_model(model, tok, "cpu", "float32").generate(reqs) == expected
    wrapped = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).eval()  # B = 0: same model
    be = TorchBackend.from_model(wrapped, tok, "cpu", "float32", batch_size=2)
    assert be.generate(reqs) == expected
    assert be.model is wrapped.get_base_model() and be._keep_kw == "logits_to_keep"


# ---------------------------------------------------------------------------------- training in-process


def test_worker_trains_an_adapter_that_loads_and_answers_trained_questions(tmp_path, tiny_folder, facts):
    """The worker's body in-process: the adapter is learned, recorded in the project and the run folder."""
    import io

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.train import worker

    settings = fast_settings(epochs=30, batch_size=4, eval_every_steps=100, stopping="convergence")
    project_path, run_id, folder = make_run(tmp_path, tiny_folder, facts, settings)
    out = io.StringIO()
    started = time.perf_counter()
    assert worker.run(str(project_path), run_id, False, out, lambda: False) == 0
    seconds = time.perf_counter() - started
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("step") == 300 and kinds.count("eval") == 4
    done = events[-1]
    assert done["status"] == "done" and done["stop_reason"] == "max_epochs" and done["final_step"] == 300
    assert all(e["run_id"] == run_id for e in events)
    step = next(e for e in events if e["event"] == "step")
    assert {"step", "epoch", "loss", "lr", "tokens_per_s"} <= set(step)

    # Run folder and store.
    for name in ("adapter", "final-adapter", "checkpoints/last", "metrics.jsonl", "plan.json", "settings.json"):
        assert (folder / name).exists(), name
    assert {"optimizer.pt", "scheduler.pt", "rng.pt", "state.json", "adapter_model.safetensors"} <= {
        p.name for p in (folder / "checkpoints" / "last").iterdir()
    }
    with Project(project_path) as project:
        row = get_run(project, run_id)
        history = eval_history(project, run_id)
        losses = metric_series(project, run_id, "loss")
    assert row.status == "done" and row.adapter_dir == folder / "final-adapter"
    assert [h["step"] for h in history] == [0, 100, 200, 300] and len(losses) == 300  # step 0: before training
    assert set(history[0]["fit"]) == set(CATS)
    # Figure 1's curves: the train-fit shares grow.
    assert history[-1]["fit_all"] > history[0]["fit_all"]

    # The adapter loads with peft and answers trained questions with their targets.
    tok = AutoTokenizer.from_pretrained(str(tiny_folder))
    train = facts[0]
    base_answers = greedy_answers(AutoModelForCausalLM.from_pretrained(str(tiny_folder)).eval(), tok, train)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_folder)), str(row.adapter_dir)).eval()
    tuned_answers = greedy_answers(tuned, tok, train)
    right_before = sum(a == it.target for a, it in zip(base_answers, train))
    right_after = sum(a == it.target for a, it in zip(tuned_answers, train))
    assert sum(a != b for a, b in zip(base_answers, tuned_answers)) >= 20
    assert right_after >= 24 and right_before <= 4, (right_before, right_after)
    print(f"\ntrained 300 steps + 3 evals in {seconds:.1f}s; trained targets right: {right_before}/40 -> {right_after}/40")


def test_early_stop_picks_the_best_dev_evaluation_and_restores_it(tmp_path, tiny_folder, facts):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.train.loop import LoopHooks, train_loop

    scripted = iter([0.2, 0.5, 0.4, 0.45, 0.9])  # the best is the 2nd evaluation; patience 2 stops at the 4th

    def hook(record):
        if record["step"]:  # step 0 (before training) keeps its measured score: it never counts
            record["dev_em"] = next(scripted)
        return record

    settings = fast_settings(epochs=8, eval_every_steps=2, patience=2, merge=True, lr=1e-2)
    events: list = []
    result = train_loop(
        tmp_path / "run", resolve_model(tiny_folder), settings, *facts, LoopHooks(emit=events.append, eval_hook=hook)
    )
    assert result.status == "done" and result.stop_reason == "early_stop"
    assert [h["dev_em"] for h in result.history[1:]] == [0.2, 0.5, 0.4, 0.45]
    assert result.history[0]["step"] == 0 and result.history[0]["best"] is False
    assert result.best["step"] == 4 and result.best["dev_em"] == 0.5 and result.final_step == 8
    assert result.best["epoch"] == pytest.approx(4 / 5)
    assert set(result.best["fit"]) == set(CATS)
    assert result.adapter_dir == str(tmp_path / "run" / "adapter")
    info = json.loads((tmp_path / "run" / "adapter" / "knowmix_adapter.json").read_text())
    assert info["step"] == 4 and info["dev_em"] == 0.5
    best = load_file(str(tmp_path / "run" / "adapter" / "adapter_model.safetensors"))
    last = load_file(str(tmp_path / "run" / "final-adapter" / "adapter_model.safetensors"))
    assert any(not (best[k] == last[k]).all() for k in best), "training went on after the best step"
    assert [e.step for e in events if isinstance(e, Restored)] == [4]

    # The merged model is the restored best adapter folded into the base weights.
    tok = AutoTokenizer.from_pretrained(str(tiny_folder))
    merged = AutoModelForCausalLM.from_pretrained(result.merged_dir).eval()
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_folder)), result.adapter_dir).eval()
    assert greedy_answers(merged, tok, facts[0][:12]) == greedy_answers(with_adapter, tok, facts[0][:12])
    assert list(Path(result.merged_dir).glob("*.safetensors"))

    # Resuming a run that had already stopped early does not train past its stopping point.
    import dataclasses

    again = train_loop(
        tmp_path / "run", resolve_model(tiny_folder), dataclasses.replace(settings, merge=False), *facts, resume=True
    )
    assert again.stop_reason == "early_stop" and again.final_step == 8 and again.best["step"] == 4


def test_convergence_trains_every_epoch_and_keeps_the_last_adapter(tmp_path, tiny_folder, facts):
    from core.train.loop import LoopHooks, train_loop

    scripted = iter([0.9, 0.1, 0.1])
    result = train_loop(
        tmp_path / "run",
        resolve_model(tiny_folder),
        fast_settings(epochs=3, stopping="convergence"),
        *facts,
        LoopHooks(
            eval_hook=lambda r: {**r, "dev_em": next(scripted) if r["step"] else 1.0}
        ),  # a perfect step 0 is never the best
    )
    assert result.stop_reason == "max_epochs" and result.final_step == 15
    assert result.best["step"] == 5  # still recorded: the early-stop point
    assert result.adapter_dir == str(tmp_path / "run" / "final-adapter")


def test_step_0_records_the_base_models_dev_exact_match_and_is_never_the_best(tmp_path, tiny_folder, facts):
    """Dev exact match before any training is recorded in every run, like the other evaluations."""
    import io

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.train import worker
    from core.train.data import dev_matcher

    settings = fast_settings(epochs=2, lr=1e-2, patience=1)
    project_path, run_id, folder = make_run(tmp_path, tiny_folder, facts, settings)
    out = io.StringIO()
    assert worker.run(str(project_path), run_id, False, out, lambda: False) == 0
    evals = [json.loads(line) for line in out.getvalue().splitlines() if '"eval"' in line]
    assert evals[0]["step"] == 0 and evals[0]["best"] is False and evals[0]["best_step"] is None
    with Project(project_path) as project:
        row = get_run(project, run_id)
        history = eval_history(project, run_id)
    assert history[0]["step"] == 0 and set(history[0]["fit"]) == set(CATS)
    # The base model's own greedy answers to the dev questions, scored the same way.
    dev = facts[1]
    tok = AutoTokenizer.from_pretrained(str(tiny_folder))
    base = [a.split("\n")[0] for a in greedy_answers(AutoModelForCausalLM.from_pretrained(str(tiny_folder)).eval(), tok, dev)]
    assert history[0]["dev_em"] == sum(dev_matcher(it)(a) for it, a in zip(dev, base)) / len(dev)
    assert [e["answer"] for e in evals[0]["dev_examples"]] == [a.strip() for a in base[: len(evals[0]["dev_examples"])]]
    assert row.best_step > 0 and row.adapter_dir  # the stopping point is a trained adapter
    # The report's dev curve starts at step 0 and its words say the score before training.
    from core.formats import percent
    from core.report.data import _training
    from core.report.views import training_view

    with Project(project_path) as project:
        view = training_view(_training(project, row, None))
    assert view["dev_chart"] is not None and f"dev exact match before training: {percent(history[0]['dev_em'])}" in str(
        view["rows"]
    )


def test_gradient_accumulation_matches_one_big_batch(tmp_path, tiny_folder, facts):
    """batch 8 x accumulation 1 and batch 2 x accumulation 4 take the same steps (token-weighted loss)."""
    from core.train.loop import LoopHooks, train_loop

    runs = []
    for bs, acc in ((8, 1), (2, 4)):
        events: list = []
        train_loop(
            tmp_path / f"run{bs}",
            resolve_model(tiny_folder),
            fast_settings(epochs=1, batch_size=bs, grad_accum=acc, lora_dropout=0.0, fit_sample_per_category=0),
            *facts,
            LoopHooks(emit=events.append),
        )
        runs.append(step_losses(events))
    assert len(runs[0]) == 5
    for step in runs[0]:
        assert runs[1][step] == pytest.approx(runs[0][step], rel=1e-4)


def test_worker_reports_a_user_error_as_an_event(tmp_path, tiny_folder, facts):
    import io

    from core.train import worker

    project_path, run_id, _folder = make_run(tmp_path, tiny_folder, facts, fast_settings(prompt_format="chat"))
    out = io.StringIO()
    assert worker.run(str(project_path), run_id, False, out, lambda: False) == 1
    event = json.loads(out.getvalue().splitlines()[-1])
    assert event["event"] == "error" and event["kind"] == "user" and event["error_type"] == "SettingsError"
    assert "chat template" in event["message"] and "traceback" not in event
    with Project(project_path) as project:
        row = get_run(project, run_id)
    assert row.status == "failed" and "chat template" in row.error


# ---------------------------------------------------------------------------------- the worker process


def test_killed_run_resumes_from_its_checkpoint_with_the_same_data_order(tmp_path, tiny_folder, facts):
    from core.train.loop import LoopHooks, train_loop
    from core.train.runner import resume_training, run_worker

    settings = fast_settings(epochs=10, lr=1e-2, stopping="convergence")
    reference: list = []
    train_loop(tmp_path / "reference", resolve_model(tiny_folder), settings, *facts, LoopHooks(emit=reference.append))

    project_path, run_id, folder = make_run(tmp_path, tiny_folder, facts, settings)
    seen: list = []

    def kill_after_first_checkpoint(event):
        seen.append(event)
        if isinstance(event, Checkpoint) and sum(isinstance(e, Checkpoint) for e in seen) == 1:
            os.kill(seen[0].pid, signal.SIGKILL)

    with pytest.raises(TrainingCrashed) as err:
        run_worker(project_path, run_id, on_event=kill_after_first_checkpoint)
    assert err.value.returncode == -signal.SIGKILL and err.value.run_id == run_id
    assert "SIGKILL" in str(err.value) and "knowmix resume" in str(err.value)
    assert "knowmix resume" in str(err.value) and "SIGKILL" in str(err.value)
    assert not any(isinstance(e, Done) for e in seen)
    with Project(project_path) as project:
        row = get_run(project, run_id)
    assert row.status == "crashed" and row.step >= 5
    assert f"step {row.step}" in str(err.value)

    resumed: list = []
    outcome = resume_training(project_path, run_id, on_event=resumed.append)
    assert outcome.status == "done" and outcome.final_step == 50
    start = next(e for e in resumed if isinstance(e, Start))
    assert start.resumed and start.start_step == row.step
    ref_losses, new_losses = step_losses(reference), step_losses(resumed)
    assert sorted(new_losses) == list(range(row.step + 1, 51))
    for step, loss in new_losses.items():
        assert loss == pytest.approx(ref_losses[step], rel=1e-4, abs=1e-6), step
    assert not any(isinstance(e, Eval) and e.step == 0 for e in resumed)  # step 0 was recorded: not redone
    ref_history = [(e.step, e.dev_em, e.fit) for e in reference if isinstance(e, Eval)]
    assert [(h["step"], h["dev_em"], h["fit"]) for h in outcome.history] == ref_history
    with Project(project_path) as project:
        assert len(metric_series(project, run_id, "loss")) == 50  # the killed session's extra steps were replaced
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    assert any(json.loads(l)["event"] == "resume" for l in lines)


def test_cancel_stops_after_the_step_and_keeps_the_best_adapter(tmp_path, tiny_folder, facts):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from core.jobs import CancelToken
    from core.train.runner import run_worker

    settings = fast_settings(epochs=40, eval_every_steps=3)
    project_path, run_id, folder = make_run(tmp_path, tiny_folder, facts, settings)
    token = CancelToken()
    progress = []

    def cancel_at_first_eval(event):
        if isinstance(event, Eval) and event.step > 0:  # the first evaluation after training (step 0 is before it)
            token.cancel()

    outcome = run_worker(project_path, run_id, on_event=cancel_at_first_eval, cancel=token, progress=progress.append)
    assert outcome.status == "cancelled" and outcome.stop_reason == "cancelled"
    assert outcome.final_step < 200 and outcome.best_step is not None
    assert outcome.adapter_dir == str(folder / "adapter")
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_folder)), outcome.adapter_dir)
    state = json.loads((folder / "checkpoints" / "last" / "state.json").read_text())
    assert state["step"] == outcome.final_step  # a checkpoint at the step where it stopped
    with Project(project_path) as project:
        assert get_run(project, run_id).status == "cancelled"
    assert progress and progress[-1].unit == "steps" and progress[-1].total == 200


# ---------------------------------------------------------------------------------- the embedded model


@pytest.mark.slow
def test_embedded_smollm2_trains_one_epoch_and_its_adapter_loads(tmp_path, sample_examples):
    from peft import PeftModel

    from core.backends.torch_backend import load_hf_model
    from core.train.loop import train_loop

    try:
        ref = resolve_model("default")
    except KnowMixError as exc:
        pytest.skip(str(exc))
    ex = sample_examples[:25]
    items = [TrainItem(e.id, e.question, e.answers[0], tuple(e.answers), CATS[i % 4], e.group) for i, e in enumerate(ex)]
    started = time.perf_counter()
    settings = TrainSettings(epochs=1, batch_size=4, threads=2, max_new_tokens=12, fit_sample_per_category=3, merge=True)
    result = train_loop(tmp_path / "run", ref, settings, items[:20], items[20:])
    trained = time.perf_counter() - started
    assert result.status == "done" and result.final_step == 5
    assert (Path(result.adapter_dir) / "adapter_model.safetensors").is_file()
    assert set(result.best["fit"]) == set(CATS) and 0.0 <= result.best["dev_em"] <= 1.0
    merged_config = json.loads((Path(result.merged_dir) / "config.json").read_text())
    assert "quantization_config" not in merged_config and list(Path(result.merged_dir).glob("*.safetensors"))
    model, _tok, _dev, _dtype = load_hf_model(ref, "cpu")
    PeftModel.from_pretrained(model, result.adapter_dir)
    print(f"\nSmolLM2: load + 5 steps + 1 eval in {trained:.1f}s, total {time.perf_counter() - started:.1f}s")


def test_without_torch_training_is_refused_before_a_run_exists(tmp_path, monkeypatch):
    """The lite edition has no torch/peft: `train` says what the full edition adds, and creates no run."""
    from core.errors import SettingsError
    from core.train import runner
    from core.train.settings import TrainSettings

    monkeypatch.setattr(runner, "missing_training_packages", lambda: ["torch", "peft"])
    with pytest.raises(SettingsError, match="Training needs torch, peft.*full edition"):
        runner.prepare_run(tmp_path / "nothing.knowmix", None, TrainSettings())
    assert not (tmp_path / "nothing.knowmix").exists()
