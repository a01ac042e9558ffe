"""What the HTTP benchmarks share: a server under test, wrk/wrk2 runs and where the CPU went.

wrk (Debian: `apt-get install wrk`) drives closed loops; wrk2 (https://github.com/giltene/wrk2,
`make` in a clone, then the `wrk` binary on PATH as `wrk2`) drives open loops at a fixed rate and
corrects for coordinated omission (latency counted from each request's intended send time).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
TICK = os.sysconf("SC_CLK_TCK")
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SystemExit(f"{tool} not found: {hint}")
    return path


# wrk and wrk2 --------------------------------------------------------------------------------
def run_wrk(
    url: str, script: Path, seconds: int, *, connections: int, rate: float | None = None,
    threads: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """One run of wrk2 at ``rate`` requests/s (open loop), or of wrk (closed loop) without one;
    its figures, and the CPU seconds the generator itself used."""
    command = ["wrk2", f"-R{rate:g}"] if rate is not None else ["wrk"]
    before = children_cpu()
    output = subprocess.run(
        [*command, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
         "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return parse_wrk(output) | {"generator_cpu_s": round(children_cpu() - before, 2)}


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests, rate, failures and latency percentiles (ms) of a wrk or wrk2 report."""
    totals = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)\b", output)
    assert totals is not None, output
    requests = int(totals.group(1))
    seconds = float(totals.group(2)) * _UNITS[totals.group(3)] / 1000
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    latency = {
        f"p{float(p):g}": round(float(value) * _UNITS[unit], 3)
        for p, value, unit in re.findall(r"^\s+([\d.]+)%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
        if float(p) in (50, 90, 99, 99.9)
    }
    return {
        "requests": requests, "seconds": round(seconds, 2),
        "requests_per_second": round(requests / seconds, 1),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else None,
        "latency_ms": latency,
    }  # fmt: skip


# CPU accounting ------------------------------------------------------------------------------
def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_tree(root: int) -> list[int]:
    """``root`` and its descendants (uvicorn's supervisor and its worker processes)."""
    pids, queue = [], [root]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            children = task / "children"
            if children.exists():
                queue += [int(child) for child in children.read_text().split()]
    return pids


def thread_ticks(pid: int) -> Counter[str]:
    """CPU clock ticks (user + system) of one process: its main thread (the event loop) and the
    others (the event tracker's writer, the thread pool, the store's connection pool), threads
    that have ended included."""
    try:
        process, main = (
            _ticks(Path(f"/proc/{pid}/stat")),
            _ticks(Path(f"/proc/{pid}/task/{pid}/stat")),
        )
    except OSError:  # the process ended meanwhile
        return Counter()
    return Counter({"main": main, "threads": process - main})


def _ticks(stat_file: Path) -> int:
    stat = stat_file.read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def server_cpu(root: int) -> dict[int, Counter[str]]:
    return {pid: thread_ticks(pid) for pid in _process_tree(root)}


def cpu_used(before: dict[int, Counter[str]], after: dict[int, Counter[str]]) -> dict[str, Any]:
    """Seconds per worker process and thread role between two snapshots (idle ones left out)."""
    used: dict[str, Any] = {}
    for pid, seconds in after.items():
        delta = seconds - before.get(pid, Counter())
        if sum(delta.values()) >= 0.05 * TICK:
            used[str(pid)] = {role: round(t / TICK, 2) for role, t in sorted(delta.items())}
    return used


def total_seconds(snapshot: dict[int, Counter[str]]) -> float:
    return sum(sum(c.values()) for c in snapshot.values()) / TICK


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, from ``/proc/stat``."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def postgres_ticks(database: str | None) -> dict[int, int]:
    """CPU ticks of the PostgreSQL backends serving ``database`` (a server on this machine)."""
    if database is None:
        return {}
    import psycopg

    with psycopg.connect(database, autocommit=True) as conn:
        pids = [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )]  # fmt: skip
    return {pid: sum(thread_ticks(pid).values()) for pid in pids if Path(f"/proc/{pid}").exists()}


@contextmanager
def postgres_database(url: str | None, name: str | None = None) -> Iterator[str]:
    """``url``; or the database ``name`` on the default server, made when missing and kept; or
    a database of the run's own, made empty and dropped after.

    A fresh database measures the product rather than the state a shared one is left in (the
    test server runs without autovacuum: dead rows and stale statistics pile up)."""
    if url is not None:
        yield url
        return
    import psycopg

    keep = name is not None
    name = name or f"tastebud_bench_{os.getpid()}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f"CREATE DATABASE {name}")
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        if not keep:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
