"""The offline guarantee: Hugging Face libraries must never reach the network.

These switches are read by huggingface_hub and transformers when they are *imported*, so they
are set when ``core`` is imported, before any backend can import transformers. They are forced,
not defaulted: a user's shell that exports HF_HUB_OFFLINE=0 must not turn KnowMix online.
"""

from __future__ import annotations

import os

OFFLINE_SWITCHES = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def enforce_offline() -> None:
    for key, value in OFFLINE_SWITCHES.items():
        os.environ[key] = value


def offline_status() -> dict[str, bool]:
    """For `knowmix doctor` and tests: which switches are in force right now."""
    return {key: os.environ.get(key) == value for key, value in OFFLINE_SWITCHES.items()}
