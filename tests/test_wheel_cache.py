"""The llama.cpp wheel cache has one home (packaging/wheel_cache.py): the developer set-up and the
installers' build look in the same folder, so a second clone or a package build on this machine
reuses the wheels compiled once instead of compiling llama.cpp again (issue 22)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def wheels_seen(env_extra: dict[str, str]) -> list[str]:
    """``WHEELS`` as setup_venv.py and build.py each see it, imported as ``make`` runs them (scripts)."""
    env = {k: v for k, v in os.environ.items() if k not in ("KNOWMIX_WHEEL_CACHE", "XDG_CACHE_HOME")}
    env.update(env_extra)
    code = "import setup_venv, build; print(setup_venv.WHEELS); print(build.WHEELS)"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO / "packaging", env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_setup_and_build_share_one_wheel_cache(tmp_path: Path) -> None:
    assert wheels_seen({"KNOWMIX_WHEEL_CACHE": str(tmp_path / "mine")}) == [str(tmp_path / "mine")] * 2
    expected = str(tmp_path / "cache" / "knowmix" / "llama-wheels")
    assert wheels_seen({"XDG_CACHE_HOME": str(tmp_path / "cache")}) == [expected] * 2
    sources = [(REPO / "packaging" / name).read_text(encoding="utf-8") for name in ("setup_venv.py", "build.py")]
    assert not any("llama-wheels" in text for text in sources)  # the path is written in wheel_cache.py only
