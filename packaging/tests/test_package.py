"""Build the lite edition with PyInstaller and run the built app's ``--self-check``.

Slow (first run: compiling llama.cpp ~15-25 min on 2 cores, then ~5 min of PyInstaller; later runs
reuse the wheel and the venv), so it lives outside ``tests/`` and runs only with
``KNOWMIX_PACKAGE_TEST=1``: ``make package-test``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "packaging" / "build"

pytestmark = [
    pytest.mark.skipif(os.environ.get("KNOWMIX_PACKAGE_TEST") != "1", reason="set KNOWMIX_PACKAGE_TEST=1 (make package-test)"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux build is tested here; CI covers the others"),
    pytest.mark.timeout(3600),
]


def test_lite_edition_builds_and_passes_its_self_check():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # build.py makes its own venv; run it with the interpreter that is not the dev venv's.
    python = os.environ.get("KNOWMIX_PACKAGE_PYTHON", getattr(sys, "_base_executable", sys.executable))
    proc = subprocess.run(
        [python, str(ROOT / "packaging" / "build.py"), "--edition", "lite", "--self-check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    report = json.loads((BUILD / "report-lite.json").read_text())
    app = Path(report["app"])
    assert (app / "knowmix").is_file()
    assert report["forbidden_files"] == []
    names = [str(p.relative_to(app)) for p in app.rglob("*")]
    assert not [n for n in names if "torch" in n.lower() or n.split("/")[-1].startswith(("transformers", "peft"))]
    assert any(n.startswith("_internal/models/SmolLM2-135M-Instruct") for n in names)
    assert any(n.endswith("resources/sample/LICENSE-EntityQuestions") for n in names)
    assert report["archive_bytes"] < 250 * 1024 * 1024, "the lite download must stay under 250 MB"

    # and once more by hand, from a different working directory, offscreen: exit 0
    env["QT_QPA_PLATFORM"] = "offscreen"
    check = subprocess.run([str(app / "knowmix"), "--self-check"], cwd="/", env=env, capture_output=True, text=True, timeout=900)
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]


def test_the_bundle_falls_back_past_a_cpu_variant_that_crashes(tmp_path):
    """What an AMX guest did to ggml's own choice (SIGILL in the sapphirerapids variant), staged here:
    the best variant for this CPU is replaced by one that dies with SIGILL, and the app must notice it
    in its trial child and run on the next one."""
    import shutil

    sys.path.insert(0, str(ROOT))
    from core import llama_cpu

    report = json.loads((BUILD / "report-lite.json").read_text())
    app = tmp_path / "app"
    shutil.copytree(report["app"], app, symlinks=True, copy_function=os.link)  # hard links: no copying
    lib = app / "_internal" / "llama_cpp" / "lib"
    files = llama_cpu.variant_files(lib)
    order = llama_cpu.candidate_variants(files, llama_cpu.usable_features())
    assert len(order) >= 2, order
    src = tmp_path / "trap.c"
    src.write_text("int ggml_backend_score(void) { return 1; }\nvoid *ggml_backend_init(void) { __builtin_trap(); return 0; }\n")
    files[order[0]].unlink()  # a hard link: the original bundle keeps its file
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(files[order[0]]), str(src)], check=True)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "KNOWMIX_GGML_VARIANT")}
    env["KNOWMIX_HOME"] = str(tmp_path / "home")
    proc = subprocess.run(
        [str(app / "knowmix"), "-m", "core.llama_cpu", "--decode-check"],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads([l for l in proc.stdout.splitlines() if l.startswith("{")][-1])
    assert result["ok"] and Path(result["variant"]).name == files[order[1]].name
    cache = json.loads((tmp_path / "home" / "llama-cpu.json").read_text())
    assert cache["variant"] == order[1] and any("SIGILL" in n for n in cache["notes"])
