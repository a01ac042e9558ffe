"""Sustained ingestion through the HTTP API: batches of 10 events, committed before the answer.

    ./dev bench ingest_http [--seconds 20] [--connections 32] [--workers 1] [--backend sqlite]

Starts `tastebud serve` in its own process on 127.0.0.1, drives it with wrk (C load generator,
`apt-get install wrk`) whose Lua script sends PutEvents bodies of 10 events with unique event ids,
then checks that the store holds exactly 10 x (successful requests) events.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
LUA = """
local thread_id = 0
local counter = 0
function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end
function request()
  counter = counter + 1
  local prefix = tid .. "-" .. counter
  local events = {}
  for k = 1, 10 do
    events[k] = string.format(
      '{"eventId":"%s-%d","itemId":"i%d","eventType":"click","sentAt":%d}',
      prefix, k, (counter * 7 + k * 13) % 5000, 1700000000 + counter)
  end
  local body = string.format('{"userId":"u%d","sessionId":"s%d","eventList":[%s]}',
    counter % 20000, counter % 20000, table.concat(events, ","))
  return wrk.format("POST", nil, nil, body)
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def count_events(url: str, token: str, group: str) -> int:
    request = urllib.request.Request(
        f"{url}/v1/dataset-groups/{group}/status", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request) as response:
        return int(json.load(response)["counts"]["interactions"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    home = Path(tempfile.mkdtemp(prefix="tastebud-ingest-"))
    group = f"ingest{os.getpid()}"
    token = "tb_benchmark_token_" + os.urandom(8).hex()
    env = {**os.environ, "TASTEBUD_HOME": str(home), "TASTEBUD_API__ADMIN_TOKEN": token}
    if args.backend == "postgres":
        env["TASTEBUD_DATABASE_URL"] = PG_URL
    cli = [sys.executable, "-m", "tastebud"]
    subprocess.run([*cli, "groups", "create", group], env=env, check=True, capture_output=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port), "--workers", str(args.workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_ready(url)
        script = home / "events.lua"
        headers = f'{{["Authorization"]="Bearer {token}", ["Content-Type"]="application/json"}}'
        script.write_text(
            LUA.replace(
                'wrk.format("POST", nil, nil, body)', f'wrk.format("POST", nil, {headers}, body)'
            )
        )
        path = f"{url}/v1/dataset-groups/{group}/events"
        wrk = subprocess.run(
            ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s",
             "--latency", "-s", str(script), path],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        output = wrk.stdout
        requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
        failed = int(non_2xx.group(1)) if non_2xx else 0
        socket_errors = re.search(r"Socket errors: (.*)", output)
        stored = count_events(url, token, group)
        latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.M))
        ok = requests - failed
        print(output)
        print(json.dumps({
            "backend": args.backend, "workers": args.workers, "connections": args.connections,
            "seconds": args.seconds, "requests_ok": ok, "requests_failed": failed,
            "socket_errors": socket_errors.group(1) if socket_errors else None,
            "events_per_second": round(ok * 10 / args.seconds),
            "requests_per_second": round(ok / args.seconds), "latency": latency,
            "stored_events": stored,
            "stored_matches_acknowledged": stored >= ok * 10,
        }, indent=2))  # fmt: skip
    finally:
        server.terminate()
        server.wait(10)
        if args.backend == "postgres":
            subprocess.run([*cli, "groups", "delete", group, "--yes"], env=env,
                           capture_output=True)  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
