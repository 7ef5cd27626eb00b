"""Benchmark: tokens per second of KnowMix's LoRA training loop against transformers' ``Trainer`` + peft.

Both sides train the same LoRA (same rank, alpha, dropout, target modules) on the same base
model, the same examples ("Q: <question>\\nA: <answer>\\n", loss on the answer tokens only), the
same batch size, accumulation, epochs, learning-rate schedule, seed and CPU threads, in one run:

* **KnowMix**: ``core.train.loop.train_loop`` exactly as the worker runs it (evaluation only once,
  at the end, with no train-fit sample, so that it costs almost nothing; its time is not counted).
* **baseline**: a plain ``transformers.Trainer`` on a peft model, with ``DataCollatorForSeq2Seq``
  padding each batch dynamically, no evaluation, no checkpoints, no logging integrations.

Measured: wall time of the optimizer steps (KnowMix: the sum of its step times; Trainer: its
``train_runtime``) and tokens through the model (non-padding prompt + answer tokens, the same
count on both sides). Model loading and set-up are not timed. Printed: both rates, their ratio
(target: KnowMix >= baseline) and the final training loss of both.

    PYTHONPATH=. .venv/bin/python bench/train_bench.py                       # tiny random Llama, built on the fly
    PYTHONPATH=. .venv/bin/python bench/train_bench.py --model default --examples 64 --epochs 1

``--processes N`` compares instead one training process with N (torchrun, ``knowmix train --processes N``),
both through the worker as ``knowmix train`` runs them, with the same effective batch: optimizer steps
per second and tokens per second side by side. N processes pay off with one GPU each; on a CPU they
share the same cores (each gets threads / N), so expect no gain there, only the cost of the all-reduce.

    PYTHONPATH=. .venv/bin/python bench/train_bench.py --processes 2 --examples 64 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.datasets import load_dataset  # noqa: E402
from core.models import resolve_model  # noqa: E402
from core.paths import sample_dataset  # noqa: E402
from core.train.data import PromptFormat, TrainItem  # noqa: E402
from core.train.settings import TrainSettings, physical_cores  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def items(n: int) -> tuple[list[TrainItem], list[TrainItem]]:
    ds = load_dataset(sample_dataset())
    ex = list(ds.examples)[: n + 8]
    made = [TrainItem(e.id, e.question, e.answers[0], tuple(e.answers), "Unknown", e.group) for e in ex]
    return made[:n], made[n:]


def run_knowmix(ref, settings: TrainSettings, train, dev, workdir: Path) -> dict:
    from core.train.loop import LoopHooks, train_loop

    losses: list[float] = []

    from core.train.events import Start, Step, TrainEvent

    def emit(e: TrainEvent) -> None:
        if isinstance(e, Step):
            losses.append(e.loss)
        elif isinstance(e, Start):
            log(
                f"  knowmix: {e.total_steps} steps, fast loss path: {e.fast_loss}, device {e.device} {e.dtype}, "
                f"{e.threads} threads"
            )

    wall0 = time.perf_counter()
    result = train_loop(workdir / "knowmix", ref, settings, train, dev, LoopHooks(emit=emit))
    return {
        "tokens": result.tokens,
        "seconds": result.train_seconds,
        "steps": result.final_step,
        "tokens_per_s": result.tokens / result.train_seconds,
        "final_loss": losses[-1],
        "wall_incl_load_and_eval": time.perf_counter() - wall0,
    }


def run_trainer(ref, settings: TrainSettings, train, workdir: Path) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments
    from transformers.utils import logging as hf_logging

    from core.backends.torch_backend import load_hf_model
    from core.devices import resolve_device
    from core.train.loop import training_dtype
    from core.train.settings import resolve_target_modules

    hf_logging.set_verbosity_error()
    device = resolve_device(settings.device)
    dtype = training_dtype(settings.dtype, device)
    torch.manual_seed(settings.seed)
    model, tok, device, dtype = load_hf_model(ref, device, dtype, for_training=True)
    model.requires_grad_(False)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    config = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=resolve_target_modules(model, settings.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    base = model.get_base_model()
    if getattr(base, "hf_quantizer", None) is not None:
        # A GGUF is dequantised to plain float weights on load, but transformers still flags the model as
        # GGUF-quantised and Trainer refuses those; the flag is wrong for training purposes, so drop it.
        base.hf_quantizer = None
        base.is_quantized = False
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    fmt = PromptFormat(tok, "qa")
    rows = []
    tokens_per_epoch = 0
    for it in train:
        ids, n_prompt = fmt.encode(it.question, it.target, settings.max_seq_len)
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * n_prompt + ids[n_prompt:]})
        tokens_per_epoch += len(ids)

    class ListDataset(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return rows[i]

    on_gpu = device.startswith("cuda")
    args = TrainingArguments(
        output_dir=str(workdir / "trainer"),
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        num_train_epochs=settings.epochs,
        learning_rate=settings.lr,
        lr_scheduler_type="linear",
        warmup_steps=math.ceil(settings.warmup_ratio * math.ceil(len(train) / settings.effective_batch) * settings.epochs),
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm or 0.0,
        seed=settings.seed,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=not on_gpu,
        bf16=on_gpu and dtype == "bfloat16",
        remove_unused_columns=False,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=ListDataset(),
        data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100),
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints every log line; the losses stay in log_history
    out = trainer.train()
    seconds = float(out.metrics["train_runtime"])
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    tokens = tokens_per_epoch * settings.epochs
    return {
        "tokens": tokens,
        "seconds": seconds,
        "steps": trainer.state.global_step,
        "tokens_per_s": tokens / seconds,
        "final_loss": losses[-1] if losses else math.nan,
    }


def run_processes(ref, settings: TrainSettings, train, dev, workdir: Path, n: int) -> dict:
    """One run through the worker with ``n`` processes; its optimizer steps and tokens per second."""
    from dataclasses import replace

    from core.store import Project
    from core.train.events import Done, Start
    from core.train.runner import run_worker
    from core.train.runs import RunModel, create_run

    s = replace(settings, processes=n)
    project_path = workdir / f"processes-{n}.knowmix"
    with Project(project_path) as project:
        run_id, _folder = create_run(
            project,
            plan_id=None,
            settings=s,
            train=train,
            dev=dev,
            model=RunModel(str(ref.path), ref.display_name, str(ref.path), ""),
        )
    events: list = []
    wall0 = time.perf_counter()
    outcome = run_worker(project_path, run_id, on_event=events.append)
    wall = time.perf_counter() - wall0
    done = next(e for e in events if isinstance(e, Done))
    start = next(e for e in events if isinstance(e, Start))
    seconds = float(done.train_seconds or 0.0) or math.nan
    return {
        "processes": n,
        "threads_each": start.threads,
        "device": start.device,
        "steps": outcome.final_step,
        "seconds": seconds,
        "steps_per_s": (outcome.final_step or 0) / seconds,
        "tokens_per_s": float(done.tokens or 0) / seconds,
        "wall_incl_start_load_eval": wall,
    }


def main_processes(args, ref, settings: TrainSettings, train, dev, work: Path) -> None:
    rows = [run_processes(ref, settings, train, dev, work, n) for n in (1, args.processes)]
    print(
        f"model: {ref.display_name}; {len(train)} examples x {args.epochs} epochs, effective batch "
        f"{settings.effective_batch} ({args.batch_size}x{args.grad_accum}); {platform.processor() or platform.machine()}, "
        f"{physical_cores()} physical cores"
    )
    print(f"{'processes':>9} {'device':>8} {'threads each':>12} {'steps':>6} {'steps/s':>9} {'tokens/s':>10} {'wall s':>8}")
    for r in rows:
        print(
            f"{r['processes']:>9} {r['device']:>8} {r['threads_each']:>12} {r['steps']:>6} {r['steps_per_s']:>9.2f} "
            f"{r['tokens_per_s']:>10.1f} {r['wall_incl_start_load_eval']:>8.1f}"
        )
    print(f"speed-up of {args.processes} processes: {rows[1]['steps_per_s'] / rows[0]['steps_per_s']:.2f}x (steps/s)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="'default' (SmolLM2), a model path, or none for the tiny model")
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help=f"torch CPU threads (default: physical cores, {physical_cores()})")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=1, help="alternate the two sides this many times; the best of each counts")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    ap.add_argument("--processes", type=int, default=1, help="compare 1 training process with this many (torchrun)")
    args = ap.parse_args()
    if args.processes <= 1:
        try:
            import accelerate  # noqa: F401  (transformers' Trainer needs it; KnowMix itself does not)
        except ImportError:
            print("The Trainer baseline needs accelerate: .venv/bin/pip install accelerate  (or pip install -e '.[bench]')")
            return 2

    import torch

    threads = args.threads or physical_cores()
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="knowmix-train-bench-") as tmp:
        work = Path(tmp)
        if args.model:
            ref = resolve_model(args.model)
        else:
            sys.path.insert(0, str(ROOT / "tests"))
            from tiny_models import make_tiny_llama

            ref = resolve_model(make_tiny_llama(work / "tiny-llama"))
        train, dev = items(args.examples)
        settings = TrainSettings(
            epochs=args.epochs,
            batch_size=args.batch_size,
            grad_accum=args.grad_accum,
            threads=threads,
            device=args.device,
            stopping="convergence",
            eval_every_steps=10**9,
            fit_sample_per_category=0,
            max_new_tokens=8,
        )
        log(
            f"model {ref.display_name} ({ref.path}); {len(train)} examples x {args.epochs} epochs, batch "
            f"{args.batch_size}x{args.grad_accum}, LoRA r={settings.lora_r}, {threads} thread(s)"
        )
        if args.processes > 1:
            main_processes(args, ref, settings, train, dev, work)
            return 0
        knowmix, trainer = [], []
        for r in range(args.repeats):
            log(f"round {r + 1}: KnowMix loop ...")
            knowmix.append(run_knowmix(ref, settings, train, dev, work / f"k{r}"))
            log(f"round {r + 1}: transformers Trainer ...")
            trainer.append(run_trainer(ref, settings, train, work / f"t{r}"))
    k = max(knowmix, key=lambda x: x["tokens_per_s"])
    t = max(trainer, key=lambda x: x["tokens_per_s"])
    ratio = k["tokens_per_s"] / t["tokens_per_s"]
    import peft
    import transformers

    print(
        f"model: {ref.display_name}; {len(train)} examples x {args.epochs} epochs = {k['steps']} steps "
        f"(batch {args.batch_size}x{args.grad_accum}); device {args.device}; {threads} CPU thread(s); "
        f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}; "
        f"{platform.processor() or platform.machine()}"
    )
    print(
        f"KnowMix loop:         {k['tokens_per_s']:10.1f} tokens/s  ({k['tokens']} tokens in {k['seconds']:.2f} s, "
        f"{k['steps']} steps, final loss {k['final_loss']:.3f})"
    )
    print(
        f"transformers Trainer: {t['tokens_per_s']:10.1f} tokens/s  ({t['tokens']} tokens in {t['seconds']:.2f} s, "
        f"{t['steps']} steps, final loss {t['final_loss']:.3f})"
    )
    print(f"ratio KnowMix / Trainer: {ratio:.2f}x  (target >= 1.00: {'met' if ratio >= 1.0 else 'NOT met'})")
    if args.json:
        Path(args.json).write_text(json.dumps({"knowmix": knowmix, "trainer": trainer, "ratio": ratio}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
