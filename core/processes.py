"""Child processes for model work: how to start one, and how to say how it ended.

Model code (llama.cpp, torch) runs in child processes so that a native crash (SIGSEGV, SIGILL, an
abort, the OOM killer) ends the child, not the app or the CLI. Every child is started the same way,
``[sys.executable, "-m", module, ...]``: in a PyInstaller app ``sys.executable`` is the app binary,
and ``gui.entry`` runs the modules listed in ``CHILD_MODULES`` when it is called like that.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Optional

# The modules a packaged app may be asked to run as a child ("knowmix -m MODULE ...").
CHILD_MODULES = (
    "core.train.worker",
    "core.backends.process",
    "core.llama_cpu",
    "core.backend_checks",
    "core.backends.chat_sandbox",
)

_SIGNAL_WORDS = {
    "SIGSEGV": "segmentation fault",
    "SIGILL": "illegal instruction: code this CPU or OS cannot run",
    "SIGABRT": "aborted",
    "SIGBUS": "bus error",
    "SIGFPE": "arithmetic fault",
    "SIGKILL": "killed, often by the system running out of memory",
    "SIGTERM": "terminated",
}


CHILD_NICENESS = 5  # how far below the app the model children run (POSIX nice levels)


def lower_priority() -> None:
    """Run this child below the app that started it.

    llama.cpp and torch keep every core busy; at the same priority the window's UI thread then
    waits its turn behind them and the app stutters (seen: 0.3-0.9 s stalls on a 2-core machine).
    One step down the scheduler lets the UI run first whenever it has work, and the model still
    gets every core the UI does not use, so a probe or training run is not slower on an idle
    desktop. Best effort: a system that refuses leaves the priority as it is."""
    try:
        if hasattr(os, "nice"):
            os.nice(CHILD_NICENESS)
        elif sys.platform == "win32":  # pragma: no cover - Windows only
            import ctypes

            below_normal = 0x00004000
            ctypes.windll.kernel32.SetPriorityClass(ctypes.windll.kernel32.GetCurrentProcess(), below_normal)
    except (OSError, AttributeError):
        pass


def child_command(module: str, *args: str) -> list[str]:
    """The command line that runs ``module`` as a child, from source or from a packaged app."""
    if module not in CHILD_MODULES:
        raise ValueError(f"{module} is not a child module (add it to CHILD_MODULES)")
    return [sys.executable, "-m", module, *args]


def child_env(extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The child must import this very ``core`` package, installed or not, and print UTF-8."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["PYTHONIOENCODING"] = "utf-8"
    env.pop("PYTHONFAULTHANDLER", None)  # a crash is reported by the parent in one line, not as a dump
    if extra:
        env.update(extra)
    return env


def signal_name(code: Optional[int]) -> Optional[str]:
    """``-11`` -> ``"SIGSEGV"``; None for a normal exit (Windows reports crashes as large codes)."""
    if code is None or code >= 0:
        if code is not None and sys.platform == "win32" and code >= 0xC0000000:
            return {0xC0000005: "access violation", 0xC000001D: "illegal instruction"}.get(code, f"exception 0x{code:X}")
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def describe_exit(code: Optional[int]) -> str:
    """How a child ended, in words: 'was killed by SIGSEGV (segmentation fault)'."""
    if code is None:
        return "did not exit"
    name = signal_name(code)
    if name is None:
        return f"ended with exit code {code}"
    words = _SIGNAL_WORDS.get(name)
    return f"was killed by {name}" + (f" ({words})" if words else "")
