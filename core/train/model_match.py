"""Train the model that was probed (issue 20, item 3).

The plan's mix and the check's "before" are the probed model's categories: training another model
on them compares two models as if they were one. ``prepare_run`` refuses a model whose fingerprint
differs from the probe's, naming both, unless the user says ``--other-model``; a run trained that
way says so wherever "before" is shown (``other_model_words``). A probe made through a server has
no local weights to compare, so only an equal fingerprint or ``--other-model`` ties a local model
to it.
"""

from __future__ import annotations

from typing import Any, Optional

from ..errors import SettingsError
from ..store.records import ProbeRun, TrainRun


def plan_probe_run(project: Any, plan_id: Optional[int]) -> Optional[ProbeRun]:
    """The probe run a plan was made from, or None (no plan, or its probe run is gone)."""
    from ..errors import ProjectError
    from ..store import plans as _plans

    if plan_id is None:
        return None
    row = _plans.plan_row(project, int(plan_id))
    if row is None or row.get("probe_run_id") is None:
        return None
    try:
        return project.probe_run(int(row["probe_run_id"]))
    except ProjectError:
        return None


def _names(trained_name: str, trained_fp: str, probe: ProbeRun) -> str:
    probed = probe.model_name or probe.model_spec or "?"
    return (
        f"trained {trained_name} (fingerprint {trained_fp[:12] or '?'}), "
        f"probed {probed} (fingerprint {(probe.model_fingerprint or '?')[:12]}, probe run {probe.id})"
    )


def differs(trained_fp: str, probe: Optional[ProbeRun]) -> bool:
    """True when the probe's model is known and is not the trained one."""
    if probe is None:
        return False
    return probe.model_fingerprint != str(trained_fp or "")


def check_trained_model(project: Any, plan_id: Optional[int], name: str, fingerprint: str, other_model: bool) -> None:
    """Raise ``SettingsError`` when the model to train is not the one the plan's probe asked,
    unless ``other_model`` (``--other-model``) says that is meant."""
    probe = plan_probe_run(project, plan_id)
    if other_model or not differs(fingerprint, probe):
        return
    assert probe is not None
    server = probe.model_spec.startswith("server:")
    why = (
        "The plan's probe asked a model through a server, so nothing ties its answers to local weights"
        if server
        else "The model to train is not the model the plan's probe asked"
    )
    raise SettingsError(
        f"{why}: {_names(name, fingerprint, probe)}. The plan's categories and the check's 'before' belong to the "
        "probed model. Train that model (leave out --model; in the app, leave 'Model to train' empty), or pass "
        "--other-model (in the app, tick 'Not the probed model, on purpose') to train this one anyway (the training "
        "output, the check and the report then say the model trained is not the model probed)."
    )


def other_model_words(run: Optional[TrainRun], probe: Optional[ProbeRun]) -> str:
    """'the model trained is not the model probed: …' for a run trained on another model ('' otherwise)."""
    if run is None or probe is None or not differs(run.model_fingerprint, probe):
        return ""
    return (
        "the model trained is not the model probed: "
        f"{_names(run.model_name or run.model_spec or '?', run.model_fingerprint, probe)}"
        "; 'before' is the probed model's"
    )


def run_other_model_words(project: Any, run: Optional[TrainRun]) -> str:
    """``other_model_words`` for a training run, finding its plan's probe run."""
    if run is None:
        return ""
    return other_model_words(run, plan_probe_run(project, run.plan_id))


def other_model_note(project_path: Any, run_id: int) -> str:
    """The line ``knowmix train`` prints after a run trained on another model than the probed one
    ('' for a run of the probed model)."""
    from ..store import Project
    from .runs import get_run

    with Project(project_path, create=False) as project:
        words = run_other_model_words(project, get_run(project, run_id))
    return f"Note: {words[0].upper()}{words[1:]}.\n" if words else ""
