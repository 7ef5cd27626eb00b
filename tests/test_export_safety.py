"""Nothing lost, nothing leaked (issue 19, items 1 and 6): exports never write over a file KnowMix
did not write there for this project, never over the project's own files; temp files left by a kill
are cleaned (tests/test_temp_files.py); CSV reports stay data; the Modelfile and llama-server.txt quote their paths.

The GGUF exports here write the LoRA of a two-layer adapter on the built-in model (a few seconds),
never the merged model."""

from __future__ import annotations

import csv
import io
import json
import shlex
from pathlib import Path

import pytest

from core.cli import main
from core.errors import ProjectError
from core.exports_guard import MANIFEST
from core.plan import PlanSettings, build_plan, export_plan
from core.results import results_bytes
from tests.test_plan import scripted_probe_project as plan_project
from tests.test_plan import team_rows, write_rows

# -- plan --export ------------------------------------------------------------------------------------


def team_project(tmp_path: Path, fmt: str = "jsonl"):
    from core.datasets import load_dataset

    data = write_rows(tmp_path / f"team.{fmt}", team_rows(), fmt)
    project, _ = plan_project(tmp_path, load_dataset(data))
    return project, build_plan(project, settings=PlanSettings(dev_fraction=0.2))


def test_plan_export_refuses_to_replace_the_teams_own_train_file(tmp_path: Path) -> None:
    project, plan = team_project(tmp_path)
    folder = tmp_path / "data"
    folder.mkdir()
    theirs = folder / "train.jsonl"
    theirs.write_text('{"question": "ours", "answer": "keep me"}\n', encoding="utf-8")
    with pytest.raises(ProjectError) as err:
        export_plan(plan, folder, dataset_row=project.dataset(plan.dataset_id), project=project)
    text = str(err.value)
    assert str(theirs) in text and "new (empty) folder" in text
    assert theirs.read_text(encoding="utf-8") == '{"question": "ours", "answer": "keep me"}\n'
    assert sorted(p.name for p in folder.iterdir()) == ["train.jsonl"]  # refused before writing anything


def test_plan_export_replaces_its_own_files_but_not_a_file_edited_since(tmp_path: Path) -> None:
    project, plan = team_project(tmp_path)
    row, folder = project.dataset(plan.dataset_id), tmp_path / "out"
    paths = export_plan(plan, folder, dataset_row=row, project=project)
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    assert set(manifest["files"]) == {p.name for p in paths.values()}
    assert all(entry["project"] == str(project.path.resolve()) for entry in manifest["files"].values())
    export_plan(plan, folder, dataset_row=row, project=project)  # the same project again: allowed
    paths["dev"].write_text("edited by hand\n", encoding="utf-8")
    with pytest.raises(ProjectError, match="dev.jsonl"):
        export_plan(plan, folder, dataset_row=row, project=project)
    assert paths["dev"].read_text(encoding="utf-8") == "edited by hand\n"


def test_plan_export_of_another_project_does_not_replace_the_first_ones_files(tmp_path: Path) -> None:
    project, plan = team_project(tmp_path)
    folder = tmp_path / "out"
    export_plan(plan, folder, dataset_row=project.dataset(plan.dataset_id), project=project)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other, other_plan = team_project(other_dir)
    with pytest.raises(ProjectError, match="train.jsonl"):
        export_plan(other_plan, folder, dataset_row=other.dataset(other_plan.dataset_id), project=other)


def test_plan_export_never_writes_over_the_projects_dataset_even_with_force(tmp_path: Path) -> None:
    from core.datasets import load_dataset

    data = write_rows(tmp_path / "train.jsonl", team_rows(), "jsonl")  # the team's file is named train.jsonl
    before = data.read_bytes()
    project, _ = plan_project(tmp_path, load_dataset(data))
    plan = build_plan(project, settings=PlanSettings(dev_fraction=0.2))
    with pytest.raises(ProjectError) as err:
        export_plan(plan, tmp_path, dataset_row=project.dataset(plan.dataset_id), project=project, force=True)
    assert "project's own" in str(err.value) and str(data) in str(err.value)
    assert data.read_bytes() == before


def test_cli_plan_export_refuses_then_force_replaces(tmp_path: Path, capsys) -> None:
    project, _ = team_project(tmp_path)
    project.close()
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.jsonl").write_text("theirs\n", encoding="utf-8")
    args = ["plan", "--project", str(tmp_path / "p.knowmix"), "--dev-fraction", "0.2", "--export", str(folder)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "train.jsonl" in err and "--force" in err and "Traceback" not in err
    assert (folder / "train.jsonl").read_text(encoding="utf-8") == "theirs\n"
    assert main([*args, "--force"]) == 0
    assert (folder / "train.jsonl").read_text(encoding="utf-8") != "theirs\n"
    assert (folder / MANIFEST).is_file()


def test_results_and_report_refuse_to_write_over_the_projects_own_files(tmp_path: Path, capsys) -> None:
    project, _ = team_project(tmp_path)
    project.close()
    data, path = tmp_path / "team.jsonl", str(tmp_path / "p.knowmix")
    before = data.read_bytes()
    assert main(["results", "--project", path, "--format", "csv", "--out", str(data)]) == 2
    assert "project's own" in capsys.readouterr().err
    assert main(["report", "--project", path, "--out", path]) == 2
    assert "project's own" in capsys.readouterr().err
    assert data.read_bytes() == before


# -- export --gguf ------------------------------------------------------------------------------------


def gguf_project(tmp_path: Path) -> tuple[Path, int]:
    """A project whose finished run has a small adapter for the built-in GGUF (SmolLM2-135M)."""
    from core.models import resolve_model
    from core.train.runs import get_run, update_run
    from tests.check_fixture import probed_project, trained_run
    from tests.test_gui_export_gguf import smollm2_adapter

    path = tmp_path / "facts.knowmix"
    project, probe_id, _ = probed_project(path, n=30)
    run_id = trained_run(project, probe_id)
    update_run(project, run_id, model_path=str(resolve_model("default").path), model_spec="default", model_fingerprint="")
    adapter = Path(get_run(project, run_id).adapter_dir)
    project.close()
    for f in adapter.iterdir():
        f.unlink()
    smollm2_adapter(adapter)
    return path, run_id


def test_gguf_export_refuses_a_users_modelfile_and_force_replaces_it(tmp_path: Path, capsys) -> None:
    from core.train.gguf_lora import export_gguf

    path, run_id = gguf_project(tmp_path)
    out = tmp_path / "ollama"
    out.mkdir()
    (out / "Modelfile").write_text("FROM my-own-model\n", encoding="utf-8")
    with pytest.raises(ProjectError) as err:
        export_gguf(path, out, run_id)
    assert str(out / "Modelfile") in str(err.value) and "new (empty) folder" in str(err.value)
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile"]  # nothing written, not even the LoRA
    assert main(["export", "--project", str(path), "--gguf", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "Modelfile").read_text(encoding="utf-8") == "FROM my-own-model\n"
    assert main(["export", "--project", str(path), "--gguf", str(out), "--force"]) == 0
    assert "FROM my-own-model" not in (out / "Modelfile").read_text(encoding="utf-8")
    export_gguf(path, out, run_id)  # KnowMix's own files of this project: a second export replaces them
    listed = json.loads((out / MANIFEST).read_text(encoding="utf-8"))["files"]
    assert {"Modelfile", "llama-server.txt", f"facts-run{run_id}-lora.gguf"} <= set(listed)


def test_modelfile_and_server_line_quote_paths_with_spaces_and_quotes(tmp_path: Path) -> None:
    from core.train.gguf_lora import export_gguf

    path, run_id = gguf_project(tmp_path)
    out = tmp_path / 'my "best" run' / "for ollama"
    result = export_gguf(path, out, run_id)
    lora = out / f"facts-run{run_id}-lora.gguf"
    lines = (out / "Modelfile").read_text(encoding="utf-8").splitlines()
    assert f'ADAPTER """{lora}"""' in lines  # Ollama's parser: """...""" holds a '"'; no escapes exist
    assert any(line.startswith('FROM "') and line.endswith('"') for line in lines)
    server = [line for line in (out / "llama-server.txt").read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    argv = shlex.split(server[0])
    assert argv[0] == "llama-server" and argv[argv.index("--lora") + 1] == str(lora)
    assert argv[argv.index("-m") + 1] == str(result.base_model)


def test_a_path_with_a_line_break_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    from core.train.gguf_lora import export_gguf

    path, run_id = gguf_project(tmp_path)
    out = tmp_path / "two\nlines"
    with pytest.raises(ProjectError) as err:
        export_gguf(path, out, run_id)
    assert "line break" in str(err.value) and "two\\nlines" in str(err.value)  # shown escaped, on one line
    assert not out.exists()


# -- CSV that stays data ------------------------------------------------------------------------------


def test_results_csv_escapes_cells_a_spreadsheet_would_run() -> None:
    from core.results import COLUMNS

    questions = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\tTab", "\rCR", "Plain?", "a=b"]
    rows = [
        {**{c: "" for c in COLUMNS}, "id": str(i), "question": q, "answers": ["=1+1"], "p_greedy": 0.5}
        for i, q in enumerate(questions)
    ]
    parsed = list(csv.DictReader(io.StringIO(results_bytes(rows, "csv").decode("utf-8"))))
    assert [r["question"] for r in parsed] == ["'" + q for q in questions[:6]] + ["Plain?", "a=b"]
    assert parsed[0]["answers"] == '["=1+1"]' and parsed[0]["p_greedy"] == "0.5"


def test_plan_export_keeps_the_teams_csv_values_exactly(tmp_path: Path) -> None:
    """The training data goes back as it came: a formula-like question is the team's data, not a report."""
    from core.datasets import load_dataset

    rows = team_rows()
    for r in rows:
        r["question"] = "=" + r["question"]
    project, _ = plan_project(tmp_path, load_dataset(write_rows(tmp_path / "team.csv", rows, "csv")))
    plan = build_plan(project, settings=PlanSettings(dev_fraction=0.2))
    paths = export_plan(plan, tmp_path / "out", dataset_row=project.dataset(plan.dataset_id), project=project)
    exported = list(csv.DictReader(io.StringIO(paths["train"].read_text(encoding="utf-8"))))
    assert exported and all(r["question"].startswith("=What is fact") for r in exported)
