"""Campaign latency at fixed request rates, peak throughput, memory, and event reflection time.

A synthetic catalogue of 100,000 items (20 genres, Zipf popularity) and 20,000 users with 25
interactions each is imported; ALS with 64 factors is trained and deployed as a campaign;
`tastebud serve --workers N` answers top-25 requests for known users with a filter on
(`EXCLUDE ItemID WHERE Items.GENRE IN ($G)`, the genre a parameter of each request). Embedded
SQLite by default; ``--backend postgres`` serves from PostgreSQL with Redis sharing the answers.

Phases (open loops with wrk2, which counts latency from each request's intended send time;
closed loops with wrk; both in one thread on the same cores as the server, their CPU reported):
1. light: 50 requests/s for 10 s, cache off — one request's time when nothing queues;
2. uncached: ``--uncached-rate`` requests/s, cache off, a different user each request;
3. cached: ``--rate`` requests/s, cache on, 2,000 returning users, while ``--event-rate``
   single-event PutEvents requests/s arrive for those users (each drops the user's answers) and,
   beside them, the reflection probe: a user's event accepted (its 200) until the campaign's
   answer for that user differs, over ``--reflections`` users;
4. peak, closed loop (wrk, 32 connections): cached (2,000 returning users) and uncached.

    ./dev bench serving_latency [--backend sqlite|postgres] [--workers 2] [--home DIR]

``--home DIR`` keeps the prepared store (and, with PostgreSQL, its database) for the next run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl

from http_load import (
    cpu_used,
    free_port,
    machine_ticks,
    postgres_database,
    postgres_ticks,
    require,
    run_wrk,
    server_cpu,
    total_seconds,
    wait_ready,
)
from tastebud.engine import Engine
from tastebud.settings import ServingSettings, Settings

N_ITEMS, N_USERS, PER_USER, GENRES = 100_000, 20_000, 25, 20
RETURNING = 2_000  # the users of the cached phase
ALL_PHASES = frozenset({"light", "uncached", "cached", "peak"})
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


def prepare(settings: Settings, data: Path) -> str:
    """Import, train ALS-64, deploy; returns an admin token."""
    interactions, catalog = generate(data)
    with Engine(settings) as engine:
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


def recall_and_compute(settings: Settings, users: int = 300) -> dict[str, float]:
    """In-process: the (opt-in) approximate index's recall@25 against exact scoring (same
    filter, same exclusions) and the compute time of each path, one thread."""
    from threadpoolctl import threadpool_limits

    from tastebud.serving.recommend import nearest_items, recommend_items, user_query

    threadpool_limits(limits=1)
    hits, approximate_s, exact_s = 0, 0.0, 0.0
    approximate = ServingSettings(approximate_from_items=N_ITEMS)
    with Engine(settings.model_copy(update={"serving": approximate})) as engine:
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


RECOMMEND_LUA = """
local counter, tid = 0, 0
function setup(thread)
  tid = tid + 1
  thread:set("tid", tid)
end
function request()
  counter = counter + 1
  local u
  if RETURNING then
    u = math.random(0, USERS - 1)
  else  -- a step coprime with USERS: every user once before any repeats
    u = (counter * 7919 + tid * 104729) % USERS
  end
  local body = string.format(
    '{"userId":"u%d","numResults":25,"filterName":"not-genre","filterValues":{"G":"g%d"}}',
    u, u % GENRES)
  return wrk.format("POST", nil, HEADERS, body)
end
"""
EVENTS_LUA = """
local counter = 0
function request()
  counter = counter + 1
  local body = string.format(
    '{"userId":"u%d","eventList":[{"eventId":"%s-%d","itemId":"i%d","eventType":"click",'
    .. '"sentAt":%d}]}', math.random(0, USERS - 1), RUN, counter, math.random(0, ITEMS - 1),
    1800000000 + counter)
  return wrk.format("POST", nil, HEADERS, body)
end
"""


def lua_script(folder: Path, name: str, template: str, token: str, **values: Any) -> Path:
    headers = f'{{["Authorization"]="Bearer {token}", ["Content-Type"]="application/json"}}'
    lines = [f"HEADERS = {headers}", f"GENRES = {GENRES}", f"ITEMS = {N_ITEMS}"]
    lines += [f"{k} = {json.dumps(v) if isinstance(v, str) else str(v).lower()}"
              for k, v in values.items()]  # fmt: skip
    script = folder / f"{name}.lua"
    script.write_text("\n".join(lines) + "\n" + template)
    return script


def set_cache(url: str, headers: dict[str, str], ttl: float) -> None:
    with httpx.Client(base_url=url, headers=headers) as http:
        answer = http.patch(f"/v1/dataset-groups/{GROUP}/campaigns/{CAMPAIGN}",
                            json={"config": {"cacheTtlSeconds": ttl}})  # fmt: skip
        answer.raise_for_status()
    time.sleep(1.5)  # every worker re-reads the campaign within a second


def warm_answers(url: str, headers: dict[str, str], users: int) -> None:
    """One answer per returning user, so the cached phase starts with a warm cache."""
    path = f"/v1/dataset-groups/{GROUP}/campaigns/{CAMPAIGN}/recommendations"
    with httpx.Client(base_url=url, headers=headers) as http:
        for u in range(users):
            http.post(
                path,
                json={
                    "userId": f"u{u}",
                    "numResults": 25,
                    "filterName": "not-genre",
                    "filterValues": {"G": f"g{u % GENRES}"},
                },
            ).raise_for_status()


class Measured:
    """The server's (and PostgreSQL's) CPU over one phase."""

    def __init__(self, server: int, database: str | None) -> None:
        self.server, self.database = server, database
        self.cpu, self.pg = server_cpu(server), sum(postgres_ticks(database).values())
        self.machine = machine_ticks()

    def done(self, requests: int) -> dict[str, Any]:
        cpu = server_cpu(self.server)
        seconds = total_seconds(cpu) - total_seconds(self.cpu)
        busy, total = (a - b for a, b in zip(machine_ticks(), self.machine, strict=True))
        figures: dict[str, Any] = {
            "server_cpu_s": cpu_used(self.cpu, cpu),
            "server_cpu_us_per_request": round(seconds / max(requests, 1) * 1e6),
            # every process on the machine: server, database, Redis, load generators, probe
            "machine_busy_share": round(busy / max(total, 1), 3),
        }
        if self.database is not None:
            pg = (sum(postgres_ticks(self.database).values()) - self.pg) / os.sysconf("SC_CLK_TCK")
            figures["postgres_cpu_us_per_request"] = round(pg / max(requests, 1) * 1e6)
        return figures


def refusals(url: str, headers: dict[str, str]) -> dict[str, float]:
    """The server's overload refusals so far, by reason (all workers), from /metrics."""
    text = httpx.get(f"{url.split('/v1/')[0]}/metrics", headers=headers).text
    found = re.findall(r'^tastebud_overload_rejections_total\{reason="(\w+)"\} (\S+)$', text, re.M)
    return {reason: float(value) for reason, value in found}


def phase(
    name: str, url: str, script: Path, seconds: int, server: int, database: str | None, *,
    connections: int, rate: float | None = None, headers: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    measured = Measured(server, database)
    load_before, refused = os.getloadavg()[0], refusals(url, headers)
    result = run_wrk(url, script, seconds, connections=connections, rate=rate)
    result |= measured.done(result["requests"])
    after = refusals(url, headers)
    result["refused_by_reason"] = {r: after[r] - refused.get(r, 0) for r in after}
    result |= {"offered_rps": rate, "load_before_after": [load_before, os.getloadavg()[0]]}
    result["generator_cpu_share"] = round(result["generator_cpu_s"] / result["seconds"], 3)
    print(f"{name}:", json.dumps(result), flush=True)
    return result


def reflection(url: str, headers: dict[str, str], count: int) -> dict[str, float]:
    """Event accepted -> first campaign answer that differs. Each user clicks the first item of
    its answer (which must then leave it: seen items are excluded) and two others. An answer
    refused for overload (503) is asked again 10 ms later, and counted."""
    times, refused = [], 0
    path = f"/v1/dataset-groups/{GROUP}/campaigns/{CAMPAIGN}/recommendations"
    with httpx.Client(base_url=url, headers=headers) as http:

        def items(ask: dict[str, Any]) -> Any:
            nonlocal refused
            while (answer := http.post(path, json=ask)).status_code == 503:
                refused += 1
                time.sleep(0.01)
            answer.raise_for_status()
            return answer.json()["itemList"]

        for n in range(count):
            user = f"u{RETURNING + n * 7 % (N_USERS - RETURNING)}"  # not in the load's users
            ask = {"userId": user, "numResults": 25}
            before = items(ask)
            clicked = [before[0]["itemId"], *(f"i{2_000 + n * 3 + k}" for k in range(2))]
            events = {
                "userId": user,
                "eventList": [
                    {"itemId": i, "eventType": "click", "sentAt": 1_800_000_000 + n}
                    for i in clicked
                ],
            }
            accepted = http.post(f"/v1/dataset-groups/{GROUP}/events", json=events)
            assert accepted.status_code == 200, accepted.text
            t0 = time.perf_counter()
            while items(ask) == before:
                assert time.perf_counter() - t0 < 5, "the answer never changed"
            times.append((time.perf_counter() - t0) * 1000)
    ms = np.array(times)
    return {
        "reflection_p50_ms": float(np.percentile(ms, 50)),
        "reflection_p99_ms": float(np.percentile(ms, 99)),
        "reflection_max_ms": float(ms.max()),
        "refused": refused,
    }


def cached_phase(
    args: argparse.Namespace, url: str, headers: dict[str, str], path: str, returning: Path,
    events: Path, pid: int, database_url: str | None,
) -> dict[str, Any]:  # fmt: skip
    """Returning users at ``--rate`` while ``--event-rate`` events arrive for them and the
    reflection probe runs beside."""
    reflected: dict[str, float] = {}
    probe = threading.Thread(target=lambda: reflected.update(
        reflection(url, headers, args.reflections)))  # fmt: skip
    event_load: dict[str, Any] = {}
    events_url = f"{url}/v1/dataset-groups/{GROUP}/events"
    feeder = threading.Thread(target=lambda: event_load.update(run_wrk(
        events_url, events, args.seconds, connections=4, rate=args.event_rate)))  # fmt: skip
    if args.event_rate > 0:
        feeder.start()
    probe.start()
    result = phase("cached, live events", path, returning, args.seconds, pid, database_url,
                   connections=32, rate=args.rate, headers=headers)  # fmt: skip
    if args.event_rate > 0:
        feeder.join()
    probe.join()
    print("events:", json.dumps(event_load), "\nreflection:", json.dumps(reflected))
    return result | {"events": event_load, "reflection": reflected}


def rss_mb(root: int) -> float:
    """Resident memory of the server's processes (supervisor and workers), in MB."""
    total = 0
    for pid in server_cpu(root):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--workers", type=int, default=2, help="API worker processes")
    parser.add_argument("--rate", type=float, default=1000.0, help="requests/s, cache on")
    parser.add_argument("--uncached-rate", type=float, default=600.0,
                        help="requests/s, cache off")  # fmt: skip
    parser.add_argument(
        "--event-rate",
        type=float,
        default=100.0,
        help="PutEvents requests/s (one event each) during the cached phase",
    )
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--reflections", type=int, default=200)
    parser.add_argument("--home", type=Path, help="keep the prepared store here for next time")
    parser.add_argument("--phases", type=lambda text: set(text.split(",")),
                        default=ALL_PHASES,
                        help="comma-separated subset of light,uncached,cached,peak")  # fmt: skip
    parser.add_argument("--in-process", action="store_true",
                        help="also measure the compute per request and the approximate index's "
                        "recall in this process")  # fmt: skip
    parser.add_argument("--approximate", action="store_true",
                        help="serve top-k from the faiss index (exact by default)")  # fmt: skip
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    require("wrk", "apt-get install wrk")
    require("wrk2", "build https://github.com/giltene/wrk2 (make) and put its wrk on PATH as wrk2")
    home = args.home or Path(tempfile.mkdtemp(prefix="tastebud-serving-"))
    home.mkdir(parents=True, exist_ok=True)
    database = None
    if args.backend == "postgres":  # one kept database per kept home
        database = "tastebud_bench_" + hashlib.sha1(str(home.resolve()).encode()).hexdigest()[:8]
    databases = (postgres_database(None, database if args.home else None) if database
                 else contextlib.nullcontext())  # fmt: skip
    try:
        with databases as database_url:
            run(args, home, database_url)
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)


def run(args: argparse.Namespace, home: Path, database_url: str | None) -> None:
    redis_url = "redis://127.0.0.1:6379/0" if database_url else None
    settings = Settings(home=home / "home", default_group=GROUP, database_url=database_url,
                        redis_url=redis_url)  # fmt: skip
    marker = home / "prepared.json"
    if not marker.exists():
        token = prepare(settings, home)
        marker.write_text(json.dumps({"token": token}))
    token = json.loads(marker.read_text())["token"]
    results: dict[str, Any] = {
        "machine": f"{platform.node()} {os.cpu_count()} cpus", "backend": args.backend,
        "workers": args.workers, "approximate": args.approximate,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }  # fmt: skip
    if args.in_process:
        results["in_process"] = recall_and_compute(settings)
        print("in process:", json.dumps(results["in_process"]), flush=True)
    if redis_url:
        import redis

        redis.Redis.from_url(redis_url).flushdb()  # no answers of an earlier run
    port = free_port()
    url, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    path = f"{url}/v1/dataset-groups/{GROUP}/campaigns/{CAMPAIGN}/recommendations"
    env = {**os.environ, "TASTEBUD_HOME": str(settings.home), "TASTEBUD_DEFAULT_GROUP": GROUP}
    env.pop("TASTEBUD_DATABASE_URL", None)
    if database_url:
        env |= {"TASTEBUD_DATABASE_URL": database_url, "TASTEBUD_REDIS_URL": str(redis_url)}
    if args.approximate:
        env["TASTEBUD_SERVING__APPROXIMATE_FROM_ITEMS"] = str(N_ITEMS)
    scripts = home / "scripts"
    scripts.mkdir(exist_ok=True)
    different = lua_script(scripts, "different", RECOMMEND_LUA, token, USERS=N_USERS,
                           RETURNING=False)  # fmt: skip
    returning = lua_script(scripts, "returning", RECOMMEND_LUA, token, USERS=RETURNING,
                           RETURNING=True)  # fmt: skip
    events = lua_script(scripts, "events", EVENTS_LUA, token, USERS=RETURNING,
                        RUN=f"r{os.getpid()}-{int(time.time())}")  # fmt: skip
    log = home / "server.log"
    with log.open("w") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "tastebud", "serve", "--port", str(port),
             "--workers", str(args.workers)],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    pid = server.pid
    try:
        wait_ready(url)
        results["rss_mb_idle"] = rss_mb(pid)
        set_cache(url, headers, 0)
        run_wrk(path, different, 5, connections=8, rate=200)  # every worker loads the version
        results["rss_mb_campaign_loaded"] = rss_mb(pid)
        if "light" in args.phases:
            results["light"] = phase("light, cache off", path, different, 10, pid, database_url,
                                     connections=4, rate=50, headers=headers)  # fmt: skip
        if "uncached" in args.phases:
            results["uncached"] = phase("uncached", path, different, args.seconds, pid,
                                        database_url, connections=32,
                                        rate=args.uncached_rate, headers=headers)  # fmt: skip
        set_cache(url, headers, 600)
        # Every worker answers every returning user once before measuring (steady state).
        run_wrk(path, returning, 10, connections=32, rate=args.rate)
        if "cached" in args.phases:
            results["cached"] = cached_phase(args, url, headers, path, returning, events, pid,
                                             database_url)  # fmt: skip
        if "peak" in args.phases:
            results["peak_cached"] = phase("peak, cached", path, returning, 15, pid,
                                           database_url, connections=32,
                                           headers=headers)  # fmt: skip
            set_cache(url, headers, 0)
            results["peak_uncached"] = phase("peak, uncached", path, different, 15, pid,
                                             database_url, connections=32,
                                             headers=headers)  # fmt: skip
        results["rss_mb_end"] = rss_mb(pid)
    finally:
        server.terminate()
        server.wait(30)
    subset = "" if args.phases >= ALL_PHASES else "-" + "-".join(sorted(args.phases))
    name = (
        f"serving_latency-{args.backend}{'-approximate' if args.approximate else ''}{subset}.json"
    )
    (Path(__file__).parent / "results" / name).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
