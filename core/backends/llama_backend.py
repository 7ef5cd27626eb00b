"""llama.cpp backend: GGUF models on the CPU, with the KV cache reused across prompts.

The probe sends prompts ordered so that consecutive ones share their few-shot exemplar
prefix; this backend keeps llama.cpp's single KV cache and only evaluates the tokens after the
longest common prefix with what is already cached. Answers are decoded over a ``TrieCache``
(see ``decode.py``), so the greedy answer and the samples of a prompt share evaluated tokens.

**A prefix gets the same candidates however it was reached.** Reusing the cache means a token is
evaluated in one pass with whatever else was not cached yet, and llama.cpp's numbers depend on
that: without flash attention, two tokens in a pass already differ from one and one (up to 1.0 in
a logit on the built-in model); with flash attention, passes of up to 63 tokens give exactly the
numbers of one token at a time, and 64 or more do not (measured on this build, AVX2). A near-tie
then turned on what the cache happened to hold: the prompt asked just before, so the lazy and the
full probe schedules, a probe and its resumed run, or a seed asked alone and among others could
answer differently. So flash attention is on and no pass holds more than ``MAX_PASS`` tokens:
the candidates after a prompt and a generated prefix are those of evaluating it token by token,
whatever was asked before (``tests/test_llama_backend.py``). It costs nothing measurable: flash
attention is the faster path here, and a prompt is rarely longer than one pass.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..errors import ModelError
from ..models import ModelRef, check_memory, model_fingerprint
from .base import Backend, GenRequest, ModelInfo
from .decode import TrieCache, decode_answers
from .sampling import candidates_needed, top_candidates

DEFAULT_N_CTX = 2048
KEEP_CANDIDATES = 40  # the paper's top-k; greedy and T=0.5/top-40 answers share cached nodes
MAX_PASS = 32  # tokens per llama_decode: at most 63 give the numbers of one at a time (the module's note)


class LlamaCppBackend(Backend):
    name = "llama.cpp"

    def __init__(
        self,
        ref: ModelRef,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        fingerprint: str | None = None,
        lora_path: str | None = None,
    ) -> None:
        """``lora_path``: a GGUF LoRA applied on top (``knowmix check`` asks the trained model this way);
        the caller's ``fingerprint`` should then name the pair."""
        super().__init__()
        if ref.kind != "gguf":
            raise ModelError(
                f"{ref.path} is a Hugging Face folder; the llama.cpp backend reads GGUF files. Use the torch backend for it."
            )
        try:
            from ..llama_cpu import ensure_backend_loaded

            ensure_backend_loaded()  # a build with CPU variants: load one that runs here (see llama_cpu.py)
            import llama_cpp
        except ImportError:
            raise ModelError(
                "The llama.cpp backend is not installed (llama-cpp-python). Reinstall KnowMix, or use the torch backend."
            ) from None
        ctx_train = int(ref.metadata.get(f"{ref.metadata.get('general.architecture', 'llama')}.context_length", 0) or 0)
        n_ctx = n_ctx or (min(ctx_train, DEFAULT_N_CTX) if ctx_train else DEFAULT_N_CTX)
        check_memory(ref, int(ref.size_bytes * 1.1) + 64 * 1024 * 1024)
        threads = n_threads or int(os.environ.get("KNOWMIX_THREADS") or 0) or max(1, os.cpu_count() or 1)
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(ref.path),
                n_ctx=n_ctx,
                n_batch=512,
                n_threads=threads,
                n_threads_batch=threads,
                logits_all=False,
                flash_attn=True,  # with MAX_PASS: the same numbers however the cache was reached
                verbose=False,
                seed=0,
                lora_path=str(lora_path) if lora_path else None,
            )
        except MemoryError:
            raise ModelError(
                f"Not enough memory to load {ref.display_name}. Close other programs or pick a smaller model."
            ) from None
        except (ValueError, RuntimeError) as exc:
            arch = ref.metadata.get("general.architecture", "unknown")
            raise ModelError(
                f"llama.cpp could not load {ref.path} (architecture '{arch}'): the file may be damaged, or made for a "
                f"newer llama.cpp than this KnowMix carries. ({exc})"
            ) from None
        self.ref = ref
        self._n_ctx = self.llm.n_ctx()
        self._vocab = self.llm.n_vocab()
        vocab_handle = self.llm._model.vocab
        self._eog = (
            {t for t in range(self._vocab) if llama_cpp.llama_vocab_is_eog(vocab_handle, t)} if self._vocab <= 300_000 else set()
        )
        self._eog.add(self.llm.token_eos())
        self._tries = TrieCache()
        self.truncated_prompts = 0
        self.info = ModelInfo(
            name=ref.display_name,
            path=str(ref.path),
            backend=self.name,
            device=f"cpu ({threads} threads)",
            fingerprint=fingerprint or model_fingerprint(ref),
            file_size=ref.size_bytes,
            context_length=ctx_train or None,
            architecture=str(ref.metadata.get("general.architecture")),
            dtype=_file_type(ref.metadata.get("general.file_type")),
            extra={"n_ctx": self._n_ctx, **_chat_template(ref.metadata)},
        )

    # -- the KV cache --------------------------------------------------------------------------
    def _logits_after(self, tokens: np.ndarray) -> np.ndarray:
        """Make the KV cache hold exactly ``tokens`` and return the logits after the last one."""
        llm = self.llm
        cached = llm.input_ids[: llm.n_tokens]
        n = min(len(cached), len(tokens))
        same = np.flatnonzero(cached[:n] != tokens[:n])
        common = int(same[0]) if same.size else n
        if common >= len(tokens):
            common = len(tokens) - 1  # the logits of the last token are needed again
        llm.n_tokens = common
        for at in range(common, len(tokens), MAX_PASS):
            todo = tokens[at : at + MAX_PASS]
            llm.eval(todo.tolist())
            self.stats.forward_calls += 1
            self.stats.tokens_evaluated += int(len(todo))
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(self._vocab,)).copy()

    def _tokenize(self, prompt: str, room: int, chat: bool = False) -> np.ndarray:
        # a chat-template prompt holds its own BOS and special tokens (as llama-cpp-python's
        # Jinja2ChatFormatter output is tokenized: add_bos=False, special=True)
        toks = self.llm.tokenize(prompt.encode("utf-8"), add_bos=not chat, special=chat)
        if len(toks) > room:
            self.truncated_prompts += 1
            toks = toks[-room:]
        return np.asarray(toks, dtype=np.intc)

    def generate(self, requests: Sequence[GenRequest]) -> list[list[str]]:
        out: list[list[str]] = []
        for req in requests:
            max_new = min(req.max_tokens, max(1, self._n_ctx // 4))
            prompt = self._tokenize(req.prompt, self._n_ctx - max_new, req.chat)
            keep = max(KEEP_CANDIDATES, candidates_needed(req.temperature, req.top_k, self._vocab))
            trie = self._tries.get(tuple(prompt.tolist()), keep)

            def evaluate(gen: tuple[int, ...], prompt: np.ndarray = prompt, keep: int = keep):
                seq = np.concatenate([prompt, np.asarray(gen, dtype=np.intc)]) if gen else prompt
                return top_candidates(self._logits_after(seq), keep)

            answers = decode_answers(req, trie, evaluate, self._detokenize, self._eog.__contains__, max_new)
            out.append(answers)
            self.stats.requests += 1
            self.stats.answers += len(answers)
        return out

    def _detokenize(self, toks: list[int]) -> str:
        return self.llm.detokenize(toks).decode("utf-8", errors="ignore")

    def reset_cache(self) -> None:
        """Forget every cached prefix (the naive baseline of the benchmark uses this)."""
        self._tries.clear()
        self.llm.reset()

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            try:
                llm.close()
            except Exception:
                pass
            self.llm = None  # type: ignore[assignment]


def _chat_template(meta: dict) -> dict:
    """The GGUF's chat template and the BOS/EOS token texts it is rendered with (empty without one)."""
    template = meta.get("tokenizer.chat_template")
    if not isinstance(template, str) or not template:
        return {}
    tokens = meta.get("tokenizer.ggml.tokens") or []

    def text(key: str) -> str:
        i = meta.get(key)
        return str(tokens[i]) if isinstance(i, int) and 0 <= i < len(tokens) else ""

    return {
        "chat_template": template,
        "bos_token": text("tokenizer.ggml.bos_token_id"),
        "eos_token": text("tokenizer.ggml.eos_token_id"),
    }


_FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    32: "BF16",
}


def _file_type(code: object) -> str | None:
    return _FILE_TYPES.get(code, f"type {code}") if isinstance(code, int) else None
