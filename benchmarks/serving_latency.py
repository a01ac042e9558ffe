"""Campaign latency at a fixed request rate, peak throughput, memory, and event reflection time.

A synthetic catalogue of 100,000 items (20 genres, Zipf popularity) and 20,000 users with 25
interactions each is imported into an embedded store; ALS with 64 factors is trained and deployed
as a campaign; `tastebud serve` (one process) answers top-25 requests for known users with a
filter on (`EXCLUDE ItemID WHERE Items.GENRE IN ($G)`, a different genre per request).

Phases:
0. 50 requests/s for 10 s, cache off: the time one request takes when requests do not queue;
1. open loop at ``--uncached-rate`` requests/s for ``--seconds`` (the intended send time starts
   the clock, so queueing counts), cache off: every request scores the user and applies the
   filter;
2. open loop at ``--rate`` with the campaign's cache on and 2,000 returning users;
3. peak throughput with wrk (closed loop, 16 connections), cache off;
4. reflection: a user's event accepted (its 200) until the campaign's answer for that user
   changes, over ``--reflections`` users.

Server-side latency comes from the server's own access log (``duration_ms`` of each request).

    ./dev bench serving_latency [--rate 1000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl

from tastebud.engine import Engine
from tastebud.settings import ServingSettings, Settings

N_ITEMS, N_USERS, PER_USER, GENRES = 100_000, 20_000, 25, 20
GROUP, CAMPAIGN = "bench", "home"


def generate(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, N_ITEMS + 1) ** 0.8
    items = rng.choice(N_ITEMS, size=N_USERS * PER_USER, p=weights / weights.sum())
    interactions = folder / "interactions.csv"
    pl.DataFrame({
        "USER_ID": np.repeat([f"u{u}" for u in range(N_USERS)], PER_USER),
        "ITEM_ID": [f"i{i}" for i in items],
        "TIMESTAMP": 1_700_000_000 + np.arange(len(items)),
        "EVENT_TYPE": "click",
    }).write_csv(interactions)  # fmt: skip
    catalog = folder / "items.csv"
    genres = [f"g{i % GENRES}" for i in range(N_ITEMS)]
    pl.DataFrame({"ITEM_ID": [f"i{i}" for i in range(N_ITEMS)], "GENRE": genres}).write_csv(catalog)
    return interactions, catalog


def prepare(home: Path, data: Path) -> str:
    """Import, train ALS-64, deploy; returns an admin token."""
    interactions, catalog = generate(data)
    with Engine(Settings(home=home, default_group=GROUP)) as engine:
        engine.init()
        engine.put_schema(GROUP, "items", {"GENRE": "categorical"})
        engine.import_file(GROUP, "interactions", interactions, mode="full")
        engine.import_file(GROUP, "items", catalog, mode="full")
        als = {"algorithm": "als", "factors": 64}
        engine.create_solution(
            GROUP, "als", {"recipe": "user-personalization", "evaluate": False, "params": als}
        )
        started = time.perf_counter()
        engine.train(GROUP, "als")
        print(f"trained ALS-64 on {N_USERS * PER_USER:,} interactions in "
              f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
        engine.create_filter(GROUP, "not-genre", "EXCLUDE ItemID WHERE Items.GENRE IN ($G)")
        engine.create_campaign(GROUP, CAMPAIGN, "als", config={"cache_ttl_seconds": 0})
        return engine.create_token("bench", scope="admin")


def recall_and_compute(home: Path, users: int = 300) -> dict[str, float]:
    """In-process: the (opt-in) approximate index's recall@25 against exact scoring (same
    filter, same exclusions) and the compute time of each path, one thread."""
    from threadpoolctl import threadpool_limits

    from tastebud.serving.recommend import nearest_items, recommend_items, user_query

    threadpool_limits(limits=1)
    hits, approximate_s, exact_s = 0, 0.0, 0.0
    approximate = ServingSettings(approximate_from_items=N_ITEMS)
    with Engine(Settings(home=home, default_group=GROUP, serving=approximate)) as engine:
        r = engine.recommender
        version = r.versions.get(str(engine.campaigns.deployment(GROUP, CAMPAIGN).version_id))
        for n in range(users):
            user, values = f"u{n * 61 % N_USERS}", {"G": f"g{n % GENRES}"}
            events = r.user_events(GROUP, user)
            history = [e.item_id for e in events]
            known = version.items.indices(history)
            selection = r.select(GROUP, version, "not-genre", values, user_id=user,
                                 events=events, event_items=known)  # fmt: skip
            started = time.perf_counter()
            approximate = nearest_items(version, user_query(version, user, history, known), k=25,
                                        selection=selection)  # fmt: skip
            approximate_s += time.perf_counter() - started
            started = time.perf_counter()
            exact = recommend_items(version, user_id=user, history=history, k=25,
                                    selection=selection, history_indexes=known)  # fmt: skip
            exact_s += time.perf_counter() - started
            assert approximate is not None, "the approximate path declined"
            hits += len({s.id for s in approximate} & {s.id for s in exact})
    return {"recall_at_25": hits / (25 * users),
            "compute_ms_approximate": approximate_s / users * 1000,
            "compute_ms_exact": exact_s / users * 1000}  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def body(user: int) -> bytes:
    return json.dumps({"userId": f"u{user}", "numResults": 25, "filterName": "not-genre",
                       "filterValues": {"G": f"g{user % GENRES}"}}).encode()  # fmt: skip


async def open_loop(port: int, token: str, rate: float, seconds: float,
                    users: int) -> dict[str, float]:  # fmt: skip
    """Requests sent at fixed times over keep-alive connections; latency from the intended
    send time (no coordinated omission)."""
    path = f"/v1/dataset-groups/{GROUP}/campaigns/{CAMPAIGN}/recommendations"
    free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(64):
        free.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    errors = 0

    async def one(due: float, user: int) -> None:
        nonlocal errors
        reader, writer = await free.get()
        payload = body(user)
        writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
                     .encode() + payload)  # fmt: skip
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - due)
        errors += not head.startswith(b"HTTP/1.1 200")
        free.put_nowait((reader, writer))

    loop_start = time.perf_counter()
    tasks = []
    rng = random.Random(1)
    for n in range(int(rate * seconds)):
        due = loop_start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due, rng.randrange(users))))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - loop_start
    ms = np.array(latencies) * 1000
    return {"sent": len(tasks), "achieved_rps": len(tasks) / elapsed, "errors": errors,
            "client_p50_ms": float(np.percentile(ms, 50)),
            "client_p99_ms": float(np.percentile(ms, 99)),
            "client_p999_ms": float(np.percentile(ms, 99.9))}  # fmt: skip


def server_side(log: Path, since_line: int) -> tuple[dict[str, float], int]:
    lines = log.read_text().splitlines()
    durations = []
    for line in lines[since_line:]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if str(record.get("route", "")).endswith("/recommendations"):
            durations.append(float(record["duration_ms"]))
    ms = np.array(durations or [float("nan")])
    return ({"server_p50_ms": float(np.percentile(ms, 50)),
             "server_p99_ms": float(np.percentile(ms, 99)), "server_requests": len(durations)},
            len(lines))  # fmt: skip


def wrk_peak(port: int, token: str, folder: Path, seconds: int = 15) -> float | None:
    script = folder / "post.lua"
    payload = body(1).decode().replace('"', '\\"')
    script.write_text(f'wrk.method = "POST"\nwrk.body = "{payload}"\n'
                      f'wrk.headers["Content-Type"] = "application/json"\n'
                      f'wrk.headers["Authorization"] = "Bearer {token}"\n')  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1/dataset-groups/{GROUP}/campaigns/{CAMPAIGN}/recommendations"
    try:
        out = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds}s", "-s", str(script), url],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    except (FileNotFoundError, subprocess.CalledProcessError):
        return None
    return float(out.split("Requests/sec:")[1].split()[0])


def reflection(url: str, headers: dict[str, str], count: int) -> dict[str, float]:
    """Event accepted -> first campaign answer that differs, for new and returning users."""
    times = []
    with httpx.Client(base_url=url, headers=headers) as http:
        for n in range(count):
            user = f"u{n * 7 % N_USERS}"
            ask = {"userId": user, "numResults": 25}
            path = f"/v1/dataset-groups/{GROUP}/campaigns/{CAMPAIGN}/recommendations"
            before = http.post(path, json=ask).json()["itemList"]
            items = [f"i{2_000 + n * 3 + k}" for k in range(3)]  # known to the model, unseen
            events = {
                "userId": user,
                "eventList": [
                    {"itemId": i, "eventType": "click", "sentAt": 1_800_000_000 + n} for i in items
                ],
            }
            accepted = http.post(f"/v1/dataset-groups/{GROUP}/events", json=events)
            assert accepted.status_code == 200, accepted.text
            t0 = time.perf_counter()
            while http.post(path, json=ask).json()["itemList"] == before:
                assert time.perf_counter() - t0 < 5, "the answer never changed"
            times.append((time.perf_counter() - t0) * 1000)
    ms = np.array(times)
    return {
        "reflection_p50_ms": float(np.percentile(ms, 50)),
        "reflection_p99_ms": float(np.percentile(ms, 99)),
        "reflection_max_ms": float(ms.max()),
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000.0, help="requests/s, cache on")
    parser.add_argument("--uncached-rate", type=float, default=300.0, help="requests/s, cache off")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--reflections", type=int, default=200)
    parser.add_argument("--approximate", action="store_true",
                        help="serve top-k from the faiss index (exact by default)")  # fmt: skip
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": f"{platform.node()} {os.cpu_count()} cpus",
                               "load_before": os.getloadavg()}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        home, folder = Path(tmp) / "home", Path(tmp)
        token = prepare(home, folder)
        results["in_process"] = recall_and_compute(home)
        print("in process:", json.dumps(results["in_process"]), flush=True)
        port = free_port()
        log = folder / "server.log"
        env = {**os.environ, "TASTEBUD_HOME": str(home), "TASTEBUD_DEFAULT_GROUP": GROUP}
        if args.approximate:
            env["TASTEBUD_SERVING__APPROXIMATE_FROM_ITEMS"] = str(N_ITEMS)
        results["approximate"] = args.approximate
        with log.open("w") as stderr:
            server = subprocess.Popen([sys.executable, "-m", "tastebud", "serve", "--port",
                                       str(port)], env=env, stdout=subprocess.DEVNULL,
                                      stderr=stderr)  # fmt: skip
        url, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            results["rss_mb_idle"] = rss_mb(server.pid)
            asyncio.run(open_loop(port, token, 200, 3, N_USERS))  # warm: loads the version
            results["rss_mb_campaign_loaded"] = rss_mb(server.pid)
            lines = len(log.read_text().splitlines())
            results["light_cache_off"] = asyncio.run(open_loop(port, token, 50, 10, N_USERS))
            results["light_cache_off"] |= (measured := server_side(log, lines))[0]
            print("light, cache off:", json.dumps(results["light_cache_off"]), flush=True)
            lines = measured[1]
            results["cache_off"] = asyncio.run(
                open_loop(port, token, args.uncached_rate, args.seconds, N_USERS)
            )
            results["cache_off"] |= (measured := server_side(log, lines))[0]
            print("cache off:", json.dumps(results["cache_off"]), flush=True)
            with httpx.Client(base_url=url, headers=headers) as http:
                http.patch(f"/v1/dataset-groups/{GROUP}/campaigns/{CAMPAIGN}",
                           json={"config": {"cacheTtlSeconds": 600}})  # fmt: skip
            results["cache_on"] = asyncio.run(open_loop(port, token, args.rate, args.seconds,
                                                        2_000))  # fmt: skip
            results["cache_on"] |= server_side(log, measured[1])[0]
            print("cache on:", json.dumps(results["cache_on"]), flush=True)
            with httpx.Client(base_url=url, headers=headers) as http:
                http.patch(f"/v1/dataset-groups/{GROUP}/campaigns/{CAMPAIGN}",
                           json={"config": {"cacheTtlSeconds": 0}})  # fmt: skip
            results["peak_rps_wrk_16_connections"] = wrk_peak(port, token, folder)
            print("peak:", results["peak_rps_wrk_16_connections"], flush=True)
            results |= reflection(url, headers, args.reflections)
            results["rss_mb_end"] = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    results["load_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    out = Path(__file__).with_name(
        "serving_latency_approximate.json" if args.approximate else "serving_latency.json"
    )
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
