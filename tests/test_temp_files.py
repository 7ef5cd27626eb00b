"""Temp files left by a kill (issue 19, item 1): ``.NAME.tmp-PID`` beside a file ``atomic_file``
writes, ``*.tmp-PID`` folders in a run folder. The next start removes those whose process has
ended, and only names of KnowMix's own pattern; ``atomic_file`` fsyncs the folder after the rename."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.paths import atomic_file, write_text_atomic


def dead_pid() -> int:
    """The id of a process that has ended (a killed KnowMix, as far as its temp files can tell)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_atomic_write_removes_a_killed_writers_temp_and_keeps_a_live_ones(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    stale = tmp_path / f".report.html.tmp-{dead_pid()}"
    stale.write_text("half a report")
    live = tmp_path / f".report.html.tmp-{os.getppid()}"  # a running process: maybe writing right now
    live.write_text("being written")
    theirs = tmp_path / ".report.html.tmp-notes"  # not KnowMix's pattern
    theirs.write_text("mine")
    write_text_atomic(target, "<html></html>", advice="")
    assert target.read_text() == "<html></html>"
    assert not stale.exists() and live.exists() and theirs.exists()


def test_atomic_file_fsyncs_the_folder_after_the_rename(tmp_path: Path, monkeypatch) -> None:
    import stat

    if os.name == "nt":
        pytest.skip("Windows cannot fsync a folder")
    synced: list[bool] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with atomic_file(tmp_path / "a.txt", advice="") as tmp:
        tmp.write_text("x")
    assert synced == [False, True]  # the file, then its folder (the rename is on disk)


def test_a_write_that_fails_half_way_leaves_the_old_file_whole(tmp_path: Path, monkeypatch) -> None:
    """The point of writing through a temp file: a full disk half-way through a report keeps the
    report that was there, says which file and what to do, and leaves no half-written temp behind.
    A plain ``path.write_bytes`` would have left half of the new report in place of the old one."""
    import errno

    from core.errors import ProjectError
    from core.paths import write_bytes_atomic

    target = tmp_path / "report.html"
    target.write_text("the old report, whole")
    real = Path.write_bytes

    def half_then_full_disk(self: Path, data: bytes) -> int:
        real(self, data[: len(data) // 2])  # half of it reached the disk ...
        raise OSError(errno.ENOSPC, "No space left on device")  # ... then the disk was full

    monkeypatch.setattr(Path, "write_bytes", half_then_full_disk)
    with pytest.raises(ProjectError) as exc:
        write_bytes_atomic(target, b"<html>" + b"x" * 1000 + b"</html>", what="the report to ", advice="Free some space.")
    monkeypatch.undo()
    assert target.read_text() == "the old report, whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temp left
    message = str(exc.value)
    assert str(target) in message and "No space left on device" in message and "Free some space." in message


def test_a_failure_in_the_writing_block_keeps_the_old_file_and_the_error(tmp_path: Path) -> None:
    """A writer that streams into ``atomic_file`` (the GGUF export) and fails part-way: its own error
    comes through unchanged and the old file is kept."""
    target = tmp_path / "model.gguf"
    target.write_bytes(b"old model")
    with pytest.raises(ValueError, match="tensor 3"):
        with atomic_file(target, advice="") as tmp:
            tmp.write_bytes(b"new mod")
            raise ValueError("tensor 3 has the wrong shape")
    assert target.read_bytes() == b"old model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.gguf"]


def test_a_killed_runs_temp_folders_are_cleaned_on_the_next_start(tmp_path: Path) -> None:
    from core.store import Project
    from core.train.runs import clean_run_temps, run_folder

    path = tmp_path / "p.knowmix"
    Project(path).close()
    run = run_folder(path, 1)
    dead, live = dead_pid(), os.getppid()
    made = {
        "dead_adapter": run / f"adapter.tmp-{dead}",
        "dead_ckpt": run / "checkpoints" / f"tmp-{dead}",
        "dead_merged": run / f"merged.tmp-{dead}",
        "live_adapter": run / f"final-adapter.tmp-{live}",
    }
    for folder in made.values():
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_bytes(b"x")
    check = run / "check"
    check.mkdir()
    dead_file = check / f".adapter-lora.gguf.tmp-{dead}"
    dead_file.write_bytes(b"x")
    kept = [run / "adapter", run / "notes.tmp-later"]
    for folder in kept:
        folder.mkdir()
    assert clean_run_temps(path) == 4
    assert not made["dead_adapter"].exists() and not made["dead_ckpt"].exists() and not made["dead_merged"].exists()
    assert not dead_file.exists() and made["live_adapter"].exists() and all(k.exists() for k in kept)
