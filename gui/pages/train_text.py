"""The training page's words: what a run did, where it stopped, what its checkpoint holds, what the
GPU look found and what each worker event means, as text and HTML, with no Qt state.

Kept apart from the page so the rules of what to say are readable (and testable) without a window:
the page only decides where the text goes.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from core.categories import ordered_categories
from core.devices import Devices, detect_devices, last_detected
from core.formats import format_gib, percent
from core.plan import too_few_note
from core.store import CANCELLED, CRASHED, CREATED, DONE, FAILED, RUNNING, ProbeRun, TrainRun, pid_alive, stop_reason_words
from core.train import RESUMABLE as RESUMABLE_STATUSES  # noqa: F401  (old name; the rule lives in core.train.runs)
from core.train import (  # noqa: F401  (re-exported for gui.pages.train)
    Checkpoint,
    Done,
    Eval,
    Merged,
    Restored,
    Resume,
    Start,
    TrainEvent,
    WorkerError,
)
from core.train import is_resumable as run_is_resumable  # noqa: F401  (old name)

from .base import fmt_seconds


@dataclass(frozen=True)
class PlanLine:
    """What the page says about the plan it trains on, and the model training defaults to."""

    label: str
    model: Optional[str]  # the model the plan's probe used (``core.plan.probe_model_spec``); None: unknown
    note: str
    placeholder: str


def plan_line(project: Any, plan_id: Optional[int]) -> PlanLine:
    """The plan's sizes and its probe's model, read through ``core`` (a plan whose probe is gone still trains)."""
    if project is None or plan_id is None:
        return PlanLine("", None, "Default: the model the plan's probe used (no plan yet).", "the model the plan's probe used")
    from core.plan import probe_model_spec
    from core.store import plan_row

    row = plan_row(project, plan_id)
    if row is None:
        return PlanLine(
            f"Plan {plan_id} is not in this project.",
            None,
            "Default: the model the plan's probe used (no plan yet).",
            "the model the plan's probe used",
        )
    label = f"Training on plan {row['id']} “{row['name'] or ''}”: {training_rows_words(row)} and {row['n_dev']} dev examples."
    tiny = too_few_note(_counts(row))
    if tiny:
        label = f"{label} {tiny}"
    probe = _probe_run(project, row.get("probe_run_id"))
    model = probe_model_spec(probe) if probe else None
    if not model:
        return PlanLine(
            label,
            None,
            "The plan does not say which model was probed: choose one with Browse….",
            "choose a Hugging Face folder or a GGUF file",
        )
    name = (probe.model_name if probe is not None else "") or model
    shown = "the built-in model" if model == "default" else model
    return PlanLine(label, model, f"Default: the model the plan's probe used — {name} ({shown}).", f"same as the probe: {name}")


def _counts(row: dict) -> dict:
    """A stored plan's counts (``Plan.counts()`` as JSON); {} when unreadable (the note is then left out)."""
    try:
        counts = json.loads(row.get("counts") or "{}")
    except ValueError:
        return {}
    return counts if isinstance(counts, dict) else {}


def training_rows_words(row: dict) -> str:
    """'312 training examples (300 probed, 12 kept rows that were not probed)': what the trainer
    trains on, the kept not-probed rows it uses included (the plan row's ``n_train`` counts the
    probed ones only)."""
    probed = int(row.get("n_train") or 0)
    unprobed = int((_counts(row).get("not_probed") or {}).get("trained") or 0)
    if not unprobed:
        return f"{probed} training"
    return f"{probed + unprobed} training ({probed} probed, {unprobed} kept rows that were not probed)"


def _probe_run(project: Any, run_id: Optional[int]) -> Optional[ProbeRun]:
    if run_id is None:
        return None
    try:
        return project.probe_run(run_id)
    except Exception:  # noqa: BLE001 - a plan whose probe is gone still trains with a chosen model
        return None


def detect_gpu(_job: Any = None) -> Devices:
    """What torch can train on here (``core.devices``). Runs on a worker thread: it imports torch;
    the answer is kept for the process."""
    return detect_devices()


def cached_gpu() -> Optional[Devices]:
    """What ``detect_gpu`` found in this process, or None before it ran (then it needs a worker)."""
    return last_detected()


def describe_gpu(info: Devices) -> str:
    """One sentence on where "Automatic" will train, so a slow CPU run is no surprise."""
    if info.error:
        return f"Could not check for a GPU ({info.error}); training will try the CPU."
    if info.cuda:
        gpus = "; ".join(f"{g.name} ({format_gib(g.memory, 0)})" for g in info.cuda)
        return f"GPU found: {gpus}. Automatic trains on it."
    if info.mps:
        return "Apple GPU (MPS) found. Automatic trains on it."
    return "No GPU found: training runs on the CPU (fine for small models, slow for large ones)."


def pct(x: Optional[float]) -> str:
    """A share as a percentage, or a dash before there is one."""
    return percent(x, missing="—")


def fit_text(fit: Optional[dict]) -> str:
    """Train fit per category, in the paper's category order (then any others, sorted)."""
    if not fit:
        return ""
    return " · ".join(f"{c} {percent(fit[c], 0)}" for c in ordered_categories(fit))


def run_label(row: TrainRun) -> str:
    """The run's line in the runs list; says when a "running" run's process is gone."""
    best = f"dev EM best {pct(row.best_dev_em)}" if row.best_dev_em is not None else "no evaluation yet"
    status = row.status or "?"
    if status in (RUNNING, CREATED) and not pid_alive(row.worker_pid) and row.worker_pid:
        status += " (process gone)"
    return f"Run {row.id} — {status} — {best}"


def describe_outcome(row: TrainRun, history: list[dict]) -> str:
    """What a run ended with, in words (HTML); the stop reason in the report's words (``core.store.stop_reason_words``)."""
    status = row.status
    point = row.stopping_point(history)
    esc = html.escape
    lines = []
    if status == DONE:
        reason = stop_reason_words(row.stop_reason, row.keeps_final) if row.stop_reason else ""
        lines.append(f"<b>Run {row.id} finished</b>" + (f" ({esc(reason)}, in {fmt_seconds(row.seconds)})." if reason else "."))
    elif status == CANCELLED:
        lines.append(
            f"<b>Run {row.id} was cancelled at step {row.step}.</b> Its last checkpoint and its best "
            "adapter so far are kept: Resume continues from the checkpoint."
        )
    else:
        lines.append(f"<b>Run {row.id}: {esc(str(status))}.</b>" + (f" {esc(row.error)}" if row.error else ""))
    step0 = next((h for h in history if h.get("step") == 0 and h.get("dev_em") is not None), None)
    if step0 is not None:
        lines.append(f"Dev exact match before training: {pct(step0['dev_em'])}.")
    if point is not None:
        epoch = f"epoch {point['epoch']:.2f}, " if isinstance(point.get("epoch"), (int, float)) else ""
        lines.append(
            f"Stopping point: {epoch}step {point['step']} ({esc(point['why'])}); dev exact match {pct(point['dev_em'])}."
        )
        if point.get("fit"):
            lines.append(f"Train fit at the stopping point: {esc(fit_text(point['fit']))}.")
    elif status != "done":
        lines.append("No evaluation yet, so no stopping point and no adapter.")
    if row.adapter_dir:
        lines.append(f"Adapter: <code>{esc(str(row.adapter_dir))}</code>")
    if row.merged_dir:
        lines.append(f"Merged model: <code>{esc(str(row.merged_dir))}</code>")
    return "<br>".join(lines)


def describe_checkpoint(row: TrainRun) -> str:
    """What the run folder holds (checkpoint, adapter, error), checked on disk, as HTML."""
    folder = row.folder or Path("")
    last = folder / "checkpoints" / "last"
    has_ckpt = (last / "state.json").is_file() or (folder / "checkpoints" / "last.old" / "state.json").is_file()
    step, epoch = row.step, row.epoch
    esc = html.escape
    parts = [
        f"<b>{esc(run_label(row))}</b> · model {esc(row.model_name or row.model_spec or '?')} · "
        f"{row.n_train} training / {row.n_dev} dev examples"
    ]
    if has_ckpt:
        parts.append(
            f"Last checkpoint: step {step} (epoch {float(epoch):.2f}) — <code>checkpoints/last</code> is in the run folder."
        )
    else:
        parts.append("No checkpoint in the run folder" + (" (removed?)" if step else " yet") + ".")
    adapter = row.adapter_dir
    if adapter:
        which = "final adapter (last step)" if Path(adapter).name == "final-adapter" else "best adapter"
        exists = "" if Path(adapter).is_dir() else " — <i>missing on disk</i>"
        parts.append(f"Adapter ({which}): <code>{esc(str(adapter))}</code>{exists}")
    else:
        parts.append("No adapter yet (one is saved at the first evaluation).")
    if row.error and row.status in (FAILED, CRASHED):
        parts.append(f"Error: {esc(row.error)}")
    return "<br>".join(parts)


def event_text(event: TrainEvent) -> str:
    """The status line for one worker event (``core.train.events``); "" for events that only draw."""
    match event:
        case Resume():
            return (
                f"Resuming from the checkpoint at step {int(event.from_step or 0)} …"
                if event.checkpoint
                else "No checkpoint: starting over …"
            )
        case Start():
            return _start_text(event)
        case Eval():
            fit = fit_text(event.fit)
            if event.step == 0:
                return f"Dev exact match before training: {pct(event.dev_em)}" + (f"; train fit {fit}" if fit else "") + "."
            return (
                f"Epoch {float(event.epoch):.2f} (step {event.step}): dev exact match {pct(event.dev_em)} "
                f"(best {pct(event.best_dev_em)} at step {event.best_step})" + (f"; train fit {fit}" if fit else "") + "."
            )
        case Restored():
            return f"Kept the best adapter, from step {event.step}."
        case Merged():
            return f"Merged model saved in {event.path}."
        case Done(status="cancelled"):
            return f"Cancelled at step {event.final_step}; the checkpoint and the best adapter are kept."
        case Done():
            return f"Finished at step {event.final_step} in {fmt_seconds(event.seconds)}."
        case WorkerError():
            return f"Stopped on an error: {event.message}"
    return ""


def _start_text(event: Start) -> str:
    """Device, precision, threads and the size of the run, so a user sees at once what runs where."""
    n = event.threads
    threads = f", {n} CPU thread{'' if n == 1 else 's'}" if str(event.device).startswith("cpu") else ""
    return (
        f"Training on {event.device} ({event.dtype}{threads}): {event.n_train} examples, "
        f"{event.n_dev} dev examples, {event.total_steps} steps "
        f"({event.steps_per_epoch} per epoch × {event.epochs} epochs)"
        + (f", from step {event.start_step}" if event.resumed else "")
        + "."
    )


def training_html(run_id: Any) -> str:
    """The runs box while a new run trains, before its first checkpoint."""
    return f"<b>Run {run_id} — training</b><br>No checkpoint yet: the first is saved at the first evaluation."


def checkpoint_html(run_id: Any, event: Checkpoint) -> str:
    """The runs box while training: where the last checkpoint is (the run is not in the list yet)."""
    return (
        f"<b>Run {run_id} — training</b><br>Last checkpoint: step {event.step} (epoch {float(event.epoch):.2f}) "
        f"— <code>checkpoints/last</code> is in the run folder."
    )
