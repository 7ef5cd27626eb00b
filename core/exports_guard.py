"""What an export may write over: never a file KnowMix did not write there itself for this project.

Exports write fixed names (``train.jsonl``, ``Modelfile``, ``llama-server.txt``...) into a folder
the user picks, and that folder may already hold the team's own files of the same names. So every
export folder gets a manifest, ``.knowmix-export.json``, listing what KnowMix wrote there: for each
file, the project it was written for (the project file's resolved path) and its sha256. A new export
of the same project may replace a file listed there that is unchanged since; any other existing file
is refused, naming it and asking for a new (empty) folder. ``force`` (the command line's ``--force``,
for scripts) replaces such files anyway, but never the project's own files: the project, its
``-wal``/``-shm``/``-journal`` and the files of its datasets (compared as resolved paths).

Paths also go into the Modelfile and the llama-server line: ``check_one_line`` refuses a path that
holds a line break (it would start a new line: another instruction) or another control character.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Optional

from .errors import ProjectError

MANIFEST = ".knowmix-export.json"
MANIFEST_VERSION = 1
PROJECT_SIDE_FILES = ("-wal", "-shm", "-journal")  # SQLite's files beside a project


def sha256_of(path: Path) -> str:
    """The file's sha256, read in chunks (a merged GGUF can be gigabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def project_files(project: Any) -> list[Path]:
    """The files an export must never replace: the project (an open ``core.store.Project``), SQLite's
    files beside it, and every dataset file it was made from."""
    path = Path(project.path).expanduser().resolve()
    out = [path] + [path.with_name(path.name + side) for side in PROJECT_SIDE_FILES]
    for row in project.datasets():
        if row.get("path"):
            out.append(Path(str(row["path"])))
    return out


def refuse_project_file(target: str | os.PathLike, protected: Iterable[str | os.PathLike]) -> None:
    """``ProjectError`` when ``target`` is (resolves to) one of the project's own files."""

    def key(p: str | os.PathLike) -> str:  # normcase: Windows and macOS names are case-blind
        return os.path.normcase(str(Path(p).expanduser().resolve()))

    resolved = key(target)
    for p in protected:
        if key(p) == resolved:
            raise ProjectError(
                f"{target} is one of the project's own files (the project or a dataset it was made from), and KnowMix "
                "never writes over it. Choose a new (empty) folder or another file name."
            )


def check_one_line(path: str | os.PathLike, what: str) -> None:
    """``ProjectError`` for a path holding a line break or another control character: written into a
    Modelfile or a command line, it would end the line and start another instruction."""
    text = str(path)
    if any(not ch.isprintable() for ch in text):
        kind = "a line break" if ("\n" in text or "\r" in text) else "a control character (a tab or similar)"
        raise ProjectError(
            f"The path of {what} {text!r} holds {kind}, which cannot be written safely into a Modelfile or a "
            "command line. Rename the file or folder, or choose another folder."
        )


class ExportFolder:
    """One export into ``folder`` for the project at ``project_path``: ``check`` the names before writing
    anything, ``wrote`` each file once it is written (so a kill between files still leaves every
    finished file listed as KnowMix's own)."""

    def __init__(
        self,
        folder: str | os.PathLike,
        project_path: Optional[str | os.PathLike],
        *,
        protected: Iterable[str | os.PathLike] = (),
        force: bool = False,
        force_hint: str = "",
    ) -> None:
        self.folder = Path(folder).expanduser()
        self.project = str(Path(project_path).expanduser().resolve()) if project_path else ""
        self.protected = list(protected)
        if project_path:
            p = Path(self.project)
            self.protected += [p] + [p.with_name(p.name + side) for side in PROJECT_SIDE_FILES]
        self.force = force
        self.force_hint = force_hint
        self.files: dict[str, dict] = {}
        self._manifest_ok = True
        self._read_manifest()

    @property
    def manifest(self) -> Path:
        return self.folder / MANIFEST

    def _read_manifest(self) -> None:
        if not self.manifest.exists():
            return
        try:
            data = json.loads(self.manifest.read_text(encoding="utf-8"))
            files = data["files"]
            if not isinstance(files, dict):
                raise TypeError
            self.files = {str(k): dict(v) for k, v in files.items() if isinstance(v, dict)}
        except (OSError, ValueError, KeyError, TypeError):
            self._manifest_ok = False

    def _ours(self, name: str, path: Path) -> bool:
        entry = self.files.get(name)
        if not entry or not self.project or entry.get("project") != self.project:
            return False
        try:
            if entry.get("size") is not None and path.stat().st_size != entry["size"]:
                return False  # changed since: no need to read a big file to know
            return sha256_of(path) == entry.get("sha256")
        except OSError:
            return False

    def _refuse(self, path: Path, why: str) -> None:
        raise ProjectError(
            f"{path} already exists and {why}, so KnowMix will not write over it. Choose a new (empty) folder "
            f"for the export.{self.force_hint}"
        )

    def check(self, names: Iterable[str]) -> dict[str, Path]:
        """The target path of each name; ``ProjectError`` (before anything is written) for one that
        would replace a file KnowMix did not write here for this project, or a project's own file."""
        targets = {name: self.folder / name for name in names}
        for path in [*targets.values(), self.manifest]:
            refuse_project_file(path, self.protected)
        for name, path in targets.items():
            if path.is_dir():
                raise ProjectError(f"{path} is a folder, where the export writes a file. Choose a new (empty) folder.")
            if (path.exists() or path.is_symlink()) and not self.force and not self._ours(name, path):
                listed = name in self.files
                self._refuse(
                    path, "was changed since KnowMix wrote it" if listed else "KnowMix did not write it for this project"
                )
        if not self._manifest_ok and not self.force:
            self._refuse(self.manifest, "is not a manifest KnowMix can read")
        return targets

    def wrote(self, path: str | os.PathLike) -> None:
        """Record a file the export has just written, in the folder's manifest (written atomically)."""
        from .paths import write_text_atomic

        path = Path(path)
        self.files[path.name] = {
            "project": self.project,
            "sha256": sha256_of(path),
            "size": path.stat().st_size,
            "written_at": time.time(),
        }
        self.files = {k: v for k, v in self.files.items() if (self.folder / k).exists()}
        data = {"knowmix_export": MANIFEST_VERSION, "files": self.files}
        write_text_atomic(
            self.manifest,
            json.dumps(data, indent=2, ensure_ascii=False) + "\n",
            what="the export's list of files ",
            advice="Pick a folder you can write to.",
        )


__all__ = ["MANIFEST", "ExportFolder", "check_one_line", "project_files", "refuse_project_file", "sha256_of"]
