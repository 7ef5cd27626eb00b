"""The `knowmix` command: a thin layer over the core library.

Every subcommand parses arguments, calls one library function and prints its result. User
mistakes arrive as ``KnowMixError`` and are printed as one line (``knowmix: error: ...``) with
a non-zero exit code; only bugs show a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from . import __version__
from .cli_parser import PLAN_OPTIONS, PROBE_OPTIONS, Command, settings_values
from .cli_parser import build_parser as _build_parser
from .cli_shared import ProgressPrinter, _CtrlC, _find_project, _status
from .cli_train import _check_after, _run_training, cmd_check, cmd_resume, cmd_train
from .errors import KnowMixError, SettingsError
from .formats import format_duration as _fmt_seconds
from .formats import format_mib
from .jobs import CancelToken

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


@dataclass(frozen=True)
class _ModelLoad:
    """How ``knowmix probe`` loads its model: the backend asked (``--backend``), ``--allow-pickle``,
    ``--threads``, and the checked ``--server`` options (``_server_options``; None: a local model)."""

    backend: str = "auto"
    allow_pickle: bool = False
    threads: Optional[int] = None
    server: Optional[dict] = None


def _run_probe(project_path: Path, ds, pool, model: str, settings, load: _ModelLoad = _ModelLoad()) -> int:
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
        served, server, threads = None, load.server, load.threads
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
                        backend_name=load.backend,
                        allow_pickle=load.allow_pickle,
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
        _ModelLoad(backend=args.backend, allow_pickle=args.allow_pickle, threads=args.threads, server=server),
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
    from .store import PROBE_FINISHED, Project

    check_format(args.format, args.out)
    with Project(_find_project(args.project), create=False) as project:
        run = project.probe_run(args.run)
        if run.status != PROBE_FINISHED:
            _status(
                f"Probe run {run.id} is not finished (status: {run.status}): rows it has not probed yet have an empty category. "
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
    from .paths import app_home, sample_pool, starter_dataset
    from .plan import PlanSettings, build_plan, save_plan
    from .plan.tiny import too_few_note
    from .probe import preset
    from .store import Project

    settings = preset(args.preset)
    ds = take_balanced(load_dataset(starter_dataset()), args.questions)
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
        if too_few_note(counts):
            print(f"Warning: {too_few_note(counts)}")
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
