"""The `knowmix` command as a user meets it: error lines, exit codes, a real probe with the
built-in model, resume after `kill -9` and after Ctrl-C, and the demo.

Error tests call ``core.cli.main`` in-process (fast); exit codes, signals and "no traceback"
are checked on a real ``python -m core`` subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.cli import main
from core.paths import sample_dataset, sample_pool
from core.probe import CATEGORIES

REPO = Path(__file__).resolve().parents[1]
SAMPLE = sample_dataset()
POOL = sample_pool()


# ----------------------------------------------------------------------------- helpers


def run_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def start_cli(*args: str, cwd: Path) -> tuple[subprocess.Popen, Path, Path]:
    """Start `python -m core ...` with its output going to files (a pipe nobody reads could fill)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out, err = cwd / f"out-{time.monotonic_ns()}.txt", cwd / f"err-{time.monotonic_ns()}.txt"
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "core", *args], cwd=cwd, env=env, stdout=fo, stderr=fe)
    return proc, out, err


def probe_args(project: Path, limit: int) -> list[str]:
    return [
        "probe",
        "--model",
        "default",
        "--data",
        str(SAMPLE),
        "--pool",
        str(POOL),
        "--limit",
        str(limit),
        "--preset",
        "smoke",
        "--project",
        str(project),
    ]


def read_only(path: Path) -> sqlite3.Connection:
    """Look into a project another process is writing without creating or changing anything."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)


def saved_results(path: Path) -> dict[str, str]:
    conn = read_only(path)
    try:
        return dict(conn.execute("SELECT example_id, category FROM probe_results").fetchall())
    finally:
        conn.close()


def wait_for_saved_results(path: Path, proc: subprocess.Popen, err: Path, at_least: int = 1, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the probe ended (exit {proc.returncode}) before results were saved:\n{err.read_text()}")
        if path.exists():
            try:
                conn = read_only(path)
                try:
                    n = conn.execute("SELECT COUNT(*) FROM probe_results").fetchone()[0]
                finally:
                    conn.close()
                if n >= at_least:
                    return n
            except sqlite3.Error:
                pass  # the file or its tables are still being created
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no probe results saved within {timeout} s:\n{err.read_text()}")


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("knowmix: error:")]


def assert_one_clear_error(code: int, err: str, *fragments: str) -> str:
    assert code != 0
    assert "Traceback" not in err
    lines = error_lines(err)
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


# ----------------------------------------------------------------------------- user mistakes


def test_missing_data_file_is_one_error_line_with_exit_code_2(tmp_path: Path) -> None:
    proc = run_cli("probe", "--data", "missing.jsonl", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("knowmix: error:")
    assert "missing.jsonl" in lines[0]
    assert "not found" in lines[0]
    assert proc.stdout == ""
    assert not list(tmp_path.glob("*.knowmix"))  # nothing was created


def test_missing_data_file_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["probe", "--data", "missing.jsonl"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith("knowmix: error:") and "missing.jsonl" in err


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD_INPUTS = {
    "invalid-json-line": (
        "bad.jsonl",
        b'{"question": "Capital of France?", "answers": ["Paris"]}\n{"question": "Capital of Peru?", "answers": \n',
        ("bad.jsonl", "line 2", "invalid JSON", "--skip-invalid"),
    ),
    "csv-without-answer-column": (
        "noanswer.csv",
        b"question,relation\nWhat is the capital of France?,P36\n",
        ("noanswer.csv", "answer", "--map"),
    ),
    "not-utf8": (
        "latin1.csv",
        "question,answer\nWhere is the Caf\u00e9 de Flore?,Paris\n".encode("latin-1"),
        ("latin1.csv", "line 2", "UTF-8"),
    ),
    "unknown-format": (
        "data.xlsx",
        bytes(range(256)) * 8 + b"\x00\xff" * 100,
        ("data.xlsx", "format", ".jsonl", ".csv"),
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_unusable_data_file_gives_one_clear_line(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    name, data, fragments = BAD_INPUTS[case]
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path / name, data)
    code = main(["probe", "--data", str(path), "--preset", "smoke"])
    err = capsys.readouterr().err
    assert code == 2
    assert_one_clear_error(code, err, *fragments)
    assert not list(tmp_path.glob("*.knowmix"))  # the probe never started


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["--preset", "nonsense"], ("nonsense", "paper", "quick", "smoke")),
        (["--sets", "0"], ("exemplar sets", "at least 1", "got 0")),
        (["--samples", "-1"], ("samples per set", "got -1")),
        (["--temperature", "0"], ("temperature",)),
        (["--limit", "0"], ("at least 1", "got 0")),
        (["--limit", "-3"], ("at least 1",)),
        (["--backend", "tpu"], ("tpu", "llama.cpp", "torch")),
        (["--map", "question"], ("question", "role=column")),
    ],
    ids=["preset", "sets-0", "samples-negative", "temperature-0", "limit-0", "limit-negative", "backend", "map"],
)
def test_bad_setting_gives_one_clear_line(extra: list[str], fragments: tuple, tmp_path: Path, capsys) -> None:
    project = tmp_path / "p.knowmix"
    # A missing model makes a regression fail fast (a model error) instead of starting a long probe;
    # the backend is checked against the model, so that case needs the real one (and a tiny limit).
    model = ["--model", "default", "--limit", "2"] if "--backend" in extra else ["--model", str(tmp_path / "absent.gguf")]
    code = main(["probe", *model, "--data", str(SAMPLE), "--project", str(project), "--preset", "smoke", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert_one_clear_error(code, err, *fragments)
    if "--backend" not in extra:  # settings are checked before anything is written
        assert not project.exists()


def test_model_that_is_a_text_file_gives_one_clear_line(tmp_path: Path, capsys) -> None:
    model = tmp_path / "model.gguf"
    model.write_text("not a model, just some text\n", encoding="utf-8")
    code = main(
        [
            "probe",
            "--model",
            str(model),
            "--data",
            str(SAMPLE),
            "--limit",
            "3",
            "--preset",
            "smoke",
            "--project",
            str(tmp_path / "p.knowmix"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert_one_clear_error(code, err, "model.gguf", "not a model file")


def test_model_errors_in_a_subprocess_have_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\x80\x02 pickle")
    proc = run_cli(
        "probe",
        "--model",
        str(tmp_path / "weights.bin"),
        "--data",
        str(SAMPLE),
        "--limit",
        "3",
        "--preset",
        "smoke",
        "--project",
        str(tmp_path / "p.knowmix"),
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    line = assert_one_clear_error(proc.returncode, proc.stderr, "weights.bin", "pickle", "--allow-pickle")
    assert line == proc.stderr.strip().splitlines()[-1]


def test_summary_without_a_project_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["summary"])
    assert_one_clear_error(code, capsys.readouterr().err, "No project", "--project")
    code = main(["summary", "--project", str(tmp_path / "nope.knowmix")])
    assert_one_clear_error(code, capsys.readouterr().err, "nope.knowmix")
    assert not (tmp_path / "nope.knowmix").exists()  # summary never creates a project


def test_model_command_describes_the_built_in_model(capsys) -> None:
    assert main(["model"]) == 0
    out = capsys.readouterr().out
    assert "SmolLM2-135M-Instruct" in out and "gguf" in out and "MiB" in out


def test_no_command_prints_help(capsys) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "probe" in out and "summary" in out and "demo" in out


# ----------------------------------------------------------------------------- a real probe


def test_probe_with_the_built_in_model_then_summary_then_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    project = tmp_path / "p.knowmix"
    args = probe_args(project, 6)

    assert main(args) == 0
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    for category in CATEGORIES:
        assert category in out
    assert "Probed 6 questions" in out
    assert "(6 in this session)" in out
    assert "CHEAPER than the paper" in out  # the smoke budget is labelled as such
    assert "Budget: smoke preset" in err
    assert "Traceback" not in err

    assert main(["summary", "--project", str(project), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sum(data["overall"]["counts"].values()) == 6
    assert set(data["overall"]["counts"]) == set(CATEGORIES)
    assert data["probed"] == data["of"] == 6
    assert data["status"] == "finished"
    assert data["paper_budget"] is False
    assert "smoke" in data["budget"] and "CHEAPER than the paper" in data["budget"]
    assert data["model"] == "SmolLM2-135M-Instruct" and data["backend"] == "llama.cpp"
    assert sum(sum(g["counts"].values()) for g in data["groups"].values()) == 6
    assert abs(sum(data["overall"]["shares"].values()) - 1.0) < 1e-9

    assert main(["summary", "--project", str(project)]) == 0
    table = capsys.readouterr().out
    assert "6 questions probed" in table and "all" in table

    before = saved_results(project)
    t0 = time.monotonic()
    assert main(args) == 0
    took = time.monotonic() - t0
    captured = capsys.readouterr()
    assert "already finished" in captured.err
    assert "Loading" not in captured.err  # the model was not even loaded
    assert "Probed 6 questions" in captured.out and "(0 in this session)" in captured.out
    assert took < 10
    assert saved_results(project) == before
    conn = read_only(project)
    try:
        assert conn.execute("SELECT COUNT(*) FROM probe_runs").fetchone()[0] == 1
    finally:
        conn.close()


def test_demo_probes_sample_questions_into_knowmix_home(
    knowmix_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--questions", "12", "--preset", "smoke", "--no-train"]) == 0
    captured = capsys.readouterr()
    assert "probing 12 EntityQuestions questions" in captured.err
    assert "Probed 12 questions" in captured.out
    for category in CATEGORIES:
        assert category in captured.out
    assert (knowmix_home / "demo.knowmix").is_file()  # in KNOWMIX_HOME, not the real home
    assert not list(tmp_path.glob("*.knowmix"))
    assert len(saved_results(knowmix_home / "demo.knowmix")) == 12


# ----------------------------------------------------------------------------- kill and Ctrl-C


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_probe_resumes_after_kill_9(tmp_path: Path) -> None:
    project = tmp_path / "p.knowmix"
    args = probe_args(project, 36)
    proc, _out, err = start_cli(*args, cwd=tmp_path)
    try:
        wait_for_saved_results(project, proc, err, at_least=1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL

    saved = saved_results(project)  # what survived the kill (the process is gone: nothing changes now)
    assert 0 < len(saved) < 36, "the kill came too late to test resuming"

    resumed = run_cli(*args, cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert "Resuming" in resumed.stderr
    assert f"{len(saved)} of 36 examples already done" in resumed.stderr
    assert "Probed 36 questions" in resumed.stdout
    assert f"({36 - len(saved)} in this session)" in resumed.stdout

    final = saved_results(project)
    assert len(final) == 36
    assert {k: final[k] for k in saved} == saved  # rows saved before the kill are unchanged
    conn = read_only(project)
    try:
        assert conn.execute("SELECT COUNT(*) FROM probe_runs").fetchone()[0] == 1
        assert conn.execute("SELECT status, n_done, n_total FROM probe_runs").fetchone() == ("finished", 36, 36)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()

    summary = run_cli("summary", "--project", str(project), "--json", cwd=tmp_path, timeout=60)
    assert summary.returncode == 0, summary.stderr
    assert sum(json.loads(summary.stdout)["overall"]["counts"].values()) == 36


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_project_opens_fine_right_after_a_kill(tmp_path: Path) -> None:
    project = tmp_path / "p.knowmix"
    proc, _out, err = start_cli(*probe_args(project, 12), cwd=tmp_path)
    try:
        wait_for_saved_results(project, proc, err, at_least=1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    summary = run_cli("summary", "--project", str(project), cwd=tmp_path, timeout=60)
    assert summary.returncode == 0, summary.stderr
    assert "of 12 questions probed" in summary.stdout
    assert "(running; not finished: run the same probe command again to resume)" in summary.stdout  # honest


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_ctrl_c_stops_saves_and_says_how_to_resume(tmp_path: Path) -> None:
    project = tmp_path / "p.knowmix"
    proc, out, err = start_cli(*probe_args(project, 36), cwd=tmp_path)
    try:
        n_before = wait_for_saved_results(project, proc, err, at_least=1)
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    stderr = err.read_text()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "Run the same command again to resume" in stderr
    assert "of 36 questions are probed and saved" in stderr
    saved = saved_results(project)
    assert n_before <= len(saved) < 36
    conn = read_only(project)
    try:
        assert conn.execute("SELECT status, n_done FROM probe_runs").fetchone() == ("cancelled", len(saved))
    finally:
        conn.close()
    assert "Unknown" in out.read_text()  # the partial table is still shown


@pytest.mark.slow
@pytest.mark.timeout(1800)  # probe, training and the check: about 6 min idle, far more on a shared machine
def test_demo_goes_from_probe_to_plan_to_a_trained_adapter(knowmix_home: Path, capsys) -> None:
    assert main(["demo", "--questions", "24", "--preset", "quick", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "Probed 24 questions" in out
    assert "== Plan: the recommended mix ==" in out
    if "No training run" not in out:  # a plan needs a few known questions; the sample has them at this size
        assert "Stopping point" in out and "Adapter:" in out
        adapter = Path(out.split("Adapter: ", 1)[1].split()[0])
        assert (adapter / "adapter_config.json").is_file()
        # the demo ends with knowmix check: the base GGUF, then the GGUF with the run's adapter as a LoRA
        assert "== What training did to the model's knowledge ==" in out
        assert "llama.cpp with the adapter as a GGUF LoRA" in out and "before \\ after" in out
        assert (adapter.parent / "check" / f"{adapter.name}-lora.gguf").is_file()


def test_a_dataset_too_small_for_four_shot_prompts_is_refused_before_anything_is_written(tmp_path: Path, capsys) -> None:
    data = _write(tmp_path / "one.jsonl", b'{"question": "Who?", "answer": "Me"}\n')
    project = tmp_path / "one.knowmix"
    code = main(["probe", "--data", str(data), "--project", str(project)])
    assert_one_clear_error(code, capsys.readouterr().err, "only 1 usable question", "--pool")
    assert not project.exists()


def test_plan_prints_every_row_and_exports_in_the_input_format(tmp_path: Path, capsys) -> None:
    from core.datasets import load_dataset
    from tests.test_plan import all_rows, move_not_probed, scripted_probe_project, team_rows, write_rows

    ds = move_not_probed(load_dataset(write_rows(tmp_path / "team.csv", team_rows(), "csv")))
    project, _ = scripted_probe_project(tmp_path, ds)
    project.close()
    path = str(tmp_path / "p.knowmix")

    out_dir = tmp_path / "export"
    assert main(["plan", "--project", path, "--dev-fraction", "0.2", "--export", str(out_dir)]) == 0
    captured = capsys.readouterr()
    assert "Not probed: 5 rows, kept as they are in the training file" in captured.out
    assert "5 not probed (1 multi-turn, 1 long-form, 2 task, 1 no-answer)" in captured.out
    assert f"exported train: {out_dir / 'train.csv'}" in captured.err
    exported = load_dataset(out_dir / "train.csv")
    notes = [ex.raw["note"] for ex in all_rows(exported) if ex.raw["note"]]
    assert notes == ["task", "long-form", "multi-turn", "task", "no-answer"]  # the kept rows, in file order

    assert main(["plan", "--project", path, "--dev-fraction", "0.2", "--not-probed", "drop", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    c = data["counts"]
    assert c["not_probed"]["left_out"] == 5 and c["not_probed"]["kept"] == 0
    assert (
        c["train"]["total"] + c["dev"]["total"] + c["test"]["total"] + c["dropped"]["total"] + c["not_probed"]["total"]
        == c["rows"]
        == 30
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", "--project", path, "--not-probed", "maybe"])
    assert exit_info.value.code == 2
    assert "--not-probed: invalid choice" in capsys.readouterr().err
