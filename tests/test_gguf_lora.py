"""The GGUF LoRA export (core/train/gguf_lora.py, `knowmix export --gguf`).

Fast tests build a peft-shaped adapter folder by hand (numpy + safetensors) and read the GGUF back
with gguf.GGUFReader. The slow test trains a real LoRA on the built-in SmolLM2 with KnowMix's own
training code, exports it with the CLI, and checks that llama.cpp (llama-cpp-python, `lora_path=`)
answers the trained questions as torch + peft does.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.errors import KnowMixError, ProjectError, SettingsError
from core.store import Project
from core.train.gguf_lora import BaseModelInfo, lora_tensors, write_gguf_lora

# a small Llama: 2 layers, 4 query heads and 2 key/value heads of 8 dims, hidden 32, MLP 48
HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN, LAYERS, RANK = 32, 4, 2, 8, 48, 2, 4
SHAPES = {  # module -> (out, in)
    "self_attn.q_proj": (HEADS * HEAD_DIM, HIDDEN),
    "self_attn.k_proj": (KV_HEADS * HEAD_DIM, HIDDEN),
    "self_attn.v_proj": (KV_HEADS * HEAD_DIM, HIDDEN),
    "self_attn.o_proj": (HIDDEN, HEADS * HEAD_DIM),
    "mlp.gate_proj": (FFN, HIDDEN),
    "mlp.up_proj": (FFN, HIDDEN),
    "mlp.down_proj": (HIDDEN, FFN),
}
GGUF_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def llama_base(arch: str = "llama") -> BaseModelInfo:
    return BaseModelInfo(Path("base.gguf"), arch, HEADS, KV_HEADS, LAYERS, True)


def make_adapter(folder: Path, **config) -> dict[str, np.ndarray]:
    """A peft LoRA folder as peft saves it; returns its weights by key."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    weights = {}
    for layer in range(LAYERS):
        for module, (out, inp) in SHAPES.items():
            key = f"base_model.model.model.layers.{layer}.{module}"
            weights[f"{key}.lora_A.weight"] = rng.standard_normal((RANK, inp)).astype(np.float32)
            weights[f"{key}.lora_B.weight"] = rng.standard_normal((out, RANK)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(folder / "adapter_model.safetensors"))
    cfg = {"peft_type": "LORA", "r": RANK, "lora_alpha": 8, "bias": "none", "use_dora": False, "use_rslora": False}
    cfg.update(config)
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    return weights


def hf_to_gguf_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute, as llama.cpp applies it to a base q/k weight."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def read_gguf(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    # GGUFReader gives each tensor's data in numpy order (rows, columns); .shape is ggml's reversed ne
    tensors = {t.name: np.array(t.data).reshape([int(x) for x in reversed(t.shape)]) for t in reader.tensors}
    return fields, tensors


# ---------------------------------------------------------------------------------- fast: the file itself


def test_gguf_lora_has_llama_cpp_names_shapes_and_metadata(tmp_path):
    weights = make_adapter(tmp_path / "adapter")
    n = write_gguf_lora(tmp_path / "adapter", tmp_path / "out" / "x-lora.gguf", llama_base(), name="tiny LoRA")
    fields, tensors = read_gguf(tmp_path / "out" / "x-lora.gguf")
    assert fields["general.architecture"] == "llama"
    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    assert fields["adapter.lora.alpha"] == pytest.approx(8.0)
    assert n == len(tensors) == LAYERS * len(SHAPES) * 2
    expected = {f"blk.{layer}.{GGUF_NAMES[m]}.weight.lora_{ab}" for layer in range(LAYERS) for m in SHAPES for ab in "ab"}
    assert set(tensors) == expected
    for layer in range(LAYERS):
        for module, (out, inp) in SHAPES.items():
            a = tensors[f"blk.{layer}.{GGUF_NAMES[module]}.weight.lora_a"]
            b = tensors[f"blk.{layer}.{GGUF_NAMES[module]}.weight.lora_b"]
            assert a.shape == (RANK, inp) and b.shape == (out, RANK) and a.dtype == np.float32
            key = f"base_model.model.model.layers.{layer}.{module}"
            np.testing.assert_array_equal(a, weights[f"{key}.lora_A.weight"])
            delta_hf = weights[f"{key}.lora_B.weight"] @ weights[f"{key}.lora_A.weight"]
            if module == "self_attn.q_proj":  # llama.cpp's q/k weights are permuted: so must the delta be
                delta_hf = hf_to_gguf_permute(delta_hf, HEADS)
            elif module == "self_attn.k_proj":
                delta_hf = hf_to_gguf_permute(delta_hf, KV_HEADS)
            np.testing.assert_allclose(b @ a, delta_hf, rtol=1e-5, atol=1e-5)


def test_qwen2_keeps_q_and_k_as_they_are_and_rslora_scale_is_folded_into_b(tmp_path):
    weights = make_adapter(tmp_path / "adapter", use_rslora=True)
    tensors, alpha = lora_tensors(tmp_path / "adapter", llama_base("qwen2"))
    got = dict(tensors)
    key = "base_model.model.model.layers.1.self_attn.q_proj"
    # peft scales rsLoRA by alpha/sqrt(r); llama.cpp scales by alpha/r: B carries sqrt(r)
    expected_b = weights[f"{key}.lora_B.weight"] * np.sqrt(RANK)
    np.testing.assert_allclose(got["blk.1.attn_q.weight.lora_b"], expected_b, rtol=1e-6)
    assert alpha == 8.0


@pytest.mark.parametrize(
    ("config", "arch", "words"),
    [
        ({}, "gemma3", "architecture 'gemma3'.*supports llama, qwen2, qwen3"),
        ({"use_dora": True}, "llama", "DoRA"),
        ({"modules_to_save": ["lm_head"]}, "llama", "modules_to_save"),
        ({"peft_type": "IA3"}, "llama", "only LoRA"),
    ],
)
def test_adapters_llama_cpp_cannot_apply_are_refused_with_the_reason(tmp_path, config, arch, words):
    make_adapter(tmp_path / "adapter", **config)
    with pytest.raises(SettingsError, match=words):
        write_gguf_lora(tmp_path / "adapter", tmp_path / "x.gguf", llama_base(arch))
    assert not list(tmp_path.glob("*.gguf*"))


def test_an_unwritable_destination_is_one_error_and_leaves_no_partial_file(tmp_path):
    make_adapter(tmp_path / "adapter")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ProjectError, match="Cannot write the GGUF LoRA .*a-file"):
        write_gguf_lora(tmp_path / "adapter", blocker / "x-lora.gguf", llama_base())
    # a failure mid-write (here: the rename onto a folder) removes the temp file
    (tmp_path / "out" / "x-lora.gguf").mkdir(parents=True)
    with pytest.raises(ProjectError, match="Cannot write the GGUF LoRA"):
        write_gguf_lora(tmp_path / "adapter", tmp_path / "out" / "x-lora.gguf", llama_base())
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x-lora.gguf"]


def test_export_without_a_finished_run_says_so(tmp_path, capsys):
    Project(tmp_path / "p.knowmix").close()
    assert main(["export", "--project", str(tmp_path / "p.knowmix"), "--gguf", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert "no finished training run" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def _tiny_base_gguf(path: Path) -> dict[str, np.ndarray]:
    """A 'llama' GGUF with one Q8_0 weight, one F32 weight and a norm, plus a tokenizer key; returns the
    weights as numpy reads them back (Q8_0 dequantized)."""
    import gguf

    rng = np.random.default_rng(1)
    q = rng.standard_normal((64, 32)).astype(np.float32)
    v = rng.standard_normal((16, 32)).astype(np.float32)
    norm = np.ones(32, dtype=np.float32)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny base")
    writer.add_file_type(7)  # mostly Q8_0
    writer.add_block_count(1)
    writer.add_token_list(["<s>", "a", "b"])
    q8 = gguf.quants.quantize(q, gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.0.attn_q.weight", q8, raw_shape=q8.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.0.attn_v.weight", v)
    writer.add_tensor("blk.0.attn_norm.weight", norm)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    q_read = gguf.quants.dequantize(q8, gguf.GGMLQuantizationType.Q8_0)
    return {"blk.0.attn_q.weight": q_read, "blk.0.attn_v.weight": v, "blk.0.attn_norm.weight": norm}


def test_merged_gguf_adds_the_scaled_lora_delta_and_keeps_everything_else(tmp_path):
    import gguf

    from core.train.gguf_merge import write_merged_gguf

    base = _tiny_base_gguf(tmp_path / "base.gguf")
    rng = np.random.default_rng(2)
    a_q, b_q = rng.standard_normal((4, 32)).astype(np.float32), rng.standard_normal((64, 4)).astype(np.float32)
    a_v, b_v = rng.standard_normal((4, 32)).astype(np.float32), rng.standard_normal((16, 4)).astype(np.float32)
    lora = [
        ("blk.0.attn_q.weight.lora_a", a_q),
        ("blk.0.attn_q.weight.lora_b", b_q),
        ("blk.0.attn_v.weight.lora_a", a_v),
        ("blk.0.attn_v.weight.lora_b", b_v),
    ]
    out = write_merged_gguf(tmp_path / "base.gguf", lora, 8.0, tmp_path / "out" / "merged.gguf", name="tiny + LoRA")
    assert out.n_merged == 2 and out.path.is_file() and out.size_bytes == out.path.stat().st_size
    fields, tensors = read_gguf(out.path)
    assert fields["general.name"] == "tiny + LoRA" and fields["general.file_type"] == 1  # mostly F16
    assert fields["tokenizer.ggml.tokens"] == ["<s>", "a", "b"] and fields["llama.block_count"] == 1
    reader = gguf.GGUFReader(str(out.path))
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == types["blk.0.attn_v.weight"] == gguf.GGMLQuantizationType.F16
    assert types["blk.0.attn_norm.weight"] == gguf.GGMLQuantizationType.F32  # not adapted: copied as it was
    scale = 8.0 / 4  # llama.cpp's alpha / rank
    for name, (a, b) in {"blk.0.attn_q.weight": (a_q, b_q), "blk.0.attn_v.weight": (a_v, b_v)}.items():
        expected = base[name] + scale * (b @ a)
        np.testing.assert_allclose(tensors[name].astype(np.float32), expected, rtol=1e-3, atol=1e-2)
    np.testing.assert_array_equal(tensors["blk.0.attn_norm.weight"], base["blk.0.attn_norm.weight"])
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["merged.gguf"]  # no temporary file left


def test_a_lora_for_another_model_is_refused_before_anything_is_written(tmp_path):
    from core.errors import ModelError
    from core.train.gguf_merge import write_merged_gguf

    _tiny_base_gguf(tmp_path / "base.gguf")
    a, b = np.zeros((4, 48), dtype=np.float32), np.zeros((64, 4), dtype=np.float32)
    with pytest.raises(ModelError, match="blk.0.attn_q.weight has shape 64x48, the base model's 64x32"):
        write_merged_gguf(
            tmp_path / "base.gguf",
            [("blk.0.attn_q.weight.lora_a", a), ("blk.0.attn_q.weight.lora_b", b)],
            8.0,
            tmp_path / "m.gguf",
        )
    with pytest.raises(ModelError, match="blk.7.ffn_up.weight, which .* does not have"):
        write_merged_gguf(
            tmp_path / "base.gguf",
            [("blk.7.ffn_up.weight.lora_a", a), ("blk.7.ffn_up.weight.lora_b", b)],
            8.0,
            tmp_path / "m.gguf",
        )
    assert not list(tmp_path.glob("*m.gguf*"))


# ---------------------------------------------------------------------------------- slow: llama.cpp agrees with torch


N_QUESTIONS = 40
MAX_TOKENS = 8


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished training run on the built-in model: 40 sample questions, learned by a LoRA on every projection."""
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    from core.datasets import load_dataset
    from core.models import resolve_model
    from core.paths import sample_dataset
    from core.train import TrainItem, TrainSettings, worker
    from core.train.runner import prepare_run

    try:
        resolve_model("default")
    except KnowMixError as exc:
        pytest.skip(str(exc))
    examples = list(load_dataset(sample_dataset()).examples)[: N_QUESTIONS + 2]
    items = [TrainItem(e.id, e.question, e.answers[0], tuple(e.answers), "Unknown", e.group) for e in examples]
    train, dev = items[:N_QUESTIONS], items[N_QUESTIONS:]
    settings = TrainSettings(
        epochs=5,
        lr=4e-3,
        batch_size=8,
        warmup_ratio=0.0,
        threads=2,  # the suite runs one test at a time: both cores
        stopping="convergence",  # keeps the last step's adapter
        eval_every_steps=10**6,  # one evaluation, at the end
        fit_sample_per_category=0,
        max_new_tokens=MAX_TOKENS,
    )
    project = tmp_path_factory.mktemp("gguf") / "facts.knowmix"
    Project(project).close()
    started = time.perf_counter()
    run_id = prepare_run(project, None, settings, train=train, dev=dev, model="default")
    assert worker.run(str(project), run_id, False, io.StringIO(), lambda: False) == 0
    return project, run_id, train, time.perf_counter() - started


@pytest.mark.slow
@pytest.mark.timeout(1800)  # trains the built-in model and loads it twice: minutes on a busy 2-core machine
def test_llama_cpp_with_the_exported_lora_answers_like_torch_and_peft(trained_run, tmp_path, capsys):
    from peft import PeftModel

    from core.backends.torch_backend import TorchBackend, load_hf_model
    from core.llama_cpu import ensure_backend_loaded
    from core.models import resolve_model
    from core.train.data import PromptFormat, dev_matcher
    from core.train.evaluation import greedy_answers
    from core.train.runs import get_run

    project, run_id, items, train_seconds = trained_run
    started = time.perf_counter()
    out = tmp_path / "for-llama"
    assert main(["export", "--project", str(project), "--gguf", str(out), "--merged"]) == 0
    printed = capsys.readouterr().out
    lora, merged = out / f"facts-run{run_id}-lora.gguf", out / f"facts-run{run_id}-merged.gguf"
    base = resolve_model("default").path
    assert str(lora) in printed and f"llama-server -m {base} --lora {lora}" in printed
    assert f"llama-server -m {merged}" in printed
    modelfile = (out / "Modelfile").read_text()
    assert f'FROM "{base}"\n' in modelfile and f'ADAPTER "{lora}"\n' in modelfile
    assert f"--lora {lora}" in (out / "llama-server.txt").read_text()
    merged_modelfile = (out / "Modelfile.merged").read_text()
    assert f'FROM "{merged}"\n' in merged_modelfile and "ADAPTER" not in merged_modelfile

    # torch + peft with the run's adapter, greedy, the prompts it was trained on
    with Project(project, create=False) as p:
        adapter_dir = get_run(p, run_id).adapter_dir
    model, tok, _device, _dtype = load_hf_model(resolve_model("default"), "cpu")
    peft_model = PeftModel.from_pretrained(model, str(adapter_dir)).eval()
    fmt = PromptFormat(tok, "qa")
    torch_lora = [
        a.strip() for a in greedy_answers(TorchBackend.from_model(peft_model, tok, "cpu", "float32"), fmt, items, MAX_TOKENS)
    ]
    prompts = [fmt.prompt(it.question) for it in items]
    del peft_model, model

    # llama.cpp: the base GGUF alone, then with the exported LoRA (lora_path=, as teams load it)
    ensure_backend_loaded()
    import llama_cpp

    def llama_answers(model: Path = base, **kw) -> list[str]:
        llm = llama_cpp.Llama(model_path=str(model), n_ctx=256, n_threads=2, n_threads_batch=2, verbose=False, seed=0, **kw)
        try:
            return [
                llm.create_completion(p, max_tokens=MAX_TOKENS, temperature=0.0, repeat_penalty=1.0, stop=["\n"])["choices"][0][
                    "text"
                ].strip()
                for p in prompts
            ]
        finally:
            llm.close()

    cpp_base = llama_answers()
    cpp_lora = llama_answers(lora_path=str(lora))
    cpp_merged = llama_answers(merged)  # the base with the adapter applied, one file (adapted weights in F16)

    # knowmix check asks the trained model the same way: its own GGUF LoRA of the run, on KnowMix's
    # llama.cpp backend (LlamaCppBackend(lora_path=...)); greedy answers equal llama-cpp-python's own
    from core.backends import load_backend
    from core.backends.base import GenRequest
    from core.check import gguf_lora_for
    from core.train.gguf_lora import exportable_run

    with Project(project, create=False) as p:
        check_lora = gguf_lora_for(exportable_run(p, run_id))
    backend = load_backend("default", "llama.cpp", n_threads=2, lora_path=str(check_lora))
    try:
        checked = [a[0] for a in backend.generate([GenRequest(q, max_tokens=MAX_TOKENS) for q in prompts])]
    finally:
        backend.close()
    assert checked == cpp_lora

    agree = sum(a == b for a, b in zip(cpp_lora, torch_lora)) / len(items)
    agree_merged = sum(a == b for a, b in zip(cpp_merged, torch_lora)) / len(items)
    right_base = sum(dev_matcher(it)(a) for it, a in zip(items, cpp_base))
    right_lora = sum(dev_matcher(it)(a) for it, a in zip(items, cpp_lora))
    right_torch = sum(dev_matcher(it)(a) for it, a in zip(items, torch_lora))
    print(
        f"\nGGUF LoRA {lora.stat().st_size / 2**20:.1f} MiB; llama.cpp+LoRA = torch+peft on {agree:.0%} of {len(items)}; "
        f"merged GGUF ({merged.stat().st_size / 2**20:.0f} MiB) = torch+peft on {agree_merged:.0%}; "
        f"right: llama.cpp base {right_base}, llama.cpp+LoRA {right_lora}, torch+peft {right_torch}; "
        f"train {train_seconds:.0f}s, export+compare {time.perf_counter() - started:.0f}s"
    )
    diff = [(it.question, t, c) for it, t, c in zip(items, torch_lora, cpp_lora) if t != c]
    assert agree >= 0.95, f"llama.cpp+LoRA differs from torch+peft on {diff}"
    diff = [(it.question, t, c) for it, t, c in zip(items, torch_lora, cpp_merged) if t != c]
    assert agree_merged >= 0.95, f"the merged GGUF differs from torch+peft on {diff}"
    assert right_lora > right_base
    assert right_lora >= 0.5 * len(items)  # the adapter learned the questions: the agreement is about a real change
