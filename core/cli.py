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

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if self.tty:
            if now - self._last < 0.1 and p.done != p.total:
                return
            width = 24
            filled = int(width * p.done / p.total) if p.total else width
            bar = "#" * filled + "." * (width - filled)
            rate = f"{p.rate:.2f} {p.unit}/s" if p.rate else "measuring"
            line = f"\r{self.label} [{bar}] {p.done}/{p.total} {rate} ETA {_fmt_seconds(p.eta_s)}  {p.message[:40]:<40}"
            self.stream.write(line)
            self.stream.flush()
        elif p.done != self._last_done and (now - self._last > 15 or p.done == p.total):
            rate = f"{p.rate:.2f} {p.unit}/s" if p.rate else "rate not yet measured"
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

    def __init__(self, token: CancelToken, what: str = "Finished batches are saved; the batch in progress is redone on resume") -> None:
        self.token = token
        self.what = what
        self._old = None

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

    return preset(
        args.preset, n_sets=args.sets, shots=args.shots, samples_per_set=args.samples, temperature=args.temperature,
        top_k=args.top_k, max_tokens=args.max_tokens, seed=args.seed, schedule=args.schedule,
    )


def _load_data(path: str, args: argparse.Namespace, role: str = "data"):
    from .datasets import load_dataset, parse_mapping

    mapping = parse_mapping(args.map) if getattr(args, "map", None) and role == "data" else None
    ds = load_dataset(path, mapping=mapping, skip_invalid=getattr(args, "skip_invalid", False))
    _status(ds.summary_line())
    return ds


def _run_probe(project_path: Path, ds, pool, model: str, settings, *, backend: str = "auto", allow_pickle: bool = False,
               threads: Optional[int] = None) -> int:
    from .probe import check_pool_size, run_probe
    from .store import Project
    from .summary import breakdown

    check_pool_size(len((pool if pool is not None else ds).examples), settings)
    with Project(project_path) as project:
        dataset_id = project.add_dataset(ds, role="train")
        pool_id = project.add_dataset(pool, role="pool") if pool is not None else None
        _status(f"Project: {project_path}")
        _status(f"Budget: {settings.describe()}")
        token = CancelToken()
        bar = ProgressPrinter("Probing")
        with _CtrlC(token):
            try:
                outcome = run_probe(
                    project, dataset_id=dataset_id, pool_dataset_id=pool_id, model_spec=model, settings=settings,
                    backend_name=backend, allow_pickle=allow_pickle, progress=bar, cancel=token, on_status=_status,
                    backend_options={"n_threads": threads} if threads else None,
                )
            finally:
                bar.finish()
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
        took = f" in {_fmt_seconds(outcome.seconds)}" if outcome.seconds else ""
        print(f"Probed {outcome.n_done} questions{took} ({outcome.n_done - outcome.resumed_from} in this session).")
        return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from .models import resolve_model

    settings = _probe_settings(args)
    ds = _load_data(args.data, args)
    if args.limit is not None:  # --limit 0 is an error, not "no limit"
        from .datasets import take_balanced

        ds = take_balanced(ds, args.limit)
        _status(f"Probing {len(ds.examples)} of the questions (--limit), spread evenly over the groups.")
    pool = _load_data(args.pool, args, role="pool") if args.pool else None
    from .backends import backend_for

    # A bad model or backend is reported before anything is written.
    backend_for(resolve_model(args.model, allow_pickle=args.allow_pickle), args.backend)
    project = Path(args.project) if args.project else _default_project(Path(args.data))
    return _run_probe(project, ds, pool, args.model, settings, backend=args.backend, allow_pickle=args.allow_pickle,
                      threads=args.threads)


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
        print(f"Plan {plan_id}: {counts['train']['total']} questions to train on, {counts['dev']['total']} held out for dev, "
              f"{counts['dropped']['total']} dropped (Unknown, and WeaklyKnown over the cap of 0). "
              f"`knowmix plan --project {project}` prints the full reasoning.")
    from .train.runner import missing_training_packages
    from .train.settings import TrainSettings

    missing = missing_training_packages()
    if missing:
        print(f"\nNo training run: this installation has no {', '.join(missing)} (the lite edition). The full "
              f"edition trains the plan; `knowmix plan --project {project} --export DIR` writes it for other tools.")
        return 0
    print("\n== A short LoRA run on the built-in model ==")

    train = TrainSettings(epochs=args.epochs, patience=1)
    _run_training(project, plan_id, train)
    return 0


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
    from .plan import PlanSettings, build_plan, export_plan, save_plan
    from .store import Project

    settings = PlanSettings(
        mix=args.mix, weakly_known_cap=args.weakly_known_cap, shares=_parse_shares(args.shares),
        dev_fraction=args.dev_fraction, dev_max=args.dev_max, seed=args.seed,
    )
    settings.validate()
    with Project(_find_project(args.project), create=False) as project:
        plan = build_plan(project, args.run, settings)
        plan_id = save_plan(project, plan, name=args.name or "")
        if args.json:
            print(json.dumps(plan.to_dict(), indent=2, ensure_ascii=False))
        else:
            print(f"Plan {plan_id} (from probe run {plan.probe_run_id}), saved in {project.path}")
            print(plan.explain())
            for line in _memory_lines(project, plan):
                print(line)
        if args.export:
            paths = export_plan(plan, args.export, dataset_row=project.dataset(plan.dataset_id))
            for label, path in paths.items():
                _status(f"exported {label}: {path}")
    return 0


def _train_settings(args: argparse.Namespace):
    from .train.settings import TrainSettings

    overrides = {
        "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "grad_accum": args.grad_accum,
        "lora_r": args.rank, "lora_alpha": args.alpha, "stopping": args.stopping, "patience": args.patience,
        "threads": args.threads, "device": args.device, "prompt_format": args.prompt_format, "seed": args.seed,
        "max_seq_len": args.max_seq_len, "fit_sample_per_category": args.fit_sample, "eval_every_steps": args.eval_every,
    }
    settings = TrainSettings(**{k: v for k, v in overrides.items() if v is not None}, merge=bool(args.merge))
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
            _status(f"epoch {event.epoch:.2f} step {event.step}: dev exact match "
                    f"{percent(event.dev_em)}{best}; train fit {fit}")
        elif isinstance(event, Resume):
            self.bar.finish()
            _status(f"Resuming training run {event.run_id} from step {event.from_step} (its last checkpoint).")
        elif isinstance(event, Start):
            self.bar.finish()
            _status(f"Training on {event.device} ({event.dtype}): {event.n_train} examples, "
                    f"{event.n_dev} dev, {event.total_steps} steps, "
                    f"{event.trainable_params} trainable parameters")


def _print_outcome(out) -> None:
    if out.status == "cancelled":
        _status(f"Cancelled. Resume with: knowmix resume --run {out.run_id}")
    where = "best dev exact match" if out.stop_reason != "max_epochs" else "trained to the end; best dev exact match"
    if out.best_step is not None:
        fit = ", ".join(f"{c} {percent(v, 0)}" for c, v in (out.fit_at_best or {}).items())
        print(f"Stopping point ({where}): epoch {out.best_epoch:g}, step {out.best_step}, dev exact match "
              f"{percent(out.best_dev_em or 0)}; train fit there: {fit}")
    if out.adapter_dir:
        print(f"Adapter: {out.adapter_dir}  (load with PeftModel.from_pretrained)")
    if out.merged_dir:
        print(f"Merged model: {out.merged_dir}")
    print(f"Run folder: {out.run_dir}  ({_fmt_seconds(out.seconds)})")


def _run_training(project_path: Path, plan_id: Optional[int], settings, *, resume_run: Optional[int] = None, model: Optional[str] = None):
    from .train.runner import resume_training, start_training

    token = CancelToken()
    bar = ProgressPrinter("Training")
    with _CtrlC(token, "Training stops after the current step, saves a checkpoint and keeps the best adapter"):
        try:
            if resume_run is not None:
                out = resume_training(project_path, resume_run, progress=bar, on_event=_EvalPrinter(bar), cancel=token)
            else:
                out = start_training(project_path, plan_id, settings, progress=bar, on_event=_EvalPrinter(bar),
                                     cancel=token, model=model)
        finally:
            bar.finish()
    _print_outcome(out)
    return out


def cmd_train(args: argparse.Namespace) -> int:
    settings = _train_settings(args)
    project = _find_project(args.project)
    out = _run_training(project, args.plan, settings, model=args.model)
    return 130 if out.status == "cancelled" else 0


def cmd_resume(args: argparse.Namespace) -> int:
    project = _find_project(args.project)
    out = _run_training(project, None, None, resume_run=args.run)
    return 130 if out.status == "cancelled" else 0


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

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="knowmix",
        description="Find which fine-tuning examples a local LLM already knows (SliCK categories) before you fine-tune. Run knowmix with no command to open the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"KnowMix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("probe", help="probe a dataset with a model and print the category breakdown")
    p.add_argument("--model", default="default", help="'default' (built-in SmolLM2-135M-Instruct), a .gguf file or a Hugging Face folder")
    p.add_argument("--data", required=True, help="dataset file: JSONL, JSON, CSV, TSV or Parquet")
    p.add_argument("--pool", help="exemplar pool file (default: the dataset itself, without the question's own row)")
    p.add_argument("--project", help="project file to write (default: <data name>.knowmix in this folder)")
    p.add_argument("--backend", default="auto", help="auto (default), llama.cpp or torch")
    p.add_argument("--map", help="column mapping, e.g. question=prompt,answer=output,group=topic")
    p.add_argument("--skip-invalid", action="store_true", help="skip rows with problems instead of stopping")
    p.add_argument("--limit", type=int, help="probe only N questions, spread evenly over the groups")
    p.add_argument("--allow-pickle", action="store_true", help="allow PyTorch pickle weights (.bin/.pt): only for files you trust")
    p.add_argument("--threads", type=int, help="CPU threads for llama.cpp (default: all cores; fewer helps on a busy machine)")
    _add_budget(p)
    p.set_defaults(func=cmd_probe)

    s = sub.add_parser("summary", help="print the category breakdown of a probe, overall and per group")
    s.add_argument("--project", help="project file (default: the newest *.knowmix here)")
    s.add_argument("--run", type=int, help="probe run number (default: the latest)")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=cmd_summary)

    d = sub.add_parser("demo", help="probe sample questions with the built-in model, plan the mix and run a short LoRA fine-tune")
    d.add_argument("--questions", type=int, default=48, help="how many sample questions to probe (default 48, 4 per relation)")
    d.add_argument("--epochs", type=int, default=3, help="epochs of the short LoRA run (default 3)")
    d.add_argument("--no-train", action="store_true", help="stop after the probe")
    d.add_argument("--preset", default="paper", help="paper (default), quick or smoke")
    d.add_argument("--project", help="project file (default: demo.knowmix in KnowMix's data folder)")
    d.set_defaults(func=cmd_demo)

    pl = sub.add_parser("plan", help="turn a finished probe into a training plan: the mix and the dev split")
    pl.add_argument("--project", help="project file (default: the newest *.knowmix here)")
    pl.add_argument("--run", type=int, help="probe run number (default: the latest)")
    pl.add_argument("--mix", default="recommended", choices=["recommended", "idk", "natural", "custom"],
                    help="recommended (default: keep HighlyKnown and MaybeKnown, drop Unknown), idk (relabel Unknown as \"I don't know\"), natural (keep all) or custom (--shares)")
    pl.add_argument("--weakly-known-cap", type=int, default=0, help="most WeaklyKnown examples to keep (default 0)")
    pl.add_argument("--shares", help="custom mix: share kept per category, e.g. HighlyKnown=1,MaybeKnown=1,WeaklyKnown=0.5,Unknown=0")
    pl.add_argument("--dev-fraction", type=float, default=0.10, help="share held out for the dev split (default 0.10)")
    pl.add_argument("--dev-max", type=int, default=500, help="largest dev split (default 500)")
    pl.add_argument("--seed", type=int, default=0)
    pl.add_argument("--name", help="a name for the plan")
    pl.add_argument("--export", metavar="DIR", help="also write the planned train/dev sets (input's own shape and plain question/answer JSONL)")
    pl.add_argument("--json", action="store_true", help="print the plan as JSON")
    pl.set_defaults(func=cmd_plan)

    t = sub.add_parser("train", help="run a LoRA fine-tune of a plan in a child process, stopping at the best dev score")
    t.add_argument("--project", help="project file (default: the newest *.knowmix here)")
    t.add_argument("--plan", type=int, help="plan number (default: the latest)")
    t.add_argument("--model", help="model to fine-tune (default: the one the probe used)")
    t.add_argument("--epochs", type=int, help="most epochs (default 10)")
    t.add_argument("--lr", type=float, help="learning rate (default 2e-4)")
    t.add_argument("--batch-size", type=int, help="examples per step (default 8)")
    t.add_argument("--grad-accum", type=int, help="steps to accumulate gradients over (default 1)")
    t.add_argument("--rank", type=int, help="LoRA rank (default 16)")
    t.add_argument("--alpha", type=float, help="LoRA alpha (default 32)")
    t.add_argument("--stopping", choices=["early_stop", "convergence"], help="early_stop (default: best dev exact match) or convergence (all epochs)")
    t.add_argument("--patience", type=int, help="evaluations without improvement before stopping (default 2)")
    t.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    t.add_argument("--device", help="auto (default), cpu, cuda or mps")
    t.add_argument("--prompt-format", choices=["qa", "chat"], help="qa (default: the probe's Q:/A: format) or chat (the model's chat template)")
    t.add_argument("--max-seq-len", type=int, help="longest training example in tokens (default 128)")
    t.add_argument("--fit-sample", type=int, help="training examples per category whose fit is measured at each evaluation (default 200)")
    t.add_argument("--eval-every", type=int, help="evaluate every N steps instead of every epoch")
    t.add_argument("--seed", type=int)
    t.add_argument("--merge", action="store_true", help="also save the model with the adapter merged in (safetensors)")
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("resume", help="continue a killed or cancelled training run from its last checkpoint")
    r.add_argument("--project", help="project file (default: the newest *.knowmix here)")
    r.add_argument("--run", type=int, required=True, help="training run number")
    r.set_defaults(func=cmd_resume)

    rp = sub.add_parser("report", help="write an offline HTML report of the probe, plan and training run")
    rp.add_argument("--project", help="project file (default: the newest *.knowmix here)")
    rp.add_argument("--run", type=int, help="probe run number (default: the latest, or the plan's)")
    rp.add_argument("--plan", type=int, help="plan number (default: the latest plan of the probe run)")
    rp.add_argument("--train-run", type=int, help="training run number (default: the latest run of the plan)")
    rp.add_argument("--out", metavar="FILE", help="HTML file to write (default: <project name>-report.html next to the project)")
    rp.set_defaults(func=cmd_report)

    m = sub.add_parser("model", help="check a model file or folder and show what it is")
    m.add_argument("--model", default="default")
    m.add_argument("--allow-pickle", action="store_true")
    m.set_defaults(func=cmd_models)

    dr = sub.add_parser("doctor", help="print the environment (versions, devices, model, data folder, offline mode) for a bug report")
    dr.add_argument("--json", action="store_true", help="print JSON instead of text")
    dr.add_argument("--no-gpu", action="store_true", help="skip the GPU check (it imports torch, which takes a few seconds)")
    dr.add_argument("--no-backend-checks", action="store_true",
                    help="skip running llama.cpp and torch for real in child processes (up to a minute on a slow machine)")
    dr.set_defaults(func=cmd_doctor)
    return parser


def _add_budget(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("probe budget (defaults: the paper's)")
    g.add_argument("--preset", default="paper", help="paper (10 sets, 16 samples; default), quick or smoke (cheaper, labelled as such)")
    g.add_argument("--sets", type=int, help="exemplar sets per question")
    g.add_argument("--shots", type=int, help="exemplars per prompt")
    g.add_argument("--samples", type=int, help="sampled answers per exemplar set")
    g.add_argument("--temperature", type=float, help="sampling temperature")
    g.add_argument("--top-k", type=int, help="top-k for sampling")
    g.add_argument("--max-tokens", type=int, help="longest answer, in tokens")
    g.add_argument("--seed", type=int, help="seed for exemplar sets and samples")
    g.add_argument("--schedule", choices=["lazy", "full"], help="lazy (default) skips samples that cannot change a category; full measures P(T>0) exactly")


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
