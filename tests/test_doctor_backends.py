"""`knowmix doctor` runs each backend for real (core.backend_checks) and says how it went.

The working path is the real thing: a one-token llama.cpp decode of the built-in model and a tiny
transformers Llama forward pass, each in its own child process. The crash path is real too: the
same child runner runs children that really die by SIGSEGV and SIGILL, and the doctor's report of
them (status, signal in words, the fix, a PROBLEM line) is checked.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core import backend_checks, doctor
from core.processes import child_env

REPO = Path(__file__).resolve().parents[1]


def _need_llama_cpu() -> None:
    """The llama.cpp check is core.llama_cpu's decode_check; without that module there is nothing to test."""
    try:
        importlib.import_module("core.llama_cpu")
    except ImportError as exc:
        pytest.skip(f"core.llama_cpu cannot be imported ({exc}): the llama.cpp check has no decode to run")


def _doctor(capsys, *args: str) -> tuple[int, str]:
    from core.cli import main

    code = main(["doctor", *args])
    return code, capsys.readouterr().out


def test_doctor_json_reports_llama_cpp_and_torch_working(capsys):
    _need_llama_cpu()
    code, out = _doctor(capsys, "--json", "--no-gpu")
    assert code == 0
    info = json.loads(out)
    backends = info["backends"]
    assert backends["checked"] is True
    llama = backends["llama.cpp"]
    assert llama["status"] == "ok" and llama["ok"] is True and llama["signal"] is None, llama
    assert llama["seconds"] > 0 and llama["system_info"]
    assert llama["features"], llama["system_info"]  # what llama.cpp turned on, parsed from its system info
    assert all(f in llama["system_info"] for f in llama["features"])
    assert "cpu_flags" in llama["cpu"] and "variant" in llama and isinstance(llama["build"], dict)
    torch = backends["torch"]
    assert torch["status"] == "ok" and torch["ok"] is True, torch
    assert torch["device"] in ("cpu", "mps") or torch["device"].startswith("cuda:")
    assert torch["torch"] and torch["transformers"] and torch["seconds"] > 0
    assert info["problems"] == []
    text = doctor.format_text(info)
    assert "  llama.cpp: ok (a one-token decode of the built-in model" in text
    assert f"  torch: ok (a tiny Llama forward pass on {torch['device']}" in text
    assert "    CPU features it uses: " in text and "PROBLEM" not in text


def test_no_backend_checks_skips_them(capsys):
    code, out = _doctor(capsys, "--json", "--no-gpu", "--no-backend-checks")
    info = json.loads(out)
    assert code == 0 and info["backends"] == {"checked": False, "note": "not checked (--no-backend-checks)"}
    assert "Backends: not checked (--no-backend-checks)" in doctor.format_text(info)


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _with_torch(report: dict) -> dict:
    """A full doctor report (no checks run) whose torch check is ``report`` and llama.cpp's passed."""
    info = doctor.collect(gpu=False, backends=False)
    info["backends"] = {
        "checked": True,
        "torch": report,
        "llama.cpp": {"status": "ok", "ok": True, "seconds": 1.0, "features": ["AVX2"], "variant": None},
    }
    info["problems"] = doctor.problems(info)
    return info


def test_a_child_that_really_segfaults_is_reported_with_its_signal_and_the_fix():
    run = backend_checks.run_child(_python("import ctypes; ctypes.string_at(0)"), timeout=60, env=child_env())
    assert run.returncode == -11 and run.signal_name == "SIGSEGV" and not run.ok
    report = backend_checks.torch_report(run)
    assert report["status"] == "crashed" and report["ok"] is False and report["signal"] == "SIGSEGV"
    assert report["message"] == "the torch check process was killed by SIGSEGV (segmentation fault)"
    assert "reinstall torch" in report["fix"] and "llama.cpp backend" in report["fix"]
    info = _with_torch(report)
    assert info["problems"] == [
        "the torch backend does not work here: the torch check process was killed by SIGSEGV (segmentation fault). "
        f"Fix: {report['fix']}."
    ]
    text = doctor.format_text(info)
    assert "  torch: CRASHED (SIGSEGV): the torch check process was killed by SIGSEGV (segmentation fault)" in text
    assert f"    Fix: {report['fix']}." in text and "PROBLEM: the torch backend does not work here" in text
    assert json.loads(json.dumps(info))["backends"]["torch"]["signal"] == "SIGSEGV"


def test_a_child_killed_by_sigill_says_illegal_instruction():
    run = backend_checks.run_child(_python("import os, signal; os.kill(os.getpid(), signal.SIGILL)"), timeout=60, env=child_env())
    report = backend_checks.torch_report(run)
    assert report["status"] == "crashed" and report["signal"] == "SIGILL"
    assert "illegal instruction" in report["message"]


def test_a_child_that_fails_or_hangs_is_reported_as_such():
    code = "import json, sys; print('noise'); print(json.dumps({'ok': False, 'error': 'RuntimeError: no kernel'})); sys.exit(1)"
    report = backend_checks.torch_report(backend_checks.run_child(_python(code), timeout=60))
    assert report["status"] == "failed" and report["message"] == "the torch check failed: RuntimeError: no kernel"
    run = backend_checks.run_child(_python("import time; time.sleep(60)"), timeout=1)
    assert run.timed_out and run.returncode is None and run.seconds < 30
    report = backend_checks.torch_report(run, timeout=1)
    assert report["status"] == "timed out" and "did not finish within 1 s" in report["message"] and report["fix"]


def test_lite_edition_torch_is_not_installed_not_a_problem():
    info = _with_torch(backend_checks.torch_check(installed=False))
    assert info["backends"]["torch"]["status"] == "not installed" and info["problems"] == []
    assert "  torch: not installed: torch is not installed (the lite edition)" in doctor.format_text(info)


def test_a_llama_cpp_crash_names_the_rebuild(monkeypatch):
    """How a crashed decode (as core.llama_cpu reports it) reads in the doctor."""
    _need_llama_cpu()
    from core import llama_cpu

    crashed = llama_cpu.DecodeCheck(
        False,
        0.8,
        -4,
        "SIGILL",
        "was killed by SIGILL during a one-token decode",
        "CPU : SSE3 = 1 | AVX2 = 1 | AMX_INT8 = 1 | AVX512 = 0 |",
        "libggml-cpu-sapphirerapids.so",
        {"GGML_CPU_ALL_VARIANTS": "ON"},
    )
    monkeypatch.setattr(llama_cpu, "decode_check", lambda timeout=180.0: crashed)
    report = backend_checks.llama_check()
    assert report["status"] == "crashed" and report["signal"] == "SIGILL"
    assert report["features"] == ["SSE3", "AVX2", "AMX_INT8"] and report["variant"] == "libggml-cpu-sapphirerapids.so"
    assert "illegal instruction" in report["message"]
    assert "make setup" in report["fix"] and "--backend torch" in report["fix"]


def test_system_info_features_are_the_cpu_sections_instruction_sets():
    info = (
        "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 0 | "
        "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "
    )
    assert backend_checks.system_info_features(info) == ["SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"]
    other = "CUDA : ARCHS = 890 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | CPU : SSE3 = 1 | AVX = 1 | AVX512 = 0 |"
    assert backend_checks.system_info_features(other) == ["SSE3", "AVX"]
    assert backend_checks.system_info_features(None) == []


def test_the_packaged_app_can_run_the_check_child():
    """A PyInstaller app starts children as ``knowmix -m MODULE``: gui.entry must accept this one."""
    proc = subprocess.run(
        [sys.executable, "-m", "gui.entry", "-m", "core.backend_checks", "--bogus"],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "usage: python -m core.backend_checks torch" in proc.stderr


def test_llama_cpp_is_not_run_without_a_usable_model_or_library():
    """A missing built-in model is already a PROBLEM of its own; the decode is not tried on top."""
    out = doctor._backends({"llama_cpp": "0.3", "torch": None}, {"ok": False})
    assert out["llama.cpp"]["status"] == "not checked" and "built-in model cannot be used" in out["llama.cpp"]["message"]
    assert out["torch"]["status"] == "not installed"
    out = doctor._backends({"llama_cpp": None, "torch": None}, {"ok": True})
    assert out["llama.cpp"]["message"] == "llama-cpp-python is not installed"
