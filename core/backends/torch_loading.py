"""Loading a model into torch: dtype resolution, the memory check, and transformers'
``from_pretrained`` for Hugging Face folders (safetensors) and GGUF files. The device comes from
``core.devices`` (re-exported here for old importers).

Kept apart from the decoding backend because training loads models the same way (with
``for_training``) and never decodes through this module. torch and transformers are imported inside
the functions, so importing this module is cheap. Every load failure becomes a ``ModelError`` that
says what to do: out of memory, an architecture transformers does not know, a missing tokenizer.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import json
import math
import struct
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

from ..devices import describe_device, resolve_device  # noqa: F401  (their home is core.devices; re-exported)
from ..errors import ModelError, SettingsError
from ..models import PICKLE_SUFFIXES, ModelRef, _pickle_message, check_memory

_DTYPE_NAMES = {
    "auto": "auto",
    "float32": "float32",
    "fp32": "float32",
    "f32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "f16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}

# Bits per weight of llama.cpp's file types (general.file_type), to estimate a GGUF's parameter
# count, and so its dequantised size, from the file size. Mixed files keep some tensors at higher
# precision, so these slightly overestimate the count: the memory check errs on the safe side.
_GGUF_FILE_TYPE_BITS = {
    0: 32.0,
    1: 16.0,
    2: 4.5,
    3: 5.0,
    7: 8.5,
    8: 5.5,
    9: 6.0,
    10: 2.6,
    11: 3.4,
    12: 3.9,
    13: 4.3,
    14: 4.6,
    15: 4.9,
    16: 5.5,
    17: 5.7,
    18: 6.6,
    19: 2.1,
    20: 2.3,
    21: 3.1,
    22: 3.4,
    23: 1.6,
    24: 1.8,
    25: 4.5,
    26: 3.4,
    27: 2.2,
    28: 4.0,
    29: 4.5,
    30: 5.0,
    31: 1.8,
    32: 16.0,
    33: 4.5,
    34: 4.5,
    35: 4.5,
    36: 2.1,
    37: 1.7,
}
_SAFETENSORS_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}


# --------------------------------------------------------------------------------------------
# dtype and memory (the device: core.devices)
# --------------------------------------------------------------------------------------------


def resolve_dtype(dtype: str, device: str, *, training: bool = False) -> str:
    """The one rule for dtype ``auto`` (answering and training both ask here): bf16 on CUDA where
    supported, else fp16 on CUDA (training: with loss scaling); on MPS fp16 to answer but fp32 to
    train, since fp16 training needs a loss scaler and the training loop has one on CUDA only; fp32
    on the CPU. A named dtype is returned as torch spells it."""
    import torch

    name = _DTYPE_NAMES.get((dtype or "auto").strip().lower())
    if name is None:
        raise SettingsError(f"dtype '{dtype}' is not one KnowMix knows; use auto, float32, float16 or bfloat16.")
    if name != "auto":
        return name
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device == "mps":
        return "float32" if training else "float16"
    return "float32"


def _safetensors_params(path: Path) -> Optional[int]:
    """Parameter count from a safetensors header (no tensor data is read)."""
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
    except (OSError, struct.error, ValueError, UnicodeDecodeError):
        return None
    total = 0
    for key, meta in header.items():
        if key == "__metadata__" or not isinstance(meta, dict):
            continue
        total += math.prod(int(d) for d in meta.get("shape", []))
    return total


def estimate_params(ref: ModelRef) -> int:
    """About how many parameters the model has once loaded (dequantised, for a GGUF)."""
    if ref.kind == "gguf":
        file_type = ref.metadata.get("general.file_type")
        bits = _GGUF_FILE_TYPE_BITS.get(file_type, 4.0) if file_type is not None else 4.0
        return int(ref.size_bytes * 8 / bits)
    if not ref.uses_pickle:
        counts = [_safetensors_params(p) for p in sorted(Path(ref.path).glob("*.safetensors"))]
        known = [c for c in counts if c is not None]
        if counts and len(known) == len(counts):
            return int(sum(known))
    # Pickle (or unreadable headers): assume 16-bit weights, the usual case.
    return int(ref.size_bytes // 2)


def memory_needed(ref: ModelRef, device: str, dtype: str) -> dict[str, int]:
    """Bytes needed per memory pool to load ``ref``: ``{"cpu": ..., "cuda:0": ...}``.

    The weights at the target dtype plus 15 % and 256 MiB for activations, the KV cache and
    torch itself. A GGUF is first dequantised to float32 in RAM, so RAM must hold that too.
    """
    params = estimate_params(ref)
    weights = params * _DTYPE_BYTES[dtype]
    on_device = int(weights * 1.15) + 256 * 1024**2
    staging = params * 4 if ref.kind == "gguf" else 0
    if device.startswith("cuda"):
        need = {device: on_device}
        if staging:
            need["cpu"] = staging
        return need
    return {"cpu": on_device + staging}


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    """The first line of an error, capped: transformers' messages can run to pages."""
    text = str(exc).strip() or type(exc).__name__
    line = text.splitlines()[0].strip()
    return line if len(line) <= 300 else line[:297] + "..."


def _model_type(ref: ModelRef) -> str:
    """The architecture name a user can look up (``llama``, ``qwen2``), or "?"."""
    if ref.kind == "gguf":
        return str(ref.metadata.get("general.architecture") or "?")
    t = ref.metadata.get("model_type")
    if not t:
        try:
            t = json.loads((Path(ref.path) / "config.json").read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError):
            t = None
    return str(t or "?")


def _is_unsupported_architecture(exc: BaseException, model_type: str) -> bool:
    """Whether transformers failed because it does not know the model family (its wording varies by version)."""
    text = str(exc)
    markers = (
        "does not recognize this architecture",
        "is not supported yet",
        "Unrecognized configuration class",
        "Unrecognized model",
        "should have a `model_type` key",
    )
    if any(m in text for m in markers):
        return True
    return isinstance(exc, KeyError) and model_type != "?" and model_type in text


def _load_error(ref: ModelRef, exc: BaseException, device: str, stage: str = "model") -> ModelError:
    """Turn whatever transformers raised while loading into a message a user can act on."""
    import torch

    model_type = _model_type(ref)
    oom_types: tuple[type, ...] = (MemoryError,)
    cuda_oom = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    if isinstance(cuda_oom, type):
        oom_types += (cuda_oom,)
    if isinstance(exc, oom_types) or "out of memory" in str(exc).lower():
        where = "GPU memory" if device.startswith(("cuda", "mps")) else "RAM"
        return ModelError(
            f"Ran out of {where} while loading {ref.display_name} ({ref.path}). Close other programs that use it, "
            "pick a smaller or more quantised model, or load it on another device (--device cpu uses RAM instead of "
            "the GPU)."
        )
    if _is_unsupported_architecture(exc, model_type):
        what = "GGUF architecture" if ref.kind == "gguf" else "model type"
        advice = (
            "Open this GGUF with the llama.cpp backend instead, or use the model's Hugging Face folder."
            if ref.kind == "gguf"
            else "Update transformers if this is a new model family, or pick another model."
        )
        return ModelError(f"transformers cannot run {what} '{model_type}' ({ref.path}): {_one_line(exc)} {advice}")
    if stage == "tokenizer":
        hint = (
            " A Hugging Face model folder needs its tokenizer files (tokenizer.json, or tokenizer.model) next to "
            "config.json: copy the whole folder."
            if ref.kind == "hf"
            else ""
        )
        return ModelError(f"Could not load the tokenizer of the model {ref.path}: {_one_line(exc)}{hint}")
    return ModelError(f"Could not load the model {ref.path}: {_one_line(exc)}")


def _dtype_keyword() -> str:
    """The dtype keyword of the installed transformers: ``dtype`` (4.56+) or ``torch_dtype``."""
    import transformers

    major_minor = tuple(int(x) for x in transformers.__version__.split(".")[:2] if x.isdigit())
    return "dtype" if major_minor >= (4, 56) else "torch_dtype"


def load_hf_model(
    ref: ModelRef,
    device: str = "auto",
    dtype: str = "auto",
    for_training: bool = False,
    *,
    allow_pickle: bool = False,
) -> tuple[Any, Any, str, str]:
    """Load ``ref`` with transformers: returns ``(model, tokenizer, device, dtype)``.

    ``device`` and ``dtype`` are resolved (``auto``) and returned as plain strings, e.g.
    ``("cuda:0", "bfloat16")``. The model is in eval mode with gradients off unless
    ``for_training``. Remote code is never run; only local files are read.
    """
    _refuse_unloadable(ref, allow_pickle)
    torch = _import_torch()
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    for pool, need in memory_needed(ref, device, dtype).items():
        check_memory(ref, need, pool)
    auto_model, auto_tokenizer, hf_logging = _import_transformers()
    where, common, model_kwargs = _pretrained_kwargs(ref, device, getattr(torch, dtype))

    stage = "tokenizer"
    try:
        with _quiet_load(ref, hf_logging):
            tokenizer = auto_tokenizer.from_pretrained(where, **common)
            stage = "model"
            model = auto_model.from_pretrained(where, **common, **model_kwargs)
        if not device.startswith("cuda"):
            model = model.to(device)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - every load failure becomes a ModelError
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        raise _load_error(ref, exc, device, stage) from exc

    if for_training:
        model.train()
    else:
        model.eval()
        model.requires_grad_(False)
    return model, tokenizer, device, dtype


def _refuse_unloadable(ref: ModelRef, allow_pickle: bool) -> None:
    """Refuse pickle weights (they can run code) unless allowed, and anything that is no model."""
    if ref.uses_pickle and not allow_pickle:
        folder = Path(ref.path) if Path(ref.path).is_dir() else Path(ref.path).parent
        weights = sorted(p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        raise ModelError(_pickle_message(weights[0] if weights else Path(ref.path)))
    if ref.kind not in ("hf", "gguf"):
        raise ModelError(f"{ref.path} is neither a Hugging Face folder nor a GGUF file.")


def _import_torch() -> Any:
    """torch, or a ModelError pointing at the llama.cpp backend (the lite edition has no torch)."""
    try:
        import torch
    except ImportError as exc:
        raise ModelError(
            f"The torch backend needs PyTorch, which cannot be imported ({_one_line(exc)}). Reinstall KnowMix, "
            "or use the llama.cpp backend for GGUF files."
        ) from None
    return torch


def _import_transformers() -> tuple[Any, Any, Any]:
    """``(AutoModelForCausalLM, AutoTokenizer, transformers' logging)``, or a ModelError saying what to do."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise ModelError(
            f"The torch backend needs the transformers package, which cannot be imported ({_one_line(exc)}). "
            "Reinstall KnowMix, or use the llama.cpp backend for GGUF files."
        ) from None
    return AutoModelForCausalLM, AutoTokenizer, hf_logging


def _pretrained_kwargs(ref: ModelRef, device: str, torch_dtype: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(where, kwargs for both, kwargs for the model)`` of ``from_pretrained``: local files only, no
    remote code, safetensors unless pickle was allowed, and straight onto the GPU when there is one."""
    path = Path(ref.path)
    common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    if ref.kind == "gguf":
        where, common["gguf_file"] = str(path.parent), path.name
        model_kwargs: dict[str, Any] = {}
    else:
        where = str(path)
        model_kwargs = {"use_safetensors": not ref.uses_pickle}
    model_kwargs[_dtype_keyword()] = torch_dtype
    if device.startswith("cuda"):
        # Load straight onto the GPU (accelerate, a peft dependency) instead of staging a full copy in RAM.
        model_kwargs["device_map"] = {"": device}
    return where, common, model_kwargs


def _gguf_module(ref: ModelRef, name: str) -> Any:
    """``name`` (imported if need be) when loading a GGUF, else None: only GGUF loads are patched."""
    if ref.kind != "gguf":
        return None
    module = sys.modules.get(name)
    if module is None:
        try:
            module = importlib.import_module(name)
        except ImportError:
            module = None
    return module


@contextlib.contextmanager
def _quiet_load(ref: ModelRef, hf_logging: Any) -> Iterator[None]:
    """No progress bars on the user's terminal, and a faster GGUF conversion, for one load.

    The app reports its own progress. transformers' GGUF converter calls tqdm unconditionally, so
    its module's tqdm is swapped for the load. transformers also rebuilds gguf's tensor-name table
    for every module of the model (~400 times, about 6 s for SmolLM2); the table depends only on
    (architecture, layers), so it is memoised for the duration of the load. And it parses the
    whole file with ``GGUFReader`` three times (config, tokenizer, weights: ~8 s each for the
    built-in model's 49k-token vocabulary); the reader is read-only, so one per file serves all three.
    """
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    gguf_utils = _gguf_module(ref, "transformers.modeling_gguf_pytorch_utils")
    gguf_tqdm = getattr(gguf_utils, "tqdm", None)
    if gguf_tqdm is not None:
        gguf_utils.tqdm = functools.partial(gguf_tqdm, disable=True)
    gguf_pkg = _gguf_module(ref, "gguf")
    name_map = getattr(gguf_pkg, "get_tensor_name_map", None)
    if name_map is not None:
        gguf_pkg.get_tensor_name_map = functools.lru_cache(maxsize=None)(name_map)
    reader_class = getattr(gguf_pkg, "GGUFReader", None)
    if reader_class is not None:
        gguf_pkg.GGUFReader = _one_reader_per_file(reader_class)
    try:
        yield
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
        if gguf_tqdm is not None:
            gguf_utils.tqdm = gguf_tqdm
        if name_map is not None:
            gguf_pkg.get_tensor_name_map = name_map
        if reader_class is not None:
            gguf_pkg.GGUFReader = reader_class


def _one_reader_per_file(reader_class: Any) -> Any:
    """``reader_class`` memoised by (path, mode): transformers imports it by name inside each call."""
    readers: dict[tuple[str, str], Any] = {}

    def reader(path: Any, mode: str = "r") -> Any:
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = reader_class(path, mode)
        return readers[key]

    return reader
