"""Block all network access in a Python process: creating a socket, connecting or resolving a name
raises ``NetworkBlocked`` and the attempt is recorded.

Used by tests/test_offline.py in the test process (through ``monkeypatch.setattr``, undone after
the test) and, through a ``sitecustomize.py`` put first on ``PYTHONPATH``, in every Python child
the test starts (the training worker), where attempts are appended to the file named by
``KNOWMIX_NET_BLOCK_LOG`` because the child's exceptions may be caught and turned into messages.
Only Python-level sockets are covered: a C library opening its own socket would not be seen.
"""

from __future__ import annotations

import os
import socket
from typing import Callable, Optional

LOG_ENV = "KNOWMIX_NET_BLOCK_LOG"
ARMED_ENV = "KNOWMIX_NET_BLOCK_ARMED"  # a file each child that installed the block appends its pid to


class NetworkBlocked(RuntimeError):
    """Raised on any network attempt while the block is in place (a RuntimeError, so code that
    catches OSError to fall back quietly does not swallow it)."""


def install(
    setattr_: Callable[[object, str, object], None] = setattr, attempts: Optional[list] = None, log_path: Optional[str] = None
) -> None:
    def refuse(what: str, args: tuple) -> None:
        msg = f"network access attempted in process {os.getpid()}: socket.{what}{args[:3]!r}"
        if attempts is not None:
            attempts.append(msg)
        if log_path:
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(msg + "\n")
        raise NetworkBlocked(msg)

    real_socket = socket.socket

    class BlockedSocket(real_socket):  # a class, so modules that subclass socket.socket still import
        def __init__(self, *args, **kwargs):
            refuse("socket", args + tuple(kwargs.items()))

    def create_connection(*args, **kwargs):
        refuse("create_connection", args)

    def getaddrinfo(*args, **kwargs):
        refuse("getaddrinfo", args)

    setattr_(socket, "socket", BlockedSocket)
    setattr_(socket, "create_connection", create_connection)
    setattr_(socket, "getaddrinfo", getaddrinfo)


SITECUSTOMIZE = """\
import importlib.util as _u, os as _os
_spec = _u.spec_from_file_location("_knowmix_netblock", {path!r})
_mod = _u.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
_mod.install(log_path=_os.environ.get(_mod.LOG_ENV))
if _os.environ.get(_mod.ARMED_ENV):
    with open(_os.environ[_mod.ARMED_ENV], "a", encoding="utf-8") as _fh:
        _fh.write(str(_os.getpid()) + "\\n")
"""


def write_sitecustomize(folder: str | os.PathLike) -> str:
    """Write a sitecustomize.py into ``folder`` that blocks the network in any Python started with
    ``folder`` first on PYTHONPATH; returns the folder."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "sitecustomize.py"), "w", encoding="utf-8") as fh:
        fh.write(SITECUSTOMIZE.format(path=os.path.abspath(__file__)))
    return str(folder)
