"""torchrun for one computer, listening on the loopback interface only (``knowmix train --processes N``).

torchrun's rendezvous and its workers' store are ``TCPStore`` servers, which listen on every
interface with no authentication whatever ``--rdzv-endpoint``, ``--master-addr`` or
``--local-addr`` say (its C++ server binds the wildcard address): anyone on the network could
join or disturb the run. ``TCPStore`` takes an already bound socket (``master_listen_fd``), so
this module starts torchrun (``torch.distributed.run.main``) with every store server KnowMix's
training creates bound to 127.0.0.1 first, and the runner passes a loopback rendezvous endpoint.
The training processes connect to the store as clients; gloo (``GLOO_SOCKET_IFNAME=lo``, set by
the runner) and NCCL (``NCCL_SOCKET_IFNAME=lo``) keep their own sockets on loopback too.

Run as ``python -m core.train.launch [torchrun options] -m core.train.worker ...``.
"""

from __future__ import annotations

import socket
import sys
from typing import Any, Optional

LOOPBACK = "127.0.0.1"
# The training processes' own sockets (gloo, NCCL) on the loopback interface, by its name on this OS.
LOOPBACK_ENV: dict[str, str] = (
    {"GLOO_SOCKET_IFNAME": "lo", "NCCL_SOCKET_IFNAME": "lo"}
    if sys.platform.startswith("linux")
    else {"GLOO_SOCKET_IFNAME": "lo0"}
    if sys.platform == "darwin"
    else {}
)
_NAMES = (
    "host_name",
    "port",
    "world_size",
    "is_master",
    "timeout",
    "wait_for_workers",
    "multi_tenant",
    "master_listen_fd",
    "use_libuv",
)


def loopback_socket(port: int) -> socket.socket:
    """A listening TCP socket on 127.0.0.1 (``port`` 0: any free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, int(port or 0)))
    sock.listen(128)
    return sock


def install() -> None:
    """Make every TCPStore server torchrun creates listen on 127.0.0.1 only."""
    import torch.distributed as dist
    from torch.distributed.elastic.rendezvous import c10d_rendezvous_backend, static_tcp_rendezvous

    base: Any = dist.TCPStore
    if getattr(base, "_knowmix_loopback", False):
        return

    class LoopbackTCPStore(base):
        _knowmix_loopback = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            options: dict[str, Any] = dict(zip(_NAMES, args))
            options.update(kwargs)
            if options.get("is_master") and options.get("master_listen_fd") is None:
                sock = loopback_socket(int(options.get("port") or 0))
                options["port"] = sock.getsockname()[1]
                options["master_listen_fd"] = sock.detach()  # the store owns the socket from here
            super().__init__(**options)

    dist.TCPStore = LoopbackTCPStore  # type: ignore[misc]
    c10d_rendezvous_backend.TCPStore = LoopbackTCPStore  # type: ignore[misc]
    static_tcp_rendezvous.TCPStore = LoopbackTCPStore  # type: ignore[misc]


def main(argv: Optional[list[str]] = None) -> None:
    install()
    from torch.distributed.run import main as torchrun

    torchrun(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
