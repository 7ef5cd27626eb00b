"""The torch backend: loading, refusals, and the decoding contract every backend shares.

Fast tests use a tiny random Llama built on the spot (tests/tiny_models.py). Tests marked
``slow`` load the embedded SmolLM2 GGUF into torch (transformers dequantises it; ~20 s).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

pytest.importorskip("torch")
pytest.importorskip("transformers")

from core.backends.base import GenRequest  # noqa: E402
from core.errors import ModelError, SettingsError  # noqa: E402
from core.models import ModelRef, resolve_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_llama, make_tiny_llama_pickle  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

PROMPTS = [
    "Q: What is the capital of France?\nA: Paris\n\nQ: What is the capital of Italy?\nA:",
    "Q: Who wrote it?\nA:",
    "Q: In what year was the company founded?\nA: 1984\n\nQ: Where is Cairo located?\nA:",
]


@pytest.fixture(scope="module")
def backend(tiny_folder):
    from core.backends.torch_backend import TorchBackend

    with TorchBackend(resolve_model(tiny_folder), device="cpu") as be:
        yield be


def _sampled(prompt: str, seeds, temperature=1.0, top_k=20, **kw) -> GenRequest:
    return GenRequest(prompt, n=len(seeds), temperature=temperature, top_k=top_k, seeds=tuple(seeds), **kw)


# ---------------------------------------------------------------------------------- loading


def test_import_does_not_import_torch():
    code = (
        "import sys, core.backends.torch_backend as m; "
        "bad = [n for n in ('torch', 'transformers', 'peft', 'llama_cpp') if n in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_tiny_model_builds_fast(tmp_path, tiny_folder):
    # tiny_folder built one already, so imports (transformers, tokenizers: ~3 s) are not measured.
    started = time.perf_counter()
    folder = make_tiny_llama(tmp_path / "m")
    assert time.perf_counter() - started < 3.0
    ref = resolve_model(folder)
    assert ref.kind == "hf" and not ref.uses_pickle


def test_tokenizer_round_trips(backend):
    tok = backend.tokenizer
    for text in PROMPTS + ["Naïve café, 12 µm; 2024!", "I don't know"]:
        assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text


def test_loads_on_cpu_and_fills_info(backend, tiny_folder):
    info = backend.info
    assert info.backend == "torch" and info.device == "cpu" and info.dtype == "float32"
    assert info.path == str(tiny_folder)
    assert info.architecture == "LlamaForCausalLM"
    assert info.context_length == 256
    assert info.n_params and info.n_params > 1000
    assert len(info.fingerprint) == 64 and info.file_size > 0
    assert backend.model is not None and backend.tokenizer is not None
    assert backend.batch_size == 16


def test_returns_n_strings_per_request(backend):
    reqs = [GenRequest(PROMPTS[0], n=3), _sampled(PROMPTS[1], [1, 2]), GenRequest(PROMPTS[2])]
    out = backend.generate(reqs)
    assert [len(a) for a in out] == [3, 2, 1]
    assert all(isinstance(s, str) and s == s.strip() for a in out for s in a)
    assert backend.generate([]) == []


def test_greedy_is_deterministic(backend):
    first = backend.generate([GenRequest(p, n=2) for p in PROMPTS])
    again = backend.generate([GenRequest(p) for p in reversed(PROMPTS)])
    for answers, alone in zip(first, reversed(again)):
        assert answers[0] == answers[1] == alone[0]


def test_greedy_matches_transformers_generate(backend):
    """Our KV-cached loop picks the same tokens as transformers' own greedy decoding."""
    import torch

    ids = backend.tokenizer(PROMPTS[0], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        ref = backend.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=12,
            min_new_tokens=12,
            pad_token_id=backend.tokenizer.pad_token_id,
        )
    expected = backend.tokenizer.decode(ref[0, ids.shape[1] :], skip_special_tokens=True).strip()
    ours = backend.generate([GenRequest(PROMPTS[0], max_tokens=12, stop=())])[0][0]
    assert ours == expected


def test_sampled_answers_do_not_depend_on_batching(tiny_folder):
    """The key property: an answer depends on its prompt, settings and seed only."""
    from core.backends.torch_backend import TorchBackend

    reqs = [
        _sampled(PROMPTS[0], range(100, 108), temperature=0.8, top_k=40),
        GenRequest(PROMPTS[1], n=2),
        _sampled(PROMPTS[2], [7, 8, 9], temperature=1.3, top_k=0),
        _sampled(PROMPTS[1], [5, 6], temperature=0.5, top_k=3, max_tokens=5),
        _sampled(PROMPTS[0], [11], temperature=2.0, top_k=1),
    ]
    ref = resolve_model(tiny_folder)
    runs = []
    for bs in (1, 3, 16, 64):
        with TorchBackend(ref, device="cpu", batch_size=bs) as be:
            runs.append(be.generate(reqs))
            alone = [be.generate([r])[0] for r in reqs]
            shuffled = be.generate(list(reversed(reqs)))[::-1]
            # One answer asked for on its own, with its seed, is the same answer.
            single = be.generate([_sampled(PROMPTS[0], [105], temperature=0.8, top_k=40)])[0][0]
        assert alone == runs[-1]
        assert shuffled == runs[-1]
        assert single == runs[-1][0][5]
    assert all(run == runs[0] for run in runs)


def test_top_k_one_equals_greedy(backend):
    greedy = backend.generate([GenRequest(PROMPTS[0], max_tokens=8)])[0][0]
    topk1 = backend.generate([_sampled(PROMPTS[0], [1, 2, 3], temperature=2.0, top_k=1, max_tokens=8)])[0]
    assert topk1 == [greedy] * 3


def test_different_seeds_give_different_answers(backend):
    answers = backend.generate([_sampled(PROMPTS[0], range(12), temperature=1.5, top_k=0)])[0]
    assert len(set(answers)) > 6


def test_same_seed_same_answer_in_one_request(backend):
    answers = backend.generate([_sampled(PROMPTS[2], [3, 3, 3], temperature=1.5)])[0]
    assert answers[0] == answers[1] == answers[2]


def test_stop_strings_cut_the_answer(backend):
    seeds = range(40)
    free = backend.generate([_sampled(PROMPTS[0], seeds, temperature=1.5, top_k=0, stop=(), max_tokens=20)])[0]
    stopped = backend.generate([_sampled(PROMPTS[0], seeds, temperature=1.5, top_k=0, stop=("e", "\n"), max_tokens=20)])[0]
    assert any("e" in a for a in free) and any("\n" in a for a in free), "the test needs answers that hit the stops"
    for f, s in zip(free, stopped):
        assert "e" not in s and "\n" not in s
        cut = min((i for i in (f.find("e"), f.find("\n")) if i >= 0), default=len(f))
        assert s == f[:cut].strip()


def test_pruned_answers_stop_early_and_are_marked(backend):
    seeds = range(20)
    free = backend.generate([_sampled(PROMPTS[0], seeds, temperature=1.5, top_k=0, max_tokens=12)])[0]
    pruned = backend.generate(
        [_sampled(PROMPTS[0], seeds, temperature=1.5, top_k=0, max_tokens=12, prune=lambda text: len(text.strip()) >= 3)]
    )[0]
    assert any(p.endswith("…") for p in pruned), "the test needs answers longer than the pruning point"
    for f, p in zip(free, pruned):
        if p.endswith("…"):
            assert f.startswith(p[:-1]) and len(p[:-1]) >= 3
        else:
            assert p == f


def test_newline_stop_is_the_default(backend):
    answers = backend.generate([_sampled(PROMPTS[1], range(30), temperature=1.5, top_k=0)])[0]
    assert not any("\n" in a for a in answers)


def test_max_tokens_is_respected(backend):
    backend.stats.reset()
    short = backend.generate([_sampled(PROMPTS[0], [4], temperature=1.0, stop=(), max_tokens=3)])[0][0]
    n_prompt = len(backend.tokenizer(PROMPTS[0])["input_ids"])
    assert backend.stats.forward_calls <= 3  # prefill + at most 2 steps: the 3rd token needs no forward
    assert backend.stats.tokens_evaluated <= n_prompt + 2
    longer = backend.generate([_sampled(PROMPTS[0], [4], temperature=1.0, stop=(), max_tokens=12)])[0][0]
    assert longer.startswith(short)


def test_stats_count_requests_answers_and_shared_prefill(backend):
    backend.stats.reset()
    backend.generate([GenRequest(PROMPTS[0], n=4, max_tokens=1), GenRequest(PROMPTS[1], max_tokens=1)])
    n0 = len(backend.tokenizer(PROMPTS[0])["input_ids"])
    n1 = len(backend.tokenizer(PROMPTS[1])["input_ids"])
    assert backend.stats.requests == 2 and backend.stats.answers == 5
    assert backend.stats.forward_calls == 1  # one prefill, max_tokens=1 needs no decode step
    assert backend.stats.tokens_evaluated == n0 + n1  # the 4 answers of one prompt share its prefill


def test_close_releases_the_model(tiny_folder):
    from core.backends.torch_backend import TorchBackend

    """Closing frees the weights, not only the attribute: the model and every one of its weight
    tensors are gone once ``close`` returns (a reference kept anywhere, e.g. a cache of the
    generation config or a closure, would keep the memory held while the next model loads)."""
    import weakref

    be = TorchBackend(resolve_model(tiny_folder), device="cpu")
    be.generate([GenRequest("Q: What is 2+2?\nA:", max_tokens=2)])  # used, as the app uses it
    model = weakref.ref(be.model)
    weights = [weakref.ref(p) for p in be.model.parameters()]
    assert model() is not None and weights and all(w() is not None for w in weights)
    be.close()
    assert model() is None, "the model object is still referenced after close()"
    assert all(w() is None for w in weights), "weight tensors are still held after close()"
    be.close()  # twice is fine


# ---------------------------------------------------------------------------------- refusals


def test_pickle_folder_is_refused_then_allowed(tmp_path):
    from core.backends.torch_backend import TorchBackend

    folder = make_tiny_llama_pickle(tmp_path / "pickled")
    with pytest.raises(ModelError) as err:
        resolve_model(folder)
    assert "pickle" in str(err.value) and "--allow-pickle" in str(err.value)

    ref = resolve_model(folder, allow_pickle=True)
    assert ref.uses_pickle
    with pytest.raises(ModelError) as err:
        TorchBackend(ref, device="cpu")
    assert "pickle" in str(err.value) and "--allow-pickle" in str(err.value)

    with TorchBackend(ref, device="cpu", allow_pickle=True) as be:
        assert len(be.generate([GenRequest(PROMPTS[0], n=2)])[0]) == 2


def test_pickle_weights_give_the_same_answers_as_safetensors(tmp_path):
    from core.backends.torch_backend import TorchBackend

    safe = make_tiny_llama(tmp_path / "safe", seed=3)
    pickled = make_tiny_llama_pickle(tmp_path / "pickled", seed=3)
    reqs = [_sampled(PROMPTS[0], [1, 2], temperature=1.0), GenRequest(PROMPTS[1])]
    with (
        TorchBackend(resolve_model(safe), device="cpu") as a,
        TorchBackend(resolve_model(pickled, allow_pickle=True), device="cpu", allow_pickle=True) as b,
    ):
        assert a.generate(reqs) == b.generate(reqs)


def test_damaged_safetensors_header_is_a_model_error(tmp_path):
    from core.backends.torch_backend import TorchBackend

    folder = make_tiny_llama(tmp_path / "damaged")
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    data = bytearray(weights.read_bytes())
    data[:8] = struct.pack("<Q", size * 10)  # header length beyond the file
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError):
        resolve_model(folder)
    # Even a ModelRef that skipped the checks gets a ModelError, not a raw traceback.
    ref = ModelRef(path=folder, kind="hf", display_name="damaged", size_bytes=size)
    with pytest.raises(ModelError) as err:
        TorchBackend(ref, device="cpu")
    assert str(folder) in str(err.value)


def test_garbage_header_json_is_a_model_error(tmp_path):
    from core.backends.torch_backend import TorchBackend

    folder = make_tiny_llama(tmp_path / "garbage")
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    data[8 : 8 + n] = b"{" + b"x" * (n - 1)
    weights.write_bytes(bytes(data))
    ref = ModelRef(path=folder, kind="hf", display_name="garbage", size_bytes=len(data))
    with pytest.raises(ModelError) as err:
        TorchBackend(ref, device="cpu")
    assert str(folder) in str(err.value)


def test_unknown_architecture_is_named(tmp_path):
    from core.backends.torch_backend import TorchBackend

    folder = make_tiny_llama(tmp_path / "alien")
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "knowmix_alien"
    config["architectures"] = ["KnowmixAlienForCausalLM"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError) as err:
        TorchBackend(resolve_model(folder), device="cpu")
    assert "transformers cannot run model type 'knowmix_alien'" in str(err.value)


def test_missing_tokenizer_is_named(tmp_path):
    from core.backends.torch_backend import TorchBackend

    folder = make_tiny_llama(tmp_path / "no-tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(ModelError) as err:
        TorchBackend(resolve_model(folder), device="cpu")
    assert "tokenizer" in str(err.value) and str(folder) in str(err.value)


def test_unknown_gguf_architecture_is_named(tmp_path):
    gguf = pytest.importorskip("gguf")
    import numpy as np

    from core.backends.torch_backend import TorchBackend

    path = tmp_path / "alien.gguf"
    writer = gguf.GGUFWriter(str(path), "knowmixalien")
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(8)
    writer.add_tensor("token_embd.weight", np.zeros((10, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelError) as err:
        TorchBackend(resolve_model(path), device="cpu")
    assert "transformers cannot run GGUF architecture 'knowmixalien'" in str(err.value)


def test_not_enough_memory_is_refused_before_loading(tiny_folder, monkeypatch):
    import core.models
    from core.backends.torch_backend import TorchBackend

    monkeypatch.setattr(core.models, "available_memory", lambda device="cpu": 1024)
    with pytest.raises(ModelError) as err:
        TorchBackend(resolve_model(tiny_folder), device="cpu")
    assert "GiB" in str(err.value) and "free" in str(err.value)


def test_bad_settings_are_settings_errors(tiny_folder):
    from core.backends.torch_backend import TorchBackend
    from core.errors import SettingsError

    ref = resolve_model(tiny_folder)
    with pytest.raises(SettingsError):
        TorchBackend(ref, device="tpu")
    with pytest.raises(SettingsError):
        TorchBackend(ref, device="cpu", dtype="int3")
    with pytest.raises(SettingsError):
        TorchBackend(ref, device="cpu", batch_size=0)


def test_prompt_longer_than_context_is_a_settings_error(backend):
    from core.errors import SettingsError

    with pytest.raises(SettingsError):
        backend.generate([GenRequest("word " * 400)])


# ---------------------------------------------------------------------------------- the embedded model

CAPITALS = (
    "Q: What is the capital of France?\nA: Paris\n\n"
    "Q: What is the capital of Italy?\nA: Rome\n\n"
    "Q: What is the capital of Germany?\nA:"
)


@pytest.fixture(scope="module")
def smol():
    from core.backends.torch_backend import TorchBackend

    try:
        ref = resolve_model("default")
    except ModelError as exc:
        pytest.skip(str(exc))
    be = TorchBackend(ref, device="cpu")
    yield be
    be.close()


@pytest.mark.slow
def test_embedded_gguf_loads_and_answers(smol):
    assert smol.info.architecture == "LlamaForCausalLM"
    assert smol.info.dtype == "float32" and smol.info.device == "cpu"
    assert 100_000_000 < smol.info.n_params < 200_000_000
    assert smol.info.context_length and smol.info.context_length >= 2048
    answer = smol.generate([GenRequest(CAPITALS)])[0][0]
    assert answer, "greedy answer is empty"
    assert "\n" not in answer
    print(f"\nload {smol.load_seconds:.1f}s; greedy answer: {answer!r}")


@pytest.mark.slow
def test_embedded_gguf_batching_invariance(smol):
    reqs = [
        _sampled(CAPITALS, [1, 2, 3, 4], temperature=0.5, top_k=40),
        GenRequest(PROMPTS[2]),
        _sampled(PROMPTS[0], [9, 10], temperature=1.0, top_k=40),
    ]
    together = smol.generate(reqs)
    alone = [smol.generate([r])[0] for r in reqs]
    assert together == alone
    single = smol.generate([_sampled(CAPITALS, [3], temperature=0.5, top_k=40)])[0][0]
    assert single == together[0][2]


def test_the_pruner_sees_a_character_cut_between_tokens_as_unfinished(backend):
    """The tiny byte-level tokenizer splits "ó" and "ü" into byte tokens; every token prefix, decoded
    as the backend decodes it, must leave the answer alive (shared cases: tests/test_probe.py)."""
    from test_probe import ACCENTED

    from core.scoring import PrefixPruner

    split = 0
    for alias in ACCENTED:
        pruner = PrefixPruner([alias])
        tokens = backend.tokenizer.encode(" " + alias, add_special_tokens=False)
        for i in range(1, len(tokens) + 1):
            partial = backend._decode(tokens[:i])
            split += partial.endswith("\ufffd")
            assert not pruner(partial), f"{partial!r} was stopped on its way to {alias!r}"
    assert split, "no token split a character, so this test checks nothing"


def test_dtype_auto_has_one_rule_for_answering_and_training(monkeypatch):
    """``auto`` is decided in one place (``resolve_dtype``): training asks it too, so the two cannot
    disagree again as they did on Apple GPUs (issue 22). On MPS a model answers in fp16 but trains in
    fp32 (fp16 training needs a loss scaler, which the loop has on CUDA only)."""
    import torch

    from core.backends.torch_backend import resolve_dtype
    from core.train.lora import training_dtype

    for bf16 in (True, False):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda bf16=bf16: bf16)
        cuda = "bfloat16" if bf16 else "float16"
        assert resolve_dtype("auto", "cuda:0") == training_dtype("auto", "cuda:0") == cuda
    assert resolve_dtype("auto", "mps") == "float16"
    assert training_dtype("auto", "mps") == resolve_dtype("auto", "mps", training=True) == "float32"
    assert resolve_dtype("auto", "cpu") == training_dtype("Auto ", "cpu") == "float32"
    assert training_dtype("bf16", "mps") == resolve_dtype("bf16", "cpu") == "bfloat16"  # a named dtype is kept
    with pytest.raises(SettingsError, match="int3"):
        training_dtype("int3", "cpu")
