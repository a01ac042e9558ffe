"""Overload: at 3x the throughput one process can serve, the excess is answered 503 +
`Retry-After` at once, and the admitted requests keep their latency.

One `tastebud serve` process (SQLite; serving_latency.py's data and ALS-64 at a fifth of its
size, 20k items and 4k users, so that it trains in seconds; campaign answers not cached, so
that every request scores). Phases:

1. capacity: a closed loop (`--connections` clients, each sending its next request when the
   last is answered) measures the requests/s the process serves, X;
2. light: an open loop at 0.5 X (requests sent on a fixed schedule, whatever the answers);
3. overload: an open loop at 3 X.

The generator is a small asyncio HTTP/1.1 client over keep-alive connections (wrk2 cannot split
the latency of admitted and refused requests). Latency is counted from each request's intended
send time, so a generator that falls behind shows it as latency (no coordinated omission).

Each variant is one server with some `TASTEBUD_API__*` settings changed: `defaults`, or
`NAME=KEY:VALUE+KEY:VALUE` (KEY without the prefix), e.g. the limits before issue 18's fix:

    flock /tmp/tastebud-bench.lock flock /tmp/tastebud-quiet.lock \\
        .venv/bin/python benchmarks/overload.py --pin \\
        --variants "defaults,old=MAX_INFLIGHT_REQUESTS:512+SHED_LAG_MS:1e9+MAX_WAITING_ANSWERS:9999"

Each phase also reports the CPU share (of one core) of the server and of this generator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import numpy as np

import serving_latency
from http_load import TICK, free_port, thread_ticks, wait_ready
from serving_latency import CAMPAIGN, GROUP, prepare
from tastebud.settings import Settings

# serving_latency.generate reads its sizes when called: a fifth of its catalogue and users.
serving_latency.N_ITEMS, serving_latency.N_USERS = 20_000, 4_000

PATH = f"/v1/dataset-groups/{GROUP}/campaigns/{CAMPAIGN}/recommendations"


class Results:
    def __init__(self) -> None:
        self.latency: dict[int, list[float]] = {}  # status -> seconds (0: no answer)
        self.retry_after: Counter[str] = Counter()
        self.unread = 0  # refused by the server's protocol, before the app (no request id)

    def add(self, status: int, seconds: float, retry_after: str | None, app: bool = True) -> None:
        self.latency.setdefault(status, []).append(seconds)
        if retry_after is not None:
            self.retry_after[retry_after] += 1
        self.unread += status == 503 and not app

    def figures(self, seconds: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for status, values in sorted(self.latency.items()):
            ms = np.array(values) * 1000
            out[str(status)] = {
                "count": len(values), "per_second": round(len(values) / seconds, 1),
                "p50_ms": round(float(np.percentile(ms, 50)), 2),
                "p99_ms": round(float(np.percentile(ms, 99)), 2),
            }  # fmt: skip
        if self.retry_after:
            out["retry_after"] = dict(self.retry_after)
        out["refused_unread_per_second"] = round(self.unread / seconds, 1)
        return out


class Connection:
    """One keep-alive HTTP/1.1 connection sending one request at a time."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, body: bytes) -> tuple[int, str | None, bool]:
        """(status, Retry-After, whether the app answered: its answers carry a request id)"""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")  # fmt: skip
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed")
        status, length, retry_after = int(status_line.split()[1]), 0, None
        app = False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "retry-after":
                retry_after = value.strip()
            app = app or name.lower() == "x-request-id"
        await self.reader.readexactly(length)
        return status, retry_after, app

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.writer = None


def body() -> bytes:
    user = random.randrange(serving_latency.N_USERS)
    return b'{"userId":"u%d","numResults":25}' % user


async def closed_loop(port: int, token: str, connections: int, seconds: float) -> dict[str, Any]:
    results, deadline = Results(), time.perf_counter() + seconds

    async def client() -> None:
        connection = Connection(port, token)
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            status, retry_after, app = await connection.request(body())
            results.add(status, time.perf_counter() - start, retry_after, app)
        connection.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return results.figures(seconds)


async def open_loop(port: int, token: str, rate: float, seconds: float) -> dict[str, Any]:
    """Requests at ``rate``/s on a fixed schedule, each on an idle connection (new ones opened
    as needed); latency from the intended send time."""
    results, idle = Results(), [Connection(port, token) for _ in range(64)]
    pending: set[asyncio.Task[None]] = set()

    async def one(intended: float) -> None:
        connection = idle.pop() if idle else Connection(port, token)
        try:
            status, retry_after, app = await connection.request(body())
            idle.append(connection)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            status, retry_after, app = 0, None, False
            connection.close()
        results.add(status, time.perf_counter() - intended, retry_after, app)

    start = time.perf_counter()
    total = int(rate * seconds)
    for n in range(total):
        intended = start + n / rate
        delay = intended - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(intended))
        pending.add(task)
        task.add_done_callback(pending.discard)
    late = time.perf_counter() - (start + (total - 1) / rate)
    await asyncio.gather(*pending)
    for connection in idle:
        connection.close()
    figures = results.figures(seconds)
    figures["offered_per_second"] = rate
    figures["generator_behind_s"] = round(max(0.0, late), 3)
    return figures


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--variants",
        default="defaults",
        help="servers to compare: NAME or NAME=KEY:VALUE+KEY:VALUE (TASTEBUD_API__KEY)",
    )
    parser.add_argument(
        "--connections", type=int, default=4,
        help="closed-loop clients (at most answer threads + waiting answers: none refused)",
    )  # fmt: skip
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--overload", type=float, default=3.0, help="offered load / capacity")
    parser.add_argument("--home", type=Path, help="reuse a prepared home (skip training)")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="server on CPU 0, this generator on CPU 1 (two cores or more)",
    )
    return parser.parse_args()  # fmt: skip


def variant(text: str) -> tuple[str, dict[str, str]]:
    """``NAME=KEY:VALUE+KEY:VALUE`` -> (NAME, {TASTEBUD_API__KEY: VALUE})."""
    name, _, settings = text.partition("=")
    pairs = (item.split(":", 1) for item in settings.split("+") if item)
    return name, {f"TASTEBUD_API__{key.upper()}": value for key, value in pairs}


def cpu_share(pid: int, phase: Coroutine[Any, Any, Any]) -> tuple[Any, dict[str, float]]:
    """Run ``phase``; its result and the CPU share (of one core) of the server and of us."""
    start, server = time.perf_counter(), thread_ticks(pid)
    ours = resource.getrusage(resource.RUSAGE_SELF)
    result = asyncio.run(phase)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    server_s = sum((thread_ticks(pid) - server).values()) / TICK
    ours_s = after.ru_utime + after.ru_stime - ours.ru_utime - ours.ru_stime
    return result, {"server": round(server_s / wall, 2), "generator": round(ours_s / wall, 2)}


def serve(
    home: Path, settings: dict[str, str], *, pin: bool
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "TASTEBUD_HOME": str(home / "home"), "TASTEBUD_API__ACCESS_LOG": "false",
           **settings, "OMP_NUM_THREADS": "1"}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "tastebud", "serve", "--port", str(port)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=(lambda: os.sched_setaffinity(0, {0})) if pin else None,
    )  # fmt: skip
    wait_ready(f"http://127.0.0.1:{port}")
    return server, port


def main() -> None:
    args = parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="tastebud-overload-"))
    token_file = home / "bench-token"
    if not token_file.exists():
        token_file.write_text(prepare(Settings(home=home / "home", default_group=GROUP), home))
    token = token_file.read_text()
    if args.pin:
        os.sched_setaffinity(0, {1})
    rate = None
    for name, settings in (variant(text) for text in args.variants.split(",")):
        server, port = serve(home, settings, pin=args.pin)
        try:
            asyncio.run(closed_loop(port, token, 2, 3.0))  # warm up: load the version
            if rate is None:  # the capacity of the first server sets the offered rates
                capacity = asyncio.run(closed_loop(port, token, args.connections, args.seconds))
                rate = capacity["200"]["per_second"]
                print("capacity:", json.dumps(capacity), flush=True)
            for phase, share in (("light", 0.5), ("full", 1.0), ("overload", args.overload)):
                load = open_loop(port, token, rate * share, args.seconds)
                figures, cpu = cpu_share(server.pid, load)
                figures["cpu"] = cpu
                print(f"{name} {phase} ({share:g}x):", json.dumps(figures), flush=True)
        finally:
            server.terminate()
            server.wait(30)
    print(json.dumps({"cpus": os.cpu_count(), "pinned": args.pin, "load": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
