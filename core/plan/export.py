"""Exporting a plan's splits for other trainers (Axolotl, LLaMA-Factory, Unsloth)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ProjectError
from ..paths import write_text_atomic
from ..writeback import extension_for, plain_record, record_in_shape, write_records
from .types import Plan, PlanExample


def export_plan(plan: Plan, folder: str | os.PathLike, *, dataset_row: dict) -> dict[str, Path]:
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
    """
    shape = dataset_row.get("shape") or "question-answer"
    fmt = str(dataset_row.get("format") or "jsonl")
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
    train_file, dev, test, trained = plan.training_file(), plan.dev(), plan.test(), plan.training_examples()
    ext = extension_for(fmt)
    paths = {"train": out / f"train{ext}", "dev": out / f"dev{ext}", "test": out / f"test{ext}"}
    paths.update({name: out / f"{name}.jsonl" for name in ("train_qa", "dev_qa", "test_qa")})
    paths["plan"] = out / "plan.json"
    write_records(paths["train"], [_record(e, shape, mapping) for e in train_file], fmt)
    write_records(paths["dev"], [_record(e, shape, mapping) for e in dev], fmt)
    write_records(paths["test"], [_record(e, shape, mapping) for e in test], fmt)
    write_records(paths["train_qa"], [{"question": e.question, "answer": e.target} for e in trained], "jsonl")
    for name, held in (("dev_qa", dev), ("test_qa", test)):
        write_records(
            paths[name], [{"question": e.question, "answer": e.answers[0] if e.answers else e.target} for e in held], "jsonl"
        )
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
    return paths


def _record(e: PlanExample, shape: str, mapping: dict) -> dict:
    """The example's original record, with the answer replaced by the target when they differ."""
    if not e.raw:  # no original record kept: write the plain question-answer shape
        return plain_record(e.question, e.answers, e.target, relabelled=e.relabelled)
    return record_in_shape(e.raw, shape, mapping, e.target, relabelled=e.relabelled)
