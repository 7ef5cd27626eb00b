"""Loading the models a check asks: the base model, the base model with the run's adapter (a GGUF
LoRA on llama.cpp, the peft adapter on torch), and the probe's judge."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..backends.base import Backend
from ..errors import ProjectError, SettingsError
from ..store.records import TrainRun
from .types import CheckSettings


@dataclass
class CheckModels:
    """How a check reaches its two models: ``base`` and ``adapter`` already loaded (tests pass scripted
    ones), else each loaded here in turn, in a child process unless ``isolate`` is False, with
    ``n_threads`` CPU threads (None: the backend's default)."""

    base: Optional[Backend] = None
    adapter: Optional[Backend] = None
    isolate: bool = True
    n_threads: Optional[int] = None


def _base_ref(run: TrainRun) -> Any:
    from ..models import resolve_model

    path = run.model_path or None
    if not path or not Path(path).exists():
        raise ProjectError(
            f"The base model of training run {run.id} is not at {path} any more. Put it back, or check another run."
        )
    return resolve_model(path)


def _uses_llama(run: TrainRun, settings: CheckSettings) -> bool:
    if settings.backend != "auto":
        return settings.backend == "llama.cpp"
    return run.model_path.lower().endswith(".gguf")


def _backend_words(run: TrainRun, settings: CheckSettings, given: Optional[Backend]) -> str:
    if given is not None:
        return given.name
    return "llama.cpp with the adapter as a GGUF LoRA" if _uses_llama(run, settings) else "torch with the peft adapter"


def gguf_lora_for(run: TrainRun) -> Path:
    """The run's adapter as a GGUF LoRA in its folder, written once (again when the adapter is newer)."""
    from ..train.gguf_lora import ADAPTER_WEIGHTS, base_model_info, write_gguf_lora

    adapter = Path(str(run.adapter_dir))
    dest = (run.folder or adapter.parent) / "check" / f"{adapter.name}-lora.gguf"
    source = adapter / ADAPTER_WEIGHTS
    if not dest.is_file() or dest.stat().st_mtime < source.stat().st_mtime:
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_gguf_lora(adapter, dest, base_model_info(run.model_path), name=f"run {run.id}")
    return dest


def _load(cp: Any, settings: Optional[CheckSettings], isolate: bool, n_threads: Optional[int], on_status) -> Backend:
    """The base model (``settings`` None) or the model with the run's adapter."""
    import hashlib

    from ..backends import load_backend
    from ..models import model_fingerprint
    from ..probe import load_options

    run = cp.train_run
    ref = _base_ref(run)
    use_llama = _uses_llama(run, settings or CheckSettings())
    name = "llama.cpp" if use_llama else "torch"
    if use_llama and ref.kind != "gguf":
        raise SettingsError(f"{ref.path} is not a GGUF file, so llama.cpp cannot check it; use --backend torch.")
    fingerprint = model_fingerprint(ref) if use_llama else ""
    if settings is None:
        on_status(f"Loading the base model {run.model_name or ref.display_name} ({name}) for the answers before training ...")
        return load_backend(ref, name, isolate=isolate, **load_options(name, fingerprint, n_threads=n_threads))
    on_status(f"Loading {run.model_name or ref.display_name} with the adapter of training run {run.id} ({name}) ...")
    if use_llama:
        lora = gguf_lora_for(run)
        # the prompt cache is keyed by the fingerprint: the base model with this adapter file is another model
        digest = hashlib.sha256(f"{fingerprint}|{lora.stat().st_size}|{os.path.getmtime(lora)}".encode()).hexdigest()
        options = load_options(name, digest, n_threads=n_threads, extra={"lora_path": str(lora)})
    else:
        options = load_options(name, extra={"adapter": str(run.adapter_dir)})
    return load_backend(ref, name, isolate=isolate, **options)


def _load_judge(cp: Any, isolate: bool, n_threads: Optional[int], on_status) -> Backend:
    """The first probe's judge: its judge model when it named one, else the base model."""
    judge_model = cp.probe_settings.judge_model
    if not judge_model:
        return _load(cp, None, isolate, n_threads, on_status)
    from ..backends import backend_for, load_backend
    from ..models import model_fingerprint, resolve_model
    from ..probe import load_options

    ref = resolve_model(judge_model)
    on_status(f"Loading the judge model {ref.display_name} ...")
    name = backend_for(ref, "auto")
    fingerprint = model_fingerprint(ref) if name == "llama.cpp" else ""
    return load_backend(ref, name, isolate=isolate, **load_options(name, fingerprint, n_threads=n_threads))
