"""Where KnowMix keeps its own files, and where bundled resources live.

Data (the demo and sample projects, the llama.cpp CPU choice), settings and logs go where each OS
expects them (platformdirs: ``~/.local/share/KnowMix``, ``~/.config/KnowMix`` and
``~/.local/state/KnowMix/log`` on Linux; ``%LOCALAPPDATA%\\KnowMix`` on Windows; ``~/Library/...``
on macOS). ``KNOWMIX_HOME`` puts all three in one folder (tests, portable installs), and a
``~/.knowmix`` folder made by an earlier version keeps being used, so nobody loses settings or logs.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Iterator, Union


def _single_folder() -> Path | None:
    home = os.environ.get("KNOWMIX_HOME")
    if home:
        return Path(home).expanduser()
    legacy = Path.home() / ".knowmix"
    return legacy if legacy.is_dir() else None


def app_home() -> Path:
    """Data KnowMix writes for itself: the demo and sample projects, the llama.cpp CPU choice."""
    single = _single_folder()
    if single is not None:
        return single
    import platformdirs

    return Path(platformdirs.user_data_dir("KnowMix", appauthor=False))


def settings_dir() -> Path:
    """The app's settings file (window layout, recent projects, last model)."""
    single = _single_folder()
    if single is not None:
        return single
    import platformdirs

    return Path(platformdirs.user_config_dir("KnowMix", appauthor=False))


def logs_dir() -> Path:
    """The app's log and the model process's log."""
    single = _single_folder()
    if single is not None:
        return single / "logs"
    import platformdirs

    return Path(platformdirs.user_log_dir("KnowMix", appauthor=False))


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


def starter_dataset() -> Path:
    """The sample that "Try it" and ``knowmix demo`` probe: chosen with the built-in model so that
    every SliCK category is well represented (``resources/sample/build_sample.py``)."""
    return resources_dir() / "sample" / "entityquestions_starter.jsonl"


def sample_pool() -> Path:
    return resources_dir() / "sample" / "entityquestions_pool.jsonl"


def write_text_atomic(path: Path, text: str, *, what: str = "", advice: str) -> None:
    """``write_bytes_atomic`` of ``text`` as UTF-8, newlines written as they are."""
    write_bytes_atomic(path, text.encode("utf-8"), what=what, advice=advice)


def write_bytes_atomic(path: Union[str, "os.PathLike[str]"], data: bytes, *, what: str = "", advice: str) -> None:
    """Write through a temp file, fsync and rename, so a crash or a full disk leaves the old file
    (or none), never half of one. ``what`` names the file for the message ("the report to ")."""
    with atomic_file(path, what=what, advice=advice) as tmp:
        tmp.write_bytes(data)


# KnowMix's own temp names end in ".tmp-<process id>": ".NAME.tmp-PID" beside a file being written
# (``atomic_file``), "adapter.tmp-PID" and "checkpoints/tmp-PID" folders in a run folder.
_TEMP_PID = re.compile(r"(?:^|\.)tmp-(\d+)$")


def temp_owner(name: str) -> int | None:
    """The process id in a KnowMix temp name ("x.tmp-123" -> 123), or None for any other name."""
    m = _TEMP_PID.search(name)
    return int(m.group(1)) if m else None


def remove_if_stale(path: Path) -> bool:
    """Remove the temp file or folder ``path`` when the process named in it has ended (a kill left it);
    a running process's temp (maybe being written right now) is kept. Returns whether it went."""
    from .store import pid_alive

    pid = temp_owner(path.name)
    if pid is None or pid == os.getpid() or pid_alive(pid):
        return False
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError:
        return False
    return True


def _fsync_folder(folder: Path) -> None:
    """Flush the folder's entry list, so the rename itself survives a power cut (POSIX; Windows cannot
    open a folder for this, and NTFS journals the rename)."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems (network, FUSE) do not fsync folders: the rename is still done
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: Union[str, "os.PathLike[str]"], *, what: str = "", advice: str) -> Iterator[Path]:
    """A temp path beside ``path`` for the block to write (whole or streamed, e.g. by a GGUF writer);
    when the block ends it is fsynced and renamed onto ``path``, so a crash or a full disk leaves the
    old file (or none), never half of one. On any error the temp file goes; an ``OSError`` becomes
    one ``ProjectError`` naming the file (``what``, e.g. "the report to ") and what to do (``advice``).
    A temp of the same file left by a killed writer is removed first; after the rename the folder is
    fsynced too."""
    from .errors import ProjectError

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
            remove_if_stale(old)
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ProjectError(f"Cannot write {what}{path}: {exc.strerror or exc}. {advice}") from None
        raise
    _fsync_folder(path.parent)
