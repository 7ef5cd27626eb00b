"""The Export step's "Save for llama.cpp / Ollama…": the GGUF LoRA, its Modelfile and, when ticked,
the merged model, written for a run on the built-in GGUF. The adapter is written with numpy in
peft's format with the built-in model's shapes (its B is zero, so the merged weights are the base's);
that llama.cpp answers like torch with a trained adapter is tests/test_gguf_lora.py's slow test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.models import resolve_model
from core.train.runs import update_run
from tests.check_fixture import probed_project, trained_run

# SmolLM2-135M: hidden 576, 9 heads of 64, 3 key/value heads
SHAPES = {"q_proj": (576, 576), "v_proj": (192, 576)}


def smollm2_adapter(folder: Path) -> None:
    from safetensors.numpy import save_file

    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8, "target_modules": list(SHAPES)}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(0)
    tensors = {}
    for layer in range(2):
        for proj, (out, inp) in SHAPES.items():
            base = f"base_model.model.model.layers.{layer}.self_attn.{proj}"
            tensors[f"{base}.lora_A.weight"] = rng.standard_normal((4, inp)).astype(np.float32)
            tensors[f"{base}.lora_B.weight"] = np.zeros((out, 4), dtype=np.float32)
    save_file(tensors, str(folder / "adapter_model.safetensors"))


def test_export_step_writes_the_gguf_lora_and_the_merged_model(qtbot, window, tmp_path):
    project, probe_id, _ = probed_project(tmp_path / "facts.knowmix", n=30)
    run_id = trained_run(project, probe_id)
    base = resolve_model("default").path
    update_run(project, run_id, model_path=str(base), model_spec="default", model_fingerprint="")
    project.close()
    window.ctx.open_project(tmp_path / "facts.knowmix")
    window.go("export")
    page = window.by_key["export"]
    adapter = Path(page.adapter_dir)
    for f in adapter.iterdir():
        f.unlink()
    smollm2_adapter(adapter)
    assert page.gguf_button.isEnabled() and page.gguf_merged.isEnabled()

    page.gguf_merged.setChecked(True)
    out = tmp_path / "for-ollama"
    page.save_gguf_to(out)
    qtbot.waitUntil(lambda: not window.ctx.runner.busy and page.message.kind in ("ok", "error"), timeout=120_000)
    assert page.message.kind == "ok", page.message.text()
    lora, merged = out / f"facts-run{run_id}-lora.gguf", out / f"facts-run{run_id}-merged.gguf"
    shown = page.message.text()
    assert str(lora) in shown and str(merged) in shown and "ollama create" in shown
    assert lora.is_file() and merged.is_file() and (out / "Modelfile").is_file()
    assert f'FROM "{merged}"' in (out / "Modelfile.merged").read_text()

    import gguf

    reader = gguf.GGUFReader(str(merged))
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == "F16" and types["blk.1.attn_v.weight"] == "F16"
    assert types["blk.2.attn_q.weight"] == "Q4_1"  # not adapted: copied as it was
