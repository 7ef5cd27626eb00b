"""`knowmix --self-check`, as an installer or a support person runs it: offscreen, the built-in
model, three sample questions, a report in a temp folder, exit 0 — and one clear line on failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update({"PYTHONPATH": str(REPO), "KNOWMIX_THREADS": "1", **env_extra})
    return subprocess.run(
        [sys.executable, "-m", "gui.entry", "--self-check"], env=env, capture_output=True, text=True, timeout=600
    )


def test_self_check_probes_and_writes_a_report_without_a_display(knowmix_home):
    proc = _run({})
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("knowmix self-check: OK") and "3 questions probed" in line
    report = Path(line.split("report at ")[1].split(" (")[0])
    assert report.is_file() and "SmolLM2-135M-Instruct" in report.read_text(encoding="utf-8")
    assert not any(knowmix_home.iterdir())  # the user's data folder is left alone


def test_self_check_names_the_stage_that_failed(tmp_path):
    proc = _run({"KNOWMIX_DEFAULT_MODEL": str(tmp_path / "missing.gguf")})
    assert proc.returncode == 1
    assert "self-check: FAILED while loading the built-in model" in proc.stderr
    assert "Traceback" not in proc.stderr
