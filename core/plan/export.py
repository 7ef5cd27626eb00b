"""Exporting a plan's splits for other trainers (Axolotl, LLaMA-Factory, Unsloth)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from ..errors import ProjectError
from ..paths import write_text_atomic
from ..writeback import plain_record, record_in_shape
from .types import Plan, PlanExample


def export_plan(plan: Plan, folder: str | os.PathLike, *, dataset_row: dict) -> dict[str, Path]:
    """Write the planned splits for training elsewhere.

    ``train.jsonl`` and ``dev.jsonl`` hold the original records in the input's own shape and
    fields, with the answer replaced by the training target where the plan relabelled it;
    ``train_qa.jsonl`` and ``dev_qa.jsonl`` hold plain ``{"question", "answer"}`` rows; ``plan.json``
    the plan's summary and its explanation. The input is always written as JSON Lines, whatever
    its file format was. ``dataset_row`` is the project's ``datasets`` row (shape and mapping).
    Returns ``{"train", "dev", "train_qa", "dev_qa", "plan"}`` -> path.
    """
    shape = dataset_row.get("shape") or "question-answer"
    mapping = dataset_row.get("mapping") or {}
    if isinstance(mapping, str):
        mapping = json.loads(mapping) if mapping.strip() else {}
    out = Path(folder).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProjectError(
            f"Cannot create the export folder {out}: {exc.strerror or exc}. Pick a folder you can write to."
        ) from None
    train, dev = plan.train(), plan.dev()
    paths = {name: out / f"{name}.jsonl" for name in ("train", "dev", "train_qa", "dev_qa")}
    paths["plan"] = out / "plan.json"
    _write_jsonl(paths["train"], (_record(e, shape, mapping) for e in train))
    _write_jsonl(paths["dev"], (_record(e, shape, mapping) for e in dev))
    _write_jsonl(paths["train_qa"], ({"question": e.question, "answer": e.target} for e in train))
    _write_jsonl(paths["dev_qa"], ({"question": e.question, "answer": e.answers[0] if e.answers else e.target} for e in dev))
    summary = {**plan.to_dict(), "explain": plan.explain(), "shape": shape, "files": {k: p.name for k, p in paths.items()}}
    _write_text(paths["plan"], json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    return paths


def _record(e: PlanExample, shape: str, mapping: dict) -> dict:
    """The example's original record, with the answer replaced by the target when they differ."""
    if not e.raw:  # no original record kept: write the plain question-answer shape
        return plain_record(e.question, e.answers, e.target, relabelled=e.relabelled)
    return record_in_shape(e.raw, shape, mapping, e.target, relabelled=e.relabelled)


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    _write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))


def _write_text(path: Path, text: str) -> None:
    write_text_atomic(path, text, advice="Check the folder and the free disk space.")
