"""``--processes N`` on one computer opens no port to the network (issue 19, item 3).

torchrun's rendezvous and workers' stores are TCPStore servers, which listen on every interface
with no authentication; KnowMix starts torchrun through ``core.train.launch`` so that each one
listens on 127.0.0.1 only, and keeps gloo's sockets on the loopback interface. The live test
starts the very command line ``--processes 2`` uses, with two gloo processes that meet and sum a
tensor, and lists every listening socket of the whole process tree (the OS's list: native
sockets, not only Python's).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytest.importorskip("torch")

from core.train.settings import TrainSettings  # noqa: E402
from core.train.worker_launch import worker_command, worker_env  # noqa: E402

GLOO_SCRIPT = """
import time, torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.ones(1)
dist.all_reduce(t)
assert t.item() == dist.get_world_size()
time.sleep(6)
dist.barrier()
dist.destroy_process_group()
"""


def launcher_for(processes: int) -> list[str]:
    """The launcher part of the worker's command line (everything before the worker module)."""
    cmd = worker_command("p.knowmix", 1, False, processes)
    return cmd[: cmd.index("-m", 2)]


def test_the_command_line_for_two_processes_binds_only_loopback() -> None:
    launcher = launcher_for(2)
    assert launcher[1:3] == ["-m", "core.train.launch"]
    assert "--rdzv-endpoint=127.0.0.1:0" in launcher and "--local-addr=127.0.0.1" in launcher
    assert "--standalone" not in launcher  # its endpoint is "localhost", its store listens everywhere
    if sys.platform.startswith("linux"):
        assert worker_env(TrainSettings(processes=2))["GLOO_SOCKET_IFNAME"] == "lo"
    assert worker_command("p.knowmix", 1, False, 1)[1:3] == ["-m", "core.train.worker"]


def listening(pids: set[int]) -> set[tuple[str, int]]:
    found = set()
    for conn in psutil.net_connections(kind="inet"):
        if conn.pid in pids and conn.status == psutil.CONN_LISTEN:
            found.add((conn.laddr.ip, conn.laddr.port))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the process tree's sockets are read from /proc")
def test_two_gloo_processes_under_the_launcher_listen_on_loopback_only(tmp_path: Path) -> None:
    script = tmp_path / "meet.py"
    script.write_text(GLOO_SCRIPT)
    env = worker_env(TrainSettings(processes=2, threads=2))
    proc = subprocess.Popen(
        [*launcher_for(2), str(script)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen: set[tuple[str, int]] = set()
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                tree = {proc.pid} | {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
            except psutil.NoSuchProcess:
                break
            seen |= listening(tree)
            time.sleep(0.2)
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-2000:]
    assert seen, "no listening socket was seen: the check looked at nothing"
    public = {(ip, port) for ip, port in seen if ip not in ("127.0.0.1", "::1")}
    assert not public, f"listening beyond loopback: {sorted(public)} (hostname {socket.gethostname()})"
