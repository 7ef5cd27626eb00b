"""Where the llama.cpp wheels built on this machine are kept: one home for the developer set-up
(``setup_venv.py``) and the installers' build (``build.py``), which must agree or a fresh clone
compiles llama.cpp's 14 CPU variants again.

One folder per llama.cpp version and exact flags (the folder name is a hash of both, and
cmake-args.txt inside says which), so no wheel built with other flags can stand in for it, unlike
pip's own cache. ``KNOWMIX_WHEEL_CACHE`` moves it; else ``$XDG_CACHE_HOME`` (or ``~/.cache``)
``/knowmix/llama-wheels``. Standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path


def wheel_cache() -> Path:
    """The folder of built llama.cpp wheels, as the environment says now."""
    override = os.environ.get("KNOWMIX_WHEEL_CACHE")
    if override:
        return Path(override)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "knowmix" / "llama-wheels"
