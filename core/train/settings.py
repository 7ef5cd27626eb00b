"""Training settings: one dataclass, checked before anything loads, stored as JSON with the run.

The defaults are the usual LoRA recipe (r=16, alpha=32, dropout 0.05 on every attention and MLP
projection, AdamW with linear warm-up and decay) and the paper's stopping rule: EARLY_STOP, the
evaluation with the best dev exact match, with a patience before giving up.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import SettingsError
from ..store.records import CONVERGENCE, EARLY_STOP, STOPPING_RULES  # noqa: F401  (the stopping rules live there)

PROMPT_FORMATS = ("qa", "chat")
ALL_ATTN_MLP = "all-linear-attn-mlp"

# Attention and MLP projection names of the common decoder families, in the order peft users
# know them. "all-linear-attn-mlp" keeps the ones the model has; if it has none of them, peft's
# "all-linear" (every linear layer but the output head) is used instead.
KNOWN_PROJECTIONS = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",  # llama, mistral, qwen, smollm
    "qkv_proj",
    "gate_up_proj",  # phi-3
    "c_attn",
    "c_proj",
    "c_fc",  # gpt-2, starcoder
    "query_key_value",
    "dense",
    "dense_h_to_4h",
    "dense_4h_to_h",  # falcon, gpt-neox
    "out_proj",
    "fc1",
    "fc2",  # opt, phi-2
    "Wqkv",
    "Wo",
    "wqkv",
    "wo",
    "w1",
    "w2",
    "w3",
    "W_pack",
)


def physical_cores() -> int:
    """Physical CPU cores (hyper-threads share one core's arithmetic units, so they rarely help torch)."""
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
        if n:
            return int(n)
    except Exception:
        pass
    try:  # Linux without psutil: count distinct (package, core) pairs
        cores, phys = set(), None
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    phys = value.strip()
                elif key == "core id":
                    cores.add((phys, value.strip()))
        if cores:
            return len(cores)
    except OSError:
        pass
    return max(1, os.cpu_count() or 1)


def _next_batch_size(batch_size: int, grad_accum: int, processes: int) -> int:
    """The smallest batch size from ``batch_size`` up whose effective batch ``processes`` processes can share."""
    b = batch_size
    while (b * grad_accum) % processes:
        b += 1
    return b


@dataclass
class TrainSettings:
    """Everything that decides a training run; ``validate()`` raises ``SettingsError`` with advice."""

    # LoRA
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str = ALL_ATTN_MLP  # or a comma-separated list of module names, or "all-linear"
    # Optimisation
    lr: float = 2e-4
    epochs: int = 10
    batch_size: int = 8  # examples per forward pass
    grad_accum: int = 1  # forward passes per optimizer step: effective batch = batch_size * grad_accum
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: Optional[float] = 1.0  # None: no clipping
    max_seq_len: int = 128  # longer examples are cut from the left of the question, the answer is kept
    # Evaluation and stopping
    eval_every_steps: Optional[int] = None  # None: at the end of every epoch
    # or "convergence": train all epochs. Which adapter a run keeps (the best dev step's, or the last step's for
    # a finished convergence run) is decided in one place, core.train.runs.keeps_final_adapter: the training
    # loop, the GGUF export and the report all ask it.
    stopping: str = EARLY_STOP
    patience: int = 2  # evaluations without a better dev exact match before early stopping
    fit_sample_per_category: int = 200
    max_new_tokens: int = 24
    eval_batch_size: int = 32
    # Machine and format
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"  # auto: bf16 on GPUs that support it (fp16 with loss scaling otherwise), fp32 on the CPU
    threads: Optional[int] = None  # torch CPU threads; None: the number of physical cores
    # Training processes (data parallel, under torchrun: NCCL on GPUs, gloo on the CPU). The effective batch stays
    # batch_size x grad_accum: each process takes an equal share of every step's examples (``per_process_batch``).
    processes: int = 1
    prompt_format: str = "qa"  # "qa": "Q: {question}\nA: {target}\n" like the probe; "chat": the model's chat template
    merge: bool = False  # also save a merged model (safetensors) next to the adapter
    model: Optional[str] = None  # None: the model the plan's probe used
    other_model: bool = False  # train a model other than the probed one (its fingerprint differs): --other-model
    allow_pickle: bool = False

    # ------------------------------------------------------------------ checks

    def validate(self) -> "TrainSettings":
        def need(cond: bool, message: str) -> None:
            if not cond:
                raise SettingsError(message)

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        need(
            is_int(self.lora_r) and self.lora_r >= 1,
            f"LoRA rank must be a whole number of at least 1 (got {self.lora_r!r}); 8 to 64 is usual, 16 is the default.",
        )
        need(
            isinstance(self.lora_alpha, (int, float)) and self.lora_alpha > 0,
            f"LoRA alpha must be above 0 (got {self.lora_alpha!r}); twice the rank is usual.",
        )
        need(
            isinstance(self.lora_dropout, (int, float)) and 0 <= self.lora_dropout < 1,
            f"LoRA dropout must be at least 0 and below 1 (got {self.lora_dropout!r}).",
        )
        need(
            isinstance(self.target_modules, str) and bool(self.target_modules.strip()),
            "target modules must name the layers to adapt, e.g. all-linear-attn-mlp or q_proj,v_proj.",
        )
        need(
            isinstance(self.lr, (int, float)) and self.lr > 0 and self.lr == self.lr,
            f"The learning rate must be above 0 (got {self.lr!r}); 1e-4 to 3e-4 is usual for LoRA.",
        )
        need(self.lr < 1, f"A learning rate of {self.lr} would destroy the model; 1e-4 to 3e-4 is usual for LoRA.")
        need(is_int(self.epochs) and self.epochs >= 1, f"Epochs must be a whole number of at least 1 (got {self.epochs!r}).")
        need(is_int(self.batch_size) and self.batch_size >= 1, f"Batch size must be at least 1 (got {self.batch_size!r}).")
        need(
            is_int(self.grad_accum) and self.grad_accum >= 1,
            f"Gradient accumulation must be at least 1 (got {self.grad_accum!r}).",
        )
        need(
            isinstance(self.warmup_ratio, (int, float)) and 0 <= self.warmup_ratio < 1,
            f"Warm-up ratio must be at least 0 and below 1 (got {self.warmup_ratio!r}).",
        )
        need(
            isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0,
            f"Weight decay must be 0 or more (got {self.weight_decay!r}).",
        )
        need(
            self.max_grad_norm is None or (isinstance(self.max_grad_norm, (int, float)) and self.max_grad_norm > 0),
            f"Gradient clipping norm must be above 0, or off (got {self.max_grad_norm!r}).",
        )
        need(
            is_int(self.max_seq_len) and self.max_seq_len >= 8,
            f"Maximum sequence length must be at least 8 tokens (got {self.max_seq_len!r}).",
        )
        need(
            self.eval_every_steps is None or (is_int(self.eval_every_steps) and self.eval_every_steps >= 1),
            f"Evaluate every N steps needs N of at least 1, or none for every epoch (got {self.eval_every_steps!r}).",
        )
        need(
            self.stopping in STOPPING_RULES,
            f"Stopping rule '{self.stopping}' is unknown; use early_stop (best dev exact match) or convergence (all epochs).",
        )
        need(is_int(self.patience) and self.patience >= 1, f"Patience must be at least 1 evaluation (got {self.patience!r}).")
        need(
            is_int(self.fit_sample_per_category) and self.fit_sample_per_category >= 0,
            f"The train-fit sample per category must be 0 or more (got {self.fit_sample_per_category!r}).",
        )
        need(
            is_int(self.max_new_tokens) and self.max_new_tokens >= 1,
            f"Answer length for evaluation must be at least 1 token (got {self.max_new_tokens!r}).",
        )
        need(
            is_int(self.eval_batch_size) and self.eval_batch_size >= 1,
            f"Evaluation batch size must be at least 1 (got {self.eval_batch_size!r}).",
        )
        need(is_int(self.seed), f"The seed must be a whole number (got {self.seed!r}).")
        need(isinstance(self.device, str) and bool(self.device.strip()), "Device must be auto, cpu, cuda, cuda:N or mps.")
        need(isinstance(self.dtype, str) and bool(self.dtype.strip()), "dtype must be auto, float32, float16 or bfloat16.")
        need(
            self.threads is None or (is_int(self.threads) and self.threads >= 1),
            f"CPU threads must be at least 1, or automatic (got {self.threads!r}).",
        )
        need(
            is_int(self.processes) and self.processes >= 1,
            f"Processes must be a whole number of at least 1 (got {self.processes!r}); 1 trains in one process.",
        )
        if self.processes > 1 and is_int(self.batch_size) and is_int(self.grad_accum):
            eb = self.effective_batch
            divisors = [d for d in range(1, eb + 1) if eb % d == 0]
            need(
                eb % self.processes == 0,
                f"{self.processes} processes cannot share the effective batch of {eb} examples (batch size "
                f"{self.batch_size} x gradient accumulation {self.grad_accum}) equally: each process takes the same "
                f"number of every step's examples. Use a number of processes that divides {eb} "
                f"({', '.join(map(str, divisors))}), or make the effective batch a multiple of {self.processes} "
                f"(e.g. batch size {_next_batch_size(self.batch_size, self.grad_accum, self.processes)}).",
            )
        need(
            self.prompt_format in PROMPT_FORMATS,
            f"Prompt format '{self.prompt_format}' is unknown; use qa (Q: ... A: ..., like the probe) or chat.",
        )
        return self

    # ------------------------------------------------------------------ derived

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.grad_accum

    def cpu_threads(self) -> int:
        """torch CPU threads for one process training alone."""
        return self.threads or physical_cores()

    def threads_per_process(self, on_cpu: bool) -> int:
        """torch CPU threads for each of the ``processes``: on the CPU they share the cores (at least 1 each);
        on GPUs each keeps the full count (the CPU only feeds its GPU)."""
        if self.processes <= 1 or not on_cpu:
            return self.cpu_threads()
        return max(1, self.cpu_threads() // self.processes)

    def per_process_batch(self) -> tuple[int, int]:
        """(micro-batch, accumulation) of each process so that processes x micro-batch x accumulation equals the
        effective batch: each process takes effective_batch / processes examples a step, in micro-batches of the
        largest size up to ``batch_size`` that divides that share. With one process: (batch_size, grad_accum)."""
        if self.processes <= 1:
            return self.batch_size, self.grad_accum
        share = self.effective_batch // self.processes
        micro = max(d for d in range(1, min(self.batch_size, share) + 1) if share % d == 0)
        return micro, share // micro

    def describe(self) -> str:
        stop = (
            f"early stop on dev exact match (patience {self.patience})"
            if self.stopping == EARLY_STOP
            else f"convergence ({self.epochs} epochs)"
        )
        every = f"every {self.eval_every_steps} steps" if self.eval_every_steps else "every epoch"
        return (
            f"LoRA r={self.lora_r} alpha={self.lora_alpha} dropout={self.lora_dropout}, lr {self.lr:g}, "
            f"up to {self.epochs} epochs, batch {self.batch_size}x{self.grad_accum}, evaluate {every}, {stop}"
            + (f", {self.processes} processes" if self.processes > 1 else "")
        )

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(f"Unknown training setting(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "TrainSettings":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise SettingsError(f"Training settings are not valid JSON: {exc}.") from None
        if not isinstance(data, dict):
            raise SettingsError("Training settings must be a JSON object.")
        return cls.from_dict(data)


def resolve_target_modules(model: Any, spec: str) -> "list[str] | str":
    """Turn the ``target_modules`` setting into what ``LoraConfig`` takes, checked against the model."""
    import torch

    names: set[str] = set()
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for full, module in model.named_modules():
        if module is output:
            continue
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D":
            names.add(full.rsplit(".", 1)[-1])
    spec = spec.strip()
    if spec == "all-linear":
        return "all-linear"
    if spec == ALL_ATTN_MLP:
        found = [n for n in KNOWN_PROJECTIONS if n in names]
        return found or "all-linear"
    wanted = [n.strip() for n in spec.split(",") if n.strip()]
    missing = [n for n in wanted if n not in names]
    if missing:
        raise SettingsError(
            f"The model has no layer(s) named {', '.join(missing)}. Its linear layers are: {', '.join(sorted(names))}. "
            f"Use {ALL_ATTN_MLP} to pick the attention and MLP projections automatically."
        )
    return wanted
