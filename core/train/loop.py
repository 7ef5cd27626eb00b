"""The LoRA training loop. It runs inside the worker process, or in-process for tests and benchmarks.

One call of ``train_loop`` loads the model, wraps it with peft, and trains on the run's items,
reporting everything through ``emit(dict)`` events (the worker turns them into JSON lines and
database rows). It never prints and never touches the project file itself.

Reproducibility and resume: the data order of epoch ``e`` is a permutation drawn from
``torch.Generator().manual_seed(seed + e)``, so it depends on nothing else; a checkpoint holds
the adapter, the optimizer, the scheduler, torch's and Python's RNG states and the position
(step) reached, so a resumed run continues with the very batches, learning rates and dropout
masks an uninterrupted run would have used.

Run folder, as written here::

    adapter/             best adapter so far (peft, loadable with PeftModel.from_pretrained)
    final-adapter/       the adapter after the last step of a run that finished
    merged/              optional merged model (safetensors) of the run's result
    checkpoints/last/    adapter + optimizer.pt + scheduler.pt + rng.pt + state.json
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..errors import KnowMixError, SettingsError
from ..models import ModelRef
from .data import PromptFormat, TrainItem, check_items, dev_matcher, encode_items, fit_matcher, fit_sample
from .runs import keeps_final_adapter
from .settings import EARLY_STOP, TrainSettings, resolve_target_modules

Emit = Callable[[dict], None]
CHECKPOINT_VERSION = 1
ADAPTER_INFO = "knowmix_adapter.json"


@dataclass
class LoopResult:
    status: str  # "done" | "cancelled"
    stop_reason: str  # "early_stop" | "max_epochs" | "cancelled"
    steps_per_epoch: int
    total_steps: int
    final_step: int
    final_epoch: float
    best: Optional[dict]  # the evaluation with the best dev exact match
    history: list[dict] = field(default_factory=list)  # every evaluation, in order
    adapter_dir: Optional[str] = None  # the run's result: best adapter (early stop) or final one (convergence)
    best_adapter_dir: Optional[str] = None
    final_adapter_dir: Optional[str] = None
    merged_dir: Optional[str] = None
    seconds: float = 0.0
    tokens: int = 0
    train_seconds: float = 0.0  # time in optimizer steps only (no eval, no checkpoints)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


# ------------------------------------------------------------------------------ small helpers


def training_dtype(dtype: str, device: str) -> str:
    """``auto``: bf16 on GPUs that support it, fp16 (with loss scaling) on older ones, fp32 on CPU and MPS."""
    import torch

    from ..backends.torch_backend import resolve_dtype

    if (dtype or "auto").strip().lower() != "auto":
        return resolve_dtype(dtype, device)
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def _replace_dir(tmp: Path, dest: Path) -> None:
    """Put the finished folder ``tmp`` at ``dest`` so that a kill at any point leaves one complete copy."""
    old = dest.with_name(dest.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    for f in path.iterdir():
        if f.is_file():
            try:
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            except OSError:
                pass


def find_checkpoint(run_dir: Path) -> Optional[Path]:
    """The last complete checkpoint of a run (a kill during the swap leaves ``last.old``)."""
    for name in ("last", "last.old"):
        path = Path(run_dir) / "checkpoints" / name
        if (path / "state.json").is_file():
            return path
    return None


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over ``warmup`` steps, then linear decay to 0 at ``total``; every step gets lr > 0."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total - step) / max(1, total - warmup))


def eval_steps(total_steps: int, steps_per_epoch: int, every: Optional[int]) -> set[int]:
    period = every or steps_per_epoch
    points = set(range(period, total_steps + 1, period))
    points.add(total_steps)
    return points


# ------------------------------------------------------------------------------ the loop


class _Trainer:
    def __init__(
        self,
        run_dir: Path,
        ref: ModelRef,
        settings: TrainSettings,
        train: Sequence[TrainItem],
        dev: Sequence[TrainItem],
        emit: Emit,
        should_stop: Callable[[], bool],
        eval_hook: Optional[Callable[[dict], dict]],
        meta: dict,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.ref = ref
        self.s = settings
        self.train_items = list(train)
        self.dev_items = list(dev)
        self.emit = emit
        self.should_stop = should_stop
        self.eval_hook = eval_hook
        self.meta = meta

    # -------------------------------------------------------------- setup

    def setup(self, resume: bool) -> None:
        import torch

        from ..backends.torch_backend import TorchBackend, load_hf_model, resolve_device

        s = self.s
        self.torch = torch
        device = resolve_device(s.device)
        dtype = training_dtype(s.dtype, device)
        torch.manual_seed(s.seed)
        random.seed(s.seed)
        model, tok, self.device, self.dtype = load_hf_model(
            self.ref, device, dtype, for_training=True, allow_pickle=s.allow_pickle
        )
        self.tok = tok
        self.fmt = PromptFormat(tok, s.prompt_format)
        _unflag_dequantised_gguf(model, self.ref)

        from peft import LoraConfig, get_peft_model

        targets = resolve_target_modules(model, s.target_modules)
        self.target_modules = targets
        config = LoraConfig(
            r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout, target_modules=targets,
            bias="none", task_type="CAUSAL_LM",
        )
        model.requires_grad_(False)
        with warnings.catch_warnings():
            # peft asks the model an attribute transformers 5 renamed; nothing for the user to act on.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            self.model = get_peft_model(model, config)
        self.model.train()
        self.base = self.model.get_base_model()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.trainable = sum(p.numel() for p in self.params)
        self.n_params = sum(p.numel() for p in self.model.parameters())

        pad = tok.pad_token_id
        if pad is None:
            pad = tok.eos_token_id if tok.eos_token_id is not None else 0
        self.pad = int(pad)
        self.encoded = encode_items(self.fmt, self.train_items, s.max_seq_len)
        self.n_answer = [len(ids) - n_prompt for ids, n_prompt in self.encoded]

        n = len(self.train_items)
        self.steps_per_epoch = math.ceil(n / s.effective_batch)
        self.total_steps = self.steps_per_epoch * s.epochs
        self.warmup = int(math.ceil(s.warmup_ratio * self.total_steps))
        self.evals_at = eval_steps(self.total_steps, self.steps_per_epoch, s.eval_every_steps)

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

        self.fit_items = fit_sample(self.train_items, s.fit_sample_per_category, s.seed)
        self.decoder = TorchBackend.from_model(self.model, tok, self.device, self.dtype, batch_size=s.eval_batch_size)
        self.fast_loss = self._check_fast_loss()

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

    # -------------------------------------------------------------- loss

    def _batch(self, indices: Sequence[int]):
        torch = self.torch
        rows = [self.encoded[i] for i in indices]
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for r, (ids, n_prompt) in enumerate(rows):
            t = torch.tensor(ids, dtype=torch.long)
            input_ids[r, : len(ids)] = t
            mask[r, : len(ids)] = 1
            labels[r, n_prompt: len(ids)] = t[n_prompt:]
        dev = self.device
        return input_ids.to(dev), mask.to(dev), labels.to(dev)

    def _loss_sum(self, input_ids, mask, labels, fast: Optional[bool] = None):
        """Summed cross-entropy over the answer tokens (the prompt is masked out)."""
        torch = self.torch
        fast = self.fast_loss if fast is None else fast
        targets = labels[:, 1:]
        keep = targets != -100
        if fast:
            # Only the answer positions go through the output layer: on short QA examples most of the
            # tokens are prompt, and the vocabulary projection is a large share of a small model's work.
            hidden = self.decoder_module(input_ids=input_ids, attention_mask=mask, use_cache=False)[0]
            logits = self.head(hidden[:, :-1][keep]).float()
        else:
            out = self.model(input_ids=input_ids, attention_mask=mask, use_cache=False)
            logits = out.logits[:, :-1][keep].float()
        return torch.nn.functional.cross_entropy(logits, targets[keep], reduction="sum")

    def _check_fast_loss(self) -> bool:
        """Use the answer-positions-only loss when it gives the model's own loss (checked once, in eval mode)."""
        torch = self.torch
        config = getattr(self.base, "config", None)
        for attr in ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale"):
            if getattr(config, attr, None) not in (None, 1, 1.0):
                return False
        get_decoder = getattr(self.base, "get_decoder", None)
        decoder = get_decoder() if callable(get_decoder) else getattr(self.base, "model", None)
        head = self.base.get_output_embeddings() if hasattr(self.base, "get_output_embeddings") else None
        if decoder is None or head is None or decoder is self.base:
            return False
        self.decoder_module, self.head = decoder, head
        indices = list(range(min(4, len(self.encoded))))
        try:
            self.model.eval()
            with torch.no_grad():
                batch = self._batch(indices)
                full = float(self._loss_sum(*batch, fast=False))
                part = float(self._loss_sum(*batch, fast=True))
        except Exception:  # noqa: BLE001 - any surprise: use the plain path
            return False
        finally:
            self.model.train()
        tol = 1e-4 if self.dtype == "float32" else 2e-2
        return math.isfinite(full) and abs(full - part) <= tol * max(1.0, abs(full))

    # -------------------------------------------------------------- evaluation

    def _greedy(self, items: Sequence[TrainItem]) -> list[str]:
        from ..backends.base import GenRequest

        reqs = [GenRequest(self.fmt.prompt(it.question), max_tokens=self.s.max_new_tokens, stop=("\n",)) for it in items]
        return [a[0] for a in self.decoder.generate(reqs)]

    def evaluate(self) -> dict:
        t0 = time.perf_counter()
        self.model.eval()
        try:
            dev_answers = self._greedy(self.dev_items)
            dev_ok = [dev_matcher(it)(a) for it, a in zip(self.dev_items, dev_answers)]
            fit: dict[str, float] = {}
            fit_n: dict[str, int] = {}
            fit_ok_all = 0
            for cat, items in self.fit_items.items():
                answers = self._greedy(items)
                ok = sum(fit_matcher(it)(a) for it, a in zip(items, answers))
                fit[cat], fit_n[cat] = ok / len(items), len(items)
                fit_ok_all += ok
        finally:
            self.model.train()
        n_fit = sum(fit_n.values())
        record = {
            "step": self.step,
            "epoch": round(self.step / self.steps_per_epoch, 4),
            "dev_em": sum(dev_ok) / len(dev_ok),
            "dev_correct": int(sum(dev_ok)),
            "dev_total": len(dev_ok),
            "fit": fit,
            "fit_n": fit_n,
            "fit_all": fit_ok_all / n_fit if n_fit else None,
            "dev_examples": [
                {"example_id": it.example_id, "answer": a, "correct": bool(c)}
                for it, a, c in list(zip(self.dev_items, dev_answers, dev_ok))[:5]
            ],
            "seconds": round(time.perf_counter() - t0, 3),
        }
        if self.eval_hook is not None:
            record = self.eval_hook(dict(record))
        return record

    # -------------------------------------------------------------- saving

    def _save_adapter(self, dest: Path, info: dict) -> None:
        tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        self.model.save_pretrained(str(tmp))
        (tmp / ADAPTER_INFO).write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
        _fsync_dir(tmp)
        _replace_dir(tmp, dest)

    def _adapter_info(self, record: Optional[dict], which: str) -> dict:
        return {
            **self.meta, "which": which, "step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4),
            "dev_em": None if record is None else record.get("dev_em"),
            "fit": None if record is None else record.get("fit"),
            "base_model": str(self.ref.path), "prompt_format": self.s.prompt_format,
            "target_modules": self.target_modules, "settings": self.s.to_dict(),
        }

    def save_checkpoint(self) -> Path:
        torch = self.torch
        folder = self.run_dir / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        self.model.save_pretrained(str(tmp))
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), tmp / "scheduler.pt")
        rng = {"torch": torch.get_rng_state()}
        if self.device.startswith("cuda"):
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        if self.scaler is not None:
            rng["scaler"] = self.scaler.state_dict()
        torch.save(rng, tmp / "rng.pt")
        py_state = random.getstate()
        state = {
            "version": CHECKPOINT_VERSION, "step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4),
            "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps, "n_train": len(self.train_items),
            "best": self.best, "history": self.history, "bad_evals": self.bad_evals,
            "tokens_total": self.tokens_total, "train_seconds": self.train_seconds,
            "python_random": [py_state[0], list(py_state[1]), py_state[2]],
            "settings": self.s.to_dict(), "saved_at": time.time(),
        }
        (tmp / "state.json").write_text(json.dumps(state, default=str), encoding="utf-8")
        _fsync_dir(tmp)
        dest = folder / "last"
        _replace_dir(tmp, dest)
        return dest

    def _load_checkpoint(self, ckpt: Path) -> None:
        torch = self.torch
        from peft.utils import set_peft_model_state_dict
        from safetensors.torch import load_file

        state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
        if state.get("n_train") != len(self.train_items) or state.get("steps_per_epoch") != self.steps_per_epoch:
            raise SettingsError(
                "The run's checkpoint does not match its data or batch settings, so it cannot be resumed. "
                "Start a new run instead."
            )
        weights = load_file(str(ckpt / "adapter_model.safetensors"), device=str(self.device))
        set_peft_model_state_dict(self.model, weights)
        self.optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=self.device, weights_only=True))
        self.scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=True))
        rng = torch.load(ckpt / "rng.pt", weights_only=True)
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.startswith("cuda"):
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        if "scaler" in rng and self.scaler is not None:
            self.scaler.load_state_dict(rng["scaler"])
        py = state["python_random"]
        random.setstate((py[0], tuple(py[1]), py[2]))
        self.step = int(state["step"])
        self.best = state.get("best")
        self.history = list(state.get("history") or [])
        self.bad_evals = int(state.get("bad_evals") or 0)
        self.tokens_total = int(state.get("tokens_total") or 0)
        self.train_seconds = float(state.get("train_seconds") or 0.0)
        self.resumed_from = self.step

    def _restore_adapter(self, folder: Path) -> None:
        from peft.utils import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(self.model, load_file(str(folder / "adapter_model.safetensors"), device=str(self.device)))

    # -------------------------------------------------------------- training

    def _order(self, epoch: int) -> list[int]:
        g = self.torch.Generator().manual_seed(self.s.seed + epoch)
        return self.torch.randperm(len(self.train_items), generator=g).tolist()

    def train_step(self, indices: list[int]) -> tuple[float, int]:
        """One optimizer step over ``indices`` (in micro-batches); returns (mean answer-token loss, tokens)."""
        torch = self.torch
        s = self.s
        n_tokens = sum(self.n_answer[i] for i in indices)
        # Similar lengths in the same micro-batch: less padding, same sum.
        ordered = sorted(indices, key=lambda i: len(self.encoded[i][0])) if s.grad_accum > 1 else indices
        total = None
        for start in range(0, len(ordered), s.batch_size):
            ids, mask, labels = self._batch(ordered[start:start + s.batch_size])
            loss = self._loss_sum(ids, mask, labels) / max(1, n_tokens)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
            else:
                loss.backward()
            total = loss.detach() if total is None else total + loss.detach()
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
        return float(total), sum(len(self.encoded[i][0]) for i in indices)  # one device sync per step

    def run(self) -> LoopResult:
        torch = self.torch
        s = self.s
        t_start = time.perf_counter()
        eb = s.effective_batch
        self.emit({
            "event": "start", "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
            "epochs": s.epochs, "start_step": self.step, "resumed": self.resumed_from is not None,
            "n_train": len(self.train_items), "n_dev": len(self.dev_items), "device": self.device, "dtype": self.dtype,
            "threads": torch.get_num_threads(), "trainable_params": self.trainable, "params": self.n_params,
            "target_modules": self.target_modules, "fast_loss": self.fast_loss,
            "fit_sample": {c: len(v) for c, v in self.fit_items.items()}, "pid": os.getpid(),
        })
        status, reason = "done", "max_epochs"
        last_ckpt_step = self.step if self.resumed_from is not None else -1
        stop = False
        if self.should_stop():  # cancelled while loading: nothing new to save
            return self._finish("cancelled", "cancelled", t_start)
        if self.resumed_from is not None and s.stopping == EARLY_STOP and self.bad_evals >= s.patience:
            return self._finish("done", "early_stop", t_start)  # it had stopped early; it was killed while finishing
        while self.step < self.total_steps and not stop:
            epoch = self.step // self.steps_per_epoch
            order = self._order(epoch)
            for pos in range(self.step % self.steps_per_epoch, self.steps_per_epoch):
                indices = order[pos * eb:(pos + 1) * eb]
                lr = float(self.optimizer.param_groups[0]["lr"])
                t0 = time.perf_counter()
                try:
                    loss, tokens = self.train_step(indices)
                except RuntimeError as exc:
                    raise _runtime_error(exc, self.device, s) from exc
                dt = time.perf_counter() - t0
                self.train_seconds += dt
                self.tokens_total += tokens
                self.step += 1
                if not math.isfinite(loss):
                    raise KnowMixError(
                        f"Training diverged at step {self.step} (the loss is {loss}). Lower the learning rate "
                        f"(now {s.lr:g}) and start a new run."
                    )
                self.emit({
                    "event": "step", "step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4),
                    "loss": loss, "lr": lr, "tokens": tokens, "tokens_per_s": tokens / dt if dt > 0 else None,
                })
                if self.step in self.evals_at:
                    stop = self._evaluate_and_checkpoint()
                    last_ckpt_step = self.step
                    if stop:
                        reason = "early_stop"
                if not stop and self.should_stop():
                    status, reason, stop = "cancelled", "cancelled", True
                    if last_ckpt_step != self.step:
                        path = self.save_checkpoint()
                        last_ckpt_step = self.step
                        self.emit({"event": "checkpoint", "step": self.step,
                                   "epoch": round(self.step / self.steps_per_epoch, 4), "path": str(path)})
                if stop:
                    break
        return self._finish(status, reason, t_start)

    def _evaluate_and_checkpoint(self) -> bool:
        s = self.s
        record = self.evaluate()
        improved = self.best is None or record["dev_em"] > self.best["dev_em"]
        record["best"] = improved
        self.history.append(record)
        if improved:
            self.best = {k: v for k, v in record.items() if k not in ("dev_examples", "best")}
            self.bad_evals = 0
            self._save_adapter(self.run_dir / "adapter", self._adapter_info(record, "best"))
        else:
            self.bad_evals += 1
        self.emit({"event": "eval", **record, "bad_evals": self.bad_evals,
                   "best_step": self.best["step"], "best_dev_em": self.best["dev_em"]})
        stop = s.stopping == EARLY_STOP and self.bad_evals >= s.patience and self.step < self.total_steps
        path = self.save_checkpoint()
        self.emit({"event": "checkpoint", "step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4),
                   "path": str(path)})
        return stop

    def _finish(self, status: str, reason: str, t_start: float) -> LoopResult:
        s = self.s
        best_dir = self.run_dir / "adapter"
        result = LoopResult(
            status=status, stop_reason=reason, steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps,
            final_step=self.step, final_epoch=round(self.step / self.steps_per_epoch, 4), best=self.best,
            history=self.history, best_adapter_dir=str(best_dir) if best_dir.is_dir() else None,
            tokens=self.tokens_total, train_seconds=self.train_seconds,
        )
        if status == "done":
            final_dir = self.run_dir / "final-adapter"
            last = self.history[-1] if self.history and self.history[-1]["step"] == self.step else None
            self._save_adapter(final_dir, self._adapter_info(last, "final"))
            result.final_adapter_dir = str(final_dir)
            if keeps_final_adapter(s.stopping, status):  # the rule lives in runs.py: the report and the app ask it too
                result.adapter_dir = result.final_adapter_dir
            else:
                result.adapter_dir = result.best_adapter_dir
                if result.best_adapter_dir and self.best and self.best["step"] != self.step:
                    self._restore_adapter(best_dir)  # the model in memory is now the best one again
                    self.emit({"event": "restored", "step": self.best["step"], "path": str(best_dir)})
            if s.merge and result.adapter_dir:
                result.merged_dir = self._merge(Path(result.adapter_dir))
        else:
            result.adapter_dir = result.best_adapter_dir
        result.seconds = time.perf_counter() - t_start
        return result

    def _merge(self, adapter: Path) -> str:
        """Save the model in memory (the run's result: see ``_finish``) merged with its adapter, in ``merged/``."""
        dest = self.run_dir / "merged"
        tmp = dest.with_name(f"merged.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        merged = self.model.merge_and_unload()
        merged.save_pretrained(str(tmp), safe_serialization=True)
        self.tok.save_pretrained(str(tmp))
        _replace_dir(tmp, dest)
        self.emit({"event": "merged", "path": str(dest)})
        return str(dest)

    def close(self) -> None:
        import gc

        for name in ("decoder", "model", "base", "optimizer", "scheduler"):
            if hasattr(self, name):
                setattr(self, name, None)
        gc.collect()
        torch = getattr(self, "torch", None)
        if torch is not None and str(getattr(self, "device", "")).startswith("cuda"):
            torch.cuda.empty_cache()


def _unflag_dequantised_gguf(model: Any, ref: ModelRef) -> None:
    """A GGUF loaded into torch is dequantised to plain float weights, but transformers keeps it flagged as
    GGUF-quantised, which makes ``save_pretrained`` (the merged model) refuse it. Drop the flag when the
    weights really are plain floats; refuse to train weights still held in GGUF blocks."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return
    method = getattr(getattr(quantizer, "quantization_config", None), "quant_method", None)
    if str(getattr(method, "value", method)).lower() != "gguf":
        return
    packed = any(not p.is_floating_point() for p in model.parameters()) or any(
        "gguf" in type(m).__name__.lower() for m in model.modules()
    )
    if packed:
        from ..errors import ModelError

        raise ModelError(
            f"{ref.display_name} was loaded with its weights still GGUF-quantised, and LoRA cannot train on those. "
            "Train on the model's Hugging Face folder (safetensors) instead."
        )
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        try:
            del model.config.quantization_config
        except AttributeError:
            model.config.quantization_config = None


def _runtime_error(exc: RuntimeError, device: str, s: TrainSettings) -> BaseException:
    text = str(exc).lower()
    if "out of memory" in text:
        where = "GPU memory" if device.startswith(("cuda", "mps")) else "RAM"
        return KnowMixError(
            f"Ran out of {where} during training (batch size {s.batch_size}, up to {s.max_seq_len} tokens). Lower the "
            f"batch size and raise gradient accumulation to keep the same effective batch "
            f"(e.g. batch {max(1, s.batch_size // 2)} x accumulation {s.grad_accum * 2}), then resume or start again."
        )
    return exc


def train_loop(
    run_dir: str | os.PathLike,
    ref: ModelRef,
    settings: TrainSettings,
    train: Sequence[TrainItem],
    dev: Sequence[TrainItem],
    *,
    emit: Emit = lambda _e: None,
    should_stop: Callable[[], bool] = lambda: False,
    resume: bool = False,
    eval_hook: Optional[Callable[[dict], dict]] = None,
    meta: Optional[dict] = None,
) -> LoopResult:
    """Train a LoRA adapter on ``train``, evaluating on ``dev``; see the module docstring.

    ``resume`` continues from the run folder's last checkpoint (if it has one). ``should_stop``
    is polled after every optimizer step (the worker sets it on SIGTERM/SIGINT): the run then
    saves a checkpoint and returns with status "cancelled". ``eval_hook`` may replace an
    evaluation's record (tests use it to script dev scores). Sets torch's CPU thread count to
    ``settings.cpu_threads()`` for the duration of the call.
    """
    settings.validate()
    check_items(train, dev)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(settings.cpu_threads())
    trainer = _Trainer(Path(run_dir), ref, settings, train, dev, emit, should_stop, eval_hook, meta or {})
    try:
        trainer.setup(resume)
        return trainer.run()
    finally:
        trainer.close()
        torch.set_num_threads(before)
