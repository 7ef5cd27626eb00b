"""Projects with finished checks, fast: for the report's and the app's check tests.

As in ``test_check``, scripted models stand in for the base model and the trained one (their
answers are a pure function of the prompt, so a check's new errors are those questions the
"trained" model stops answering). A training run needs a saved LoRA adapter for a check to start;
the adapter here is written with numpy (peft's file names, config and tensor names, rank 2), so no
test here imports torch. The scripted backends never read it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np

from core.check import CheckModels, run_check
from core.datasets import Example
from core.plan import PlanSettings, build_plan, save_plan
from core.probe import ProbeRequest, ProbeSettings, run_probe
from core.store import Project
from core.train.data import items_from_plan
from core.train.runs import RunModel, create_run, update_run
from core.train.settings import TrainSettings
from tests.scripted import FakeDataset, ScriptedBackend

PROFILES = [(1.0, 0.0), (0.0, 0.0), (0.0, 0.3), (0.6, 0.5), (0.0, 0.01), (0.9, 0.3)]


def world(n: int = 90, forget_every: int = 7) -> tuple[list[Example], dict, dict]:
    """Questions, what the base model knows, and what it knows after "training" (it learns every
    5th question and forgets every ``forget_every``-th)."""
    examples, before, after = [], {}, {}
    for i in range(n):
        q = f"What is the code of item {i}?"
        gold = f"Code {i}"
        pg, ps = PROFILES[i % len(PROFILES)]
        before[q] = (gold, pg, ps)
        after[q] = (gold, 1.0, 0.5) if i % 5 == 0 else (gold, 0.0, 0.0) if i % forget_every == 0 else (gold, pg, ps)
        examples.append(Example(id=f"q{i:04d}", question=q, answers=(gold,), group=f"G{i % 3}", line=i + 1, raw={}))
    return examples, before, after


def write_adapter(folder: Path) -> Path:
    """A rank-2 LoRA adapter in peft's format (config + safetensors) for a 2-layer model of width 8."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": 2,
        "lora_alpha": 4,
        "target_modules": ["q_proj", "v_proj"],
        "base_model_name_or_path": "scripted",
    }
    (folder / "adapter_config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(0)
    tensors = {}
    for layer in range(2):
        for proj in ("q_proj", "v_proj"):
            base = f"base_model.model.model.layers.{layer}.self_attn.{proj}"
            tensors[f"{base}.lora_A.weight"] = rng.standard_normal((2, 8)).astype(np.float32)
            tensors[f"{base}.lora_B.weight"] = np.zeros((8, 2), dtype=np.float32)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    return folder


def probed_project(path: Path, n: int = 90) -> tuple[Project, int, tuple]:
    """A project with a finished scripted probe; returns (project, probe run id, world)."""
    w = world(n)
    project = Project(path)
    dataset_id = project.add_dataset(FakeDataset(w[0]))
    probe = run_probe(
        project,
        ProbeRequest(
            dataset_id=dataset_id,
            pool_dataset_id=None,
            model_spec="scripted",
            settings=ProbeSettings(n_sets=3, samples_per_set=4, preset="quick"),
        ),
        backend=ScriptedBackend(w[1]),
    )
    return project, probe.run_id, w


def trained_run(
    project: Project,
    probe_run_id: int,
    *,
    mix: str = "natural",
    stopping: str = "early_stop",
    ood: Optional[list[Example]] = None,
) -> int:
    """A plan with ``mix`` (and ``ood`` as its out-of-distribution questions) and a finished training
    run on it that kept an adapter; returns the run id."""
    plan = build_plan(project, probe_run_id, PlanSettings(mix=mix))
    if ood:
        ood_id = project.add_dataset(FakeDataset(ood, path="ood.jsonl"), role="ood")
        plan.settings = replace(plan.settings, ood_dataset_id=ood_id)
    plan_id = save_plan(project, plan)
    plan.id = plan_id
    train, dev = items_from_plan(plan)
    run_id, folder = create_run(
        project,
        plan_id=plan_id,
        settings=TrainSettings(epochs=2, stopping=stopping),
        train=train,
        dev=dev,
        model=RunModel("scripted", "scripted", "", "scripted-v1"),
    )
    adapter = write_adapter(Path(folder) / ("final-adapter" if stopping == "convergence" else "adapter"))
    update_run(project, run_id, status="done", best_step=10, final_step=20, best_epoch=1.0, adapter_dir=str(adapter))
    return run_id


def check_run(project: Project, run_id: int, w: tuple, after: Optional[dict] = None):
    """Check a run with the scripted models; returns the CheckReport."""
    return run_check(project, run_id, models=CheckModels(base=ScriptedBackend(w[1]), adapter=ScriptedBackend(after or w[2])))


def checked_project(
    path: Path, runs: tuple[tuple[str, str], ...] = (("natural", "early_stop"),)
) -> tuple[Project, list[int], tuple]:
    """A project whose training runs (``(mix, stopping rule)`` each) all have a finished check.
    The second run's "training" forgets more (every 4th question) than the first's."""
    project, probe_id, w = probed_project(path)
    ids = []
    for i, (mix, stopping) in enumerate(runs):
        run_id = trained_run(project, probe_id, mix=mix, stopping=stopping)
        after = w[2] if i == 0 else world(len(w[0]), forget_every=4)[2]
        check_run(project, run_id, w, after)
        ids.append(run_id)
    return project, ids, w
