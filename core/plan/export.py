"""Exporting a plan's splits for other trainers (Axolotl, LLaMA-Factory, Unsloth)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from ..errors import ProjectError
from ..exports_guard import ExportFolder, project_files
from ..paths import write_text_atomic
from ..writeback import extension_for, plain_record, record_in_shape, write_records
from .types import Plan, PlanExample


def export_names(dataset_row: dict) -> dict[str, str]:
    """The file names a plan export writes: ``train``/``dev``/``test`` in the dataset's own format
    (``train.csv`` for a CSV), the plain question/answer JSON Lines, and ``plan.json``."""
    ext = extension_for(str(dataset_row.get("format") or "jsonl"))
    names = {"train": f"train{ext}", "dev": f"dev{ext}", "test": f"test{ext}"}
    names.update({name: f"{name}.jsonl" for name in ("train_qa", "dev_qa", "test_qa")})
    names["plan"] = "plan.json"
    return names


def plan_export_folder(
    folder: str | os.PathLike, dataset_row: dict, *, project: Optional[Any], force: bool = False, force_hint: str = ""
) -> ExportFolder:
    """The export folder's guard: the project's files and the dataset's own file are never written over.
    ``check`` it with ``export_names`` before building anything that is costly to redo."""
    protected = project_files(project) if project is not None else []
    if dataset_row.get("path"):
        protected.append(Path(str(dataset_row["path"])))
    return ExportFolder(
        folder, project.path if project is not None else None, protected=protected, force=force, force_hint=force_hint
    )


def check_plan_export(plan: Plan, folder: str | os.PathLike, *, project: Any, force: bool = False, force_hint: str = "") -> None:
    """``ProjectError`` now if ``export_plan`` into ``folder`` would be refused (before the plan is saved)."""
    row = project.dataset(plan.dataset_id) if plan.dataset_id is not None else {}
    plan_export_folder(folder, row, project=project, force=force, force_hint=force_hint).check(export_names(row).values())


def export_plan(
    plan: Plan,
    folder: str | os.PathLike,
    *,
    dataset_row: dict,
    project: Optional[Any] = None,
    force: bool = False,
    force_hint: str = "",
) -> dict[str, Path]:
    """Write the planned splits for training elsewhere, in the format the dataset came in.

    ``train.<ext>``, ``dev.<ext>`` and ``test.<ext>`` are files in the input's own format (JSON Lines, JSON, CSV,
    TSV or Parquet, from ``dataset_row["format"]``) holding the original records with the same
    fields (columns in the same order), with the answer replaced by the training target where the
    plan relabelled it. ``train`` holds the training examples and the not-probed rows the plan
    keeps as they are, in file order; ``test`` the held-out test split (never train on it, never
    stop on it: it measures what training did; empty when the plan has none). ``train_qa.jsonl``,
    ``dev_qa.jsonl`` and ``test_qa.jsonl`` hold plain ``{"question", "answer"}`` rows of what
    KnowMix's own trainer uses (test and dev: the gold answer); ``plan.json`` the plan's summary and
    its explanation. ``dataset_row`` is the project's ``datasets`` row (format, shape, mapping).
    Returns ``{"train", "dev", "test", "train_qa", "dev_qa", "test_qa", "plan"}`` -> path.

    The folder may hold the team's own ``train.jsonl``: nothing is written over a file KnowMix did not
    write there for ``project`` (the open ``Project`` the plan is from), nor ever over the project's
    own files (``core.exports_guard``); ``force`` replaces the first kind, for scripts.
    """
    shape = dataset_row.get("shape") or "question-answer"
    fmt = str(dataset_row.get("format") or "jsonl")
    mapping = dataset_row.get("mapping") or {}
    if isinstance(mapping, str):
        mapping = json.loads(mapping) if mapping.strip() else {}
    out = Path(folder).expanduser()
    names = export_names(dataset_row)
    guard = plan_export_folder(out, dataset_row, project=project, force=force, force_hint=force_hint)
    guard.check(names.values())  # before anything is written
    paths = {key: out / name for key, name in names.items()}
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProjectError(
            f"Cannot create the export folder {out}: {exc.strerror or exc}. Pick a folder you can write to."
        ) from None
    train_file, dev, test, trained = plan.training_file(), plan.dev(), plan.test(), plan.training_examples()
    # The team's own training data goes back as their own values, in their own format: a CSV cell that
    # starts with "=" stays exactly that (no spreadsheet escaping here, unlike KnowMix's own reports).
    write_records(paths["train"], [_record(e, shape, mapping) for e in train_file], fmt)
    guard.wrote(paths["train"])
    write_records(paths["dev"], [_record(e, shape, mapping) for e in dev], fmt)
    guard.wrote(paths["dev"])
    write_records(paths["test"], [_record(e, shape, mapping) for e in test], fmt)
    guard.wrote(paths["test"])
    write_records(paths["train_qa"], [{"question": e.question, "answer": e.target} for e in trained], "jsonl")
    guard.wrote(paths["train_qa"])
    for name, held in (("dev_qa", dev), ("test_qa", test)):
        write_records(
            paths[name], [{"question": e.question, "answer": e.answers[0] if e.answers else e.target} for e in held], "jsonl"
        )
        guard.wrote(paths[name])
    summary = {
        **plan.to_dict(),
        "explain": plan.explain(),
        "shape": shape,
        "format": fmt,
        "files": {k: p.name for k, p in paths.items()},
    }
    write_text_atomic(
        paths["plan"],
        json.dumps(summary, ensure_ascii=False, indent=2) + "\n",
        advice="Check the folder and the free disk space.",
    )
    guard.wrote(paths["plan"])
    return paths


def _record(e: PlanExample, shape: str, mapping: dict) -> dict:
    """The example's original record, with the answer replaced by the target when they differ."""
    if not e.raw:  # no original record kept: write the plain question-answer shape
        return plain_record(e.question, e.answers, e.target, relabelled=e.relabelled)
    return record_in_shape(e.raw, shape, mapping, e.target, relabelled=e.relabelled)
