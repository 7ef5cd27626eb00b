"""The `knowmix` command: a thin layer over the core library.

Every subcommand parses arguments, calls one library function and prints its result. User
mistakes arrive as ``KnowMixError`` and are printed as one line (``knowmix: error: ...``) with
a non-zero exit code; only bugs show a traceback.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from . import __version__
from .cli_parser import PLAN_OPTIONS, PROBE_OPTIONS, TRAIN_OPTIONS, Command, settings_values
from .cli_parser import build_parser as _build_parser
from .errors import KnowMixError, SettingsError
from .formats import format_duration as _fmt_seconds
from .formats import format_mib, percent
from .jobs import CancelToken, Progress

# -- output helpers -----------------------------------------------------------------------------


class ProgressPrinter:
    """A one-line progress bar on a terminal; periodic plain lines when output is a file or pipe."""

    def __init__(self, label: str, stream=None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0
        self._last_done = -1
        self._estimate_shown = False  # a calibration's estimate is printed once, as soon as it comes

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if self.tty:
            if now - self._last < 0.1 and p.done != p.total:
                return
            width = 24
            filled = int(width * p.done / p.total) if p.total else width
            bar = "#" * filled + "." * (width - filled)
            rate = p.rate_words("measuring") + (f" ({p.busy})" if p.busy else "")
            line = f"\r{self.label} [{bar}] {p.done}/{p.total} {rate} ETA {_fmt_seconds(p.eta_s)}  {p.message[:40]:<40}"
            self.stream.write(line)
            self.stream.flush()
        elif (p.estimated and not self._estimate_shown) or (
            p.done != self._last_done and (now - self._last > 15 or p.done == p.total)
        ):
            self._estimate_shown = self._estimate_shown or p.estimated
            rate = p.rate_words("rate not yet measured") + (f" ({p.busy})" if p.busy else "")
            self.stream.write(f"{self.label}: {p.done}/{p.total} {p.unit}, {rate}, ETA {_fmt_seconds(p.eta_s)}\n")
            self.stream.flush()
            self._last_done = p.done
        else:
            return
        self._last = now

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _status(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _CtrlC:
    """First Ctrl-C asks the job to stop after the current batch; a second one stops at once."""

    def __init__(
        self, token: CancelToken, what: str = "Finished batches are saved; the batch in progress is redone on resume"
    ) -> None:
        self.token = token
        self.what = what
        self._old: Any = None  # the SIGINT handler to put back

    def __enter__(self) -> "_CtrlC":
        def handler(signum, frame):
            if self.token.cancelled:
                raise KeyboardInterrupt
            self.token.cancel()
            _status(f"\nStopping (press Ctrl-C again to stop at once). {self.what} ...")

        try:
            self._old = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not in the main thread
            self._old = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


# -- subcommands --------------------------------------------------------------------------------


def _default_project(data: Path) -> Path:
    return Path.cwd() / f"{data.stem}.knowmix"


def _probe_settings(args: argparse.Namespace):
    from .probe import preset

    return preset(args.preset, **settings_values(PROBE_OPTIONS, args), chat_template=getattr(args, "chat_template", None))


def _load_data(path: str, args: argparse.Namespace, role: str = "data", limit: Optional[int] = None):
    from .datasets import load_dataset, parse_mapping

    mapping = parse_mapping(args.map) if getattr(args, "map", None) and role == "data" else None
    # With a limit only the rows the balanced pick can take are kept (issue 19: any file size).
    ds = load_dataset(path, mapping=mapping, skip_invalid=getattr(args, "skip_invalid", False), limit=limit)
    _status(ds.summary_line())
    return ds


def _run_probe(
    project_path: Path,
    ds,
    pool,
    model: str,
    settings,
    *,
    backend: str = "auto",
    allow_pickle: bool = False,
    threads: Optional[int] = None,
    server: Optional[dict] = None,
) -> int:
    from .probe import CALIBRATION_S, ProbeRequest, check_pool_size, run_probe
    from .store import Project
    from .summary import breakdown

    check_pool_size(len((pool if pool is not None else ds).examples), settings)
    with Project(project_path) as project:
        dataset_id = project.add_dataset(ds, role="train")
        pool_id = project.add_dataset(pool, role="pool") if pool is not None else None
        _status(f"Project: {project_path}")
        _status(f"Budget: {settings.describe()}")
        token = CancelToken()
        served = None
        if server is not None:
            from .backends.server import ServerBackend

            _status(f"Checking the server at {server['url']} ...")
            served = ServerBackend(cancel=token, **server)
            model = server["url"]
            _status(f"Server model: {served.info.name} ({served.concurrency} requests at a time).")
            if served.info.extra.get("not_comparable"):
                _status(served.info.extra["not_comparable"])
        bar = ProgressPrinter("Probing")
        with _CtrlC(token):
            try:
                outcome = run_probe(
                    project,
                    ProbeRequest(
                        dataset_id=dataset_id,
                        pool_dataset_id=pool_id,
                        model_spec=model,
                        settings=settings,
                        backend_name=backend,
                        allow_pickle=allow_pickle,
                        backend_options={"n_threads": threads} if threads else None,
                        calibrate_s=CALIBRATION_S,  # an estimate from this machine before the first batch
                    ),
                    backend=served,
                    progress=bar,
                    cancel=token,
                    on_status=_status,
                )
            finally:
                bar.finish()
                if served is not None:
                    served.close()
        result = breakdown(project, outcome.run_id)
        for group, note in sorted(outcome.notes.items()):
            _status(f"Note: {note}.")
        if outcome.status == "cancelled":
            _status(
                f"Cancelled: {outcome.n_done} of {outcome.n_total} questions are probed and saved. "
                "Run the same command again to resume."
            )
            print(result.to_table())
            return 130
        if outcome.status == "already finished":
            _status(f"This probe was already finished in {project_path}; showing its results.")
        print(result.headline())
        print(result.to_table())
        if served is not None and served.info.extra.get("not_comparable"):
            print(served.info.extra["not_comparable"])
        took = f" in {_fmt_seconds(outcome.seconds)}" if outcome.seconds else ""
        print(f"Probed {outcome.n_done} questions{took} ({outcome.n_done - outcome.resumed_from} in this session).")
        return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from .models import resolve_model

    settings = _probe_settings(args)
    ds = _load_data(args.data, args, limit=args.limit)  # --limit 0 is an error, not "no limit"
    if args.limit is not None:
        _status(f"Probing {len(ds.examples)} of the questions (--limit), spread evenly over the groups.")
    pool = _load_data(args.pool, args, role="pool") if args.pool else None
    from .backends import backend_for

    server = _server_options(args)
    # A bad model or backend is reported before anything is written.
    if server is None:
        backend_for(resolve_model(args.model, allow_pickle=args.allow_pickle), args.backend)
    if settings.judge_model:
        try:
            backend_for(resolve_model(settings.judge_model, allow_pickle=args.allow_pickle), "auto")
        except KnowMixError as exc:
            raise type(exc)(f"The judge model (--judge-model): {exc}") from None
    project = Path(args.project) if args.project else _default_project(Path(args.data))
    return _run_probe(
        project,
        ds,
        pool,
        args.model,
        settings,
        backend=args.backend,
        allow_pickle=args.allow_pickle,
        threads=args.threads,
        server=server,
    )


def _server_options(args: argparse.Namespace) -> Optional[dict]:
    """--server and its options, checked before anything is written (the key is only named here)."""
    if not getattr(args, "server", None):
        for flag in ("server_model", "api_key_env", "server_proxy"):
            if getattr(args, flag, None):
                raise SettingsError(f"--{flag.replace('_', '-')} needs --server URL.")
        return None
    from .backends.server import normalize_proxy, normalize_url, read_api_key

    if args.model != "default" or args.backend != "auto":
        raise SettingsError("--server probes the server's model: leave out --model and --backend.")
    if args.server_concurrency < 1:
        raise SettingsError(f"--server-concurrency must be at least 1 (got {args.server_concurrency}).")
    read_api_key(args.api_key_env)  # an unset variable is reported now, by name
    return {
        "url": normalize_url(args.server),
        "model": args.server_model,
        "api_key_env": args.api_key_env,
        "concurrency": args.server_concurrency,
        "proxy": normalize_proxy(args.server_proxy),
    }


def _find_project(arg: Optional[str]) -> Path:
    from .errors import ProjectError

    if arg:
        return Path(arg)
    found = sorted(Path.cwd().glob("*.knowmix"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not found:
        raise ProjectError("No project given and no *.knowmix file in this folder. Pass --project FILE.")
    if len(found) > 1:
        _status(f"Using the most recent project here: {found[0].name} (pass --project to choose another).")
    return found[0]


def cmd_summary(args: argparse.Namespace) -> int:
    from .store import Project
    from .summary import breakdown

    with Project(_find_project(args.project), create=False) as project:
        result = breakdown(project, args.run)
        if args.json:
            print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        else:
            print(result.headline())
            print(result.to_table())
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    """The probe's per-example results as JSONL, CSV or Parquet, to --out or to stdout."""
    from .results import check_format, result_rows, results_bytes, write_results, write_stream
    from .store import Project

    check_format(args.format, args.out)
    with Project(_find_project(args.project), create=False) as project:
        run = project.probe_run(args.run)
        if run.get("status") != "finished":
            _status(
                f"Probe run {run['id']} is not finished (status: {run.get('status')}): rows it has not probed yet have an empty category. "
                "Run the same probe again to finish it."
            )
        if args.out:
            n = write_results(project, args.format, Path(args.out), args.run)
            _status(f"wrote {n} row{'s' if n != 1 else ''} to {args.out}")
        else:
            write_stream(results_bytes(result_rows(project, args.run), args.format), sys.stdout)  # parquet needs --out
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Probe -> plan -> a short LoRA run -> summary, on sample data and the built-in model."""
    from .datasets import load_dataset, take_balanced
    from .paths import app_home, sample_dataset, sample_pool
    from .plan import PlanSettings, build_plan, save_plan
    from .probe import preset
    from .store import Project

    settings = preset(args.preset)
    ds = take_balanced(load_dataset(sample_dataset()), args.questions)
    pool = load_dataset(sample_pool())
    project = Path(args.project) if args.project else app_home() / "demo.knowmix"
    _status(
        f"KnowMix demo: probing {len(ds.examples)} EntityQuestions questions ({len(ds.groups())} relations) with the "
        f"built-in model; exemplars come from {Path(pool.path).name}."
    )
    code = _run_probe(project, ds, pool, "default", settings)
    if code != 0 or args.no_train:
        return code
    print("\n== Plan: the recommended mix ==")
    with Project(project) as store:
        try:
            plan = build_plan(store, None, PlanSettings())
        except SettingsError as exc:
            print(f"No training run: {exc} Probe more questions (--questions) to get a plan to train.")
            return 0
        plan_id = save_plan(store, plan, name="demo")
        counts = plan.counts()
        print(
            f"Plan {plan_id}: {counts['train']['total']} questions to train on, {counts['dev']['total']} held out for dev, "
            f"{counts['dropped']['total']} dropped (Unknown, and WeaklyKnown over the cap of 0). "
            f"`knowmix plan --project {project}` prints the full reasoning."
        )
    from .train.runner import missing_training_packages
    from .train.settings import TrainSettings

    missing = missing_training_packages()
    if missing:
        print(
            f"\nNo training run: this installation has no {', '.join(missing)} (the lite edition). The full "
            f"edition trains the plan; `knowmix plan --project {project} --export DIR` writes it for other tools."
        )
        return 0
    print("\n== A short LoRA run on the built-in model ==")

    train = TrainSettings(epochs=args.epochs, patience=1)
    out = _run_training(project, plan_id, train)
    if out.status == "cancelled":
        return 130
    print("\n== What training did to the model's knowledge ==")
    return _check_after(project, out, args.no_check)


def _parse_shares(text: Optional[str]) -> Optional[dict[str, float]]:
    if not text:
        return None
    shares: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            if not sep:
                raise ValueError
            shares[name.strip()] = float(value)
        except ValueError:
            raise SettingsError(
                f"--shares: cannot read '{part}'. Write CATEGORY=SHARE pairs, e.g. HighlyKnown=1,MaybeKnown=1,WeaklyKnown=0.5,Unknown=0."
            ) from None
    return shares


def _memory_lines(project, plan) -> list[str]:
    """The memory a default LoRA run on the probe's model needs, against this machine's free memory."""
    from .plan import plan_memory

    est, warning, name = plan_memory(project, plan, "cpu")
    if est is None:
        return [name]
    lines = [f"Memory for a LoRA run on {name}: {est.describe()}"]
    if warning:
        lines.append(f"WARNING: {warning}")
    return lines


def cmd_plan(args: argparse.Namespace) -> int:
    from .cli_parser import FORCE_HINT
    from .plan import PlanSettings, build_plan, export_plan, save_plan
    from .plan.export import check_plan_export
    from .store import Project

    settings = PlanSettings(**settings_values(PLAN_OPTIONS, args), shares=_parse_shares(args.shares))
    settings.validate()
    with Project(_find_project(args.project), create=False) as project:
        plan = build_plan(project, args.run, settings)
        exporting = {"project": project, "force": args.force, "force_hint": FORCE_HINT}
        if args.export:  # a folder holding the team's own files is refused before the plan is saved
            check_plan_export(plan, args.export, **exporting)
        if getattr(args, "ood", None):
            from .plan import add_ood

            add_ood(project, plan, args.ood)
        plan_id = save_plan(project, plan, name=args.name or "")
        if args.json:
            print(json.dumps(plan.to_dict(), indent=2, ensure_ascii=False))
        else:
            print(f"Plan {plan_id} (from probe run {plan.probe_run_id}), saved in {project.path}")
            print(plan.explain())
            for line in _memory_lines(project, plan):
                print(line)
        if args.export:
            if plan.dataset_id is None:  # build_plan always sets it; say so in the store's words if not
                from .errors import ProjectError

                raise ProjectError("The project has no dataset number None.")
            paths = export_plan(plan, args.export, dataset_row=project.dataset(plan.dataset_id), **exporting)
            for label, path in paths.items():
                _status(f"exported {label}: {path}")
    return 0


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

    from .check import run_check
    from .probe import CALIBRATION_S
    from .store import Project

    settings = replace(settings, calibrate_s=CALIBRATION_S)  # an estimate from this machine before the first batch
    token = CancelToken()
    bar = ProgressPrinter("Checking")
    with Project(project_path) as project, _CtrlC(token, "The check stops after the current batch; run it again to resume"):
        try:
            report = run_check(project, run_id, settings, progress=bar, cancel=token, on_status=_status, n_threads=threads)
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
        _status(f"Checking training run {cp.train_run['id']}: {cp.cost_text()}.")
    return _run_check(project_path, args.run, settings, json_out=args.json, threads=args.threads)


def cmd_models(args: argparse.Namespace) -> int:
    """Show what `--model default` is and whether it loads."""
    from .models import default_model_path, resolve_model

    ref = resolve_model(args.model, allow_pickle=args.allow_pickle)
    print(f"{ref.display_name}: {ref.kind} at {ref.path} ({format_mib(ref.size_bytes)})")
    if args.model == "default":
        print(f"built-in model file: {default_model_path()}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the project's offline HTML report (probe, breakdown, plan, training) and print its path."""
    from .report import default_report_path, write_report

    project = _find_project(args.project)
    out = Path(args.out) if args.out else default_report_path(project)
    path = write_report(project, out, probe_run_id=args.run, plan_id=args.plan, train_run_id=args.train_run)
    print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a training run's adapter as a GGUF LoRA with its Ollama Modelfile and llama-server line; print them."""
    from .cli_parser import FORCE_HINT
    from .train.gguf_lora import export_gguf

    result = export_gguf(
        _find_project(args.project), args.gguf, args.run, merged=args.merged, force=args.force, force_hint=FORCE_HINT
    )
    print("\n".join(result.lines()))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print the environment for a bug report; exits 0 even when something is missing (problems are listed)."""
    from .doctor import collect, format_text

    info = collect(gpu=not args.no_gpu, backends=not args.no_backend_checks)
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
    else:
        print(format_text(info))
    return 0


# -- parser -------------------------------------------------------------------------------------

COMMANDS: dict[str, Command] = {
    "probe": cmd_probe,
    "check": cmd_check,
    "summary": cmd_summary,
    "results": cmd_results,
    "demo": cmd_demo,
    "plan": cmd_plan,
    "train": cmd_train,
    "resume": cmd_resume,
    "report": cmd_report,
    "export": cmd_export,
    "model": cmd_models,
    "doctor": cmd_doctor,
}


def build_parser() -> argparse.ArgumentParser:
    """The `knowmix` parser (``core.cli_parser``), each subcommand bound to its ``cmd_*`` function."""
    return _build_parser(COMMANDS, __version__)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KnowMixError as exc:
        print(f"knowmix: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\nknowmix: stopped. Finished work is saved; run the same command again to resume.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error for the user
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
