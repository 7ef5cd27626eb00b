"""A training run's LoRA adapter as a llama.cpp GGUF LoRA, plus the lines to run it (Ollama, llama-server).

The file is what llama.cpp's own ``convert_lora_to_gguf.py`` writes for the same adapter:

- metadata ``general.architecture`` (the base model's), ``general.type = "adapter"``,
  ``adapter.type = "lora"`` and ``adapter.lora.alpha``;
- per adapted weight two tensors named after the base model's GGUF tensor
  (``gguf.get_tensor_name_map``): ``blk.0.attn_q.weight.lora_a`` of shape ``(r, in)`` and
  ``blk.0.attn_q.weight.lora_b`` of shape ``(out, r)`` (numpy order; ggml's ``ne`` is reversed);
- for the Llama architecture, the rows of ``q_proj``/``k_proj``'s ``lora_b`` permuted like
  ``convert_hf_to_gguf.py``'s ``LlamaModel.permute`` permutes the base weights (transformers undoes
  that permutation when it loads a Llama GGUF for training, so the adapter was trained in the
  Hugging Face layout; permuting B's rows makes llama.cpp add the same delta ``P·B·A = P·ΔW``).

llama.cpp scales every LoRA by ``alpha / r`` with ``r`` taken from each tensor; a peft adapter with
rsLoRA or per-module rank/alpha patterns gets its own scale folded into ``lora_b`` so the delta is
the same. Only numpy and the ``gguf`` package are used (no torch): the adapter's safetensors file is
read by a small reader of our own that also handles bf16.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import ModelError, ProjectError, SettingsError
from ..probe import qa_prompt
from ..store.records import TrainRun

# GGUF architecture name -> whether convert_hf_to_gguf permutes q_proj/k_proj rows for it (LlamaModel.permute).
# Only these are exported: another architecture may need its own tensor handling, so it is refused.
SUPPORTED_ARCHITECTURES: dict[str, bool] = {"llama": True, "qwen2": False, "qwen3": False}
# Hugging Face config.json model_type -> GGUF architecture name (Mistral and SmolLM convert as llama).
_HF_MODEL_TYPES = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
MODELFILE = "Modelfile"
SERVER_LINES = "llama-server.txt"

_SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "bf16"}
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])(?:\.[^.]+)?\.weight$")


@dataclass
class BaseModelInfo:
    """What the exporter needs to know of the base model: architecture, heads and layers."""

    path: Path
    architecture: str  # the GGUF architecture name, e.g. "llama"
    n_head: int
    n_head_kv: int
    n_layers: int
    is_gguf: bool


@dataclass
class GgufExport:
    """What ``export_gguf`` wrote, and the lines to run it."""

    run_id: int
    lora_path: Path
    size_bytes: int
    n_tensors: int
    base_model: Path
    base_is_gguf: bool
    modelfile: Optional[Path] = None
    server_file: Optional[Path] = None
    server_line: str = ""
    merged_path: Optional[Path] = None
    merged_size: int = 0
    merged_modelfile: Optional[Path] = None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What the CLI prints and the app shows: the paths, the run line, and anything to know."""
        from ..formats import format_mib

        out = [
            f"GGUF LoRA of training run {self.run_id}: {self.lora_path} ({format_mib(self.size_bytes)}, {self.n_tensors} tensors)"
        ]
        if self.modelfile is not None:
            out.append(f"Ollama Modelfile: {self.modelfile}")
            out.append(f"  ollama create my-model -f {shlex.quote(str(self.modelfile))}")
        if self.server_line:
            out.append(f"llama.cpp ({self.server_file}):")
            out.append(f"  {self.server_line}")
        if self.merged_path is not None:
            out.append(
                f"Merged model (the base with the adapter applied, one file): {self.merged_path} ({format_mib(self.merged_size)})"
            )
            out.append(f"  llama-server -m {shlex.quote(str(self.merged_path))}")
            if self.merged_modelfile is not None:
                out.append(f"  ollama create my-model-merged -f {shlex.quote(str(self.merged_modelfile))}")
        out.extend(self.notes)
        return out


# ------------------------------------------------------------------------------ reading the adapter


def read_safetensors(path: Path) -> dict[str, Any]:
    """``{name: float32 numpy array}`` of a safetensors file (F32, F16, BF16, F64), without torch."""
    import numpy as np

    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
            data = fh.read()
    except (OSError, struct.error, ValueError) as exc:
        raise ProjectError(f"Cannot read the adapter weights {path}: {exc}. Train the run again to rewrite them.") from None
    out: dict[str, Any] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise ProjectError(
                f"The adapter weights {path} hold {name} as {info.get('dtype')}, which the GGUF export does not read."
            )
        start, end = info["data_offsets"]
        raw = data[start:end]
        if dtype == "bf16":  # bfloat16 is the upper half of a float32
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=dtype).astype(np.float32)
        out[name] = arr.reshape(info["shape"])
    return out


def read_adapter_config(adapter_dir: Path) -> dict:
    path = adapter_dir / ADAPTER_CONFIG
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProjectError(f"Cannot read {path}: {exc.strerror or exc}. The run's adapter folder is incomplete.") from None
    except ValueError as exc:
        raise ProjectError(f"{path} is not valid JSON ({exc}). The run's adapter folder is damaged.") from None


def _module_scale(config: dict, module: str, rank: int) -> float:
    """peft's scaling of one module (``lora_alpha / r``, rsLoRA: ``/ sqrt(r)``, with the per-module patterns)."""
    alpha = float(config.get("lora_alpha") or rank)
    for pattern, value in (config.get("alpha_pattern") or {}).items():
        if re.search(rf"(^|\.){re.escape(pattern)}$", module) or re.fullmatch(pattern, module):
            alpha = float(value)
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def _check_config(config: dict, adapter_dir: Path) -> None:
    where = adapter_dir / ADAPTER_CONFIG
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise SettingsError(f"{where}: peft_type is {config.get('peft_type')}; only LoRA adapters can be exported to GGUF.")
    if config.get("use_dora"):
        raise SettingsError(f"{where}: use_dora is set; llama.cpp has no DoRA adapters. Train without DoRA to export.")
    if config.get("modules_to_save"):
        raise SettingsError(
            f"{where}: modules_to_save ({', '.join(config['modules_to_save'])}) are fully trained weights, "
            "which a llama.cpp LoRA cannot hold. Train without them to export."
        )
    if str(config.get("bias", "none")) != "none" or config.get("lora_bias"):
        raise SettingsError(f"{where}: the adapter trains biases, which a llama.cpp LoRA cannot hold. Train with bias none.")


# ------------------------------------------------------------------------------ the base model


def base_model_info(model_path: str | os.PathLike) -> BaseModelInfo:
    """Architecture, head counts and layers of the base model: a GGUF's metadata or a folder's config.json."""
    path = Path(model_path)
    if path.is_file():
        from ..models import read_gguf_metadata

        meta = read_gguf_metadata(path)
        arch = str(meta.get("general.architecture") or "")

        def num(key: str, default: Optional[int] = None) -> int:
            value = meta.get(f"{arch}.{key}", default)
            if value is None:
                raise ModelError(f"{path}: the GGUF metadata has no {arch}.{key}, so the adapter cannot be converted for it.")
            if isinstance(value, (list, tuple)):  # per-layer head counts: all layers must agree
                value = value[0]
            return int(value)

        n_head = num("attention.head_count") if arch in SUPPORTED_ARCHITECTURES else 0
        return BaseModelInfo(
            path=path,
            architecture=arch,
            n_head=n_head,
            n_head_kv=num("attention.head_count_kv", n_head) if n_head else 0,
            n_layers=num("block_count") if n_head else 0,
            is_gguf=True,
        )
    config_path = path / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot read the base model's {config_path}: {exc}. Is the model still there?") from None
    config = config.get("text_config") or config
    model_type = str(config.get("model_type") or "")
    n_head = int(config.get("num_attention_heads") or 0)
    return BaseModelInfo(
        path=path,
        architecture=_HF_MODEL_TYPES.get(model_type, model_type),
        n_head=n_head,
        n_head_kv=int(config.get("num_key_value_heads") or n_head),
        n_layers=int(config.get("num_hidden_layers") or 0),
        is_gguf=False,
    )


def _check_architecture(base: BaseModelInfo) -> None:
    if base.architecture not in SUPPORTED_ARCHITECTURES:
        raise SettingsError(
            f"The base model {base.path} is of architecture '{base.architecture or 'unknown'}', which the GGUF LoRA export "
            f"does not know; it supports {', '.join(SUPPORTED_ARCHITECTURES)}."
        )


def permute_rows(rows: Any, n_head: int) -> Any:
    """convert_hf_to_gguf's ``LlamaModel.permute`` on a matrix's rows: per head, the two halves interleaved."""
    out = rows.shape[0]
    if out % (2 * n_head):
        raise SettingsError(f"A q/k projection has {out} rows, which do not split into {n_head} heads of even size.")
    return rows.reshape(n_head, 2, out // n_head // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


# ------------------------------------------------------------------------------ conversion


def lora_tensors(adapter_dir: str | os.PathLike, base: BaseModelInfo) -> tuple[list[tuple[str, Any]], float]:
    """The GGUF LoRA's tensors ``[(name, float32 array)]`` in the order llama.cpp's converter writes them
    (for each weight: ``.lora_a`` then ``.lora_b``), and the ``adapter.lora.alpha`` to store."""
    import gguf
    import numpy as np

    _check_architecture(base)
    adapter_dir = Path(adapter_dir)
    config = read_adapter_config(adapter_dir)
    _check_config(config, adapter_dir)
    weights = read_safetensors(adapter_dir / ADAPTER_WEIGHTS)
    arch = {name: arch for arch, name in gguf.MODEL_ARCH_NAMES.items()}[base.architecture]
    name_map = gguf.get_tensor_name_map(arch, base.n_layers)
    pairs: dict[str, dict[str, Any]] = {}
    for key, array in weights.items():
        m = _LORA_KEY.match(key)
        if m is None:
            raise SettingsError(
                f"{adapter_dir / ADAPTER_WEIGHTS}: '{key}' is not a LoRA A/B matrix (embeddings or other trained weights "
                "cannot go into a llama.cpp LoRA)."
            )
        pairs.setdefault(m["module"], {})[m["which"]] = array
    alpha = float(config.get("lora_alpha") or config.get("r") or 1)
    out: list[tuple[str, Any]] = []
    for module, ab in pairs.items():
        if set(ab) != {"A", "B"}:
            raise SettingsError(f"{adapter_dir / ADAPTER_WEIGHTS}: {module} has only its lora_{''.join(ab)} matrix.")
        a, b = ab["A"], ab["B"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise SettingsError(
                f"{adapter_dir / ADAPTER_WEIGHTS}: {module} has LoRA shapes {a.shape} and {b.shape} that do not fit."
            )
        hf_name = module.removeprefix("base_model.model.") + ".weight"
        gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise SettingsError(
                f"The adapter trains {hf_name}, which has no tensor in a {base.architecture} GGUF, so llama.cpp could not apply it."
            )
        rank = a.shape[0]
        # llama.cpp scales by alpha / rank; fold any other peft scaling of this module into B.
        fold = _module_scale(config, module.removeprefix("base_model.model."), rank) * rank / alpha
        if not math.isclose(fold, 1.0, rel_tol=1e-9):
            b = b * np.float32(fold)
        if SUPPORTED_ARCHITECTURES[base.architecture]:
            if hf_name.endswith("q_proj.weight"):
                b = permute_rows(b, base.n_head)
            elif hf_name.endswith("k_proj.weight"):
                b = permute_rows(b, base.n_head_kv)
        out.append((gguf_name + ".lora_a", np.ascontiguousarray(a, dtype=np.float32)))
        out.append((gguf_name + ".lora_b", np.ascontiguousarray(b, dtype=np.float32)))
    if not out:
        raise SettingsError(f"{adapter_dir / ADAPTER_WEIGHTS} holds no LoRA matrices.")
    return out, alpha


def write_gguf_lora(adapter_dir: str | os.PathLike, dest: str | os.PathLike, base: BaseModelInfo, *, name: str = "") -> int:
    """Convert the peft adapter in ``adapter_dir`` to a GGUF LoRA at ``dest`` (written atomically); returns its tensor count."""
    tensors, alpha = lora_tensors(adapter_dir, base)
    write_lora_tensors(tensors, alpha, dest, base.architecture, name=name)
    return len(tensors)


def write_lora_tensors(
    tensors: list[tuple[str, Any]], alpha: float, dest: str | os.PathLike, architecture: str, *, name: str = ""
) -> None:
    """``lora_tensors``' output as a GGUF LoRA file at ``dest``, written atomically."""
    import gguf

    from ..paths import atomic_file

    with atomic_file(dest, what="the GGUF LoRA ", advice="Pick a folder you can write to with room for it.") as tmp:
        writer = gguf.GGUFWriter(str(tmp), architecture)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        if name:
            writer.add_name(name)
        for tensor_name, array in tensors:
            writer.add_tensor(tensor_name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()


# ------------------------------------------------------------------------------ a run's adapter, exported


def exportable_run(project: Any, run_id: Optional[int]) -> TrainRun:
    """The run to export: ``run_id`` (it must have an adapter), or the latest finished run; its
    ``adapter_dir`` is the adapter found on disk."""
    from .runs import DONE, get_run, list_runs

    if run_id is not None:
        row = get_run(project, run_id)
    else:
        done = [r for r in list_runs(project) if r.status == DONE]
        if not done:
            raise ProjectError(
                f"{project.path} has no finished training run, so there is no adapter to check or export yet. Train one first "
                "(knowmix train), or name a cancelled run that kept an adapter with --run N."
            )
        row = max(done, key=lambda r: r.id)
    adapter = _adapter_dir(row)
    if adapter is None:
        raise ProjectError(
            f"Training run {row.id} (status {row.status}) has no saved adapter yet: it stopped before its "
            "first evaluation. Resume it (knowmix resume) or export another run."
        )
    return row.replace(adapter_dir=adapter)


def _adapter_dir(run: TrainRun) -> Optional[Path]:
    """The run's adapter on disk: the one its row names, else the one it keeps in its folder."""
    candidates = [run.adapter_dir, (run.folder or Path("")) / run.kept_adapter]
    for c in candidates:
        if c and (c / ADAPTER_WEIGHTS).is_file() and (c / ADAPTER_CONFIG).is_file():
            return c
    return None


def modelfile_path(path: Path) -> str:
    """A path as an Ollama Modelfile value. Ollama's parser has no escapes: it strips one pair of
    ``"`` (or of ``\"\"\"`` when the value holds a ``"``) around the rest of the line, so a path with
    spaces or quotes stays one value; a line break cannot be held at all (``check_one_line``)."""
    from ..exports_guard import check_one_line

    check_one_line(path, "a model file")
    text = str(path)
    return f'"""{text}"""' if '"' in text else f'"{text}"'


def comment_text(text: str) -> str:
    """``text`` on one line, for a ``#`` comment: a line break in a project's path must not start an instruction."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def modelfile_text(base_gguf: Path, lora: Optional[Path], prompt_format: str, note: str) -> str:
    """An Ollama Modelfile: the base GGUF with the adapter (or a merged GGUF alone); a qa-trained
    adapter gets the prompt it learned. Paths are quoted (``modelfile_path``)."""
    lines = [f"# {comment_text(note)}", f"FROM {modelfile_path(base_gguf)}"]
    lines += [f"ADAPTER {modelfile_path(lora)}"] if lora is not None else []
    if prompt_format == "qa":
        lines += [
            "# Trained on prompts 'Q: <question>' newline 'A:', so Ollama asks the same way.",
            f'TEMPLATE """{qa_prompt("{{ .Prompt }}")}"""',
            'PARAMETER stop "Q:"',
            "PARAMETER temperature 0",
        ]
    return "\n".join(lines) + "\n"


def export_gguf(
    project_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    run_id: Optional[int] = None,
    *,
    merged: bool = False,
    force: bool = False,
    force_hint: str = "",
) -> GgufExport:
    """Write training run ``run_id``'s adapter (default: the latest finished run) into ``out_dir`` as
    ``<project>-run<N>-lora.gguf``, with an Ollama ``Modelfile`` and ``llama-server.txt`` when the base is a GGUF;
    with ``merged``, also the base with the adapter applied (``gguf_merge``) and its ``Modelfile.merged``.

    Nothing is written over a file KnowMix did not write in ``out_dir`` for this project (``force``
    replaces those, for scripts), nor ever over the project's own files or the base model
    (``core.exports_guard``); a path with a line break is refused. All before anything is written."""
    from ..exports_guard import ExportFolder, check_one_line, project_files
    from ..models import model_fingerprint, resolve_model
    from ..paths import write_text_atomic
    from ..store import Project

    with Project(project_path, create=False) as project:
        row = exportable_run(project, run_id)
        project_name = Path(project.path).stem
        protected = project_files(project)
    run_id = row.id
    assert row.adapter_dir is not None  # exportable_run found it
    adapter_dir = row.adapter_dir
    info = _adapter_info(adapter_dir)
    base_path = row.model_path or info.get("base_model") or row.model_spec
    try:
        ref = resolve_model(str(base_path))
    except ModelError as exc:
        raise ModelError(f"The base model of training run {run_id} cannot be opened: {exc}") from None
    if row.model_fingerprint and model_fingerprint(ref) != row.model_fingerprint:
        raise ModelError(
            f"The base model {ref.path} has changed since training run {run_id}, so its adapter would not fit it. "
            "Put back the file the run trained on, or train again."
        )
    base = base_model_info(ref.path)
    out = Path(out_dir).expanduser().resolve()
    lora = out / f"{project_name}-run{run_id}-lora.gguf"
    names = [lora.name]
    check_one_line(lora, "the export")
    if base.is_gguf:
        check_one_line(ref.path, "the base model")
        names += [MODELFILE, SERVER_LINES] + (
            [f"{project_name}-run{run_id}-merged.gguf", MODELFILE + ".merged"] if merged else []
        )
    guard = ExportFolder(
        out, project_path, protected=[*protected, ref.path, *adapter_dir.iterdir()], force=force, force_hint=force_hint
    )
    guard.check(names)
    tensors, alpha = lora_tensors(adapter_dir, base)  # once: the merged model below adds the same B·A
    write_lora_tensors(
        tensors, alpha, lora, base.architecture, name=f"{ref.display_name} LoRA (KnowMix {project_name} run {run_id})"
    )
    guard.wrote(lora)
    n = len(tensors)
    result = GgufExport(
        run_id=run_id,
        lora_path=lora,
        size_bytes=lora.stat().st_size,
        n_tensors=n,
        base_model=ref.path,
        base_is_gguf=base.is_gguf,
    )
    prompt_format = str(info.get("prompt_format") or "qa")
    if not base.is_gguf:
        result.notes.append(
            f"No Modelfile or llama-server line: the base model {ref.path} is a Hugging Face folder, and llama.cpp and "
            "Ollama need the base as a GGUF. Convert it with llama.cpp's convert_hf_to_gguf.py, then use "
            f"'llama-server -m BASE.gguf --lora {shlex.quote(str(lora))}'."
        )
        if merged:
            result.notes.append(
                "No merged GGUF: the base is not a GGUF. Train with --merge for a merged model in safetensors, and "
                "convert that with convert_hf_to_gguf.py."
            )
        return result
    note = f"Made by KnowMix from training run {run_id} of {project_path}"
    advice = "Pick a folder you can write to."
    result.modelfile = out / MODELFILE
    write_text_atomic(
        result.modelfile, modelfile_text(ref.path, lora, prompt_format, note), what="the Ollama Modelfile ", advice=advice
    )
    guard.wrote(result.modelfile)
    result.server_line = f"llama-server -m {shlex.quote(str(ref.path))} --lora {shlex.quote(str(lora))}"
    server_text = [f"# {comment_text(note)}", result.server_line]
    if prompt_format == "qa":
        server_text.insert(1, "# The adapter answers prompts written 'Q: <question>\\nA:' (POST /completion with that prompt).")
    result.server_file = out / SERVER_LINES
    write_text_atomic(result.server_file, "\n".join(server_text) + "\n", what="the llama-server line ", advice=advice)
    guard.wrote(result.server_file)
    if merged:
        from .gguf_merge import write_merged_gguf

        merged_gguf = write_merged_gguf(
            ref.path,
            tensors,
            alpha,
            out / f"{project_name}-run{run_id}-merged.gguf",
            name=f"{ref.display_name} + LoRA (KnowMix {project_name} run {run_id})",
        )
        result.merged_path, result.merged_size = merged_gguf.path, merged_gguf.size_bytes
        guard.wrote(merged_gguf.path)
        result.merged_modelfile = out / (MODELFILE + ".merged")
        write_text_atomic(
            result.merged_modelfile,
            modelfile_text(merged_gguf.path, None, prompt_format, note + " (merged)"),
            what="the Ollama Modelfile ",
            advice=advice,
        )
        guard.wrote(result.merged_modelfile)
    if prompt_format == "qa":
        result.notes.append("The adapter was trained on 'Q: <question>\\nA:' prompts: ask it the same way (the Modelfile does).")
    return result


def _adapter_info(adapter_dir: Path) -> dict:
    from .checkpoints import ADAPTER_INFO

    try:
        value = json.loads((adapter_dir / ADAPTER_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
