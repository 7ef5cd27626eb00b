"""An open project file: the connection, its transactions, datasets and probe runs.

Everything a user produces (datasets, probe results, plans, training runs, metrics) lives in one
file they can copy or mail. WAL mode and small transactions mean a killed process loses at most
the batch it was writing, and every job can resume from what is already here. The schema and its
upgrades live in ``schema.py``; the SQL of plans, training runs and the read-only views of probe
results lives next to this module (``plans.py``, ``runs.py``, ``results.py``).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import sqlite_utils

from ..datasets import json_default
from ..errors import ProjectError
from .opening import damaged_error, is_damage, journal_mode_for, refuse_foreign
from .records import PROBE_RUNNING, ProbeRun
from .schema import MIGRATIONS, PROJECT_SUFFIX, SCHEMA_VERSION
from .tables import inserted_id


def _now() -> float:
    return time.time()


# Claims on probe runs held by Project objects of this process (see Project.claim_probe_run).
_LIVE_CLAIMS: set[str] = set()
_CLAIMS_LOCK = threading.Lock()


def pid_alive(pid: Any) -> bool:
    """Whether a process with this id runs on this computer (never signals it).

    ``psutil.pid_exists`` answers on every OS (on Windows ``os.kill(pid, 0)`` would end the
    process) and counts another user's live process as alive, so a run claimed by another
    account is never taken over."""
    import psutil

    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:  # psutil says 0 exists (the kernel's idle task): never a process of ours
        return False
    try:
        return bool(psutil.pid_exists(pid))
    except (OSError, OverflowError):  # an id beyond the OS's range
        return False


class _Connection(sqlite3.Connection):
    """A connection whose ``with conn:`` does not commit inside one of our transactions.

    sqlite-utils wraps its writes in ``with db.conn:``, which commits; inside
    ``Project.transaction()`` that would split one batch into several commits and break the
    promise that a kill loses a whole batch or nothing.
    """

    outer_depth = 0
    project_path: Optional[Path] = None  # set by Project: a damaged file is then told as such

    def execute(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        try:
            return super().execute(*args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if self.project_path is not None and is_damage(exc):
                raise damaged_error(self.project_path, exc) from None
            raise

    def __exit__(self, exc_type, exc, tb):
        if self.outer_depth:
            return False
        return super().__exit__(exc_type, exc, tb)


def _parse_claim(value: str) -> Optional[dict]:
    try:
        owner = json.loads(value)
    except ValueError:
        return None
    return owner if isinstance(owner, dict) else None


def _claim_live(owner: dict, host: str, run_updated_at: float) -> bool:
    """Whether the process that wrote a claim still works on the run."""
    if owner.get("host") != host:  # cannot look at another computer's processes: trust recent activity
        last = max(float(owner.get("at") or 0.0), run_updated_at)
        return _now() - last < Project.STALE_FOREIGN_CLAIM_S
    if owner.get("pid") == os.getpid():  # this process: live only while the claiming object holds it
        with _CLAIMS_LOCK:
            return owner.get("token") in _LIVE_CLAIMS
    return pid_alive(owner.get("pid"))


class Project:
    """An open project file. Use as a context manager, or call ``close()``."""

    def __init__(self, path: str | os.PathLike, *, create: bool = True) -> None:
        self.path = Path(path).expanduser()
        exists = self._check_path(create)
        conn, mode = self._open(exists)
        self._conn = conn  # the connection of ``db``, typed as ours for transaction()
        self.db = sqlite_utils.Database(conn)
        self.journal_mode = mode
        try:
            self._upgrade()
        except BaseException:
            conn.close()  # a refused file must not stay open (and locked, on Windows)
            raise

    def _check_path(self, create: bool) -> bool:
        """Refuse, in words, a path that cannot be a project before SQLite sees it; returns whether it exists."""
        if self.path.is_dir():
            raise ProjectError(f"{self.path} is a folder; a project is a single file (for example my-project{PROJECT_SUFFIX}).")
        exists = self.path.exists()
        if not exists and not create:
            raise ProjectError(f"No project at {self.path}. Check the path, or create one with --project {self.path}.")
        if not exists:
            parent = self.path.parent
            if not parent.exists():
                try:
                    parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise ProjectError(f"Cannot create the folder {parent} for the project: {exc.strerror or exc}.") from None
            if not os.access(parent, os.W_OK):
                raise ProjectError(
                    f"Cannot create a project in {parent}: the folder is read-only. Pick a folder you can write to."
                )
        elif self.path.stat().st_size:
            try:
                with open(self.path, "rb") as fh:
                    head = fh.read(16)
            except OSError as exc:
                raise ProjectError(
                    f"Cannot read {self.path}: {exc.strerror or exc}. Check that your user may read the file, or copy it "
                    "to a folder you own."
                ) from None
            if head != b"SQLite format 3\x00":
                raise ProjectError(
                    f"{self.path} is not a KnowMix project (it is not an SQLite file). Pick a {PROJECT_SUFFIX} file."
                )
        return exists

    def _open(self, exists: bool) -> tuple[_Connection, str]:
        """The connection and its journal mode; read-only when the file or its folder cannot be written.

        A project whose file or folder cannot be written (a read-only share, a copy from a CD, another
        user's file) still opens for reading: summaries and reports work, and the first write says
        plainly that the project is read-only (see _write_error) instead of failing here."""
        self.read_only = False
        try:
            return self._connect(read_only=False)
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise damaged_error(self.path, exc) from None
            text = str(exc).lower()
            if not (exists and ("readonly" in text or "read-only" in text or "unable to open" in text)):
                raise ProjectError(f"{self.path} cannot be opened as a KnowMix project: {exc}.") from None
            error = exc
        try:
            try:
                opened = self._connect(read_only=True)
            except sqlite3.DatabaseError:
                # A WAL project in a folder nobody may write to has no -shm file to share reads
                # through; SQLite then reads it only as an immutable file.
                opened = self._connect(read_only=True, immutable=True)
        except sqlite3.DatabaseError:
            raise ProjectError(
                f"{self.path} is read-only and cannot be opened ({error}). Copy the project to a folder you can write to."
            ) from None
        self.read_only = True
        return opened

    def _connect(self, *, read_only: bool, immutable: bool = False) -> tuple[_Connection, str]:
        if read_only:
            from urllib.parse import quote

            target, uri = f"file:{quote(str(self.path.resolve()))}?mode=ro{'&immutable=1' if immutable else ''}", True
        else:
            target, uri = str(self.path), False
        conn = sqlite3.connect(target, timeout=10.0, isolation_level=None, check_same_thread=False, factory=_Connection, uri=uri)
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA foreign_keys = ON")
            if read_only:
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            else:
                # Look before writing: switching to WAL rewrites the header of whatever file this is.
                refuse_foreign(conn, self.path, SCHEMA_VERSION, PROJECT_SUFFIX)
                wanted = journal_mode_for(self.path)  # WAL's shared memory works on one computer only
                mode = conn.execute(f"PRAGMA journal_mode = {wanted}").fetchone()[0]
                conn.execute("PRAGMA synchronous = NORMAL" if wanted == "WAL" else "PRAGMA synchronous = FULL")
        except BaseException:
            conn.close()
            raise
        conn.project_path = self.path
        return conn, mode

    # -- schema ------------------------------------------------------------------------------------
    def _upgrade(self) -> None:
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise damaged_error(self.path, exc) from None
        if version > SCHEMA_VERSION:
            raise ProjectError(
                f"{self.path} was written by a newer KnowMix (project format {version}; this version reads up to "
                f"{SCHEMA_VERSION}). Update KnowMix to open it."
            )
        if version == 0 and self.db.table_names() and "meta" not in self.db.table_names():
            raise ProjectError(f"{self.path} is an SQLite file but not a KnowMix project. Pick a {PROJECT_SUFFIX} file.")
        while version < SCHEMA_VERSION:
            with self.transaction():
                MIGRATIONS[version](self.db)
                version += 1
                self.db.execute(f"PRAGMA user_version = {version}")
                from .. import __version__

                self.db.table("meta").upsert({"key": "written_by", "value": f"KnowMix {__version__}"}, pk="key")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One short write transaction; on any error nothing of it is kept."""
        conn = self._conn
        if conn.outer_depth:  # nested: the outer transaction commits
            yield
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._write_error(exc) from None
        conn.outer_depth = 1
        try:
            yield
        except sqlite3.OperationalError as exc:
            conn.outer_depth = 0
            conn.execute("ROLLBACK")
            raise self._write_error(exc) from None
        except BaseException:
            conn.outer_depth = 0
            conn.execute("ROLLBACK")
            raise
        conn.outer_depth = 0
        try:
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._write_error(exc) from None

    def _write_error(self, exc: sqlite3.OperationalError) -> ProjectError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return ProjectError(
                f"{self.path} is busy: another KnowMix window or command is writing to it. Wait for it to finish, or close it."
            )
        if "readonly" in text or "read-only" in text:
            return ProjectError(f"{self.path} is read-only. Copy the project to a folder you can write to.")
        if "disk is full" in text or "full" in text:
            return ProjectError(f"The disk holding {self.path} is full. Free some space; the work saved so far is kept.")
        return ProjectError(f"Cannot write to {self.path}: {text}.")

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        try:
            self.db.conn.close()
        except sqlite3.Error:
            pass

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- datasets ----------------------------------------------------------------------------------
    def add_dataset(self, ds: Any, role: str = "train") -> int:
        """Store a loaded ``Dataset`` (once: the same content and role returns the existing id)."""

        def existing() -> Optional[int]:
            row = self.db.execute(
                "SELECT id FROM datasets WHERE content_sha256 = ? AND role = ? ORDER BY id LIMIT 1", [ds.content_sha256, role]
            ).fetchone()
            return int(row[0]) if row else None

        found = existing()  # the common case needs no write lock (and works on a read-only project)
        if found is not None:
            return found
        with self.transaction():
            found = existing()  # another process may have added it while we waited for the lock
            if found is not None:
                return found
            dataset_id = inserted_id(
                self.db.table("datasets").insert(
                    {
                        "name": Path(ds.path).name,
                        "path": str(Path(ds.path).resolve()),
                        "role": role,
                        "format": ds.format,
                        "shape": ds.shape,
                        "mapping": json.dumps(ds.mapping),
                        "file_sha256": ds.file_sha256,
                        "content_sha256": ds.content_sha256,
                        "n_examples": len(ds.examples),
                        "n_duplicates": len(ds.duplicates),
                        "n_skipped": len(ds.problems),
                        "n_unprobed": len(getattr(ds, "unprobed", ())),
                        "created_at": _now(),
                    }
                )
            )
            self.db.table("examples").insert_all(
                (
                    {
                        "dataset_id": dataset_id,
                        "example_id": ex.id,
                        "idx": i,
                        "line": ex.line,
                        "question": ex.question,
                        "answers": json.dumps(list(ex.answers), ensure_ascii=False),
                        "group_name": ex.group,
                        "raw": json.dumps(ex.raw, ensure_ascii=False, default=json_default),
                        "keys": json.dumps(list(ex.keys), ensure_ascii=False),
                        "key_source": ex.key_source,
                        "system": ex.system,
                        "probe_status": ex.status,
                        "reason": ex.reason,
                    }
                    for i, ex in enumerate(sorted([*ds.examples, *getattr(ds, "unprobed", ())], key=lambda e: e.line))
                ),
                batch_size=2000,
            )
        return dataset_id

    def dataset(self, dataset_id: int) -> dict:
        try:
            return dict(self.db.table("datasets").get(dataset_id))
        except sqlite_utils.db.NotFoundError:
            raise ProjectError(f"The project has no dataset number {dataset_id}.") from None

    def datasets(self) -> list[dict]:
        return list(self.db.table("datasets").rows_where(order_by="id"))

    def examples(self, dataset_id: int, status: Optional[str] = "probed") -> list:
        """The dataset's examples as ``core.datasets.Example`` objects, in file order.

        By default only the probed ones (what the probe, the breakdown and the plan's categories
        are about); ``status="not-probed"`` gives the rows kept without a probe, ``None`` all."""
        from ..datasets import Example

        where = "dataset_id = ?"
        args: list[Any] = [dataset_id]
        if status is not None:
            where += " AND probe_status = ?"
            args.append(status)
        rows = self.db.execute(
            "SELECT example_id, question, answers, group_name, line, raw, keys, key_source, system, probe_status, reason "
            f"FROM examples WHERE {where} ORDER BY idx",
            args,
        ).fetchall()
        return [
            Example(
                id=r[0],
                question=r[1],
                answers=tuple(json.loads(r[2])),
                group=r[3],
                line=r[4],
                raw=json.loads(r[5]),
                keys=tuple(json.loads(r[6] or "[]")),
                key_source=r[7],
                system=r[8],
                status=r[9],
                reason=r[10],
            )
            for r in rows
        ]

    def unprobed_counts(self, dataset_id: int) -> dict[str, int]:
        """Rows kept without a probe, by reason."""
        rows = self.db.execute(
            "SELECT reason, COUNT(*) FROM examples WHERE dataset_id = ? AND probe_status != 'probed' GROUP BY reason",
            [dataset_id],
        ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def group_count(self, dataset_id: int) -> int:
        """How many distinct groups the dataset's examples fall into (counted in SQL: fast on 100k rows)."""
        row = self.db.execute(
            "SELECT COUNT(DISTINCT group_name) FROM examples WHERE dataset_id = ? AND probe_status = 'probed'", [dataset_id]
        ).fetchone()
        return int(row[0] or 0)

    # -- probe runs --------------------------------------------------------------------------------
    def find_probe_run(
        self, *, dataset_id: int, pool_dataset_id: Optional[int], model_fingerprint: str, settings: str
    ) -> Optional[ProbeRun]:
        rows = list(
            self.db.table("probe_runs").rows_where(
                "dataset_id = ? AND pool_dataset_id IS ? AND model_fingerprint = ? AND settings = ?",
                [dataset_id, pool_dataset_id, model_fingerprint, settings],
                order_by="id desc",
                limit=1,
            )
        )
        return ProbeRun.from_row(rows[0]) if rows else None

    def create_probe_run(self, **fields: Any) -> int:
        now = _now()
        fields.setdefault("status", PROBE_RUNNING)
        fields.setdefault("n_done", 0)
        fields.setdefault("seconds", 0.0)
        with self.transaction():
            return inserted_id(self.db.table("probe_runs").insert({**fields, "created_at": now, "updated_at": now}))

    def update_probe_run(self, run_id: int, **fields: Any) -> None:
        with self.transaction():
            self.db.table("probe_runs").update(run_id, {**fields, "updated_at": _now()})

    def probe_run(self, run_id: Optional[int] = None) -> ProbeRun:
        """One run, or the latest when ``run_id`` is None."""
        if run_id is None:
            rows = list(self.db.table("probe_runs").rows_where(order_by="id desc", limit=1))
            if not rows:
                raise ProjectError(f"{self.path} has no probe yet. Run `knowmix probe` first.")
            return ProbeRun.from_row(rows[0])
        try:
            return ProbeRun.from_row(self.db.table("probe_runs").get(run_id))
        except sqlite_utils.db.NotFoundError:
            raise ProjectError(f"{self.path} has no probe run number {run_id}.") from None

    # A probe run is worked on by one process at a time: two processes resuming the same run would
    # probe the same questions twice. The owner is written to ``meta`` (key ``probe_run_owner:<id>``)
    # in the transaction that finds or creates the run; a claim whose process is gone (killed,
    # crashed) is stale and is simply taken over, so a kill never leaves a run locked.
    STALE_FOREIGN_CLAIM_S = 3600.0  # a claim from another computer (a shared folder) expires unused

    def claim_probe_run(self, run_id: int) -> None:
        """Mark this process as the one probing ``run_id``, or raise ProjectError if another live one is."""
        key = f"probe_run_owner:{int(run_id)}"
        token = getattr(self, "_claim_token", None) or uuid.uuid4().hex
        host = socket.gethostname()
        with self.transaction():
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
            owner = _parse_claim(row[0]) if row else None
            if owner and owner.get("token") != token and _claim_live(owner, host, self._run_updated_at(run_id)):
                since = time.strftime("%H:%M", time.localtime(float(owner.get("at") or 0)))
                where = f" on {owner.get('host')}" if owner.get("host") != host else ""
                raise ProjectError(
                    f"{self.path} is in use: another KnowMix (process {owner.get('pid')}{where}, since {since}) is "
                    f"running this probe (run {run_id}). Wait for it to finish or stop it, then run the same probe "
                    "again to resume; or copy the project file to probe a copy."
                )
            self.db.table("meta").upsert(
                {"key": key, "value": json.dumps({"pid": os.getpid(), "host": host, "token": token, "at": _now()})}, pk="key"
            )
        self._claim_token = token
        with _CLAIMS_LOCK:
            _LIVE_CLAIMS.add(token)

    def release_probe_run(self, run_id: int) -> None:
        """Drop this object's claim on ``run_id`` (no error if it has none or the file is gone)."""
        token = getattr(self, "_claim_token", None)
        if not token:
            return
        with _CLAIMS_LOCK:
            _LIVE_CLAIMS.discard(token)
        key = f"probe_run_owner:{int(run_id)}"
        try:
            with self.transaction():
                row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
                if row and (_parse_claim(row[0]) or {}).get("token") == token:
                    self.db.execute("DELETE FROM meta WHERE key = ?", [key])
        except (ProjectError, sqlite3.Error):
            pass  # a claim left behind is stale (its token is no longer live) and is taken over

    def _run_updated_at(self, run_id: int) -> float:
        row = self.db.execute("SELECT updated_at FROM probe_runs WHERE id = ?", [run_id]).fetchone()
        return float(row[0] or 0.0) if row else 0.0

    def probe_runs(self) -> list[ProbeRun]:
        return [ProbeRun.from_row(r) for r in self.db.table("probe_runs").rows_where(order_by="id")]

    def save_exemplar_sets(self, run_id: int, sets: dict[str, list[list[str]]], notes: dict[str, str]) -> None:
        with self.transaction():
            self.db.table("exemplar_sets").insert_all(
                (
                    {"run_id": run_id, "group_name": g, "set_idx": k, "example_ids": json.dumps(ids), "note": notes.get(g, "")}
                    for g, group_sets in sets.items()
                    for k, ids in enumerate(group_sets)
                ),
                replace=True,
            )

    def exemplar_sets(self, run_id: int) -> tuple[dict[str, list[list[str]]], dict[str, str]]:
        sets: dict[str, list[list[str]]] = {}
        notes: dict[str, str] = {}
        for row in self.db.execute(
            "SELECT group_name, example_ids, note FROM exemplar_sets WHERE run_id = ? ORDER BY group_name, set_idx", [run_id]
        ).fetchall():
            sets.setdefault(row[0], []).append(json.loads(row[1]))
            if row[2]:
                notes[row[0]] = row[2]
        return sets, notes

    def done_example_ids(self, run_id: int) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT example_id FROM probe_results WHERE run_id = ?", [run_id]).fetchall()}

    def save_probe_results(self, run_id: int, rows: Iterable[dict], *, n_done: int, seconds: float) -> None:
        """Write one batch of finished examples and the run's counters in a single transaction."""
        with self.transaction():
            self.db.table("probe_results").insert_all(rows, replace=True)
            self.db.table("probe_runs").update(run_id, {"n_done": n_done, "seconds": seconds, "updated_at": _now()})

    def probe_results(self, run_id: int) -> Iterator[dict]:
        cursor = self.db.execute("SELECT * FROM probe_results WHERE run_id = ? ORDER BY rowid", [run_id])
        cols = [c[0] for c in cursor.description]
        for row in cursor:
            yield dict(zip(cols, row))

    def category_counts(self, run_id: int) -> dict[str, dict[str, int]]:
        """{group: {category: count}} for a run, read straight from SQL so it is fast on 100k rows."""
        out: dict[str, dict[str, int]] = {}
        for group, cat, n in self.db.execute(
            "SELECT group_name, category, COUNT(*) FROM probe_results WHERE run_id = ? GROUP BY group_name, category",
            [run_id],
        ).fetchall():
            out.setdefault(group, {})[cat] = n
        return out
