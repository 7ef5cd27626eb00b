"""The LoRA training loop. It runs inside the worker process, or in-process for tests and benchmarks.

One call of ``train_loop`` loads the model, wraps it with peft, and trains on the run's items,
reporting everything through ``emit`` as typed events (``core.train.events``; the worker turns them
into JSON lines and database rows). It never prints and never touches the project file itself.

Reproducibility and resume: the data order of epoch ``e`` is a permutation drawn from
``torch.Generator().manual_seed(seed + e)``, so it depends on nothing else; a checkpoint holds
the adapter, the optimizer, the scheduler, torch's and Python's RNG states and the position
(step) reached, so a resumed run continues with the very batches, learning rates and dropout
masks an uninterrupted run would have used. The run folder's layout and how it is written safely
are in ``checkpoints``; what the evaluations measure is in ``evaluation``.

Several processes (``settings.processes`` > 1, started by torchrun): every process runs this loop
with the same data order; each takes an equal share of every step's examples, their LoRA gradients
are summed before the optimizer step (``distributed``), so the effective batch, the steps and the
loss are those of one process. Rank 0 alone evaluates, writes checkpoints and adapters and emits
events; the others wait for it and follow its early-stop decision.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..errors import KnowMixError
from ..models import ModelRef
from .checkpoints import (
    ADAPTER_INFO,
    CHECKPOINT_VERSION,
    TrainingState,
    find_checkpoint,
    read_checkpoint,
    restore_adapter,
    rng_state,
    save_adapter,
    write_checkpoint,
)
from .data import PromptFormat, TrainItem, check_items, encode_items, fit_sample
from .distributed import Dist
from .evaluation import measure
from .events import Checkpoint, Eval, LoopResult, Merged, Restored, Start, Step, TrainEvent
from .lora import lora_model, out_of_memory_advice, save_merged, training_dtype, unflag_dequantised_gguf
from .loss import AnswerLoss
from .runs import (
    BEST_ADAPTER,
    CANCELLED,
    DONE,
    FINAL_ADAPTER,
    STOP_CANCELLED,
    STOP_EARLY,
    STOP_MAX_EPOCHS,
    keeps_final_adapter,
)
from .schedule import eval_steps, lr_factor
from .settings import EARLY_STOP, TrainSettings

__all__ = [
    "ADAPTER_INFO",
    "CHECKPOINT_VERSION",
    "Emit",
    "LoopHooks",
    "LoopResult",
    "eval_steps",
    "find_checkpoint",
    "lr_factor",
    "train_loop",
    "training_dtype",
]

Emit = Callable[[TrainEvent], None]
# The step-0 evaluation (the base model before any optimizer step), kept in the run folder so a resume
# that starts again from step 0 (killed before its first checkpoint) does not redo it.
STEP0_FILE = "eval-step0.json"


@dataclass(frozen=True)
class LoopHooks:
    """How a run talks with its caller: ``emit`` gets every event, ``should_stop`` is polled after every
    optimizer step (the worker sets it on SIGTERM/SIGINT: the run then saves a checkpoint and returns
    "cancelled"), and ``eval_hook`` may replace an evaluation's record (tests script dev scores with it)."""

    emit: Emit = lambda _e: None
    should_stop: Callable[[], bool] = lambda: False
    eval_hook: Optional[Callable[[dict], dict]] = None


# ------------------------------------------------------------------------------ the loop


class _Trainer:
    """One run's model, optimizer and progress; ``setup`` loads, ``run`` trains, ``close`` frees memory."""

    def __init__(
        self,
        run_dir: Path,
        ref: ModelRef,
        settings: TrainSettings,
        train: Sequence[TrainItem],
        dev: Sequence[TrainItem],
        hooks: LoopHooks,
        meta: dict,
        dist: Optional[Dist] = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.ref = ref
        self.s = settings
        self.train_items = list(train)
        self.dev_items = list(dev)
        # Several processes (torchrun): each trains on its share of every step; rank 0 alone evaluates, saves
        # and reports, the others wait for it at the collectives (see ``distributed``).
        self.dist = dist or Dist()
        self.emit: Emit = hooks.emit if self.dist.is_main else (lambda _e: None)
        self.should_stop = hooks.should_stop
        self.eval_hook = hooks.eval_hook
        self.meta = meta

    # -------------------------------------------------------------- setup

    def setup(self, resume: bool) -> None:
        """Load the model with a fresh LoRA adapter, the data and the optimizer; with ``resume``, the
        run folder's last checkpoint on top. The order is fixed: the seeds come before the adapter's init."""
        import torch

        from ..backends.torch_backend import TorchBackend

        self.torch = torch
        model = self._load_model()
        self._wrap_lora(model)
        self._encode()
        self._make_optimizer()
        s = self.s
        self.fit_items = fit_sample(self.train_items, s.fit_sample_per_category, s.seed)
        self.decoder = TorchBackend.from_model(self.model, self.tok, self.device, self.dtype, batch_size=s.eval_batch_size)
        self.loss = AnswerLoss(self.model, self.base, self.encoded, self.pad, self.device, self.dtype)
        self.fast_loss = self.loss.fast

        self.step = 0
        self.best: Optional[dict] = None
        self.history: list[dict] = []
        self.bad_evals = 0
        self.tokens_total = 0
        self.train_seconds = 0.0
        self.resumed_from: Optional[int] = None
        if resume:
            ckpt = find_checkpoint(self.run_dir)
            if ckpt is not None:
                self._load_checkpoint(ckpt)

    def _load_model(self) -> Any:
        """The base model on the resolved device and dtype, seeded first so the adapter's init repeats."""
        from ..backends.torch_backend import load_hf_model
        from ..devices import resolve_device

        s = self.s
        device = self.dist.start(resolve_device(s.device))
        if self.dist.several:  # processes on one CPU share its cores
            self.torch.set_num_threads(s.threads_per_process(device == "cpu"))
        dtype = training_dtype(s.dtype, device)
        self.torch.manual_seed(s.seed)
        random.seed(s.seed)
        model, tok, self.device, self.dtype = load_hf_model(
            self.ref, device, dtype, for_training=True, allow_pickle=s.allow_pickle
        )
        self.tok = tok
        self.fmt = PromptFormat(tok, s.prompt_format)
        unflag_dequantised_gguf(model, self.ref)
        return model

    def _wrap_lora(self, model: Any) -> None:
        """Freeze the base model and add the LoRA adapter; only the adapter's weights train."""
        s = self.s
        self.model, self.target_modules = lora_model(model, s)
        self.model.train()
        self.base = self.model.get_base_model()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.trainable = sum(p.numel() for p in self.params)
        if self.dist.several:
            self.dist.broadcast_(self.params)  # every process starts from rank 0's adapter
            if not self.dist.is_main:  # its own dropout masks (rank 0 keeps the one-process stream)
                self.torch.manual_seed(s.seed + self.dist.rank)
                random.seed(s.seed + self.dist.rank)
        self.n_params = sum(p.numel() for p in self.model.parameters())

    def _encode(self) -> None:
        """Tokenise the training items once, and lay out the steps, the warm-up and the evaluations."""
        s, tok = self.s, self.tok
        pad = tok.pad_token_id
        if pad is None:
            pad = tok.eos_token_id if tok.eos_token_id is not None else 0
        self.pad = int(pad)
        self.encoded = encode_items(self.fmt, self.train_items, s.max_seq_len)
        self.n_answer = [len(ids) - n_prompt for ids, n_prompt in self.encoded]
        self.steps_per_epoch = math.ceil(len(self.train_items) / s.effective_batch)
        self.total_steps = self.steps_per_epoch * s.epochs
        self.warmup = int(math.ceil(s.warmup_ratio * self.total_steps))
        self.evals_at = eval_steps(self.total_steps, self.steps_per_epoch, s.eval_every_steps)

    def _make_optimizer(self) -> None:
        """AdamW without weight decay on biases and norms, the warm-up/decay schedule, and loss scaling for fp16."""
        torch, s = self.torch, self.s
        decay = [p for p in self.params if p.ndim >= 2]
        no_decay = [p for p in self.params if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": s.weight_decay}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        self.optimizer = torch.optim.AdamW(groups, lr=s.lr, betas=(0.9, 0.999), eps=1e-8)
        warmup, total = self.warmup, self.total_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda st: lr_factor(st, warmup, total))
        self.scaler = None
        if self.dtype == "float16" and self.device.startswith("cuda"):
            self.scaler = torch.amp.GradScaler("cuda")

    def _epoch(self) -> float:
        return round(self.step / self.steps_per_epoch, 4)

    # -------------------------------------------------------------- evaluation

    def evaluate(self) -> dict:
        """Dev exact match and train fit now (see ``evaluation``), in eval mode so dropout is off."""
        t0 = time.perf_counter()
        self.model.eval()
        try:
            scores = measure(self.decoder, self.fmt, self.dev_items, self.fit_items, self.s.max_new_tokens)
        finally:
            self.model.train()
        record = {"step": self.step, "epoch": self._epoch(), **scores, "seconds": round(time.perf_counter() - t0, 3)}
        if self.eval_hook is not None:
            record = self.eval_hook(dict(record))
        return record

    # -------------------------------------------------------------- saving

    def _save_adapter(self, dest: Path, info: dict) -> None:
        save_adapter(self.model, dest, info)

    def _adapter_info(self, record: Optional[dict], which: str) -> dict:
        """What sits beside an adapter: which one it is, its step and scores, and how to use it again."""
        return {
            **self.meta,
            "which": which,
            "step": self.step,
            "epoch": self._epoch(),
            "dev_em": None if record is None else record.get("dev_em"),
            "fit": None if record is None else record.get("fit"),
            "base_model": str(self.ref.path),
            "prompt_format": self.s.prompt_format,
            "target_modules": self.target_modules,
            "settings": self.s.to_dict(),
        }

    def save_checkpoint(self, rank_rngs: Optional[list] = None) -> Path:
        """Everything a resume needs, in ``checkpoints/last`` (see ``checkpoints``)."""
        progress = {
            "step": self.step,
            "epoch": self._epoch(),
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "n_train": len(self.train_items),
            "best": self.best,
            "history": self.history,
            "bad_evals": self.bad_evals,
            "tokens_total": self.tokens_total,
            "train_seconds": self.train_seconds,
        }
        return write_checkpoint(
            self.run_dir,
            self._state(),
            progress,
            self.s.to_dict(),
            rank_rngs=rank_rngs,
        )

    def _state(self) -> TrainingState:
        return TrainingState(self.model, self.optimizer, self.scheduler, self.scaler, self.device)

    def _checkpoint(self) -> None:
        """Every process at once: gather their RNG states, then rank 0 saves the checkpoint and says so."""
        rngs = self.dist.gather(rng_state(self.device)) if self.dist.several else None
        if self.dist.is_main:
            self._emit_checkpoint(self.save_checkpoint(rngs))

    def _load_checkpoint(self, ckpt: Path) -> None:
        state = read_checkpoint(
            ckpt,
            self._state(),
            n_train=len(self.train_items),
            steps_per_epoch=self.steps_per_epoch,
            rank=self.dist.rank,
        )
        self.step = int(state["step"])
        self.best = state.get("best")
        self.history = list(state.get("history") or [])
        self.bad_evals = int(state.get("bad_evals") or 0)
        self.tokens_total = int(state.get("tokens_total") or 0)
        self.train_seconds = float(state.get("train_seconds") or 0.0)
        self.resumed_from = self.step

    # -------------------------------------------------------------- training

    def _order(self, epoch: int) -> list[int]:
        g = self.torch.Generator().manual_seed(self.s.seed + epoch)
        return self.torch.randperm(len(self.train_items), generator=g).tolist()

    def train_step(self, indices: list[int]) -> tuple[float, int]:
        """One optimizer step over ``indices`` (in micro-batches); returns (mean answer-token loss, tokens)."""
        torch = self.torch
        s = self.s
        n_tokens = sum(self.n_answer[i] for i in indices)  # of the whole step, on every process
        micro, _accum = s.per_process_batch()
        dist = self.dist
        if dist.several:
            # Each process takes every world-th example of the step sorted by length (similar work each, its
            # micro-batches similar in length); together they cover the step exactly once.
            ordered = sorted(indices, key=lambda i: len(self.encoded[i][0]))[dist.rank :: dist.world]
        else:
            # Similar lengths in the same micro-batch: less padding, same sum.
            ordered = sorted(indices, key=lambda i: len(self.encoded[i][0])) if s.grad_accum > 1 else indices
        total = None
        for start in range(0, len(ordered), micro):
            ids, mask, labels = self.loss.batch(ordered[start : start + micro])
            loss = self.loss.loss_sum(ids, mask, labels) / max(1, n_tokens)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
            else:
                loss.backward()
            total = loss.detach() if total is None else total + loss.detach()
        if dist.several:
            # The step's gradient is the sum of every process's part (each divided by the step's token count),
            # as one process would have summed it; the loss too. A process with no example (a last step smaller
            # than the number of processes) adds zeros.
            if total is None:
                total = torch.zeros((), device=self.device)
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            total = total.float().reshape(1)
            dist.sum_([p.grad for p in self.params] + [total])
            total = total[0]
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if s.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.params, s.max_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if total is None:  # no micro-batch ran: ``indices`` was empty
            raise TypeError("train_step needs at least one example.")
        return float(total), sum(len(self.encoded[i][0]) for i in indices)  # one device sync per step

    def run(self) -> LoopResult:
        """Train from the current step to the end, an early stop or a cancel; then keep the run's adapter.

        ``should_stop`` is polled after every step; a cancel saves a checkpoint unless this step has one.
        """
        s = self.s
        t_start = time.perf_counter()
        self._emit_start()
        if self._stop_requested():  # cancelled while loading: nothing new to save
            return self._finish(CANCELLED, STOP_CANCELLED, t_start)
        if self.resumed_from is not None and s.stopping == EARLY_STOP and self.bad_evals >= s.patience:
            return self._finish(DONE, STOP_EARLY, t_start)  # it had stopped early; it was killed while finishing
        if self.step == 0 and not any(h.get("step") == 0 for h in self.history):
            if self.dist.is_main:
                self._evaluate_step0()
            self.dist.barrier()  # the other processes wait for rank 0's evaluation
            if self._stop_requested():
                return self._finish(CANCELLED, STOP_CANCELLED, t_start)
        last_ckpt_step = self.step if self.resumed_from is not None else -1
        eb = s.effective_batch
        while self.step < self.total_steps:
            order = self._order(self.step // self.steps_per_epoch)
            for pos in range(self.step % self.steps_per_epoch, self.steps_per_epoch):
                self._one_step(order[pos * eb : (pos + 1) * eb])
                if self.step in self.evals_at:
                    last_ckpt_step = self.step
                    if self._evaluate_and_checkpoint():
                        return self._finish(DONE, STOP_EARLY, t_start)
                if self._stop_requested():
                    if last_ckpt_step != self.step:
                        self._checkpoint()
                    return self._finish(CANCELLED, STOP_CANCELLED, t_start)
        return self._finish(DONE, STOP_MAX_EPOCHS, t_start)

    def _stop_requested(self) -> bool:
        """A cancel (SIGTERM, which torchrun passes to every process) stops every process at the same step."""
        return self.dist.any(bool(self.should_stop()), self.device)

    def _emit_start(self) -> None:
        """The "start" event: what trains where, so the app and the log say it before the first step."""
        s = self.s
        self.emit(
            Start(
                total_steps=self.total_steps,
                steps_per_epoch=self.steps_per_epoch,
                epochs=s.epochs,
                start_step=self.step,
                resumed=self.resumed_from is not None,
                n_train=len(self.train_items),
                n_dev=len(self.dev_items),
                device=self.device,
                dtype=self.dtype,
                threads=self.torch.get_num_threads(),
                trainable_params=self.trainable,
                params=self.n_params,
                target_modules=self.target_modules,
                fast_loss=self.fast_loss,
                fit_sample={c: len(v) for c, v in self.fit_items.items()},
                pid=os.getpid(),
            )
        )

    def _one_step(self, indices: list[int]) -> None:
        """One optimizer step, its counters and its "step" event; a non-finite loss ends the run with advice."""
        s = self.s
        lr = float(self.optimizer.param_groups[0]["lr"])
        t0 = time.perf_counter()
        try:
            loss, tokens = self.train_step(indices)
        except RuntimeError as exc:
            raise out_of_memory_advice(exc, self.device, s) from exc
        dt = time.perf_counter() - t0
        self.train_seconds += dt
        self.tokens_total += tokens
        self.step += 1
        if not math.isfinite(loss):
            raise KnowMixError(
                f"Training diverged at step {self.step} (the loss is {loss}). Lower the learning rate "
                f"(now {s.lr:g}) and start a new run."
            )
        self.emit(
            Step(
                step=self.step, epoch=self._epoch(), loss=loss, lr=lr, tokens=tokens, tokens_per_s=tokens / dt if dt > 0 else None
            )
        )

    def _emit_checkpoint(self, path: Path) -> None:
        self.emit(Checkpoint(step=self.step, epoch=self._epoch(), path=str(path)))

    def _evaluate_step0(self) -> None:
        """Step 0: dev exact match and train fit of the base model before any optimizer step (the fresh
        LoRA is the identity: its B matrices start at zero). Recorded like every evaluation, but never
        the best point (no adapter is trained yet) and no count towards early stopping's patience.
        Kept in the run folder (``STEP0_FILE``) so a resume from the start does not redo it."""
        import json

        from ..paths import write_text_atomic

        saved = self.run_dir / STEP0_FILE
        record: Optional[dict] = None
        if saved.is_file():
            try:
                record = json.loads(saved.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                record = None
        if record is None:
            record = self.evaluate()
            record["best"] = False
            try:
                write_text_atomic(saved, json.dumps(record, ensure_ascii=False), advice="Check the free disk space.")
            except (OSError, KnowMixError):  # a resume would only redo the evaluation
                pass
            self.emit(Eval.of(record, bad_evals=0, best_step=None, best_dev_em=None))
        self.history.insert(0, record)

    def _evaluate_and_checkpoint(self) -> bool:
        """Evaluate, keep the adapter if dev exact match improved, save a checkpoint; True: stop early.
        With several processes rank 0 does all three and decides; the others wait and follow its decision."""
        stop = self._evaluate() if self.dist.is_main else False
        self._checkpoint()
        return self.dist.decide(stop)

    def _evaluate(self) -> bool:
        s = self.s
        record = self.evaluate()
        best = self.best
        improved = best is None or record["dev_em"] > best["dev_em"]
        record["best"] = improved
        self.history.append(record)
        if best is None or improved:  # same as ``improved``; spelled out so the type checker knows ``best`` is set below
            best = self.best = {k: v for k, v in record.items() if k not in ("dev_examples", "best")}
            self.bad_evals = 0
            self._save_adapter(self.run_dir / BEST_ADAPTER, self._adapter_info(record, "best"))
        else:
            self.bad_evals += 1
        self.emit(Eval.of(record, bad_evals=self.bad_evals, best_step=best["step"], best_dev_em=best["dev_em"]))
        return s.stopping == EARLY_STOP and self.bad_evals >= s.patience and self.step < self.total_steps

    def _finish(self, status: str, reason: str, t_start: float) -> LoopResult:
        """Save the final adapter of a finished run and leave the kept one in memory (for the merge)."""
        s = self.s
        best_dir = self.run_dir / BEST_ADAPTER
        result = LoopResult(
            status=status,
            stop_reason=reason,
            steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps,
            final_step=self.step,
            final_epoch=self._epoch(),
            best=self.best,
            history=self.history,
            best_adapter_dir=str(best_dir) if best_dir.is_dir() else None,
            tokens=self.tokens_total,
            train_seconds=self.train_seconds,
        )
        if not self.dist.is_main:  # rank 0 saves the adapters
            return result
        if status == DONE:
            final_dir = self.run_dir / FINAL_ADAPTER
            last = self.history[-1] if self.history and self.history[-1]["step"] == self.step else None
            self._save_adapter(final_dir, self._adapter_info(last, "final"))
            result.final_adapter_dir = str(final_dir)
            if keeps_final_adapter(s.stopping, status):  # the rule lives in runs.py: the report and the app ask it too
                result.adapter_dir = result.final_adapter_dir
            else:
                result.adapter_dir = result.best_adapter_dir
                if result.best_adapter_dir and self.best and self.best["step"] != self.step:
                    restore_adapter(self.model, best_dir, self.device)  # the model in memory is now the best one again
                    self.emit(Restored(step=self.best["step"], path=str(best_dir)))
            if s.merge and result.adapter_dir:
                result.merged_dir = self._merge(Path(result.adapter_dir))
        else:
            result.adapter_dir = result.best_adapter_dir
        result.seconds = time.perf_counter() - t_start
        return result

    def _merge(self, adapter: Path) -> str:
        """Save the model in memory (the run's result: see ``_finish``) merged with its adapter, in ``merged/``."""
        dest = save_merged(self.model, self.tok, self.run_dir)
        self.emit(Merged(path=str(dest)))
        return str(dest)

    def close(self) -> None:
        """Drop the model and optimizer now: the worker may report and exit, tests may train again."""
        import gc

        for name in ("decoder", "loss", "model", "base", "optimizer", "scheduler"):
            if hasattr(self, name):
                setattr(self, name, None)
        gc.collect()
        torch = getattr(self, "torch", None)
        if torch is not None and str(getattr(self, "device", "")).startswith("cuda"):
            torch.cuda.empty_cache()


def train_loop(
    run_dir: str | os.PathLike,
    ref: ModelRef,
    settings: TrainSettings,
    train: Sequence[TrainItem],
    dev: Sequence[TrainItem],
    hooks: LoopHooks = LoopHooks(),
    *,
    resume: bool = False,
    meta: Optional[dict] = None,
) -> LoopResult:
    """Train a LoRA adapter on ``train``, evaluating on ``dev``; see the module docstring.

    ``resume`` continues from the run folder's last checkpoint (if it has one); ``hooks`` are the
    caller's event sink, stop request and evaluation hook (``LoopHooks``). Sets torch's CPU thread count to
    ``settings.cpu_threads()`` for the duration of the call (``threads_per_process`` when torchrun
    started several processes on the CPU).

    Launched by torchrun (``WORLD_SIZE`` > 1), every process calls this: each trains on its share of
    every step and the LoRA gradients are summed across them (``distributed``); rank 0 alone evaluates,
    saves and emits, and only its result means anything.
    """
    settings.validate()
    check_items(train, dev)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(settings.cpu_threads())
    dist = Dist.from_env()
    trainer = _Trainer(Path(run_dir), ref, settings, train, dev, hooks, meta or {}, dist)
    try:
        trainer.setup(resume)
        return trainer.run()
    finally:
        trainer.close()
        dist.close()
        torch.set_num_threads(before)
