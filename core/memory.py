"""How much memory a LoRA run needs, to warn before training rather than crash during it.

The estimate is rough on purpose (no model is loaded): the plan page shows it next to the plan
(``core.plan.memory.plan_memory``), and ``check_memory_fits`` compares it with the free RAM or GPU
memory now. It sits beside core's floors, not in one: it reads only a model's shape
(``core.models.ModelShape``), so the plan and training can both use it without either importing
the other (it lived in ``core.train`` and made the circle train -> plan -> train.memory).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

from .errors import SettingsError
from .formats import GIB, format_bytes
from .models import ModelShape

_DTYPE_BYTES = {
    "float32": 4.0,
    "fp32": 4.0,
    "float16": 2.0,
    "fp16": 2.0,
    "bfloat16": 2.0,
    "bf16": 2.0,
    "int8": 1.0,
    "8bit": 1.0,
    "int4": 0.5,
    "nf4": 0.5,
    "4bit": 0.5,
}


@dataclass(frozen=True)
class MemoryEstimate:
    """A rough byte count for one LoRA training run; see ``estimate_memory``."""

    n_params: int
    lora_rank: int
    dtype: str
    batch_size: int
    seq_len: int
    n_layers: int
    hidden: int
    target_modules: int
    lora_params: int
    weights_bytes: int
    lora_bytes: int  # adapter weights + gradients + AdamW's two states, all fp32
    activation_bytes: int
    overhead_bytes: int  # allocator slack and framework buffers (10%)

    @property
    def total(self) -> int:
        return self.weights_bytes + self.lora_bytes + self.activation_bytes + self.overhead_bytes

    def describe(self) -> str:
        return (
            f"Training needs about {_size(self.total)} of memory: the model's weights {_size(self.weights_bytes)} "
            f"({_count(self.n_params)} parameters in {self.dtype}), the LoRA adapter with its gradients and optimizer "
            f"state {_size(self.lora_bytes)} (rank {self.lora_rank}, {_count(self.lora_params)} trainable parameters), "
            f"working memory for batches of {self.batch_size} x {self.seq_len} tokens {_size(self.activation_bytes)}, "
            f"and {_size(self.overhead_bytes)} of headroom. This is a rough estimate."
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def _size(n: float) -> str:
    """Sizes compared with gigabytes of free memory: 0.5 GiB rather than 512 MiB."""
    return format_bytes(n, gib_from=GIB / 10)


def _count(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    if n >= 1e6:
        return f"{n / 1e6:.0f}M"
    if n >= 1e3:
        return f"{n / 1e3:.0f}K"
    return str(n)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _guess_layers(n_params: int) -> int:
    """Typical depth for a decoder of this size (SmolLM2-135M: 30, 7B: 32, 70B: 80)."""
    for limit, layers in ((5e8, 30), (4e9, 28), (1.5e10, 32), (4e10, 48)):
        if n_params < limit:
            return layers
    return 80


def estimate_memory(
    model: int | ModelShape,
    *,
    lora_rank: int = 16,
    dtype: str = "float32",
    batch_size: int = 8,
    seq_len: int = 64,
    target_modules: int = 7,
) -> MemoryEstimate:
    """Rough memory of a LoRA run, to warn before training rather than crash during it.

    - weights: ``n_params`` x bytes of ``dtype`` (frozen; no gradients or optimizer state);
    - LoRA: per layer and target module about ``rank x 2.7 x hidden`` parameters (the average
      in+out width of q/k/v/o/gate/up/down), each with an fp32 weight, gradient and AdamW's two
      states: 16 bytes;
    - activations: ``batch x seq x hidden x layers x 34`` bytes in fp32 (half in 16-bit or
      quantised models, which compute in 16-bit), no gradient checkpointing, plus the logits
      ``batch x seq x vocab`` in fp32, twice (values and gradient);
    - 10% headroom.

    ``model`` is the model's shape (``core.models.model_shape``) or only its parameter count;
    ``n_layers`` and ``hidden`` are guessed from ``n_params`` (params ~ 12 x layers x hidden^2)
    when not known; ``vocab_size`` defaults to 32000.
    """
    shape = model if isinstance(model, ModelShape) else ModelShape(model, None, None, None)
    n_params, n_layers, hidden, vocab_size = shape.n_params, shape.n_layers, shape.hidden, shape.vocab_size
    key = str(dtype).strip().lower().replace("torch.", "")
    _check_arguments(
        n_params,
        key,
        dtype,
        lora_rank=lora_rank,
        batch_size=batch_size,
        seq_len=seq_len,
        target_modules=target_modules,
        n_layers=n_layers,
        hidden=hidden,
        vocab_size=vocab_size,
    )
    layers = n_layers or _guess_layers(n_params)
    width = hidden or max(64, int(round(math.sqrt(n_params / (12 * layers)) / 64)) * 64)
    vocab = vocab_size or 32000
    per_weight = _DTYPE_BYTES[key]
    weights = int(n_params * per_weight)
    lora_params = int(layers * target_modules * lora_rank * 2.7 * width)
    lora = lora_params * 16
    act_scale = 1.0 if per_weight >= 4 else 0.5
    activations = int(batch_size * seq_len * width * layers * 34 * act_scale) + batch_size * seq_len * vocab * 4 * 2
    overhead = int(0.10 * (weights + lora + activations))
    return MemoryEstimate(
        n_params=n_params,
        lora_rank=lora_rank,
        dtype=key,
        batch_size=batch_size,
        seq_len=seq_len,
        n_layers=layers,
        hidden=width,
        target_modules=target_modules,
        lora_params=lora_params,
        weights_bytes=weights,
        lora_bytes=lora,
        activation_bytes=activations,
        overhead_bytes=overhead,
    )


def _check_arguments(n_params: Any, key: str, dtype: Any, **sizes: Any) -> None:
    """``SettingsError`` naming every argument of ``estimate_memory`` that is out of range."""
    problems = []
    if not _is_int(n_params) or n_params <= 0:
        problems.append(f"the number of parameters must be above 0 (got {n_params!r})")
    for label, name in (
        ("LoRA rank", "lora_rank"),
        ("batch size", "batch_size"),
        ("sequence length", "seq_len"),
        ("target modules", "target_modules"),
    ):
        value = sizes[name]
        if not _is_int(value) or value < 1:
            problems.append(f"the {label} must be a whole number of 1 or more (got {value!r})")
    if key not in _DTYPE_BYTES:
        problems.append(f"unknown dtype {dtype!r} (use float32, float16, bfloat16, int8 or int4)")
    for label, name in (("layers", "n_layers"), ("hidden size", "hidden"), ("vocabulary size", "vocab_size")):
        value = sizes[name]
        if value is not None and (not _is_int(value) or value < 1):
            problems.append(f"the {label} must be a whole number of 1 or more (got {value!r})")
    if problems:
        raise SettingsError("Memory estimate: " + "; ".join(problems) + ".")


def check_memory_fits(estimate: MemoryEstimate, device: str = "cpu") -> Optional[str]:
    """A warning when the run needs more than the device's free memory now, else None (also when
    the free memory cannot be told)."""
    from . import models

    free = models.available_memory(device)
    if free is None or estimate.total <= free:
        return None
    where = "GPU memory" if str(device).startswith("cuda") else "RAM"
    return (
        f"This run needs about {_size(estimate.total)} of {where} but only {_size(free)} is free. Lower the batch "
        "size or the sequence length, train in 16-bit, lower the LoRA rank, or close other programs."
    )
