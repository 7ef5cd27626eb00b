"""The training loss: summed cross-entropy over the answer tokens only, the prompt masked out.

The model learns to answer, not to repeat questions, so prompt tokens carry label -100. On short
QA examples most tokens are prompt and the vocabulary projection is a large share of a small
model's work, so where it gives the model's own loss the fast path sends only the answer
positions through the output layer; ``AnswerLoss`` checks that once, on real batches, and falls
back to the plain forward pass for models that scale or cap their logits.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

_LOGIT_SCALERS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


class AnswerLoss:
    """Batches of encoded items, and their summed answer-token loss, for one peft-wrapped model."""

    def __init__(self, model: Any, base: Any, encoded: list[tuple[list[int], int]], pad: int, device: str, dtype: str) -> None:
        import torch

        self.torch = torch
        self.model = model
        self.base = base
        self.encoded = encoded  # (token ids, prompt length) per training item
        self.pad = pad
        self.device = device
        self.dtype = dtype
        self.decoder_module: Any = None
        self.head: Any = None
        self.fast = self._check_fast()

    def batch(self, indices: Sequence[int]) -> tuple[Any, Any, Any]:
        """``(input_ids, attention_mask, labels)`` on the device, right-padded; labels only on answers."""
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
            labels[r, n_prompt : len(ids)] = t[n_prompt:]
        dev = self.device
        return input_ids.to(dev), mask.to(dev), labels.to(dev)

    def loss_sum(self, input_ids: Any, mask: Any, labels: Any, fast: Optional[bool] = None) -> Any:
        """Summed cross-entropy over the answer tokens (the prompt is masked out)."""
        torch = self.torch
        fast = self.fast if fast is None else fast
        targets = labels[:, 1:]
        keep = targets != -100
        if fast:
            hidden = self.decoder_module(input_ids=input_ids, attention_mask=mask, use_cache=False)[0]
            logits = self.head(hidden[:, :-1][keep]).float()
        else:
            out = self.model(input_ids=input_ids, attention_mask=mask, use_cache=False)
            logits = out.logits[:, :-1][keep].float()
        return torch.nn.functional.cross_entropy(logits, targets[keep], reduction="sum")

    def _check_fast(self) -> bool:
        """Use the answer-positions-only loss when it gives the model's own loss (checked once, in eval mode)."""
        config = getattr(self.base, "config", None)
        if any(getattr(config, attr, None) not in (None, 1, 1.0) for attr in _LOGIT_SCALERS):
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
            with self.torch.no_grad():
                batch = self.batch(indices)
                full = float(self.loss_sum(*batch, fast=False))
                part = float(self.loss_sum(*batch, fast=True))
        except Exception:  # noqa: BLE001 - any surprise: use the plain path
            return False
        finally:
            self.model.train()
        tol = 1e-4 if self.dtype == "float32" else 2e-2
        return math.isfinite(full) and abs(full - part) <= tol * max(1.0, abs(full))
