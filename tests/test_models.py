"""Tests for core.models: finding the built-in model, refusing bad files with a clear message,
fingerprinting weights, and the free-memory check.

A wrong model file must give a ``ModelError`` whose text tells the user what is wrong (truncated,
not a model, pickle weights, no config.json) before llama.cpp or transformers ever see it.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

import core.models as models
from core.errors import ModelError
from core.models import (
    DEFAULT_MODEL_NAME,
    ModelRef,
    check_memory,
    model_fingerprint,
    read_gguf_metadata,
    resolve_model,
)

MiB = 1024**2
GiB = 1024**3


# ----------------------------------------------------------------------------- helpers


def _gguf_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def write_fake_gguf(
    path: Path, *, name: str = "tiny-test-model", n_data: int = 64, version: int = 3, declared_data: int | None = None
) -> Path:
    """A minimal, well-formed GGUF: two string keys and one F32 tensor of ``n_data`` bytes.

    ``declared_data`` lets a test claim a tensor offset past the end of the file.
    """
    kv = [("general.architecture", "llama"), ("general.name", name)]
    body = b"GGUF" + struct.pack("<I", version) + struct.pack("<Q", 1) + struct.pack("<Q", len(kv))
    for key, value in kv:
        body += _gguf_string(key) + struct.pack("<I", 8) + _gguf_string(value)
    n_floats = n_data // 4
    offset = 0 if declared_data is None else declared_data
    # tensor info: name, n_dims, dims, type (0 = F32), offset into the data section
    body += _gguf_string("weight") + struct.pack("<I", 1) + struct.pack("<Q", n_floats) + struct.pack("<I", 0)
    body += struct.pack("<Q", offset)
    pad = (-len(body)) % 32
    body += b"\0" * pad
    body += bytes(range(256)) * (n_data // 256) + bytes(n_data % 256)
    path.write_bytes(body)
    return path


def write_safetensors(path: Path, n_floats: int = 8) -> Path:
    header = {
        "weight": {"dtype": "F32", "shape": [n_floats], "data_offsets": [0, 4 * n_floats]},
        "__metadata__": {"format": "pt"},
    }
    raw = json.dumps(header).encode("utf-8")
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + struct.pack(f"<{n_floats}f", *range(n_floats)))
    return path


def write_hf_folder(folder: Path, *, weights: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "max_position_embeddings": 256,
            }
        ),
        encoding="utf-8",
    )
    if weights:
        write_safetensors(folder / "model.safetensors")
    return folder


@pytest.fixture(scope="module")
def default_gguf() -> Path:
    return resolve_model("default").path


def truncated_copy(src: Path, dst: Path, n_bytes: int) -> Path:
    with open(src, "rb") as fh:
        dst.write_bytes(fh.read(n_bytes))
    return dst


def model_error(spec, **kwargs) -> str:
    with pytest.raises(ModelError) as exc:
        resolve_model(spec, **kwargs)
    return str(exc.value)


# ----------------------------------------------------------------------------- the built-in model


def test_default_model_is_found_and_checked() -> None:
    ref = resolve_model("default")
    assert ref.kind == "gguf"
    assert ref.is_default
    assert ref.display_name == DEFAULT_MODEL_NAME
    assert ref.path.is_file() and ref.path.suffix == ".gguf"
    assert ref.path.name.startswith("SmolLM2-135M-Instruct")
    assert ref.size_bytes == ref.path.stat().st_size > 10 * MiB
    assert ref.metadata.get("general.architecture") == "llama"
    assert ref.metadata["_n_tensors"] > 0


def test_default_is_case_and_space_insensitive() -> None:
    assert resolve_model("  Default ").path == resolve_model("default").path


def test_default_model_override_that_is_missing_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KNOWMIX_DEFAULT_MODEL", str(tmp_path / "gone.gguf"))
    text = model_error("default")
    assert "built-in model" in text and "gone.gguf" in text
    assert "--model" in text


# ----------------------------------------------------------------------------- GGUF files


@pytest.mark.parametrize("n_bytes", [10 * MiB, 2048], ids=["first-10MB", "first-2KB"])
def test_truncated_default_gguf_is_refused(default_gguf: Path, tmp_path: Path, n_bytes: int) -> None:
    bad = truncated_copy(default_gguf, tmp_path / "cut.gguf", n_bytes)
    text = model_error(bad)
    assert "truncated" in text
    assert "cut.gguf" in text
    assert "again" in text  # tells the user what to do


def test_load_backend_on_truncated_gguf_raises_model_error(default_gguf: Path, tmp_path: Path) -> None:
    from core.backends import load_backend

    bad = truncated_copy(default_gguf, tmp_path / "cut.gguf", 10 * MiB)
    with pytest.raises(ModelError, match="truncated"):
        load_backend(str(bad))


def test_llama_backend_given_a_damaged_file_past_the_checks_raises_model_error(default_gguf: Path, tmp_path: Path) -> None:
    """Even if a damaged file slipped past our own checks, llama.cpp's failure becomes a ModelError."""
    pytest.importorskip("llama_cpp")
    from core.backends.llama_backend import LlamaCppBackend

    good = resolve_model("default")
    bad = truncated_copy(default_gguf, tmp_path / "cut.gguf", 10 * MiB)
    ref = ModelRef(path=bad, kind="gguf", display_name="cut", size_bytes=bad.stat().st_size, metadata=good.metadata)
    with pytest.raises(ModelError) as exc:
        LlamaCppBackend(ref)
    assert "cut.gguf" in str(exc.value)
    assert "damaged" in str(exc.value)


def test_text_file_named_gguf_is_not_a_model(tmp_path: Path) -> None:
    fake = tmp_path / "notes.gguf"
    fake.write_text("these are my notes, not a model\n" * 10, encoding="utf-8")
    text = model_error(fake)
    assert "notes.gguf" in text
    assert "not a model file" in text
    assert "GGUF" in text


def test_empty_gguf_is_not_a_model(tmp_path: Path) -> None:
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    assert "not a model file" in model_error(empty)


def test_json_file_points_to_the_folder_instead(tmp_path: Path) -> None:
    folder = write_hf_folder(tmp_path / "hf")
    other = folder / "tokenizer.json"
    other.write_text("{}", encoding="utf-8")
    text = model_error(other)
    assert "not a model file" in text and "folder" in text


def test_fake_gguf_passes_and_reports_its_name(tmp_path: Path) -> None:
    ref = resolve_model(write_fake_gguf(tmp_path / "tiny.gguf", name="Tiny Test"))
    assert ref.kind == "gguf" and not ref.is_default
    assert ref.display_name == "Tiny Test"
    assert ref.metadata["general.architecture"] == "llama"


def test_gguf_whose_tensor_data_runs_past_the_end_is_truncated(tmp_path: Path) -> None:
    bad = write_fake_gguf(tmp_path / "short.gguf", declared_data=10 * MiB)
    assert "truncated" in model_error(bad)


def test_gguf_header_cut_inside_a_key_is_truncated(tmp_path: Path) -> None:
    good = write_fake_gguf(tmp_path / "whole.gguf")
    cut = truncated_copy(good, tmp_path / "cut.gguf", 40)
    assert "truncated" in model_error(cut)


def test_old_gguf_version_is_named(tmp_path: Path) -> None:
    old = write_fake_gguf(tmp_path / "old.gguf", version=1)
    text = model_error(old)
    assert "version 1" in text and "llama.cpp" in text


def test_a_folder_with_only_a_gguf_uses_it(tmp_path: Path) -> None:
    folder = tmp_path / "dl"
    folder.mkdir()
    write_fake_gguf(folder / "model.gguf")
    ref = resolve_model(folder)
    assert ref.kind == "gguf" and ref.path == folder / "model.gguf"


# ----------------------------------------------------------------------------- pickle weights


def test_bin_file_is_refused_as_pickle(tmp_path: Path) -> None:
    folder = write_hf_folder(tmp_path / "hf", weights=False)
    weights = folder / "pytorch_model.bin"
    weights.write_bytes(b"\x80\x02not really a pickle")
    text = model_error(weights)
    assert "pickle" in text.lower()
    assert "--allow-pickle" in text
    assert "pytorch_model.bin" in text


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt"])
def test_other_pickle_suffixes_are_refused(tmp_path: Path, suffix: str) -> None:
    f = tmp_path / f"weights{suffix}"
    f.write_bytes(b"\x80\x02")
    text = model_error(f)
    assert "pickle" in text.lower() and "--allow-pickle" in text


def test_hf_folder_with_only_pytorch_model_bin_is_refused(tmp_path: Path) -> None:
    folder = write_hf_folder(tmp_path / "hf", weights=False)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02not really a pickle")
    text = model_error(folder)
    assert "pickle" in text.lower()
    assert "--allow-pickle" in text
    assert "safetensors" in text  # the safe way out


def test_hf_folder_with_pickle_is_accepted_when_allowed(tmp_path: Path) -> None:
    folder = write_hf_folder(tmp_path / "hf", weights=False)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02not really a pickle")
    ref = resolve_model(folder, allow_pickle=True)
    assert ref.kind == "hf" and ref.uses_pickle


def test_safetensors_are_preferred_over_pickle_without_asking(tmp_path: Path) -> None:
    folder = write_hf_folder(tmp_path / "hf")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02")
    ref = resolve_model(folder)
    assert ref.kind == "hf" and not ref.uses_pickle


# ----------------------------------------------------------------------------- Hugging Face folders


def test_valid_hf_folder_passes(tmp_path: Path) -> None:
    folder = write_hf_folder(tmp_path / "hf")
    ref = resolve_model(folder)
    assert ref.kind == "hf" and ref.path == folder
    assert ref.metadata["architecture"] == "LlamaForCausalLM"
    assert ref.size_bytes == (folder / "model.safetensors").stat().st_size
    # the config.json or the weights file leads to the same folder
    assert resolve_model(folder / "config.json").path == folder
    assert resolve_model(folder / "model.safetensors").path == folder


@pytest.mark.parametrize(
    "content",
    [
        os.urandom(4096),
        struct.pack("<Q", 20) + b"this is not json!!!!" + b"\0" * 64,
        struct.pack("<Q", 10**9) + b"{}",
        b"\x01\x02",
        json.dumps([1, 2]).encode(),
        *(
            struct.pack("<Q", len(h)) + h + b"\0" * 8
            for h in (
                b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 1e400]}}',  # was OverflowError
                b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, Infinity]}}',
            )
        ),
    ],
    ids=[
        "random-bytes",
        "header-not-json",
        "header-longer-than-file",
        "shorter-than-8-bytes",
        "json-list",
        "offset-1e400",
        "offset-infinity",
    ],
)
def test_hf_folder_with_garbage_safetensors_is_refused(tmp_path: Path, content: bytes) -> None:
    folder = write_hf_folder(tmp_path / "hf", weights=False)
    (folder / "model.safetensors").write_bytes(content)
    text = model_error(folder)
    assert "model.safetensors" in text
    assert "not a valid safetensors file" in text


def test_safetensors_cut_short_is_refused(tmp_path: Path) -> None:
    folder = write_hf_folder(tmp_path / "hf")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:-8])
    assert "not a valid safetensors file" in model_error(folder)


def test_hf_folder_with_broken_config_json(tmp_path: Path) -> None:
    folder = write_hf_folder(tmp_path / "hf")
    (folder / "config.json").write_text("{not json", encoding="utf-8")
    text = model_error(folder)
    assert "config.json" in text and "not valid JSON" in text


def test_hf_folder_without_weights(tmp_path: Path) -> None:
    folder = write_hf_folder(tmp_path / "hf", weights=False)
    text = model_error(folder)
    assert "no weights" in text and "safetensors" in text


def test_missing_path_says_not_found(tmp_path: Path) -> None:
    text = model_error(tmp_path / "nowhere" / "model.gguf")
    assert "not found" in text
    assert "model.gguf" in text
    assert "--model default" in text


def test_folder_without_config_json_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "random-folder"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello", encoding="utf-8")
    text = model_error(folder)
    assert "config.json" in text
    assert "random-folder" in text
    assert "not a Hugging Face model folder" in text


# ----------------------------------------------------------------------------- fingerprints


def test_fingerprint_of_a_gguf_is_stable_and_sees_one_byte(tmp_path: Path) -> None:
    path = write_fake_gguf(tmp_path / "tiny.gguf", n_data=4096)
    first = model_fingerprint(resolve_model(path))
    assert first == model_fingerprint(resolve_model(path))
    assert len(first) == 64 and not first.startswith("sampled:")

    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01  # one bit of tensor data, same size
    path.write_bytes(bytes(data))
    changed = model_fingerprint(resolve_model(path))
    assert changed != first


def test_fingerprint_of_hf_folder_sees_weights_and_config(tmp_path: Path) -> None:
    folder = write_hf_folder(tmp_path / "hf")
    base = model_fingerprint(resolve_model(folder))
    assert base == model_fingerprint(resolve_model(folder))

    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    after_weights = model_fingerprint(resolve_model(folder))
    assert after_weights != base

    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    cfg["max_position_embeddings"] = 512
    (folder / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    assert model_fingerprint(resolve_model(folder)) != after_weights


def test_large_models_get_a_sampled_fingerprint_that_says_so(tmp_path: Path) -> None:
    path = write_fake_gguf(tmp_path / "tiny.gguf", n_data=4096)
    ref = resolve_model(path)
    sampled = model_fingerprint(ref, full_limit=100)
    assert sampled.startswith("sampled:")
    assert sampled == model_fingerprint(ref, full_limit=100)
    assert sampled != model_fingerprint(ref)


def test_default_model_fingerprint_is_stable() -> None:
    ref = resolve_model("default")
    assert model_fingerprint(ref) == model_fingerprint(resolve_model("default"))


# ----------------------------------------------------------------------------- memory


def _ref(size: int = 100 * MiB) -> ModelRef:
    return ModelRef(path=Path("/nowhere/x.gguf"), kind="gguf", display_name="Big Model", size_bytes=size)


def test_check_memory_refuses_a_model_that_does_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "available_memory", lambda device="cpu": 2 * GiB)
    with pytest.raises(ModelError) as exc:
        check_memory(_ref(), 6 * GiB)
    text = str(exc.value)
    assert "GiB" in text
    assert "6.0 GiB" in text and "2.0 GiB" in text
    assert "Big Model" in text and "RAM" in text


def test_check_memory_names_the_gpu_for_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "available_memory", lambda device="cpu": 1 * GiB)
    with pytest.raises(ModelError, match="GiB of GPU"):
        check_memory(_ref(), 3 * GiB, device="cuda:0")


def test_check_memory_passes_when_it_fits_or_cannot_tell(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that fits loads; one that does not is refused with both sizes; when the OS cannot say
    how much is free (``None``) nothing is refused, since a guess would block models that fit."""
    asked: list[str] = []

    def free(device: str = "cpu") -> int:
        asked.append(device)
        return 8 * GiB

    monkeypatch.setattr(models, "available_memory", free)
    assert check_memory(_ref(), 1 * GiB) is None
    assert check_memory(_ref(), 8 * GiB) is None  # exactly what is free still fits
    with pytest.raises(ModelError) as exc:
        check_memory(_ref(), 8 * GiB + 1)
    assert "8.0 GiB" in str(exc.value) and "of RAM" in str(exc.value)
    with pytest.raises(ModelError, match="of GPU"):
        check_memory(_ref(), 9 * GiB, device="cuda:0")
    assert asked == ["cpu", "cpu", "cpu", "cuda:0"]  # the device's own memory, not always RAM
    monkeypatch.setattr(models, "available_memory", lambda device="cpu": None)
    assert check_memory(_ref(), 1000 * GiB) is None


def test_free_gpu_memory_is_asked_of_the_gpu_the_model_goes_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """``cuda:1``'s memory check reads GPU 1's free memory, as the doctor's list does (one function,
    ``core.devices.cuda_free_memory``): it used to read the current GPU's, so a model could be
    refused on an empty second GPU, or let through onto a full one."""
    torch = pytest.importorskip("torch")
    from core import devices

    free = {0: 1 * GiB, 1: 30 * GiB}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: (free[index], 40 * GiB))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert models.available_memory("cuda:1") == devices.cuda_free_memory(1) == 30 * GiB
    assert models.available_memory("cuda") == models.available_memory("cuda:0") == 1 * GiB
    check_memory(_ref(), 20 * GiB, device="cuda:1")  # fits on GPU 1
    with pytest.raises(ModelError, match="of GPU"):
        check_memory(_ref(), 20 * GiB, device="cuda:0")

    def broken(index: int) -> tuple[int, int]:
        raise RuntimeError("CUDA driver version is insufficient")

    monkeypatch.setattr(torch.cuda, "mem_get_info", broken)
    assert models.available_memory("cuda:1") is None  # cannot tell: nothing refused


def test_available_memory_reports_something_on_this_machine() -> None:
    import psutil

    free = models.available_memory()
    assert free is not None, "psutil reports free memory on every OS KnowMix supports"
    assert 0 < free <= psutil.virtual_memory().total


def test_loading_the_default_model_with_too_little_memory_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llama_cpp")
    from core.backends import load_backend

    monkeypatch.setattr(models, "available_memory", lambda device="cpu": 10 * MiB)
    with pytest.raises(ModelError) as exc:
        load_backend("default")
    assert "GiB" in str(exc.value) and DEFAULT_MODEL_NAME in str(exc.value)


def test_read_gguf_metadata_of_the_default_model() -> None:
    meta = read_gguf_metadata(resolve_model("default").path)
    assert meta["general.architecture"] == "llama"
    assert str(meta.get("tokenizer.ggml.tokens", "")).startswith("<array of")
