"""What ``Project`` checks before and while it opens a file, as SQLite's documentation advises.

* A file is looked at before anything is written to it: switching a file to WAL rewrites its
  header, so a random ``.sqlite`` (or another app's database named ``x.knowmix``) must be refused
  while it is still exactly as it was (``refuse_foreign``).
* WAL needs memory shared between the processes of one computer; on a network folder (NFS, SMB,
  CIFS) SQLite's documentation says to use the rollback journal instead (``network_filesystem``,
  ``journal_mode_for``).
* A damaged file ("database disk image is malformed", "file is not a database") is told as
  "the project file is damaged", with which tables can still be read and how to recover them
  (``damage_report``), never as a raw ``DatabaseError``.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Optional

from ..errors import ProjectError

MOUNTS = "/proc/mounts"  # Linux's table of mounted file systems (tests point it at a file of their own)
# File system types whose files are shared between computers: WAL's shared memory does not work there.
NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "smb2", "afs", "ncpfs", "9p", "fuse.sshfs", "ceph", "glusterfs")
_DAMAGE_WORDS = ("malformed", "not a database")


def network_filesystem(path: Path) -> Optional[str]:
    """The network file system type holding ``path`` (e.g. "nfs4"), or None for a local disk.

    Linux only (``/proc/mounts``: the longest mount point above the file wins); elsewhere None, and
    the project uses WAL as before."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open(MOUNTS, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    target = str(Path(path).expanduser().resolve().parent)
    best, best_type = "", ""
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, best_type = point, parts[2]
    fstype = best_type.lower()
    return fstype if fstype in NETWORK_FS or fstype.startswith(("nfs", "smb", "cifs")) else None


def journal_mode_for(path: Path) -> str:
    """WAL on a local disk; the rollback journal (DELETE) on a network folder."""
    return "DELETE" if network_filesystem(path) else "WAL"


def refuse_foreign(conn: sqlite3.Connection, path: Path, newest: int, suffix: str) -> None:
    """Raise ProjectError for an SQLite file that is not a KnowMix project, or is one from a newer
    KnowMix, before the caller writes anything to it (only reads here)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
    if tables and "meta" not in tables:
        raise ProjectError(f"{path} is an SQLite file but not a KnowMix project. Pick a {suffix} file.")
    if version > newest:
        raise ProjectError(
            f"{path} was written by a newer KnowMix (project format {version}; this version reads up to "
            f"{newest}). Update KnowMix to open it."
        )


def is_damage(exc: BaseException) -> bool:
    """Whether an SQLite error says the file itself is damaged (not busy, not read-only)."""
    return isinstance(exc, sqlite3.DatabaseError) and any(w in str(exc).lower() for w in _DAMAGE_WORDS)


def damage_report(path: Path) -> str:
    """Which tables of a damaged project can still be read (on a connection of its own, read-only)."""
    from urllib.parse import quote

    readable: list[str] = []
    unreadable: list[str] = []
    try:
        conn = sqlite3.connect(f"file:{quote(str(Path(path).resolve()))}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error:
        return "no table can be read"
    try:
        try:
            names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        except sqlite3.Error:
            return "no table can be read (the file's table of contents is damaged)"
        for name in names:
            try:
                n = conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]
                conn.execute(f'SELECT * FROM "{name}"').fetchall()
                readable.append(f"{name} ({n} rows)")
            except sqlite3.Error:
                unreadable.append(name)
    finally:
        conn.close()
    parts = []
    if readable:
        parts.append("readable: " + ", ".join(readable))
    if unreadable:
        parts.append("damaged: " + ", ".join(unreadable))
    return "; ".join(parts) or "it holds no tables"


def damaged_error(path: Path, exc: BaseException) -> ProjectError:
    """The one message for a damaged project file: what is wrong, what can be read, what to do."""
    name = Path(path).name
    stem = Path(path).stem
    return ProjectError(
        f"{path}: the project file is damaged ({exc}). What SQLite can still read: {damage_report(path)}. "
        f"Restore a backup copy of {name}, or save what is readable into a new file with "
        f"`sqlite3 {name} .recover | sqlite3 {stem}-recovered{Path(path).suffix}` and open that."
    )
