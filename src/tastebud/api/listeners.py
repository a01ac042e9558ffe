"""A listening socket per worker process, so the kernel spreads connections evenly.

uvicorn's workers share the supervisor's one listening socket, and the first worker to wake
accepts every pending connection (libuv accepts until the queue is empty). A load that opens its
connections at once (wrk's 64, a pool of keep-alive clients) then lands mostly on one worker: a
2-worker ingestion run gave one process 7 times the other's CPU. With ``SO_REUSEPORT`` each
worker listens on a socket of its own bound to the same address, and Linux hashes each new
connection to one of them.

The supervisor binds the address (reserving it, and failing early if it is taken) but never
listens on it; each worker receives it as :class:`WorkerSocket`, which a spawned process
unpickles as a new socket bound to that address. uvicorn's supervisor is used unchanged, so a
worker it restarts gets a socket of its own the same way.
"""

from __future__ import annotations

import socket
from typing import Any, TypeVar

import uvicorn
from uvicorn.supervisors import Multiprocess

REUSE_PORT = hasattr(socket, "SO_REUSEPORT")
_Socket = TypeVar("_Socket", bound=socket.socket)


class WorkerSocket(socket.socket):
    """The supervisor's bound socket; in a worker, a fresh one bound to the same address."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (bind_shared, (self.family, self.getsockname()[:2]))


def bind_shared(family: int, address: tuple[str, int]) -> WorkerSocket:
    """A TCP socket bound to ``address`` that others of this user may bind too (not listening)."""
    return _bound(WorkerSocket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP), address)


def bind_address(host: str, port: int) -> socket.socket:
    """The supervisor's socket for ``host:port``, bound, not listening (OSError if taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if REUSE_PORT:
        return bind_shared(family, (host, port))
    # Elsewhere uvicorn's way: one socket, its descriptor shared by the workers.
    return _bound(socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP), (host, port))


def _bound(sock: _Socket, address: tuple[str, int]) -> _Socket:
    """``sock`` bound to ``address``, kept across exec; a worker socket shares the address."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if isinstance(sock, WorkerSocket):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


def run_workers(config: uvicorn.Config, sock: socket.socket) -> None:
    """``uvicorn.run`` with ``config.workers`` processes listening on ``sock``'s address."""
    host, port = sock.getsockname()[:2]
    uvicorn.config.logger.info("Uvicorn running on http://%s:%d", host, port)
    Multiprocess(config, sockets=[sock]).run()
