"""The `knowmix` command's arguments, each declared once, with defaults from the settings classes.

Options that set a field of ``ProbeSettings``, ``PlanSettings`` or ``TrainSettings`` are listed
once (``PROBE_OPTIONS``, ``PLAN_OPTIONS``, ``TRAIN_OPTIONS``): the same table adds them to the
parser and turns the parsed values into the settings, and the defaults a help text states are
read from the class, so changing a default changes the help with it. Arguments several
subcommands share (``--project``, ``--model``, ``--allow-pickle``) have one helper each.

The settings modules are imported inside ``build_parser``, so importing ``core.cli`` stays cheap.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

Command = Callable[[argparse.Namespace], int]

PROJECT_HELP = "project file (default: the newest *.knowmix here)"
MODEL_HELP = "'default' (built-in SmolLM2-135M-Instruct), a .gguf file or a Hugging Face folder"
DESCRIPTION = (
    "Find which fine-tuning examples a local LLM already knows (SliCK categories) before you fine-tune. "
    "Run knowmix with no command to open the desktop app."
)


def _plain(value: Any) -> str:
    """A default as a person writes it: 32 rather than 32.0, 2e-4 rather than 0.0002."""
    if isinstance(value, float):
        if value and abs(value) < 1e-3:
            mantissa, exponent = f"{value:e}".split("e")
            return f"{float(mantissa):g}e{int(exponent)}"
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class Option:
    """A command-line option that sets one settings field; ``{default}`` in its help is the class's default."""

    flag: str
    field: str
    type: Optional[Callable[[str], Any]] = None
    help: Optional[str] = None
    choices: Optional[Sequence[str]] = None
    show: Callable[[Any], str] = _plain  # how the help writes the default

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def add(self, parser: Any, defaults: Any, *, with_default: bool = False, choices: Optional[Sequence[str]] = None) -> None:
        """Add it; ``with_default`` makes the class's default the parsed value (else None: "not given");
        ``choices`` come from the settings module (read when the parser is built)."""
        default = getattr(defaults, self.field)
        kwargs: dict[str, Any] = {"help": self.help.format(default=self.show(default)) if self.help else None}
        if self.type is not None:
            kwargs["type"] = self.type
        if choices or self.choices:
            kwargs["choices"] = list(choices or self.choices or ())
        if with_default:
            kwargs["default"] = default
        parser.add_argument(self.flag, **kwargs)


def settings_values(options: Sequence[Option], args: argparse.Namespace) -> dict[str, Any]:
    """``{field: value}`` of the options given (not None), ready for the settings class."""
    values = {o.field: getattr(args, o.dest) for o in options}
    return {k: v for k, v in values.items() if v is not None}


PROBE_OPTIONS = (  # the budget beyond the preset; None keeps the preset's value
    Option("--sets", "n_sets", int, "exemplar sets per question"),
    Option("--shots", "shots", int, "exemplars per prompt"),
    Option("--samples", "samples_per_set", int, "sampled answers per exemplar set"),
    Option("--temperature", "temperature", float, "sampling temperature"),
    Option("--top-k", "top_k", int, "top-k for sampling"),
    Option("--max-tokens", "max_tokens", int, "answer length limit in tokens (longer gold answers raise it, up to 96)"),
    Option("--seed", "seed", int, "seed for exemplar sets and samples"),
    Option(
        "--schedule",
        "schedule",
        None,
        "{default} (default) skips samples that cannot change a category; full measures P(T>0) exactly",
        choices=("lazy", "full"),
    ),
    Option(
        "--match",
        "match",
        None,
        "how answers are scored: {default} (default: exact for entity answers, key for sentence answers), "
        "exact (the paper's), key (the answer key appears as whole words) or judge (the model decides unclear cases)",
        choices=("auto", "exact", "key", "judge"),
    ),
    Option(
        "--judge-model",
        "judge_model",
        None,
        "with --match judge: another local model (a .gguf file or a model folder) that judges the answers "
        "instead of the probed one",
    ),
)

PLAN_OPTIONS = (  # parsed with the class's defaults
    Option(
        "--mix",
        "mix",
        None,
        "{default} (default: keep HighlyKnown and MaybeKnown, drop Unknown), idk (relabel "
        'Unknown as "I don\'t know"), natural (keep all) or custom (--shares)',
    ),
    Option("--weakly-known-cap", "weakly_known_cap", int, "most WeaklyKnown examples to keep (default {default})"),
    Option(
        "--dev-fraction", "dev_fraction", float, "share held out for the dev split (default {default})", show=lambda v: f"{v:.2f}"
    ),
    Option("--dev-max", "dev_max", int, "largest dev split (default {default})"),
    Option(
        "--test-fraction",
        "test_fraction",
        float,
        "share held out for the test split, never trained on, for knowmix check (default {default}; 0: none)",
        show=lambda v: f"{v:.2f}",
    ),
    Option("--test-max", "test_max", int, "largest test split (default {default}; 0: none)"),
    Option(
        "--not-probed",
        "not_probed",
        None,
        "rows the probe could not check (multi-turn chats, long-form answers, tasks, no answer): {default} "
        "(default: keep them in the training file as they are) or drop",
        choices=("keep", "drop"),
    ),
    Option(
        "--multi-answer",
        "multi_answer",
        None,
        "questions that list two or more different true answers: {default} (default: probe and plan them like the "
        "others) or drop (leave them out, as the paper did)",
        choices=("keep", "drop"),
    ),
    Option("--seed", "seed", int),
)

TRAIN_OPTIONS = (  # None: the TrainSettings default
    Option("--epochs", "epochs", int, "most epochs (default {default})"),
    Option("--lr", "lr", float, "learning rate (default {default})"),
    Option("--batch-size", "batch_size", int, "examples per step (default {default})"),
    Option("--grad-accum", "grad_accum", int, "steps to accumulate gradients over (default {default})"),
    Option("--rank", "lora_r", int, "LoRA rank (default {default})"),
    Option("--alpha", "lora_alpha", float, "LoRA alpha (default {default})"),
    Option("--stopping", "stopping", None, "{default} (default: best dev exact match) or convergence (all epochs)"),
    Option("--patience", "patience", int, "evaluations without improvement before stopping (default {default})"),
    Option("--threads", "threads", int, "CPU threads (default: physical cores)"),
    Option(
        "--processes",
        "processes",
        int,
        "training processes under torchrun, data parallel: one per GPU (NCCL), or sharing the CPU (gloo); the "
        "effective batch stays batch size x accumulation (default {default})",
    ),
    Option("--device", "device", None, "{default} (default), cpu, cuda or mps"),
    Option(
        "--prompt-format",
        "prompt_format",
        None,
        "{default} (default: the probe's Q:/A: format) or chat (the model's chat template)",
    ),
    Option("--max-seq-len", "max_seq_len", int, "longest training example in tokens (default {default})"),
    Option(
        "--fit-sample",
        "fit_sample_per_category",
        int,
        "training examples per category whose fit is measured at each evaluation (default {default})",
    ),
    Option("--eval-every", "eval_every_steps", int, "evaluate every N steps instead of every epoch"),
    Option("--seed", "seed", int),
)


# --------------------------------------------------------------------------- shared arguments


def add_project(p: argparse.ArgumentParser, help: str = PROJECT_HELP) -> None:
    p.add_argument("--project", help=help)


def add_model(p: argparse.ArgumentParser, help: Optional[str] = None) -> None:
    p.add_argument("--model", default="default", help=help)


def add_allow_pickle(p: argparse.ArgumentParser, help: Optional[str] = None) -> None:
    p.add_argument("--allow-pickle", action="store_true", help=help)


# --------------------------------------------------------------------------- the parser


def build_parser(commands: Mapping[str, Command], version: str) -> argparse.ArgumentParser:
    """The whole parser; ``commands`` maps each subcommand to the function that runs it (``args.func``)."""
    parser = argparse.ArgumentParser(prog="knowmix", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"KnowMix {version}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for build in (_probe, _summary, _results, _demo, _plan, _train, _resume, _check, _report, _export, _model, _doctor):
        p = build(sub)
        p.set_defaults(func=commands[p.prog.split()[-1]])
    return parser


def _probe(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("probe", help="probe a dataset with a model and print the category breakdown")
    add_model(p, MODEL_HELP)
    p.add_argument("--data", required=True, help="dataset file: JSONL, JSON, CSV, TSV or Parquet")
    p.add_argument("--pool", help="exemplar pool file (default: the dataset itself, without the question's own row)")
    add_project(p, "project file to write (default: <data name>.knowmix in this folder)")
    p.add_argument("--backend", default="auto", help="auto (default), llama.cpp or torch")
    p.add_argument("--map", help="column mapping, e.g. question=prompt,answer=output,group=topic")
    p.add_argument("--skip-invalid", action="store_true", help="skip rows with problems instead of stopping")
    p.add_argument("--limit", type=int, help="probe only N questions, spread evenly over the groups")
    add_allow_pickle(p, "allow PyTorch pickle weights (.bin/.pt): only for files you trust")
    p.add_argument("--threads", type=int, help="CPU threads for llama.cpp (default: all cores; fewer helps on a busy machine)")
    sv = p.add_argument_group("probe through a serving engine (the only network use; only to this URL)")
    sv.add_argument("--server", metavar="URL", help="base URL of an OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama)")
    sv.add_argument("--server-model", metavar="NAME", help="the model id on the server (default: its only model)")
    sv.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the server's API key (never written)")
    sv.add_argument("--server-concurrency", type=int, default=8, metavar="N", help="requests in flight at once (default 8)")
    sv.add_argument(
        "--server-proxy",
        metavar="URL",
        help="HTTP proxy to reach the server through (default: none; *_proxy variables are ignored)",
    )
    _add_budget(p)
    return p


def _add_budget(p: argparse.ArgumentParser) -> None:
    from .probe import PRESETS, ProbeSettings

    paper, defaults = PRESETS["paper"], ProbeSettings()
    g = p.add_argument_group("probe budget (defaults: the paper's)")
    g.add_argument(
        "--preset",
        default=defaults.preset,
        help=f"paper ({paper.n_sets} sets, {paper.samples_per_set} samples; default), quick or smoke (cheaper, labelled as such)",
    )
    for option in PROBE_OPTIONS:
        option.add(g, defaults)
    g.add_argument(
        "--chat-template",
        action="store_const",
        const=True,
        default=None,
        help="prompt with the model's chat template (exemplars as user/assistant turns) instead of Q:/A: lines",
    )


def _summary(sub: Any) -> argparse.ArgumentParser:
    s = sub.add_parser("summary", help="print the category breakdown of a probe, overall and per group")
    add_project(s)
    s.add_argument("--run", type=int, help="probe run number (default: the latest)")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return s


def _results(sub: Any) -> argparse.ArgumentParser:
    r = sub.add_parser(
        "results",
        help="write the probe's per-example results (category, P values, the model's answers), one row per example",
    )
    add_project(r)
    r.add_argument("--run", type=int, help="probe run number (default: the latest)")
    r.add_argument(
        "--format",
        default="jsonl",
        choices=("jsonl", "csv", "parquet"),
        help="jsonl (default), csv (lists as JSON text) or parquet (needs --out)",
    )
    r.add_argument("--out", metavar="FILE", help="file to write (default: print to the terminal; parquet needs a file)")
    return r


def _demo(sub: Any) -> argparse.ArgumentParser:
    from .probe import ProbeSettings

    d = sub.add_parser("demo", help="probe sample questions with the built-in model, plan the mix and run a short LoRA fine-tune")
    d.add_argument(
        "--questions", type=int, default=100, help="how many sample questions to probe (default 100: the whole starter sample)"
    )
    d.add_argument("--epochs", type=int, default=3, help="epochs of the short LoRA run (default 3)")
    d.add_argument("--no-train", action="store_true", help="stop after the probe")
    d.add_argument("--no-check", action="store_true", help="do not check what the short run did (knowmix check)")
    d.add_argument("--preset", default=ProbeSettings().preset, help="paper (default), quick or smoke")
    add_project(d, "project file (default: demo.knowmix in KnowMix's data folder)")
    return d


def _plan(sub: Any) -> argparse.ArgumentParser:
    from .plan.mixes import MIXES
    from .plan.settings import PlanSettings

    pl = sub.add_parser("plan", help="turn a finished probe into a training plan: the mix, the dev and test splits")
    add_project(pl)
    pl.add_argument("--run", type=int, help="probe run number (default: the latest)")
    defaults = PlanSettings()
    for option in PLAN_OPTIONS:
        option.add(pl, defaults, with_default=True, choices=MIXES if option.field == "mix" else None)
        if option.field == "weakly_known_cap":  # --shares is read by the command (CATEGORY=SHARE pairs)
            pl.add_argument(
                "--shares", help="custom mix: share kept per category, e.g. HighlyKnown=1,MaybeKnown=1,WeaklyKnown=0.5,Unknown=0"
            )
    pl.add_argument(
        "--ood",
        metavar="FILE",
        help="an out-of-distribution file (groups the plan does not have) kept in the project for knowmix check",
    )
    pl.add_argument("--name", help="a name for the plan")
    pl.add_argument(
        "--export",
        metavar="DIR",
        help="also write the planned train/dev/test sets (input's own shape and plain question/answer JSONL)",
    )
    add_force(pl)
    pl.add_argument("--json", action="store_true", help="print the plan as JSON")
    return pl


def _train(sub: Any) -> argparse.ArgumentParser:
    from .train.settings import PROMPT_FORMATS, STOPPING_RULES, TrainSettings

    t = sub.add_parser("train", help="run a LoRA fine-tune of a plan in a child process, stopping at the best dev score")
    add_project(t)
    t.add_argument("--plan", type=int, help="plan number (default: the latest)")
    t.add_argument("--model", help="model to fine-tune (default: the one the probe used)")
    t.add_argument(
        "--other-model",
        action="store_true",
        help="train a model other than the one the plan's probe asked (its fingerprint differs); "
        "the training output, the check and the report then say so",
    )
    choices = {"stopping": STOPPING_RULES, "prompt_format": PROMPT_FORMATS}
    defaults = TrainSettings()
    for option in TRAIN_OPTIONS:
        option.add(t, defaults, choices=choices.get(option.field))
    t.add_argument("--merge", action="store_true", help="also save the model with the adapter merged in (safetensors)")
    t.add_argument(
        "--no-check",
        action="store_true",
        help="do not check afterwards what training did to the model's knowledge (knowmix check; on by default)",
    )
    return t


def _resume(sub: Any) -> argparse.ArgumentParser:
    r = sub.add_parser("resume", help="continue a killed or cancelled training run from its last checkpoint")
    add_project(r)
    r.add_argument("--run", type=int, required=True, help="training run number")
    add_allow_pickle(
        r, "allow PyTorch pickle weights (.bin/.pt) for this resume: only for files you trust (never read from the project)"
    )
    r.add_argument("--no-check", action="store_true", help="do not run knowmix check when the run finishes")
    return r


def _check(sub: Any) -> argparse.ArgumentParser:
    c = sub.add_parser(
        "check",
        help="what training did to the model's knowledge: re-ask the test, dev and training questions with the adapter",
    )
    add_project(c)
    c.add_argument("--run", type=int, help="training run number (default: the latest finished run)")
    c.add_argument("--full", action="store_true", help="samples too, so WeaklyKnown and Unknown are told apart after training")
    c.add_argument("--train-sample", type=int, default=200, help="training questions re-asked per category (default 200)")
    c.add_argument(
        "--backend", default="auto", help="auto (default: llama.cpp with a GGUF LoRA for GGUF models), llama.cpp or torch"
    )
    c.add_argument("--threads", type=int, help="CPU threads for llama.cpp (default: all cores)")
    c.add_argument("--json", action="store_true", help="print the results as JSON")
    return c


def _report(sub: Any) -> argparse.ArgumentParser:
    rp = sub.add_parser("report", help="write an offline HTML report of the probe, plan and training run")
    add_project(rp)
    rp.add_argument("--run", type=int, help="probe run number (default: the latest, or the plan's)")
    rp.add_argument("--plan", type=int, help="plan number (default: the latest plan of the probe run)")
    rp.add_argument("--train-run", type=int, help="training run number (default: the latest run of the plan)")
    rp.add_argument("--out", metavar="FILE", help="HTML file to write (default: <project name>-report.html next to the project)")
    return rp


def _export(sub: Any) -> argparse.ArgumentParser:
    ex = sub.add_parser("export", help="write a training run's LoRA adapter as a llama.cpp GGUF LoRA, with an Ollama Modelfile")
    add_project(ex)
    ex.add_argument("--run", type=int, help="training run number (default: the latest finished run)")
    ex.add_argument(
        "--gguf",
        metavar="DIR",
        required=True,
        help="folder to write <project>-run<N>-lora.gguf, the Ollama Modelfile and llama-server.txt into",
    )
    ex.add_argument(
        "--merged",
        action="store_true",
        help="also write <project>-run<N>-merged.gguf: the base GGUF with the adapter applied, one file "
        "(adapted weights in F16, so larger than a quantized base) and Modelfile.merged",
    )
    add_force(ex)
    return ex


FORCE_HINT = " (A script that means to replace it can add --force.)"  # ends the refusal's message


def add_force(parser: Any) -> None:
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace files in the export folder that KnowMix did not write there for this project (never the "
        "project's own files); without it such a file is refused",
    )


def _model(sub: Any) -> argparse.ArgumentParser:
    m = sub.add_parser("model", help="check a model file or folder and show what it is")
    add_model(m)
    add_allow_pickle(m)
    return m


def _doctor(sub: Any) -> argparse.ArgumentParser:
    dr = sub.add_parser(
        "doctor", help="print the environment (versions, devices, model, data folder, offline mode) for a bug report"
    )
    dr.add_argument("--json", action="store_true", help="print JSON instead of text")
    dr.add_argument("--no-gpu", action="store_true", help="skip the GPU check (it imports torch, which takes a few seconds)")
    dr.add_argument(
        "--no-backend-checks",
        action="store_true",
        help="skip running llama.cpp and torch for real in child processes (up to a minute on a slow machine)",
    )
    return dr


__all__ = [
    "Option",
    "PROBE_OPTIONS",
    "PLAN_OPTIONS",
    "TRAIN_OPTIONS",
    "settings_values",
    "add_project",
    "add_model",
    "add_allow_pickle",
    "build_parser",
]
