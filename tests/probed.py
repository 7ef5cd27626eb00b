"""A probed project without a model: a finished probe run whose categories a test chooses, written
straight to the store.

The plan, report and training tests all need "a project whose probe said these categories"; running
a model for that would cost minutes and make the categories a guess. ``seed_project`` writes the
dataset, the probe run and one result per example in milliseconds; the ``probed_project`` fixture
(tests/conftest.py) is the same builder with the test's own folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

from core.datasets import Example
from core.store import PROBE_FINISHED, Project
from tests.scripted import FakeDataset


@dataclass(frozen=True)
class ProbedModel:
    """The model a seeded probe run says it asked (its row's model columns)."""

    spec: str = "scripted"
    name: str = "scripted"
    path: str = ""
    fingerprint: str = "f"
    backend: str = "scripted"

    @classmethod
    def of_folder(cls, folder: Path, name: str) -> "ProbedModel":
        """A real local model, with its fingerprint: training it is training the probed model."""
        from core.models import model_fingerprint, resolve_model

        return cls(str(folder), name, str(folder), model_fingerprint(resolve_model(str(folder))), "torch")


@dataclass(frozen=True)
class ProbeRow:
    """How the probe run's row reads: its settings identity and preset, status, time."""

    settings: str = "{}"
    preset: str = "paper"
    status: str = PROBE_FINISHED
    seconds: float = 0.0
    finished_at: Optional[float] = None


def seed_project(
    path: Path,
    examples: Sequence[Example],
    categories: Mapping[str, str],
    *,
    model: ProbedModel = ProbedModel(),
    row: ProbeRow = ProbeRow(),
    done: Optional[int] = None,
    p_greedy: Callable[[int, str], Optional[float]] = lambda _k, _cat: 0.0,
    dataset_path: str = "data.jsonl",
) -> tuple[Project, int]:
    """The open project at ``path`` with ``examples`` as its dataset and a probe run whose result for
    each of the first ``done`` examples (all by default) is ``categories[example.id]``; returns
    ``(project, probe run id)``. ``p_greedy(k, category)`` gives the k-th result's P(T=0)."""
    project = Project(path)
    dataset_id = project.add_dataset(FakeDataset(list(examples), path=dataset_path))
    run_id = project.create_probe_run(
        dataset_id=dataset_id,
        pool_dataset_id=None,
        model_spec=model.spec,
        model_name=model.name,
        model_path=model.path,
        model_fingerprint=model.fingerprint,
        backend=model.backend,
        preset=row.preset,
        settings=row.settings,
        n_total=len(examples),
    )
    rows = [
        {
            "run_id": run_id,
            "example_id": ex.id,
            "group_name": ex.group,
            "category": categories[ex.id],
            "p_greedy": p_greedy(k, categories[ex.id]),
            "p_sampled": 0.0,
            "greedy_correct": 0,
            "greedy_total": 10,
            "sampled_correct": 0,
            "sampled_total": 0,
            "greedy_answers": "[]",
            "sampled_answers": "[]",
            "exemplar_ids": "[]",
            "seconds": 0.0,
        }
        for k, ex in enumerate(examples[: len(examples) if done is None else done])
    ]
    project.save_probe_results(run_id, rows, n_done=len(rows), seconds=row.seconds)
    project.update_probe_run(run_id, status=row.status, finished_at=row.finished_at)
    return project, run_id
