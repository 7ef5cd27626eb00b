"""Which adapter a check asked: its training step and a content hash of its weights file.

A training run's adapter changes when a cancelled run is resumed and finishes (or a later
evaluation beats the best so far), but the run's id does not. A check is therefore found by run,
settings *and* adapter, and a stored check whose adapter is not the run's current one is
"stale": it is shown with the command that redoes it, never passed off as the run's check.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

from ..store.records import TrainRun

_HASHES: dict[tuple[str, int, int], str] = {}  # (path, mtime_ns, size) -> sha256: hashed once per file version


def weights_sha256(adapter_dir: Any) -> str:
    """sha256 of the adapter's weights file ('' when there is none), computed once per file version."""
    from ..train.gguf_lora import ADAPTER_WEIGHTS

    if not adapter_dir:
        return ""
    path = Path(str(adapter_dir)) / ADAPTER_WEIGHTS
    try:
        st = path.stat()
    except OSError:
        return ""
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def current_adapter(run: TrainRun) -> dict:
    """The adapter a check of ``run`` asks now: ``{"step": int | None, "sha256": str}``."""
    from .run import _adapter_step

    adapter_dir = str(run.adapter_dir) if run.adapter_dir else ""
    if not adapter_dir:
        from ..train.gguf_lora import _adapter_dir

        found = _adapter_dir(run)
        adapter_dir = str(found) if found is not None else ""
    return {"step": _adapter_step(run), "sha256": weights_sha256(adapter_dir)}


def stored_adapter(check_row: dict) -> Optional[dict]:
    """The adapter a stored check asked (from its settings identity), or None for a check made
    before checks recorded it."""
    try:
        data = json.loads(check_row.get("settings") or "{}")
    except ValueError:
        return None
    adapter = data.get("adapter") if isinstance(data, dict) else None
    return adapter if isinstance(adapter, dict) else None


def stale_words(check_row: dict, run: Optional[TrainRun]) -> str:
    """Why a stored check is not the check of the run's current adapter ('' when it is), with the
    command that redoes it. A check made before adapters were recorded is judged by its step alone."""
    if run is None:
        return ""
    now = current_adapter(run)
    then = stored_adapter(check_row)
    then_step = then.get("step") if then else check_row.get("adapter_step")
    if then is not None and then.get("sha256") and now["sha256"]:
        same = then.get("sha256") == now["sha256"] and then_step == now["step"]
    else:
        same = then_step == now["step"]
    if same:
        return old_measures_words(check_row)
    was = f"step {then_step}" if then_step is not None else "an earlier step"
    is_now = f"step {now['step']}" if now["step"] is not None else "another one"
    return (
        f"stale: this check asked an older adapter of training run {check_row['train_run_id']} ({was}); the run's "
        f"adapter is now {is_now}. Redo it: knowmix check --run {check_row['train_run_id']}"
    )


def old_measures_words(check_row: dict) -> str:
    """'' for a check that counts new errors by one measure at a time; else why it is stale (it
    counted a question known by the probe before and answered wrongly alone after as lost, the two
    measures mixed), with the command that redoes it."""
    from .types import MEASURES

    try:
        data = json.loads(check_row.get("settings") or "{}")
    except ValueError:
        data = {}
    if isinstance(data, dict) and data.get("measures") == MEASURES:
        return ""
    return (
        "stale: this check counted new errors the old way (known by the probe before, wrong by one answer after, "
        "so a question answered wrongly both times could count as lost). Redo it to count by the answer and by the "
        f"probe separately: knowmix check --run {check_row['train_run_id']}"
    )
