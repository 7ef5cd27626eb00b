"""Backend-load options: the one rule for what a backend is told when a model is loaded (issue 22,
item 3), used by the probe, the check and the app's model page.

llama.cpp gets the model's fingerprint (its prompt cache is keyed by it) and a thread count when
one is asked for; torch gets a device and never a thread count.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ..backends.base import Backend


def load_options(
    backend_name: str,
    fingerprint: str = "",
    *,
    n_threads: Optional[int] = None,
    device: str = "",
    extra: Optional[Mapping] = None,
) -> dict[str, Any]:
    """The keyword options of ``core.backends.load_backend`` for ``backend_name``."""
    options: dict[str, Any] = dict(extra or {})
    if n_threads:
        options["n_threads"] = n_threads
    if backend_name == "llama.cpp":
        if fingerprint:
            options["fingerprint"] = fingerprint
    else:
        options.pop("n_threads", None)
        if device:
            options["device"] = device
    return options


def load_model_backend(
    ref: Any, backend_name: str, fingerprint: str, allow_pickle: bool, options: Optional[Mapping], isolate: bool
) -> Backend:
    """Load ``ref`` with ``backend_name``, the options as ``load_options`` gives them."""
    from ..backends import load_backend

    return load_backend(
        ref, backend_name, allow_pickle=allow_pickle, isolate=isolate, **load_options(backend_name, fingerprint, extra=options)
    )
