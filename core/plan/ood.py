"""The out-of-distribution file: questions from groups the plan does not have (as the paper's
held-out relations), kept in the project (dataset role "ood") for ``knowmix check``.

The plan does not probe it; the check probes it before and after training, to see what the
fine-tune did to knowledge it never trained on, outside the training distribution. Its groups
must not overlap the plan's, or it would not be out of distribution.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import SettingsError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .types import Plan

OOD_ROLE = "ood"


def _overlap_error(where: str, overlap: Iterable[str]) -> SettingsError:
    names = sorted(overlap)
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return SettingsError(
        f"The out-of-distribution file {where} shares {len(names)} group{'s' if len(names) != 1 else ''} with the plan "
        f"({shown}), so it is not out of distribution. Use a file with other groups only (e.g. relations the training "
        "data does not have), or leave --ood out."
    )


def plan_groups(plan: "Plan") -> set[str]:
    """The groups of the plan's probed questions."""
    return {e.group for e in plan.examples if e.probed}


def add_ood(project: Any, plan: "Plan", path: str | os.PathLike) -> int:
    """Load ``path`` (``core.datasets.load_dataset``), refuse it when its groups overlap the plan's
    (naming them), add it to the project with role "ood" and set ``plan.settings.ood_dataset_id``;
    returns the dataset id."""
    from ..datasets import load_dataset

    ds = load_dataset(path)
    groups = {ex.group for ex in ds.examples}
    overlap = groups & plan_groups(plan)
    if overlap:
        raise _overlap_error(str(path), overlap)
    if not ds.examples:
        raise SettingsError(
            f"The out-of-distribution file {path} has no questions. Pick a file with questions, or leave --ood out."
        )
    dataset_id = int(project.add_dataset(ds, role=OOD_ROLE))
    plan.settings = dataclasses.replace(plan.settings, ood_dataset_id=dataset_id)
    return dataset_id


def check_ood(project: Any, plan: "Plan") -> None:
    """Refuse a plan whose ``ood_dataset_id`` is not a dataset of the project, or whose groups overlap the plan's."""
    ood_id = plan.settings.ood_dataset_id
    if ood_id is None:
        return
    from ..errors import ProjectError

    try:
        project.dataset(ood_id)
    except ProjectError:
        raise SettingsError(
            f"The out-of-distribution dataset {ood_id} is not in the project. Add the file again with --ood FILE."
        ) from None
    examples = list(project.examples(ood_id, status=None))
    overlap = {ex.group for ex in examples} & plan_groups(plan)
    if overlap:
        raise _overlap_error(f"(dataset {ood_id})", overlap)


def ood_summary(project: Any, dataset_id: int) -> dict:
    """``{"id", "name", "n", "groups"}`` of the out-of-distribution dataset, for the explanation and ``--json``."""
    row = project.dataset(dataset_id)
    examples = list(project.examples(dataset_id, status=None))
    return {
        "id": dataset_id,
        "name": str(row.get("name") or ""),
        "n": len(examples),
        "groups": sorted({ex.group for ex in examples}),
    }
