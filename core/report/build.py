"""Building the report of a project and writing it next to the project file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from ..errors import ProjectError
from ..paths import write_text_atomic


def build_report(
    project: Any, *, probe_run_id: Optional[int] = None, plan_id: Optional[int] = None, train_run_id: Optional[int] = None
) -> str:
    """The project's report as one HTML page (text). Defaults: the latest probe run, its latest plan,
    that plan's latest training run. A run or plan number that does not exist raises ``ProjectError``;
    so does a project with no probe at all."""
    from .data import gather
    from .render import render

    return render(gather(project, probe_run_id=probe_run_id, plan_id=plan_id, train_run_id=train_run_id))


def default_report_path(project_path: str | os.PathLike) -> Path:
    """``<project folder>/<project stem>-report.html``."""
    p = Path(project_path).expanduser()
    return p.with_name(f"{p.stem}-report.html")


def write_report(
    project_path: str | os.PathLike,
    out_path: Optional[str | os.PathLike] = None,
    *,
    probe_run_id: Optional[int] = None,
    plan_id: Optional[int] = None,
    train_run_id: Optional[int] = None,
) -> Path:
    """Build the report of the project file and write it atomically (a temp file, then a rename).

    ``out_path`` defaults to ``default_report_path(project_path)``. Returns the written path."""
    from ..exports_guard import project_files, refuse_project_file
    from ..store import Project

    out = Path(out_path).expanduser() if out_path is not None else default_report_path(project_path)
    with Project(project_path, create=False) as project:
        refuse_project_file(out, project_files(project))  # never the project or its data, whatever the name
        text = build_report(project, probe_run_id=probe_run_id, plan_id=plan_id, train_run_id=train_run_id)
    if out.is_dir():
        raise ProjectError(f"{out} is a folder; give a file name for the report, for example {out / 'report.html'}.")
    write_text_atomic(out, text, what="the report to ", advice="Pick a folder you can write to.")
    return out
