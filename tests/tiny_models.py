"""Tiny, randomly initialised Hugging Face models built on the spot (no downloads) for fast tests.

``make_tiny_llama`` writes a folder that ``core.models.resolve_model`` accepts: config.json,
model.safetensors and a byte-level BPE tokenizer trained in-process, so any short text
round-trips through it. Building one takes well under a second.
"""

from __future__ import annotations

from pathlib import Path

_WORDS = """
the of and to in is was for on as with by at from that this which who what where when how
capital city country river mountain born died wrote painted founded located language author
France Paris Italy Rome Germany Berlin Spain Madrid Japan Tokyo Canada Ottawa Brazil Egypt Cairo
Q A question answer yes no unknown I don't know name year place people company team music
0 1 2 3 4 5 6 7 8 9 10 12 20 42 100 1900 1984 2024
a b c d e f g h i j k l m n o p q r s t u v w x y z
""".split()


def _corpus() -> list[str]:
    lines = []
    for i, w in enumerate(_WORDS):
        nxt = _WORDS[(i * 7 + 3) % len(_WORDS)]
        lines.append(f"Q: What is the {w} of {nxt}?\nA: {nxt} {w}\n\n")
        lines.append(f"{w.capitalize()}, {nxt}. {i} {w}: {nxt}!")
    return lines


def make_tiny_tokenizer(vocab_size: int = 400):
    """A byte-level BPE tokenizer (GPT-2 style) wrapped for transformers; ids 0-2 are special."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|pad|>", "<|bos|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|pad|>",
        bos_token="<|bos|>",
        clean_up_tokenization_spaces=False,
    )


def _build(folder: Path, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.2,  # peakier logits than the default 0.02, so greedy has no near-ties
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    tokenizer.save_pretrained(folder)
    return model, tokenizer, folder


def make_tiny_llama(folder: Path, seed: int = 0) -> Path:
    """Write a tiny random LlamaForCausalLM (safetensors) and its tokenizer into ``folder``."""
    model, _tok, folder = _build(folder, seed)
    model.save_pretrained(folder)
    return folder


def make_tiny_llama_pickle(folder: Path, seed: int = 0) -> Path:
    """The same model saved as PyTorch pickle weights (pytorch_model.bin), no safetensors."""
    import torch

    model, _tok, folder = _build(folder, seed)
    model.save_pretrained(folder)  # transformers 5 writes safetensors only; swap them for a pickle
    for f in folder.glob("*.safetensors"):
        f.unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder
