"""Model backends, registered by name and imported only when used.

Importing this package imports neither torch nor llama_cpp: each entry of ``BACKENDS`` names a
module that is imported by ``load_backend`` the first time that backend is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ModelError, SettingsError
from ..models import ModelRef, resolve_model
from .base import Backend, GenRequest, GenStats, ModelInfo

BACKENDS: dict[str, tuple[str, str]] = {
    "llama.cpp": ("core.backends.llama_backend", "LlamaCppBackend"),
    "torch": ("core.backends.torch_backend", "TorchBackend"),
    # not a file model: load_backend(URL, "server") makes one, ``--server URL`` in the CLI (standard library only)
    "server": ("core.backends.server", "ServerBackend"),
}
ALIASES = {"llama": "llama.cpp", "llamacpp": "llama.cpp", "cpu": "llama.cpp", "transformers": "torch", "hf": "torch"}


def backend_for(ref: ModelRef, requested: str = "auto") -> str:
    """GGUF files go to llama.cpp and Hugging Face folders to torch unless the user says otherwise."""
    name = ALIASES.get(requested.lower(), requested.lower())
    if name == "auto":
        return "llama.cpp" if ref.kind == "gguf" else "torch"
    if name == "server":
        raise SettingsError("The server backend probes a model on a server: pass --server URL instead of --model.")
    if name not in BACKENDS:
        raise SettingsError(f"Unknown backend '{requested}'. Choose one of: auto, {', '.join(BACKENDS)}.")
    if name == "llama.cpp" and ref.kind != "gguf":
        raise SettingsError(f"{ref.path} is a Hugging Face folder; llama.cpp reads GGUF files only. Use --backend torch.")
    return name


def load_backend(
    model: str | ModelRef, backend: str = "auto", *, allow_pickle: bool = False, isolate: bool = False, **options: Any
) -> Backend:
    """Resolve ``model`` ('default' or a path), pick a backend and load the model.

    With ``isolate`` the model is loaded in a child process (``process.ProcessBackend``): a native
    crash of llama.cpp or torch then ends the child and arrives as ``ModelCrashed``. The CLI and
    the app isolate; tests and the benchmark may load in-process.

    ``backend="server"``: ``model`` is the URL of an OpenAI-compatible server (``options``:
    server_model, api_key_env, concurrency...); nothing is resolved on disk and nothing native runs,
    so no process."""
    if backend == "server":
        from .server import ServerBackend

        return ServerBackend(str(model), model=options.pop("server_model", None), **options)
    ref = model if isinstance(model, ModelRef) else resolve_model(model, allow_pickle=allow_pickle)
    name = backend_for(ref, backend)
    if isolate:
        from .process import ProcessBackend

        return ProcessBackend(ref, name, allow_pickle=allow_pickle, **options)
    module_name, class_name = BACKENDS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(f"The {name} backend cannot start: {exc}. Reinstall KnowMix (the full edition has torch).") from None
    cls = getattr(module, class_name)
    if name == "torch":
        options.setdefault("allow_pickle", allow_pickle)
    return cls(ref, **options)


__all__ = ["BACKENDS", "Backend", "GenRequest", "GenStats", "ModelInfo", "backend_for", "load_backend"]
