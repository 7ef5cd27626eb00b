"""The model a run trains: the base model's dtype, its LoRA adapter, and the errors loading or training
it turns into advice. Used by the training loop (``loop``), inside the worker process.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..errors import KnowMixError
from ..models import ModelRef
from .checkpoints import replace_dir
from .settings import TrainSettings, resolve_target_modules

if TYPE_CHECKING:  # pragma: no cover - typing only
    from transformers import PreTrainedModel


def training_dtype(dtype: str, device: str) -> str:
    """The dtype a run trains in: ``resolve_dtype``'s rule for training (``core.backends.torch_loading``
    holds it, so answering and training cannot disagree on what ``auto`` means)."""
    from ..backends.torch_backend import resolve_dtype

    return resolve_dtype(dtype, device, training=True)


def lora_model(model: Any, s: TrainSettings) -> tuple[Any, Any]:
    """Freeze ``model`` and wrap it with a fresh LoRA adapter (peft); returns it and the target modules."""
    from peft import LoraConfig, get_peft_model

    targets = resolve_target_modules(model, s.target_modules)
    config = LoraConfig(
        r=s.lora_r,
        lora_alpha=s.lora_alpha,
        lora_dropout=s.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    model.requires_grad_(False)
    with warnings.catch_warnings():
        # peft asks the model an attribute transformers 5 renamed; nothing for the user to act on.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config), targets


def unflag_dequantised_gguf(model: Any, ref: ModelRef) -> None:
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


def out_of_memory_advice(exc: RuntimeError, device: str, s: TrainSettings) -> BaseException:
    """Out of memory becomes advice with numbers to try; other errors stay as they are."""
    text = str(exc).lower()
    if "out of memory" in text:
        where = "GPU memory" if device.startswith(("cuda", "mps")) else "RAM"
        return KnowMixError(
            f"Ran out of {where} during training (batch size {s.batch_size}, up to {s.max_seq_len} tokens). Lower the "
            f"batch size and raise gradient accumulation to keep the same effective batch "
            f"(e.g. batch {max(1, s.batch_size // 2)} x accumulation {s.grad_accum * 2}), then resume or start again."
        )
    return exc


def save_merged(model: Any, tok: Any, run_dir: Path) -> Path:
    """Save ``model`` (a peft model) merged with its adapter, and its tokenizer, in the run's ``merged/``."""
    dest = run_dir / "merged"
    tmp = dest.with_name(f"merged.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    # peft types the merged model as a plain nn.Module; it is the transformers model, with save_pretrained.
    merged = cast("PreTrainedModel", model.merge_and_unload())
    merged.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    replace_dir(tmp, dest)
    return dest
