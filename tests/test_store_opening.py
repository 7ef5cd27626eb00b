"""Opening a project file as SQLite's documentation advises (core/store/opening.py).

* A file that is not a KnowMix project (another app's database, one from a newer KnowMix) is
  refused before anything is written to it: not one byte changes, no ``-wal`` file appears.
* On a network folder (NFS, SMB/CIFS in ``/proc/mounts``) the project uses the rollback journal,
  since WAL's shared memory works only between processes of one computer.
* A damaged file says "the project file is damaged", which tables can still be read and how to
  recover them, never a raw ``sqlite3.DatabaseError``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from core.errors import ProjectError
from core.store import Project, opening


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def other_apps_database(path: Path, *, user_version: int = 0, tables: tuple[str, ...] = ("contacts",)) -> Path:
    conn = sqlite3.connect(str(path))
    for table in tables:
        conn.execute(f"CREATE TABLE {table} (key TEXT, value TEXT)")
        conn.execute(f"INSERT INTO {table} VALUES ('Ada', '555')")
    conn.execute(f"PRAGMA user_version = {user_version}")
    conn.commit()
    conn.close()
    return path


def test_another_apps_database_is_refused_without_a_byte_changed(tmp_path: Path) -> None:
    path = other_apps_database(tmp_path / "contacts.knowmix")
    before = digest(path)
    with pytest.raises(ProjectError, match="not a KnowMix project"):
        Project(path)
    assert digest(path) == before  # still in its own journal mode: the WAL switch would rewrite the header
    assert not Path(str(path) + "-wal").exists()


def test_a_project_from_a_newer_knowmix_is_refused_without_a_byte_changed(tmp_path: Path) -> None:
    path = other_apps_database(tmp_path / "newer.knowmix", user_version=999, tables=("meta",))
    before = digest(path)
    with pytest.raises(ProjectError, match="newer KnowMix"):
        Project(path)
    assert digest(path) == before
    assert not Path(str(path) + "-wal").exists()


def test_a_text_file_named_like_a_project_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.knowmix"
    path.write_text("SQLite notes\nnot a database\n", encoding="utf-8")
    before = digest(path)
    with pytest.raises(ProjectError, match="not a KnowMix project"):
        Project(path)
    assert digest(path) == before


@pytest.fixture
def mounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point the mount table at a file of the test's own, naming ``folder`` as ``fstype``."""

    def declare(folder: Path, fstype: str) -> None:
        table = tmp_path / "mounts"
        table.write_text(
            f"/dev/sda1 / ext4 rw,relatime 0 0\nserver:/export {folder.resolve()} {fstype} rw,relatime 0 0\n",
            encoding="utf-8",
        )
        monkeypatch.setattr(opening, "MOUNTS", str(table))

    return declare


@pytest.mark.parametrize("fstype", ["nfs4", "cifs", "smb3"])
def test_a_project_on_a_network_folder_uses_the_rollback_journal(tmp_path: Path, mounts, fstype: str) -> None:
    share = tmp_path / "share"
    share.mkdir()
    mounts(share, fstype)
    with Project(share / "team.knowmix") as project:
        assert project.journal_mode == "delete"
        project.create_probe_run(dataset_id=None, model_spec="default", status="running")
    assert not (share / "team.knowmix-wal").exists() and not (share / "team.knowmix-shm").exists()


def test_a_wal_project_moved_to_a_network_folder_switches_to_the_rollback_journal(tmp_path: Path, mounts) -> None:
    share = tmp_path / "share"
    share.mkdir()
    with Project(share / "team.knowmix") as project:  # made on a local disk
        assert project.journal_mode == "wal"
    mounts(share, "nfs")
    with Project(share / "team.knowmix") as project:
        assert project.journal_mode == "delete"


def test_a_local_folder_keeps_wal(tmp_path: Path, mounts) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    mounts(other, "nfs4")  # another folder is the share; this one is on the local disk
    with Project(tmp_path / "local.knowmix") as project:
        assert project.journal_mode == "wal"


def test_network_filesystem_reads_the_longest_mount_point(tmp_path: Path, mounts) -> None:
    mounts(tmp_path, "cifs")
    assert opening.network_filesystem(tmp_path / "a" / "b.knowmix") == "cifs"
    assert opening.network_filesystem(Path("/") / "x.knowmix") is None


def damage_table(path: Path, table: str) -> None:
    """Overwrite the first page of ``table`` with noise (the file closed, its WAL checkpointed)."""
    conn = sqlite3.connect(str(path))
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", [table]).fetchone()[0]
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    with open(path, "r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(os.urandom(page_size))


def test_a_damaged_table_says_the_project_is_damaged_and_what_can_be_read(tmp_path: Path, sample_dataset_loaded) -> None:
    path = tmp_path / "team.knowmix"
    with Project(path) as project:
        dataset_id = project.add_dataset(sample_dataset_loaded)
    damage_table(path, "examples")
    with Project(path) as project:
        assert len(project.datasets()) == 1  # what is intact still reads
        with pytest.raises(ProjectError) as err:
            project.examples(dataset_id)
    text = str(err.value)
    assert "the project file is damaged" in text and str(path) in text
    assert "readable: " in text and "datasets (1 rows)" in text
    assert "damaged: examples" in text
    assert "backup" in text and "sqlite3 team.knowmix .recover" in text


def test_a_file_with_a_damaged_first_page_says_so(tmp_path: Path) -> None:
    path = tmp_path / "damaged.knowmix"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    with pytest.raises(ProjectError) as err:
        Project(path)
    assert "the project file is damaged" in str(err.value)
    assert "Restore a backup copy of damaged.knowmix" in str(err.value)
