"""Sustained ingestion through the HTTP API: batches of events, committed before the answer.

    ./dev bench ingest_http [--seconds 20] [--connections 32] [--workers 1] [--backend sqlite]

Starts `tastebud serve` in its own process on 127.0.0.1, drives it with wrk (C load generator,
`apt-get install wrk`) whose Lua script sends PutEvents bodies of ``--batch`` events (10) with
unique event ids (of 20,000 users and sessions, 5,000 items), first for ``--warmup`` seconds,
then for the measured ``--seconds``. It then checks durability: the run added at least
batch x (answered requests) events
to the store, and no more than the requests still in flight when wrk stopped on top of those.
PostgreSQL runs get a database of their own (see ``postgres_database``).

Besides events/s and latency it reports where the CPU went during the run (the machine is shared
with wrk, so CPU per request is the figure that carries over): the server's threads (event loop,
event-tracker writer, others) per worker process, wrk itself, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from http_load import (
    PG_URL,
    TICK,
    children_cpu,
    cpu_used,
    free_port,
    postgres_database,
    postgres_ticks,
    server_cpu,
    wait_ready,
)

LUA = """
local thread_id = 0
local counter = 0
function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end
function request()
  counter = counter + 1
  local prefix = RUN .. tid .. "-" .. counter
  local events = {}
  for k = 1, BATCH do
    events[k] = string.format(
      '{"eventId":"%s-%d","itemId":"i%d","eventType":"click","sentAt":%d}',
      prefix, k, (counter * 7 + k * 13) % 5000, 1700000000 + counter)
  end
  local body = string.format('{"userId":"u%d","sessionId":"s%d","eventList":[%s]}',
    counter % 20000, counter % 20000, table.concat(events, ","))
  return wrk.format("POST", nil, HEADERS, body)
end
"""


def count_events(url: str, token: str, group: str) -> int:
    request = urllib.request.Request(
        f"{url}/v1/dataset-groups/{group}/status", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request) as response:
        return int(json.load(response)["counts"]["interactions"])


# the run -------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument(
        "--warmup", type=int, default=3,
        help="seconds of load before the measured run (ids and sessions get known, plans made)",
    )  # fmt: skip
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch", type=int, default=10, help="events per request")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=1, help="API worker processes")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--database-url", default=os.environ.get("TASTEBUD_DATABASE_URL"),
        help="PostgreSQL database for --backend postgres (default: a fresh database made on "
        f"the server of {PG_URL} for the run, dropped after it)",
    )  # fmt: skip
    return parser.parse_args()


def run_wrk(args: argparse.Namespace, url: str, script: Path, seconds: int) -> str:
    wrk = subprocess.run(
        ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s",
         "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return wrk.stdout


def write_script(home: Path, token: str, run: str, batch: int) -> Path:
    """The Lua script of one wrk run; ``run`` prefixes its event ids (unique across runs)."""
    script = home / f"events-{run}.lua"
    headers = f'{{["Authorization"]="Bearer {token}", ["Content-Type"]="application/json"}}'
    script.write_text(f'HEADERS = {headers}\nRUN = "{run}"\nBATCH = {batch}\n{LUA}')
    return script


def warm_up(
    args: argparse.Namespace, url: str, home: Path, token: str, database: str | None
) -> None:
    """Load the server for ``--warmup`` seconds, then let what was in flight finish.

    On PostgreSQL, ANALYZE then stands in for autovacuum (the test server runs without it):
    with no statistics, the id lookups of a fresh database scan a whole group per commit."""
    if args.warmup > 0:
        run_wrk(args, url, write_script(home, token, "w", args.batch), args.warmup)
        time.sleep(1)
    if database is not None:
        import psycopg

        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("ANALYZE")


def summarize(args: argparse.Namespace, output: str, stored: int) -> dict[str, Any]:
    """The figures of the measured run; ``stored``: the events it added to the store."""
    totals = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)\b", output)
    assert totals is not None, output
    requests = int(totals.group(1))
    seconds = float(totals.group(2)) * {"ms": 0.001, "s": 1, "m": 60}[totals.group(3)]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    failed = int(non_2xx.group(1)) if non_2xx else 0
    socket_errors = re.search(r"Socket errors: (.*)", output)
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.M))
    ok = requests - failed
    # Requests wrk had sent but not seen answered when it stopped may be stored, no more.
    batch = args.batch
    in_flight = args.connections * batch
    return {
        "backend": args.backend, "workers": args.workers, "connections": args.connections,
        "seconds": round(seconds, 2), "requests_ok": ok, "requests_failed": failed,
        "socket_errors": socket_errors.group(1) if socket_errors else None,
        "batch": batch, "events_per_second": round(ok * batch / seconds),
        "requests_per_second": round(ok / seconds), "latency": latency,
        "stored_events": stored, "acknowledged_events": ok * batch,
        "durable": ok * batch <= stored <= ok * batch + in_flight,
    }  # fmt: skip


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    if args.backend == "postgres":
        with postgres_database(args.database_url) as url:
            run(args, url)
    else:
        run(args, None)


def run(args: argparse.Namespace, database_url: str | None) -> None:
    home = Path(tempfile.mkdtemp(prefix="tastebud-ingest-"))
    group = f"ingest{os.getpid()}"
    token = "tb_benchmark_token_" + os.urandom(8).hex()
    env = {**os.environ, "TASTEBUD_HOME": str(home), "TASTEBUD_API__ADMIN_TOKEN": token}
    env.pop("TASTEBUD_DATABASE_URL", None)
    if database_url is not None:
        env["TASTEBUD_DATABASE_URL"] = database_url
    cli = [sys.executable, "-m", "tastebud"]
    subprocess.run([*cli, "groups", "create", group], env=env, check=True, capture_output=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port), "--workers", str(args.workers)],
        # stderr carries one access-log line per request: never a pipe nobody reads.
        env=env | {"TASTEBUD_API__ACCESS_LOG": "false"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_ready(url)
        path = f"{url}/v1/dataset-groups/{group}/events"
        warm_up(args, path, home, token, database_url)
        stored_before = count_events(url, token, group)
        load_before = os.getloadavg()
        cpu_before, wrk_before = server_cpu(server.pid), children_cpu()
        pg_before = postgres_ticks(database_url)
        output = run_wrk(args, path, write_script(home, token, "r", args.batch), args.seconds)
        cpu_after, wrk_after = server_cpu(server.pid), children_cpu()
        pg_ticks = sum(postgres_ticks(database_url).values()) - sum(pg_before.values())
        load_after = os.getloadavg()
        time.sleep(1)  # requests wrk left unanswered may still commit
        stored = count_events(url, token, group) - stored_before
        result = summarize(args, output, stored)
        ok = max(result["requests_ok"], 1)
        server_ticks = sum(sum(c.values()) for c in cpu_after.values()) - sum(
            sum(c.values()) for c in cpu_before.values()
        )
        result |= {
            "server_cpu_seconds": cpu_used(cpu_before, cpu_after),
            "server_cpu_us_per_request": round(server_ticks / TICK / ok * 1e6),
            "wrk_cpu_us_per_request": round((wrk_after - wrk_before) / ok * 1e6),
            "postgres_cpu_us_per_request": round(pg_ticks / TICK / ok * 1e6)
            if database_url is not None
            else None,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
        }
        print(output)
        print(json.dumps(result, indent=2))
        if result["requests_failed"] or not result["durable"]:
            sys.exit(1)
    finally:
        server.terminate()
        server.wait(10)
        if database_url is not None:
            subprocess.run([*cli, "groups", "delete", group, "--yes"], env=env,
                           capture_output=True)  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
