"""The project file's schema and its migrations.

The schema is versioned with ``PRAGMA user_version`` and upgraded by the ordered ``MIGRATIONS``
(``MIGRATIONS[i]`` upgrades a file from version i to i + 1); a file from a newer KnowMix is
refused by ``Project`` instead of being half-understood. A new column or table is a new
migration here, never an edit of an old one: projects written by earlier versions must open.
"""

from __future__ import annotations

from typing import Callable

import sqlite_utils

SCHEMA_VERSION = 5
PROJECT_SUFFIX = ".knowmix"


def _migrate_1(db: sqlite_utils.Database) -> None:
    """Version 1: every table, in the order they were first created."""
    db.table("meta").create({"key": str, "value": str}, pk="key")
    _create_datasets_1(db)
    _create_probes_1(db)
    _create_plans_1(db)
    _create_training_1(db)


def _create_datasets_1(db: sqlite_utils.Database) -> None:
    db.table("datasets").create(
        {
            "id": int,
            "name": str,
            "path": str,
            "role": str,
            "format": str,
            "shape": str,
            "mapping": str,
            "file_sha256": str,
            "content_sha256": str,
            "n_examples": int,
            "n_duplicates": int,
            "n_skipped": int,
            "created_at": float,
        },
        pk="id",
    )
    db.table("examples").create(
        {
            "dataset_id": int,
            "example_id": str,
            "idx": int,
            "line": int,
            "question": str,
            "answers": str,
            "group_name": str,
            "raw": str,
        },
        pk=("dataset_id", "example_id"),
        foreign_keys=[("dataset_id", "datasets", "id")],
    )


def _create_probes_1(db: sqlite_utils.Database) -> None:
    db.table("probe_runs").create(
        {
            "id": int,
            "dataset_id": int,
            "pool_dataset_id": int,
            "model_spec": str,
            "model_name": str,
            "model_path": str,
            "model_fingerprint": str,
            "backend": str,
            "preset": str,
            "settings": str,
            "status": str,
            "n_total": int,
            "n_done": int,
            "created_at": float,
            "updated_at": float,
            "finished_at": float,
            "seconds": float,
            "note": str,
        },
        pk="id",
        foreign_keys=[("dataset_id", "datasets", "id")],
    )
    db.table("exemplar_sets").create(
        {"run_id": int, "group_name": str, "set_idx": int, "example_ids": str, "note": str},
        pk=("run_id", "group_name", "set_idx"),
        foreign_keys=[("run_id", "probe_runs", "id")],
    )
    db.table("probe_results").create(
        {
            "run_id": int,
            "example_id": str,
            "group_name": str,
            "category": str,
            "p_greedy": float,
            "p_sampled": float,
            "greedy_correct": int,
            "greedy_total": int,
            "sampled_correct": int,
            "sampled_total": int,
            "greedy_answers": str,
            "sampled_answers": str,
            "exemplar_ids": str,
            "seconds": float,
        },
        pk=("run_id", "example_id"),
        foreign_keys=[("run_id", "probe_runs", "id")],
    )
    db.table("probe_results").create_index(["run_id", "category"])


def _create_plans_1(db: sqlite_utils.Database) -> None:
    # Plans (core/plan/): which probed examples train, which form the dev split, and why.
    # ``plan_examples`` copies question, answers, group and the training target so a plan stays
    # readable (and trainable) on its own; the original record is joined from ``examples``.
    db.table("plans").create(
        {
            "id": int,
            "probe_run_id": int,
            "dataset_id": int,
            "name": str,
            "mix": str,
            "settings": str,
            "counts": str,
            "summary": str,
            "n_train": int,
            "n_dev": int,
            "n_dropped": int,
            "created_at": float,
        },
        pk="id",
        foreign_keys=[("probe_run_id", "probe_runs", "id")],
    )
    db.table("plan_examples").create(
        {
            "plan_id": int,
            "example_id": str,
            "idx": int,
            "split": str,
            "category": str,
            "group_name": str,
            "question": str,
            "answers": str,
            "target": str,
            "reason": str,
        },
        pk=("plan_id", "example_id"),
        foreign_keys=[("plan_id", "plans", "id")],
    )
    db.table("plan_examples").create_index(["plan_id", "split"])


def _create_training_1(db: sqlite_utils.Database) -> None:
    # Training runs (core/train/): one row per LoRA fine-tune. ``plan_snapshot`` freezes the exact
    # train/dev items the run uses (JSON), so a resume sees the same data even if the plan changes.
    # ``step``/``epoch`` are the last checkpoint's; best_* the evaluation with the best dev exact
    # match (the EARLY_STOP point), ``fit_at_best`` its train-fit share per category (JSON).
    db.table("train_runs").create(
        {
            "id": int,
            "plan_id": int,
            "status": str,
            "stop_reason": str,
            "settings": str,
            "model_spec": str,
            "model_name": str,
            "model_path": str,
            "model_fingerprint": str,
            "folder": str,
            "n_train": int,
            "n_dev": int,
            "steps_per_epoch": int,
            "total_steps": int,
            "step": int,
            "epoch": float,
            "created_at": float,
            "updated_at": float,
            "started_at": float,
            "finished_at": float,
            "seconds": float,
            "best_epoch": float,
            "best_step": int,
            "best_dev_em": float,
            "fit_at_best": str,
            "final_epoch": float,
            "final_step": int,
            "adapter_dir": str,
            "merged_dir": str,
            "plan_snapshot": str,
            "worker_pid": int,
            "error": str,
            "note": str,
        },
        pk="id",
        foreign_keys=[("plan_id", "plans", "id")],
    )
    # One value per (run, name, step): loss, lr, tokens_per_s per optimizer step; dev_em, fit/<category>
    # and the like per evaluation. A resumed run rewrites the steps after its checkpoint in place.
    db.table("metrics").create(
        {"run_id": int, "name": str, "step": int, "epoch": float, "value": float, "at": float},
        pk=("run_id", "name", "step"),
        foreign_keys=[("run_id", "train_runs", "id")],
    )


def _migrate_2(db: sqlite_utils.Database) -> None:
    """Version 2 (real team data): every row is stored, probed or not, with its answer key.

    ``probe_status`` is 'probed' or 'not-probed' (``reason`` says why: multi-turn, long-form,
    task, no-answer); ``keys`` is a JSON list of the answer key and its aliases ('[]': the
    answers are the keys); ``system`` is a chat row's own system turn."""
    examples = db.table("examples")
    examples.add_column("keys", str, not_null_default="[]")
    examples.add_column("key_source", str, not_null_default="answer")
    examples.add_column("system", str, not_null_default="")
    examples.add_column("probe_status", str, not_null_default="probed")
    examples.add_column("reason", str, not_null_default="")
    db.table("datasets").add_column("n_unprobed", int, not_null_default=0)
    examples.create_index(["dataset_id", "probe_status"])


def _migrate_3(db: sqlite_utils.Database) -> None:
    """Version 3 (faithful exemplars): ``exemplar_swaps`` lists, as JSON, the exemplars replaced for
    an example because they were the example itself or gave its answer away, with the reason and
    the replacement ('[]' for runs before this version, which did not check for leaks)."""
    db.table("probe_results").add_column("exemplar_swaps", str, not_null_default="[]")


def _migrate_4(db: sqlite_utils.Database) -> None:
    """Version 4 (the check): what training did to the model's knowledge (``core/check``).

    ``checks`` is one re-probe of a training run's adapter: its settings, the backend it ran on,
    the adapter it used, its progress, and ``summary`` (the per-split report as JSON, filled when it
    finishes). ``check_results`` holds one row per (check, split, example): the category and the
    zero-shot answer before training (base model) and after (with the adapter)."""
    db.table("checks").create(
        {
            "id": int,
            "train_run_id": int,
            "plan_id": int,
            "probe_run_id": int,
            "settings": str,
            "backend": str,
            "adapter": str,
            "adapter_step": int,
            "status": str,
            "n_total": int,
            "n_done": int,
            "seconds": float,
            "summary": str,
            "note": str,
            "created_at": float,
            "updated_at": float,
            "finished_at": float,
        },
        pk="id",
        foreign_keys=[("train_run_id", "train_runs", "id")],
    )
    db.table("check_results").create(
        {
            "check_id": int,
            "split": str,
            "example_id": str,
            "group_name": str,
            "category_before": str,
            "p_greedy_before": float,
            "answer_before": str,
            "right_before": int,
            "category_after": str,
            "p_greedy_after": float,
            "p_sampled_after": float,
            "answer_after": str,
            "right_after": int,
            "greedy_answers_after": str,
        },
        pk=("check_id", "split", "example_id"),
        foreign_keys=[("check_id", "checks", "id")],
    )


def _migrate_5(db: sqlite_utils.Database) -> None:
    """Version 5 (the grader, issue 18): ``greedy_reasons`` gives, per greedy answer, the verdict and
    why ("✓ key 'Paris' stated", "✗ key 'Paris' negated"; '[]' for runs before, whose reasons were
    not kept); ``judge_calibration`` is the judge's measured false-yes rate on the run's own data
    (JSON, '' when the run used no judge)."""
    db.table("probe_results").add_column("greedy_reasons", str, not_null_default="[]")
    db.table("probe_runs").add_column("judge_calibration", str, not_null_default="")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_migrate_1, _migrate_2, _migrate_3, _migrate_4, _migrate_5]
assert len(MIGRATIONS) == SCHEMA_VERSION
