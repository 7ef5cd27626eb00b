"""The torch/transformers backend: Hugging Face folders (safetensors) and GGUF files, on GPU or CPU.

Importing this module is cheap: torch and transformers are imported inside the functions that
need them, so ``import core`` (and the CLI's ``--help``) never pays for them.

Decoding is our own loop over the model's forward pass rather than ``model.generate``: it gives
every answer its own seeded random stream and picks tokens with the shared rules in
``sampling.py``, so an answer depends only on its prompt, its settings and its seed, never on
which other answers ran in the same batch. Rows are left-padded, with an attention mask and
explicit position ids (``cumsum(mask) - 1``), so a padded row sees exactly the positions it
would see alone. A prompt asked for several answers is run through the model once and its
KV cache copied to each answer's row; rows that have finished are dropped from the batch.
"""

from __future__ import annotations

import functools
import gc
import inspect
import json
import math
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import ModelError, SettingsError
from ..models import PICKLE_SUFFIXES, ModelRef, _pickle_message, check_memory, model_fingerprint
from .base import Backend, GenRequest, ModelInfo
from .decode import PRUNED
from .sampling import candidates_needed, choose_token, sample_rng

GIB = 1024**3

_DTYPE_NAMES = {
    "auto": "auto",
    "float32": "float32", "fp32": "float32", "f32": "float32",
    "float16": "float16", "fp16": "float16", "f16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
}
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}

# Bits per weight of llama.cpp's file types (general.file_type), to estimate a GGUF's parameter
# count, and so its dequantised size, from the file size. Mixed files keep some tensors at higher
# precision, so these slightly overestimate the count: the memory check errs on the safe side.
_GGUF_FILE_TYPE_BITS = {
    0: 32.0, 1: 16.0, 2: 4.5, 3: 5.0, 7: 8.5, 8: 5.5, 9: 6.0, 10: 2.6, 11: 3.4, 12: 3.9, 13: 4.3,
    14: 4.6, 15: 4.9, 16: 5.5, 17: 5.7, 18: 6.6, 19: 2.1, 20: 2.3, 21: 3.1, 22: 3.4, 23: 1.6,
    24: 1.8, 25: 4.5, 26: 3.4, 27: 2.2, 28: 4.0, 29: 4.5, 30: 5.0, 31: 1.8, 32: 16.0, 33: 4.5,
    34: 4.5, 35: 4.5, 36: 2.1, 37: 1.7,
}
_SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                      "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


# --------------------------------------------------------------------------------------------
# Device, dtype and memory
# --------------------------------------------------------------------------------------------


def resolve_device(device: str = "auto") -> str:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; an explicit choice is checked."""
    import torch

    choice = (device or "auto").strip().lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return "cuda:0"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if choice == "cpu":
        return "cpu"
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SettingsError(
                f"Device '{device}' asks for an NVIDIA GPU, but torch sees no CUDA GPU here. Use device 'auto' or 'cpu', "
                "or install a CUDA build of torch."
            )
        index = 0
        if ":" in choice:
            try:
                index = int(choice.split(":", 1)[1])
            except ValueError:
                raise SettingsError(f"Device '{device}' is not a device name; use cuda, cuda:0, cuda:1, mps or cpu.") from None
        if not 0 <= index < torch.cuda.device_count():
            raise SettingsError(
                f"Device '{device}' does not exist: this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0."
            )
        return f"cuda:{index}"
    if choice == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise SettingsError("Device 'mps' asks for an Apple GPU, but torch cannot use one here. Use 'auto' or 'cpu'.")
        return "mps"
    raise SettingsError(f"Device '{device}' is not a device name; use auto, cuda, cuda:0, mps or cpu.")


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto``: bf16 on CUDA where supported, else fp16 on CUDA and MPS; fp32 on the CPU."""
    import torch

    name = _DTYPE_NAMES.get((dtype or "auto").strip().lower())
    if name is None:
        raise SettingsError(f"dtype '{dtype}' is not one KnowMix knows; use auto, float32, float16 or bfloat16.")
    if name != "auto":
        return name
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device == "mps":
        return "float16"
    return "float32"


def describe_device(device: str) -> str:
    """What the UI shows: ``cuda:0 (NVIDIA H100 80GB HBM3, 79 GiB)``, ``mps (Apple GPU)`` or ``cpu``."""
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":", 1)[1]) if ":" in device else 0
        try:
            props = torch.cuda.get_device_properties(index)
            return f"cuda:{index} ({props.name}, {props.total_memory / GIB:.0f} GiB)"
        except Exception:
            return f"cuda:{index}"
    if device == "mps":
        return "mps (Apple GPU)"
    return device


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
        bits = _GGUF_FILE_TYPE_BITS.get(ref.metadata.get("general.file_type"), 4.0)
        return int(ref.size_bytes * 8 / bits)
    if not ref.uses_pickle:
        counts = [_safetensors_params(p) for p in sorted(Path(ref.path).glob("*.safetensors"))]
        if counts and all(c is not None for c in counts):
            return int(sum(counts))
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
    text = str(exc).strip() or type(exc).__name__
    line = text.splitlines()[0].strip()
    return line if len(line) <= 300 else line[:297] + "..."


def _model_type(ref: ModelRef) -> str:
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
        return ModelError(
            f"transformers cannot run {what} '{model_type}' ({ref.path}): {_one_line(exc)} {advice}"
        )
    if stage == "tokenizer":
        hint = (
            " A Hugging Face model folder needs its tokenizer files (tokenizer.json, or tokenizer.model) next to "
            "config.json: copy the whole folder." if ref.kind == "hf" else ""
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
):
    """Load ``ref`` with transformers: returns ``(model, tokenizer, device, dtype)``.

    ``device`` and ``dtype`` are resolved (``auto``) and returned as plain strings, e.g.
    ``("cuda:0", "bfloat16")``. The model is in eval mode with gradients off unless
    ``for_training``. Remote code is never run; only local files are read.
    """
    if ref.uses_pickle and not allow_pickle:
        folder = Path(ref.path) if Path(ref.path).is_dir() else Path(ref.path).parent
        weights = sorted(p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        raise ModelError(_pickle_message(weights[0] if weights else Path(ref.path)))
    if ref.kind not in ("hf", "gguf"):
        raise ModelError(f"{ref.path} is neither a Hugging Face folder nor a GGUF file.")

    try:
        import torch
    except ImportError as exc:
        raise ModelError(
            f"The torch backend needs PyTorch, which cannot be imported ({_one_line(exc)}). Reinstall KnowMix, "
            "or use the llama.cpp backend for GGUF files."
        ) from None

    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    for pool, need in memory_needed(ref, device, dtype).items():
        check_memory(ref, need, pool)

    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise ModelError(
            f"The torch backend needs the transformers package, which cannot be imported ({_one_line(exc)}). "
            "Reinstall KnowMix, or use the llama.cpp backend for GGUF files."
        ) from None

    torch_dtype = getattr(torch, dtype)
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

    # No progress bars on the user's terminal: the app reports its own progress. transformers'
    # GGUF converter calls tqdm unconditionally, so its module's tqdm is swapped for the load.
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    gguf_utils = sys.modules.get("transformers.modeling_gguf_pytorch_utils") if ref.kind == "gguf" else None
    if ref.kind == "gguf" and gguf_utils is None:
        try:
            import transformers.modeling_gguf_pytorch_utils as gguf_utils
        except ImportError:
            gguf_utils = None
    gguf_tqdm = getattr(gguf_utils, "tqdm", None)
    if gguf_tqdm is not None:
        gguf_utils.tqdm = functools.partial(gguf_tqdm, disable=True)
    # transformers rebuilds gguf's tensor-name table for every module of the model (~400 times,
    # about 6 s for SmolLM2); the table depends only on (architecture, layers), so memoise it
    # for the duration of the load.
    gguf_pkg = sys.modules.get("gguf") if ref.kind == "gguf" else None
    if ref.kind == "gguf" and gguf_pkg is None:
        try:
            import gguf as gguf_pkg
        except ImportError:
            gguf_pkg = None
    name_map = getattr(gguf_pkg, "get_tensor_name_map", None)
    if name_map is not None:
        gguf_pkg.get_tensor_name_map = functools.lru_cache(maxsize=None)(name_map)
    stage = "tokenizer"
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **common)
        stage = "model"
        model = AutoModelForCausalLM.from_pretrained(where, **common, **model_kwargs)
        if not device.startswith("cuda"):
            model = model.to(device)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - every load failure becomes a ModelError
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        raise _load_error(ref, exc, device, stage) from exc
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
        if gguf_tqdm is not None:
            gguf_utils.tqdm = gguf_tqdm
        if name_map is not None:
            gguf_pkg.get_tensor_name_map = name_map

    if for_training:
        model.train()
    else:
        model.eval()
        model.requires_grad_(False)
    return model, tokenizer, device, dtype


# --------------------------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------------------------


@dataclass
class _Row:
    """One answer being decoded."""

    request: int
    answer: int
    prompt: tuple[int, ...]
    temperature: float
    top_k: int
    rng: Any  # random.Random, or None for greedy
    max_tokens: int
    stop: tuple[str, ...]
    prune: Any = None  # GenRequest.prune: stop once the answer can no longer matter
    tokens: list[int] = field(default_factory=list)
    text: Optional[str] = None


class TorchBackend(Backend):
    """Answers prompts with a transformers causal LM; see the module docstring."""

    name = "torch"

    def __init__(
        self,
        ref: ModelRef,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: Optional[int] = None,
        allow_pickle: bool = False,
    ) -> None:
        super().__init__()
        if batch_size is not None and batch_size < 1:
            raise SettingsError(f"batch size must be at least 1, not {batch_size}.")
        self.ref = ref
        started = time.perf_counter()
        model, tokenizer, device, dtype = load_hf_model(ref, device, dtype, for_training=False, allow_pickle=allow_pickle)
        self.load_seconds = time.perf_counter() - started
        self._attach(model, tokenizer, device, dtype, batch_size)

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        device: str,
        dtype: str,
        *,
        batch_size: Optional[int] = None,
        ref: Optional[ModelRef] = None,
    ) -> "TorchBackend":
        """Decode with a model that is already loaded (e.g. one being fine-tuned) instead of loading ``ref``.

        A peft model may be passed as is: its base model (with the adapter layers injected) is
        what runs. The caller keeps ownership; ``close()`` only drops this backend's reference,
        and the model's train/eval mode is the caller's business.
        """
        if batch_size is not None and batch_size < 1:
            raise SettingsError(f"batch size must be at least 1, not {batch_size}.")
        self = cls.__new__(cls)
        Backend.__init__(self)
        self.ref = ref
        self.load_seconds = 0.0
        get_base = getattr(model, "get_base_model", None)
        self._attach(get_base() if callable(get_base) else model, tokenizer, device, dtype, batch_size)
        return self

    def _attach(self, model: Any, tokenizer: Any, device: str, dtype: str, batch_size: Optional[int]) -> None:
        self.model, self.tokenizer, self.device, self.dtype = model, tokenizer, device, dtype
        self.batch_size = batch_size or (64 if self.device.startswith("cuda") else 16)

        import torch

        self._torch = torch
        config = self.model.config
        params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._keep_kw = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
        self._eos = self._eos_ids()
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = next(iter(sorted(self._eos)), 0)
        self._pad = int(pad)
        self._context = getattr(config, "max_position_embeddings", None)
        architectures = getattr(config, "architectures", None) or [type(self.model).__name__]
        ref = self.ref
        self.info = ModelInfo(
            name=ref.display_name if ref is not None else str(getattr(config, "_name_or_path", "") or type(self.model).__name__),
            path=str(ref.path) if ref is not None else "",
            backend=self.name,
            device=describe_device(self.device),
            fingerprint=model_fingerprint(ref) if ref is not None else "",
            file_size=ref.size_bytes if ref is not None else 0,
            context_length=self._context,
            n_params=sum(p.numel() for p in self.model.parameters()),
            architecture=str(architectures[0]),
            dtype=self.dtype,
            extra={
                "batch_size": self.batch_size,
                "load_seconds": round(self.load_seconds, 2),
                "model_type": getattr(config, "model_type", None),
                "torch": torch.__version__,
                "cpu_threads": torch.get_num_threads(),
                "transformers": _transformers_version(),
            },
        )

    # ------------------------------------------------------------------ helpers

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (
            getattr(self.tokenizer, "eos_token_id", None),
            getattr(getattr(self.model, "generation_config", None), "eos_token_id", None),
            getattr(self.model.config, "eos_token_id", None),
        ):
            if source is None:
                continue
            if isinstance(source, int):
                ids.add(source)
            else:
                ids.update(int(x) for x in source if x is not None)
        return ids

    def _encode(self, prompt: str) -> tuple[int, ...]:
        ids = list(self.tokenizer(prompt)["input_ids"])  # the tokenizer's own special-token rules
        if not ids:
            bos = getattr(self.tokenizer, "bos_token_id", None)
            if bos is None:
                raise SettingsError("A prompt is empty; the model needs at least one token to answer.")
            ids = [int(bos)]
        return tuple(int(t) for t in ids)

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def _forward(self, **kwargs: Any):
        cache = kwargs.pop("cache", None)
        if cache is not None:
            kwargs[self._cache_kw] = cache
        if self._keep_kw is not None:
            kwargs[self._keep_kw] = 1
        out = self.model(use_cache=True, **kwargs)
        self.stats.forward_calls += 1
        new_cache = getattr(out, "cache", None) if self._cache_kw == "cache" else None
        if new_cache is None:
            new_cache = out.past_key_values
        return out.logits[:, -1, :].float(), new_cache

    @staticmethod
    def _select(cache: Any, index: Any) -> Any:
        """Keep (or repeat) batch rows ``index`` of a KV cache."""
        if hasattr(cache, "reorder_cache"):
            cache.reorder_cache(index)
            return cache
        return tuple(tuple(t.index_select(0, index.to(t.device)) for t in layer) for layer in cache)  # legacy tuples

    # ------------------------------------------------------------------ token choice

    def _choose(self, logits: Any, rows: Sequence[_Row]) -> list[int]:
        """One token per row, with the shared rules: top candidates (lower id wins ties), then ``choose_token``."""
        torch = self._torch
        vocab = int(logits.shape[-1])
        ks = [candidates_needed(r.temperature, r.top_k, vocab) for r in rows]
        kmax = max(ks)
        values, ids = torch.topk(logits, kmax, dim=-1, largest=True, sorted=True)
        # Ties at the k-th place: torch.topk may keep any of the tied ids, the shared rule keeps the lowest.
        k_index = torch.tensor([k - 1 for k in ks], device=logits.device).unsqueeze(1)
        threshold = values.gather(1, k_index)
        at_least = (logits >= threshold).sum(dim=1)
        values_np = values.cpu().numpy()
        ids_np = ids.cpu().numpy()
        at_least_np = at_least.cpu().numpy()
        chosen: list[int] = []
        for b, (row, k) in enumerate(zip(rows, ks)):
            if at_least_np[b] > k:
                cand = torch.nonzero(logits[b] >= threshold[b, 0]).squeeze(1)
                cand_ids = cand.cpu().numpy()
                cand_vals = logits[b, cand].cpu().numpy()
            else:
                cand_ids, cand_vals = ids_np[b, :k], values_np[b, :k]
            order = np.lexsort((cand_ids, -cand_vals))[:k]
            top_ids = cand_ids[order].astype(np.int64)
            top_vals = cand_vals[order].astype(np.float32)
            u = row.rng.random() if row.rng is not None else 0.0
            chosen.append(choose_token(top_ids, top_vals, row.temperature, u))
        return chosen

    # ------------------------------------------------------------------ generation

    def generate(self, requests: Sequence[GenRequest]) -> list[list[str]]:
        results: list[list[str]] = [[""] * r.n for r in requests]
        if not requests:
            return results
        encoded: dict[str, tuple[int, ...]] = {}
        for r in requests:
            if r.prompt not in encoded:
                encoded[r.prompt] = self._encode(r.prompt)
            if self._context and len(encoded[r.prompt]) + r.max_tokens > self._context:
                raise SettingsError(
                    f"A prompt is {len(encoded[r.prompt])} tokens long; with up to {r.max_tokens} answer tokens it does "
                    f"not fit the model's context of {self._context} tokens. Use fewer or shorter exemplars."
                )
        # Similar lengths together (less padding) and equal prompts next to each other (one prefill).
        order = sorted(range(len(requests)), key=lambda i: (len(encoded[requests[i].prompt]), requests[i].prompt, i))
        rows: list[_Row] = []
        for i in order:
            r = requests[i]
            for j in range(r.n):
                rows.append(_Row(
                    request=i, answer=j, prompt=encoded[r.prompt], temperature=float(r.temperature), top_k=r.top_k,
                    rng=None if r.greedy else sample_rng(r.seeds[j]), max_tokens=r.max_tokens, stop=tuple(r.stop),
                    prune=r.prune,
                ))
        torch = self._torch
        with torch.inference_mode():
            for start in range(0, len(rows), self.batch_size):
                self._run_chunk(rows[start:start + self.batch_size])
        for row in rows:
            results[row.request][row.answer] = (row.text or "").strip()
        self.stats.requests += len(requests)
        self.stats.answers += len(rows)
        return results

    def _run_chunk(self, rows: list[_Row]) -> None:
        torch = self._torch
        dev = self.model.device if hasattr(self.model, "device") else self.device

        # Prefill each distinct prompt once, left-padded.
        unique: dict[tuple[int, ...], int] = {}
        row_prompt = [unique.setdefault(r.prompt, len(unique)) for r in rows]
        prompts = list(unique)
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for u, p in enumerate(prompts):
            input_ids[u, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[u, width - len(p):] = 1
        input_ids, mask = input_ids.to(dev), mask.to(dev)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits, cache = self._forward(input_ids=input_ids, attention_mask=mask, position_ids=positions)
        self.stats.tokens_evaluated += sum(len(p) for p in prompts)

        if len(prompts) < len(rows) or row_prompt != list(range(len(rows))):
            index = torch.tensor(row_prompt, dtype=torch.long, device=dev)
            cache = self._select(cache, index)
            logits, mask = logits.index_select(0, index), mask.index_select(0, index)
        next_pos = torch.tensor([len(r.prompt) for r in rows], dtype=torch.long, device=dev)

        active = list(range(len(rows)))  # rows[active[b]] is batch row b
        while True:
            tokens = self._choose(logits, [rows[a] for a in active])
            keep: list[int] = []
            feed: list[int] = []
            for b, (a, tok) in enumerate(zip(active, tokens)):
                row = rows[a]
                if tok in self._eos:
                    row.text = self._decode(row.tokens)
                    continue
                row.tokens.append(tok)
                text = self._decode(row.tokens)
                cut = _first_stop(text, row.stop)
                if cut is not None:
                    row.text = text[:cut]
                    continue
                if row.prune is not None and row.prune(text):
                    row.text = text.strip() + PRUNED
                    continue
                if len(row.tokens) >= row.max_tokens:
                    row.text = text
                    continue
                keep.append(b)
                feed.append(tok)
            if not keep:
                return
            if len(keep) < len(active):
                index = torch.tensor(keep, dtype=torch.long, device=dev)
                cache = self._select(cache, index)
                mask, next_pos = mask.index_select(0, index), next_pos.index_select(0, index)
                active = [active[b] for b in keep]
            mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=dev)], dim=1)
            step = torch.tensor(feed, dtype=torch.long, device=dev).unsqueeze(1)
            logits, cache = self._forward(
                input_ids=step, attention_mask=mask, position_ids=next_pos.unsqueeze(1), cache=cache
            )
            self.stats.tokens_evaluated += len(active)
            next_pos = next_pos + 1

    # ------------------------------------------------------------------ cleanup

    def close(self) -> None:
        model = getattr(self, "model", None)
        if model is None:
            return
        on_cuda = str(getattr(self, "device", "")).startswith("cuda")
        self.model = None
        del model
        gc.collect()
        if on_cuda:
            self._torch.cuda.empty_cache()


def _first_stop(text: str, stops: Sequence[str]) -> Optional[int]:
    """Where the earliest stop string starts in ``text``, or None."""
    best: Optional[int] = None
    for s in stops:
        if not s:
            continue
        i = text.find(s)
        if i >= 0 and (best is None or i < best):
            best = i
    return best


def _transformers_version() -> Optional[str]:
    try:
        import transformers

        return transformers.__version__
    except Exception:
        return None
