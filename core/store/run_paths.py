"""Where a training run's files live, as the project file stores them: relative to the project.

A run's folder is ``<project folder>/<project stem>-runs/run-<id>/`` (its adapters and merged
model inside it). The project stores these paths relative to that runs folder, so a project that
is copied or renamed never points at another project's files: resuming ``b.knowmix`` (a copy of
``a.knowmix``) must never write into ``a-runs/`` and replace ``a``'s adapter.

Reading is strict: a stored path that leaves the project's own runs folder (``..``, an absolute
path, a symlink pointing out) is refused with a message. Rows written before this rule hold
absolute paths; one inside the runs folder is read as its relative path, one in a runs folder of
the same name elsewhere (the project and its runs moved together) likewise; one in another
project's runs folder is refused unless the user copied that run's folder into this project's
runs folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from ..errors import ProjectError

PATH_COLUMNS = ("folder", "adapter_dir", "merged_dir")  # the train_runs columns that hold run paths


def runs_root(project_path: str | os.PathLike) -> Path:
    """The project's own runs folder: ``<folder>/<stem>-runs``."""
    p = Path(project_path).expanduser().resolve()
    return p.parent / f"{p.stem}-runs"


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (symlinks and ``..`` resolved) is ``root`` or below it."""
    real, real_root = path.resolve(), root.resolve()
    return real == real_root or real_root in real.parents


def to_stored(project_path: str | os.PathLike, value: Any) -> Optional[str]:
    """The form a run path is stored in: relative to the runs folder (POSIX slashes); ProjectError
    for a path outside it."""
    if value is None or value == "":
        return None
    root = runs_root(project_path)
    path = Path(str(value))
    full = path if path.is_absolute() else root / path
    if not _inside(full, root):
        raise ProjectError(f"{value} is outside the project's runs folder {root}: KnowMix writes a run's files only inside it.")
    return full.resolve().relative_to(root.resolve()).as_posix() or "."


def resolve_stored(project_path: str | os.PathLike, value: Any, run_id: int) -> Path:
    """The absolute path of a stored run path of run ``run_id``; ProjectError if it leaves the runs folder."""
    root = runs_root(project_path)
    text = str(value)
    path = Path(text)
    if not path.is_absolute():
        full = root / path
        if _inside(full, root):
            return full
        raise ProjectError(
            f"Training run {run_id} of {Path(project_path).name} names the folder '{text}', which leads out of the "
            f"project's runs folder {root}. KnowMix refuses it; start a new run instead."
        )
    if _inside(path, root):  # an old absolute path inside this project's runs folder
        return path
    parts = path.parts
    name = f"run-{int(run_id)}"
    for i in range(len(parts) - 1, 0, -1):
        if parts[i] == name and parts[i - 1].endswith("-runs"):
            moved = root.joinpath(*parts[i:])
            # the same runs folder moved with its project, or the user copied this run's folder in
            if (parts[i - 1] == root.name or (root / name).is_dir()) and _inside(moved, root):
                return moved
            break
    raise ProjectError(
        f"Training run {run_id} of {Path(project_path).name} points to {text}, outside this project's runs folder "
        f"{root} (the project file was copied or renamed). KnowMix never writes into another project's runs: copy "
        f"that run's folder to {root / name} to use it here, or start a new run."
    )


def resolve_row(project_path: str | os.PathLike, row: dict) -> dict:
    """A ``train_runs`` row with its paths absolute in this project. A path that leaves the runs folder
    becomes None and ``path_error`` says why, so listing runs still works and using one says so."""
    out = dict(row)
    for column in PATH_COLUMNS:
        value = out.get(column)
        if not value:
            continue
        try:
            out[column] = str(resolve_stored(project_path, value, int(out["id"])))
        except ProjectError as exc:
            out[column] = None
            out.setdefault("path_error", str(exc))
    return out
