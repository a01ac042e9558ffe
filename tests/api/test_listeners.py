"""``serve --workers N``: each worker listens on its own socket, so connections opened at once
are spread over the workers instead of landing on whichever woke first."""

from __future__ import annotations

import logging
import os
import pickle
import socket
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastebud.api.listeners import WorkerSocket, bind_shared
from tastebud.cli import app
from tests.api.servers import ServeProcess

CONNECTIONS = 64


def test_a_worker_socket_unpickles_as_a_new_socket_on_the_same_address() -> None:
    parent = bind_shared(socket.AF_INET, ("127.0.0.1", 0))
    try:
        worker = pickle.loads(pickle.dumps(parent))
        try:
            assert isinstance(worker, WorkerSocket)
            assert worker.fileno() != parent.fileno()
            assert worker.getsockname() == parent.getsockname()
            worker.listen()
            with socket.create_connection(parent.getsockname(), timeout=5):
                accepted, _ = worker.accept()  # the worker's socket takes the connection
                accepted.close()
        finally:
            worker.close()
    finally:
        parent.close()


@pytest.mark.slow  # starts three processes
def test_connections_opened_at_once_reach_every_worker(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path, "--workers", "2")
    clients: list[socket.socket] = []
    try:
        server.wait_ready()
        deadline = time.monotonic() + 30  # until the second worker listens too
        while len(_sockets(server.port, state="0A")) < 2:
            assert time.monotonic() < deadline, "a worker never listened"
            time.sleep(0.1)
        clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(CONNECTIONS)]
        for client in clients:  # each answered: accepted by a worker
            client.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        for client in clients:
            assert client.recv(4096).startswith(b"HTTP/1.1 200")
        held = _established_by_process(server.process.pid, server.port)
        assert len(held) == 2, held
        assert sum(held.values()) == CONNECTIONS
        # A fair split of 64 is 32 each; fewer than 16 on either side has odds of 2.4e-5.
        assert min(held.values()) >= CONNECTIONS // 4, held
    finally:
        for client in clients:
            client.close()
        logs = server.stop()
    assert server.process.returncode == 0, logs


def _established_by_process(supervisor: int, port: int) -> Counter[int]:
    """How many established connections to ``port`` each child of ``supervisor`` holds."""
    established = _sockets(port, state="01")
    held: Counter[int] = Counter()
    for pid in _children(supervisor):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:[") and target[8:-1] in established:
                held[pid] += 1
    return held


def _sockets(port: int, state: str) -> set[str]:
    """The inodes of the sockets on local ``port`` in ``state`` (01 established, 0A listening)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
            found.add(fields[9])
    return found


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_workers_on_a_taken_address_fail_with_a_clear_error(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    handlers, environment = list(logging.getLogger("tastebud").handlers), dict(os.environ)
    try:
        result = CliRunner().invoke(
            app, ["serve", "--workers", "2", "--port", str(port)],
            env={"TASTEBUD_HOME": str(tmp_path / "home")},
        )  # fmt: skip
    finally:
        taken.close()
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.output
    # Nothing of the process was changed for workers that never started.
    assert logging.getLogger("tastebud").handlers == handlers
    assert dict(os.environ) == environment
