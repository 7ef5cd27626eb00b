"""Train the model that was probed (issue 20, item 3).

The plan's mix and the check's "before" are the probed model's: ``knowmix train --model`` refuses a
model whose fingerprint differs from the probe's, naming both, unless ``--other-model``; a run
trained that way says so in the CLI's training output, the check's text and the report's check
section. A probe through a server ties to no local weights, so only ``--other-model`` trains one.
"""

from __future__ import annotations

import shutil

import pytest

from core.errors import SettingsError
from core.models import model_fingerprint, resolve_model
from core.plan import PlanSettings, build_plan, save_plan
from core.store import Project
from core.train.model_match import run_other_model_words
from core.train.runner import prepare_run
from core.train.runs import get_run, update_run
from core.train.settings import TrainSettings
from tests.check_fixture import check_run, probed_project, trained_run

pytest.importorskip("torch")


def _planned(tmp_path, tiny_folder, *, spec: str = "", fingerprint: str = "") -> tuple:
    """A project whose plan's probe asked ``tiny_folder`` (or a server, with ``spec``)."""
    project, probe_id, _w = probed_project(tmp_path / "p.knowmix")
    project.update_probe_run(
        probe_id,
        model_spec=spec or str(tiny_folder),
        model_path="" if spec else str(tiny_folder),
        model_name="probed-tiny",
        model_fingerprint=fingerprint or model_fingerprint(resolve_model(str(tiny_folder))),
    )
    plan_id = save_plan(project, build_plan(project, probe_id, PlanSettings(mix="natural")))
    project.close()
    return tmp_path / "p.knowmix", plan_id


def _other_model(tmp_path, tiny_folder):
    other = tmp_path / "other-tiny"
    shutil.copytree(tiny_folder, other)
    (other / "config.json").write_text((other / "config.json").read_text().replace("}", ', "note": "another model"}', 1))
    return other


def test_training_another_model_is_refused_naming_both(tmp_path, tiny_folder):
    path, plan_id = _planned(tmp_path, tiny_folder)
    other = _other_model(tmp_path, tiny_folder)
    with pytest.raises(SettingsError) as err:
        prepare_run(path, plan_id, TrainSettings(epochs=1), model=str(other))
    text = str(err.value)
    assert "other-tiny" in text and "probed-tiny" in text and "--other-model" in text
    # the probed model itself trains (from the plan, or named)
    assert prepare_run(path, plan_id, TrainSettings(epochs=1)) > 0
    assert prepare_run(path, plan_id, TrainSettings(epochs=1), model=str(tiny_folder)) > 0


def test_with_other_model_it_trains_and_says_so(tmp_path, tiny_folder):
    from core.train.model_match import other_model_note

    path, plan_id = _planned(tmp_path, tiny_folder)
    other = _other_model(tmp_path, tiny_folder)
    run_id = prepare_run(path, plan_id, TrainSettings(epochs=1, other_model=True), model=str(other))
    with Project(path, create=False) as project:
        words = run_other_model_words(project, get_run(project, run_id))
    assert words.startswith("the model trained is not the model probed: ") and "other-tiny" in words and "probed-tiny" in words
    assert other_model_note(path, run_id).startswith("Note: The model trained is not the model probed: ")


def test_a_server_probe_trains_a_local_model_only_with_other_model(tmp_path, tiny_folder):
    path, plan_id = _planned(tmp_path, tiny_folder, spec="server:http://127.0.0.1:9/v1", fingerprint="server-abc")
    with pytest.raises(SettingsError, match="through a server"):
        prepare_run(path, plan_id, TrainSettings(epochs=1), model=str(tiny_folder))
    assert prepare_run(path, plan_id, TrainSettings(epochs=1, other_model=True), model=str(tiny_folder)) > 0


def test_the_check_and_the_report_say_the_model_trained_is_not_the_one_probed(tmp_path):
    from core.check import load_check
    from core.report import build_report

    project, probe_id, w = probed_project(tmp_path / "p.knowmix")
    run_id = trained_run(project, probe_id)
    update_run(project, run_id, model_fingerprint="another-v2", model_name="another")
    report = check_run(project, run_id, w)
    assert "the model trained is not the model probed" in report.to_text().lower()
    assert "another" in report.other_model and "scripted" in report.other_model
    assert load_check(project, train_run_id=run_id).other_model == report.other_model
    with project:
        html = build_report(project)
    assert "The model trained is not the model probed" in html


def test_a_run_of_the_probed_model_says_nothing_about_another_model(tmp_path):
    project, probe_id, w = probed_project(tmp_path / "p.knowmix")
    run_id = trained_run(project, probe_id)
    report = check_run(project, run_id, w)
    assert report.other_model == "" and "not the model probed" not in report.to_text()
    project.close()
