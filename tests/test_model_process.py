"""The model runs in its own process (core.backends.process), for real: the built-in GGUF through
llama.cpp in a child, no fakes.

* A segmentation fault of the model process during ``knowmix probe`` ends the CLI with one line
  that names the signal and says the finished work is saved (no "Fatal Python error", no
  traceback), the project keeps what was finished, and the same command resumes to the end.
* The child's answers and model-work counters equal the in-process backend's on the same
  requests (the probe's ``PrefixPruner`` crosses the pipe), a load error comes back as the same
  ``ModelError``, and a crash between calls is a one-line ``ModelCrashed``.
* No model process outlives its owner: ``close()``, a Ctrl-C of the CLI and a ``kill -9`` of
  the CLI all leave none behind.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")
pytest.importorskip("llama_cpp")

from core.backends.base import GenRequest  # noqa: E402
from core.errors import ModelCrashed, ModelError  # noqa: E402
from core.models import ModelRef, resolve_model  # noqa: E402
from core.scoring import PrefixPruner  # noqa: E402
from tests.test_cli import (  # noqa: E402
    assert_one_clear_error,
    probe_args,
    read_only,
    run_cli,
    saved_results,
    start_cli,
    wait_for_saved_results,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

PROMPT = "Q: What is the capital of France?\nA: Paris\n\nQ: What is the capital of Italy?\nA:"
N = 10  # questions of the CLI probes: enough batches (one group each) that the kill lands mid-probe


def model_children(pid: int) -> list:
    """The model processes started by process ``pid``, as any other program would find them."""
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for kid in kids:
        try:
            if "core.backends.process" in " ".join(kid.cmdline()):
                found.append(kid)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return found


def wait_for_model_child(pid: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = model_children(pid)
        if kids:
            return kids[0].pid
        time.sleep(0.05)
    pytest.fail(f"process {pid} started no model process within {timeout} s")


def gone(pid: int) -> bool:
    """Ended (a zombie waiting for a reaper that is not ours counts as ended)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


@pytest.fixture
def isolated():
    """A ProcessBackend on the built-in model, one thread; closed (and checked gone) afterwards."""
    from core.backends.process import ProcessBackend

    backend = ProcessBackend("default", n_threads=1)
    yield backend
    pid = backend.pid
    backend.close()
    assert pid is None or wait_gone(pid, 10)


# ----------------------------------------------------------------------------- the CLI


def test_cli_model_segfault_is_one_line_keeps_the_work_and_the_same_command_resumes(tmp_path: Path) -> None:
    project = tmp_path / "crash.knowmix"
    args = [*probe_args(project, N), "--threads", "1"]
    proc, out, err = start_cli(*args, cwd=tmp_path)
    try:
        child = wait_for_model_child(proc.pid)
        wait_for_saved_results(project, proc, err, at_least=2)
        os.kill(child, signal.SIGSEGV)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    stderr, stdout = err.read_text(), out.read_text()
    line = assert_one_clear_error(
        proc.returncode,
        stderr,
        "SIGSEGV",
        "segmentation fault",
        "probing group",
        "Finished work is saved in the project",
        "Run the same command again to resume",
        "knowmix doctor",
        "--backend torch",
    )
    assert proc.returncode == 2
    assert "Fatal Python error" not in stderr + stdout and "Traceback" not in stdout
    assert wait_gone(child, 5)

    saved = saved_results(project)
    assert 2 <= len(saved) < N, "the kill came too late to test resuming"
    assert f"({len(saved)} of {N} questions)" in line
    conn = read_only(project)
    try:
        status, n_done, note = conn.execute("SELECT status, n_done, note FROM probe_runs").fetchone()
    finally:
        conn.close()
    assert (status, n_done) == ("failed", len(saved)) and "SIGSEGV" in note

    resumed = run_cli(*args, cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(saved)} of {N} examples already done" in resumed.stderr
    assert f"Probed {N} questions" in resumed.stdout
    final = saved_results(project)
    assert len(final) == N and {k: final[k] for k in saved} == saved


def test_cli_ctrl_c_and_kill_9_leave_no_model_process(tmp_path: Path) -> None:
    project = tmp_path / "stop.knowmix"
    args = [*probe_args(project, N), "--threads", "1"]
    proc, _out, err = start_cli(*args, cwd=tmp_path)
    try:
        child = wait_for_model_child(proc.pid)
        wait_for_saved_results(project, proc, err, at_least=1)
        proc.send_signal(signal.SIGINT)  # a Ctrl-C reaches the CLI only; it stops between batches
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == 130, err.read_text()
    assert gone(child), "the CLI exited and left its model process running"

    proc, _out, err = start_cli(*args, cwd=tmp_path)  # resumes; now the CLI itself is killed
    try:
        child = wait_for_model_child(proc.pid)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert wait_gone(child, 10), "the model process outlived its killed parent"


# ----------------------------------------------------------------------------- the backend itself


def test_the_model_process_answers_and_counts_like_the_in_process_backend(isolated) -> None:
    from core.backends.llama_backend import LlamaCppBackend

    reqs = [
        GenRequest(PROMPT, max_tokens=8),
        GenRequest(PROMPT, n=3, temperature=0.5, top_k=40, seeds=(1, 2, 3), max_tokens=8, prune=PrefixPruner(["Rome"])),
        GenRequest(PROMPT.replace("Italy", "Spain"), n=2, temperature=0.5, top_k=40, seeds=(4, 5), max_tokens=8),
    ]
    assert isolated.name == "llama.cpp" and isolated.info.name == "SmolLM2-135M-Instruct"
    local = LlamaCppBackend(resolve_model("default"), n_threads=1)
    try:
        expected = local.generate(reqs)
        got = isolated.generate(reqs)
        assert got == expected
        assert isolated.stats == local.stats and isolated.stats.forward_calls > 0
        isolated.stats.reset()  # the counters are the caller's, as with an in-process backend
        isolated.reset_cache()
        local.reset_cache()
        local.stats.reset()
        assert isolated.generate(reqs[:1]) == local.generate(reqs[:1])
        assert isolated.stats == local.stats
    finally:
        local.close()
    assert isolated.info.fingerprint == local.info.fingerprint


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX nice levels")
def test_the_model_process_runs_below_the_app_so_the_window_stays_responsive(isolated) -> None:
    """llama.cpp keeps every core busy; one nice level step down lets the UI thread run first."""
    from core.processes import CHILD_NICENESS

    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, isolated.pid) == min(19, mine + CHILD_NICENESS)
    assert isolated.generate([GenRequest(PROMPT)])[0]  # and it still answers


def test_close_ends_the_model_process_and_later_calls_say_it_is_unloaded(isolated) -> None:
    pid = isolated.pid
    assert isolated.alive and not gone(pid)
    isolated.close()
    assert not isolated.alive and gone(pid)
    with pytest.raises(ModelError, match="not loaded any more"):
        isolated.generate([GenRequest(PROMPT)])
    isolated.close()  # twice is fine


def test_a_crash_between_calls_is_one_line_naming_the_signal(isolated) -> None:
    os.kill(isolated.pid, signal.SIGSEGV)
    with pytest.raises(ModelCrashed) as exc:
        isolated.generate([GenRequest(PROMPT)])
    text = str(exc.value)
    assert "\n" not in text
    assert "was killed by SIGSEGV (segmentation fault) while answering 1 prompt" in text
    assert "knowmix doctor" in text and "smaller model" in text
    assert exc.value.returncode == -signal.SIGSEGV
    assert not isolated.alive


def test_a_load_error_in_the_model_process_is_the_same_model_error(tmp_path: Path) -> None:
    """A GGUF that passes KnowMix's own checks but that llama.cpp refuses, loaded in the child."""
    from core.backends.llama_backend import LlamaCppBackend
    from core.backends.process import ProcessBackend

    good = resolve_model("default")
    bad = tmp_path / "cut.gguf"
    with open(good.path, "rb") as fh:
        bad.write_bytes(fh.read(10 * 1024**2))
    ref = ModelRef(path=bad, kind="gguf", display_name="cut", size_bytes=bad.stat().st_size, metadata=good.metadata)
    with pytest.raises(ModelError) as local:
        LlamaCppBackend(ref)
    before = {p.pid for p in model_children(os.getpid())}
    with pytest.raises(ModelError) as child:
        ProcessBackend(ref, "llama.cpp", n_threads=1)
    assert type(child.value) is ModelError  # not a crash: the child said what went wrong
    assert str(child.value) == str(local.value)
    assert "damaged" in str(child.value) and "cut.gguf" in str(child.value)
    assert all(p.pid in before for p in model_children(os.getpid()))  # the failed child was ended


def test_the_model_log_gets_what_the_child_prints(isolated) -> None:
    isolated.generate([GenRequest(PROMPT, max_tokens=2)])
    text = isolated.log_path.read_text(encoding="utf-8", errors="replace")
    assert f"[{isolated.pid}]" in text and "loading" in text
