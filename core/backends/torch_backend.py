"""The torch/transformers backend: Hugging Face folders (safetensors) and GGUF files, on GPU or CPU.

Importing this module is cheap: torch and transformers are imported inside the functions that
need them, so ``import core`` (and the CLI's ``--help``) never pays for them. Loading (device,
dtype, the memory check, ``from_pretrained``) lives in ``torch_loading``; its names are
re-exported here, where the trainer, the doctor and the benchmarks import them from.

Decoding is our own loop over the model's forward pass rather than ``model.generate``: it gives
every answer its own seeded random stream and picks tokens with the shared rules in
``sampling.py``, so an answer depends only on its prompt, its settings and its seed, never on
which other answers ran in the same batch. Rows are left-padded, with an attention mask and
explicit position ids (``cumsum(mask) - 1``), so a padded row sees exactly the positions it
would see alone. A prompt asked for several answers is run through the model once and its
KV cache copied to each answer's row; rows that have finished are dropped from the batch.
"""

from __future__ import annotations

import gc
import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..devices import describe_device, resolve_device
from ..errors import ModelError, SettingsError
from ..formats import GIB
from ..models import ModelRef, model_fingerprint
from .base import Backend, GenRequest, ModelInfo
from .decode import PRUNED
from .sampling import candidates_needed, choose_token, sample_rng
from .torch_loading import (
    estimate_params,
    load_hf_model,
    memory_needed,
    resolve_dtype,
)

__all__ = [
    "TorchBackend",
    "GIB",
    "describe_device",
    "estimate_params",
    "load_hf_model",
    "memory_needed",
    "resolve_device",
    "resolve_dtype",
]


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
        adapter: Optional[str] = None,
    ) -> None:
        """``adapter``: a peft LoRA folder (a KnowMix training run's) merged into the weights, as
        ``knowmix check`` asks the trained model; its weights' hash joins the fingerprint."""
        super().__init__()
        if batch_size is not None and batch_size < 1:
            raise SettingsError(f"batch size must be at least 1, not {batch_size}.")
        self.ref: Optional[ModelRef] = ref  # None for a model passed to from_model without one
        started = time.perf_counter()
        model, tokenizer, device, dtype = load_hf_model(ref, device, dtype, for_training=False, allow_pickle=allow_pickle)
        if adapter:
            model = _with_adapter(model, adapter)
        self.load_seconds = time.perf_counter() - started
        self._attach(model, tokenizer, device, dtype, batch_size)
        if adapter:
            import hashlib

            weights = Path(adapter) / "adapter_model.safetensors"
            digest = hashlib.sha256(weights.read_bytes()).hexdigest()
            self.info.fingerprint = hashlib.sha256(f"{self.info.fingerprint}|lora|{digest}".encode()).hexdigest()
            self.info.extra["adapter"] = str(adapter)

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
                **(
                    {
                        "chat_template": self.tokenizer.chat_template,
                        "bos_token": str(getattr(self.tokenizer, "bos_token", None) or ""),
                        "eos_token": str(getattr(self.tokenizer, "eos_token", None) or ""),
                    }
                    if isinstance(getattr(self.tokenizer, "chat_template", None), str)
                    else {}
                ),
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

    def _encode(self, prompt: str, chat: bool = False) -> tuple[int, ...]:
        # the tokenizer's own special-token rules; a chat-template prompt already holds them
        ids = list(self.tokenizer(prompt, add_special_tokens=not chat)["input_ids"])
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
                encoded[r.prompt] = self._encode(r.prompt, r.chat)
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
                rows.append(
                    _Row(
                        request=i,
                        answer=j,
                        prompt=encoded[r.prompt],
                        temperature=float(r.temperature),
                        top_k=r.top_k,
                        rng=None if r.greedy else sample_rng(r.seeds[j]),
                        max_tokens=r.max_tokens,
                        stop=tuple(r.stop),
                        prune=r.prune,
                    )
                )
        torch = self._torch
        with torch.inference_mode():
            for start in range(0, len(rows), self.batch_size):
                self._run_chunk(rows[start : start + self.batch_size])
        for row in rows:
            results[row.request][row.answer] = (row.text or "").strip()
        self.stats.requests += len(requests)
        self.stats.answers += len(rows)
        return results

    def _run_chunk(self, rows: list[_Row]) -> None:
        """Decode ``rows`` as one batch until each has ended; finished rows leave the batch (and its cache)."""
        torch = self._torch
        dev = self.model.device if hasattr(self.model, "device") else self.device
        logits, cache, mask = self._prefill(rows, dev)
        next_pos = torch.tensor([len(r.prompt) for r in rows], dtype=torch.long, device=dev)

        active = list(range(len(rows)))  # rows[active[b]] is batch row b
        while True:
            tokens = self._choose(logits, [rows[a] for a in active])
            keep: list[int] = []
            feed: list[int] = []
            for b, (a, tok) in enumerate(zip(active, tokens)):
                if not self._ended(rows[a], tok):
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
            logits, cache = self._forward(input_ids=step, attention_mask=mask, position_ids=next_pos.unsqueeze(1), cache=cache)
            self.stats.tokens_evaluated += len(active)
            next_pos = next_pos + 1

    def _prefill(self, rows: list[_Row], dev: Any) -> tuple[Any, Any, Any]:
        """Run each distinct prompt once, left-padded, and copy its logits and cache to each of its rows.

        Returns ``(logits, cache, attention mask)`` with one batch row per entry of ``rows``.
        """
        torch = self._torch
        unique: dict[tuple[int, ...], int] = {}
        row_prompt = [unique.setdefault(r.prompt, len(unique)) for r in rows]
        prompts = list(unique)
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for u, p in enumerate(prompts):
            input_ids[u, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[u, width - len(p) :] = 1
        input_ids, mask = input_ids.to(dev), mask.to(dev)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits, cache = self._forward(input_ids=input_ids, attention_mask=mask, position_ids=positions)
        self.stats.tokens_evaluated += sum(len(p) for p in prompts)
        if len(prompts) < len(rows) or row_prompt != list(range(len(rows))):
            index = torch.tensor(row_prompt, dtype=torch.long, device=dev)
            cache = self._select(cache, index)
            logits, mask = logits.index_select(0, index), mask.index_select(0, index)
        return logits, cache, mask

    def _ended(self, row: _Row, tok: int) -> bool:
        """Add ``tok`` to ``row``; True (with ``row.text`` set) when the answer ended: EOS, a stop
        string, its prune rule or its token limit."""
        if tok in self._eos:
            row.text = self._decode(row.tokens)
            return True
        row.tokens.append(tok)
        text = self._decode(row.tokens)
        cut = _first_stop(text, row.stop)
        if cut is not None:
            row.text = text[:cut]
            return True
        if row.prune is not None and row.prune(text):
            row.text = text.strip() + PRUNED
            return True
        if len(row.tokens) >= row.max_tokens:
            row.text = text
            return True
        return False

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


def _with_adapter(model: Any, adapter: str) -> Any:
    """``model`` with the peft adapter in ``adapter`` merged in (plain weights again: as fast as the base)."""
    from peft import PeftModel

    folder = Path(adapter)
    if not (folder / "adapter_config.json").is_file() or not (folder / "adapter_model.safetensors").is_file():
        raise ModelError(f"{folder} is not a LoRA adapter folder (adapter_config.json and adapter_model.safetensors).")
    try:
        peft_model = PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    except (ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(
            f"The adapter in {folder} does not fit this model ({exc}). Check it with the model it was trained on."
        ) from None
    merged = peft_model.merge_and_unload()
    merged.eval()
    return merged
