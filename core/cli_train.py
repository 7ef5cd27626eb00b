"""The `knowmix` commands that train and check: ``train``, ``resume`` and ``check`` (``core.cli`` binds
them to the parser), with the lines they print while a run goes and when it ends."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional

from .cli_parser import TRAIN_OPTIONS, settings_values
from .cli_shared import ProgressPrinter, _CtrlC, _find_project, _status
from .formats import format_duration as _fmt_seconds
from .formats import percent
from .jobs import CancelToken


def _train_settings(args: argparse.Namespace):
    from .train.settings import TrainSettings

    settings = TrainSettings(
        **settings_values(TRAIN_OPTIONS, args), merge=bool(args.merge), other_model=bool(getattr(args, "other_model", False))
    )
    settings.validate()
    return settings


class _EvalPrinter:
    """Prints one line per evaluation under the progress bar: the curves of the paper's Figure 1."""

    def __init__(self, bar: ProgressPrinter) -> None:
        self.bar = bar

    def __call__(self, event: Any) -> None:
        """One worker event (``core.train.events``); only evaluations, resumes and the start print."""
        from .train.events import Eval, Resume, Start

        if isinstance(event, Eval):
            fit = ", ".join(f"{c} {percent(v, 0)}" for c, v in (event.fit or {}).items())
            best = " (best so far)" if event.best else ""
            self.bar.finish()
            if event.step == 0:
                _status(f"step 0: dev exact match before training: {percent(event.dev_em)}; train fit {fit}")
                return
            _status(f"epoch {event.epoch:.2f} step {event.step}: dev exact match {percent(event.dev_em)}{best}; train fit {fit}")
        elif isinstance(event, Resume):
            self.bar.finish()
            _status(f"Resuming training run {event.run_id} from step {event.from_step} (its last checkpoint).")
        elif isinstance(event, Start):
            self.bar.finish()
            _status(
                f"Training on {event.device} ({event.dtype}): {event.n_train} examples, "
                f"{event.n_dev} dev, {event.total_steps} steps, "
                f"{event.trainable_params} trainable parameters"
            )


def _print_outcome(out) -> None:
    """The run's end in lines; where it stopped is ``core.train.runs.stopping_point``'s answer (for a
    finished convergence run the last step, whose adapter it keeps), as in the app and the report."""
    from .categories import ordered_categories

    if out.status == "cancelled":
        _status(f"Cancelled. Resume with: knowmix resume --run {out.run_id}")
    point = out.stopping_point
    if point is not None:
        fit = point.get("fit") or {}
        fits = ", ".join(f"{c} {percent(fit[c], 0)}" for c in ordered_categories(fit))
        epoch = f"epoch {point['epoch']:g}, " if point.get("epoch") is not None else ""
        print(
            f"Stopping point, {point['why']}: {epoch}step {point['step']}, dev exact match "
            f"{percent(point.get('dev_em'))}; train fit there: {fits or '-'}"
        )
    if out.adapter_dir:
        print(f"Adapter: {out.adapter_dir}  (load with PeftModel.from_pretrained)")
    if out.merged_dir:
        print(f"Merged model: {out.merged_dir}")
    print(f"Run folder: {out.run_dir}  ({_fmt_seconds(out.seconds)})")


def _run_training(project_path: Path, plan_id: Optional[int], settings, *, resume_run=None, model=None, allow_pickle=False):
    from .train.runner import resume_training, start_training

    token = CancelToken()
    bar = ProgressPrinter("Training")
    with _CtrlC(token, "Training stops after the current step, saves a checkpoint and keeps the best adapter"):
        try:
            if resume_run is not None:
                events, pickle = _EvalPrinter(bar), allow_pickle  # pickle: the user's flag, never the project's
                out = resume_training(project_path, resume_run, progress=bar, on_event=events, cancel=token, allow_pickle=pickle)
            else:
                out = start_training(
                    project_path, plan_id, settings, progress=bar, on_event=_EvalPrinter(bar), cancel=token, model=model
                )
        finally:
            bar.finish()
    _print_outcome(out)
    return out


def cmd_train(args: argparse.Namespace) -> int:
    settings = _train_settings(args)
    project = _find_project(args.project)
    out = _run_training(project, args.plan, settings, model=args.model)
    from .train.model_match import other_model_note

    print(other_model_note(project, out.run_id), end="")
    if out.status == "cancelled":
        return 130
    return _check_after(project, out, args.no_check)


def cmd_resume(args: argparse.Namespace) -> int:
    project = _find_project(args.project)
    out = _run_training(project, None, None, resume_run=args.run, allow_pickle=args.allow_pickle)
    if out.status == "cancelled":
        return 130
    return _check_after(project, out, args.no_check)


def _check_after(project_path: Path, out, no_check: bool) -> int:
    """The check at the end of a finished run, on by default; its cost is said before it starts."""
    from .check import CheckSettings, plan_check
    from .store import Project
    from .train.runs import DONE

    if no_check or out.status != DONE or not out.adapter_dir:
        return 0
    with Project(project_path) as project:
        cp = plan_check(project, out.run_id, CheckSettings())
    if not cp.n:
        _status("No test, dev or training questions to check (knowmix check needs a plan with them).")
        return 0
    _status(f"Checking what training did: {cp.cost_text()}. Skip it next time with --no-check; Ctrl+C stops it.")
    return _run_check(project_path, out.run_id, CheckSettings(), json_out=False)


def _run_check(project_path: Path, run_id: Optional[int], settings, *, json_out: bool, threads: Optional[int] = None) -> int:
    from dataclasses import replace

    from .check import CheckModels, run_check
    from .probe import CALIBRATION_S
    from .store import Project

    settings = replace(settings, calibrate_s=CALIBRATION_S)  # an estimate from this machine before the first batch
    token = CancelToken()
    bar = ProgressPrinter("Checking")
    with Project(project_path) as project, _CtrlC(token, "The check stops after the current batch; run it again to resume"):
        try:
            report = run_check(
                project, run_id, settings, models=CheckModels(n_threads=threads), progress=bar, cancel=token, on_status=_status
            )
        finally:
            bar.finish()
    if json_out:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(report.to_text())
    return 130 if report.status == "cancelled" else 0


def cmd_check(args: argparse.Namespace) -> int:
    """Re-ask the plan's test, dev and training questions with a run's adapter; print what changed."""
    from .check import CheckSettings, plan_check
    from .store import Project

    settings = CheckSettings(full=args.full, train_per_category=args.train_sample, backend=args.backend)
    project_path = _find_project(args.project)
    with Project(project_path) as project:
        cp = plan_check(project, args.run, settings)
    if not args.json:
        _status(f"Checking training run {cp.train_run.id}: {cp.cost_text()}.")
    return _run_check(project_path, args.run, settings, json_out=args.json, threads=args.threads)
