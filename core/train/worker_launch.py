"""The training worker's command line and environment, and what its log says when it ended badly.

``runner`` starts the worker (``core.train.worker``) with ``worker_command`` and ``worker_env``: one
process, or torchrun starting several on this computer only (``core.train.launch`` binds every store
it serves to 127.0.0.1).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..processes import child_command, child_env, describe_exit
from .settings import TrainSettings

CANCEL_GRACE_S = 600.0  # after a cancel, how long the worker may take to finish its step and save


def worker_command(
    project_path: str | os.PathLike, run_id: int, resume: bool, processes: int = 1, allow_pickle: bool = False
) -> list[str]:
    """The worker's command line; with several ``processes``, torchrun starting that many copies of it.

    torchrun passes a SIGTERM (a cancel) on to every process and, by ``--shutdown-timeout``, gives them
    as long as a cancel is given here to finish their step and save before it kills them."""
    cmd = child_command("core.train.worker", "--project", str(Path(project_path).resolve()), "--run-id", str(run_id))
    if resume:
        cmd.append("--resume")
    if allow_pickle:
        cmd.append("--allow-pickle")
    if processes > 1:  # torchrun on this computer only: every store it serves listens on 127.0.0.1 (core.train.launch)
        import uuid

        launcher = [sys.executable, "-m", "core.train.launch", "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0"]
        launcher += [f"--rdzv-id={uuid.uuid4().hex}", "--nnodes=1", "--local-addr=127.0.0.1"]
        launcher += [f"--nproc-per-node={processes}", f"--shutdown-timeout={int(CANCEL_GRACE_S - 30)}"]
        return launcher + cmd[cmd.index("-m") :]
    return cmd


def worker_env(settings: TrainSettings) -> dict[str, str]:
    """The worker's environment; several processes on the CPU get their share of its threads (torchrun
    would otherwise set one thread each and say so)."""
    from .distributed import LAUNCHED_ENV
    from .launch import LOOPBACK_ENV

    extra = {}
    if settings.processes > 1:
        extra[LAUNCHED_ENV] = "1"
        extra.update(LOOPBACK_ENV)  # gloo's and NCCL's own sockets on the loopback interface (core.train.launch)
        if "OMP_NUM_THREADS" not in os.environ:
            extra["OMP_NUM_THREADS"] = str(settings.threads_per_process(on_cpu=True))
    env = child_env(extra)
    if settings.processes <= 1:
        env.pop(LAUNCHED_ENV, None)
    return env


def log_tail(path: Path, lines: int = 3) -> str:
    """The log's last ``lines`` non-empty lines on one line (at most 500 characters), for an error message."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(l.strip() for l in text[-lines:] if l.strip())[:500]


def torchrun_root_cause(path: Path) -> str:
    """torchrun's "Root Cause" block in the log, in words: 'training process 0 was killed by SIGKILL (...)'."""
    import re

    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    at = text.rfind("Root Cause")
    if at < 0:
        return ""
    rank = re.search(r"rank\s*:\s*(\d+)", text[at:])
    code = re.search(r"exitcode\s*:\s*(-?\d+)", text[at:])
    if not code:
        return ""
    who = f"training process {rank.group(1)}" if rank else "a training process"
    return f"{who} {describe_exit(int(code.group(1)))}"
