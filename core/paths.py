"""Where KnowMix keeps its own files, and where bundled resources live.

One folder (``KNOWMIX_HOME`` or ``~/.knowmix``) holds the demo project, logs and settings that
``core`` writes, so tests can point everything at a temp folder with one variable and nothing
platform-specific lives in ``core``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def app_home() -> Path:
    home = os.environ.get("KNOWMIX_HOME")
    path = Path(home).expanduser() if home else Path.home() / ".knowmix"
    return path


def resources_dir() -> Path:
    """``resources/`` from a source checkout, an installed wheel or a PyInstaller bundle."""
    bundle = getattr(sys, "_MEIPASS", None)
    candidates = []
    if bundle:
        candidates.append(Path(bundle) / "resources")
    candidates.append(Path(__file__).resolve().parent.parent / "resources")
    candidates.append(Path(sys.prefix) / "share" / "knowmix" / "resources")
    for cand in candidates:
        if (cand / "sample").is_dir():
            return cand
    return candidates[0]


def sample_dataset() -> Path:
    return resources_dir() / "sample" / "entityquestions_sample.jsonl"


def sample_pool() -> Path:
    return resources_dir() / "sample" / "entityquestions_pool.jsonl"


def write_text_atomic(path: Path, text: str, *, what: str = "", advice: str) -> None:
    """Write through a temp file, fsync and rename, so a crash or a full disk leaves the old file
    (or none), never half of one. ``what`` names the file for the message ("the report to ")."""
    from .errors import ProjectError

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise ProjectError(f"Cannot write {what}{path}: {exc.strerror or exc}. {advice}") from None
