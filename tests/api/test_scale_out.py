"""Scale-out: two API processes over one PostgreSQL database and one Redis. Any of them serves any
user; an event accepted by one is reflected by the other; campaign answers are shared."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tastebud.settings import Settings
from tastebud.store import Store
from tests.api.outages import STARTUP_SECONDS, ask, trained_group
from tests.api.servers import free_port
from tests.conftest import unique_name

REDIS_URL = os.environ.get("TASTEBUD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLUSTER_B = {f"i{i}" for i in range(20, 40)}


class Worker:
    """``tastebud serve`` in its own process, sharing ``home`` (artifacts), the database and
    (with ``redis``) Redis."""

    def __init__(
        self, home: Path, database_url: str, *, redis: bool = True, **settings: str
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TASTEBUD_HOME": str(home), "TASTEBUD_DATABASE_URL": database_url,
               **settings}  # fmt: skip
        if redis:
            env["TASTEBUD_REDIS_URL"] = REDIS_URL
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tastebud", "serve", "--port", str(self.port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def wait(self, timeout: float = STARTUP_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.communicate()[1]
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("worker did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()


@pytest.fixture
def cluster(
    pg_url: str, pg_cleanup_store: Store, tmp_path: Path
) -> Iterator[tuple[str, str, str, dict[str, str]]]:
    """A trained, deployed group on PostgreSQL and two workers: (group, url A, url B, headers)."""
    home = tmp_path / "home"
    settings = Settings(home=home, database_url=pg_url, redis_url=REDIS_URL)
    group, token = trained_group(settings, tmp_path)
    workers = [Worker(home, pg_url), Worker(home, pg_url)]
    try:
        for worker in workers:
            worker.wait()
        yield group, workers[0].url, workers[1].url, {"Authorization": f"Bearer {token}"}
    finally:
        for worker in workers:
            worker.stop()
        pg_cleanup_store.delete_group(group)
        pg_cleanup_store.revoke_token(f"{group}-admin")


def test_two_workers_share_events_and_answers(
    cluster: tuple[str, str, str, dict[str, str]],
) -> None:
    group, a, b, headers = cluster
    user = unique_name("visitor")
    first = ask(a, group, headers, user)
    shared = ask(b, group, headers, user)
    assert (first["cache"], shared["cache"]) == ("miss", "hit")  # B reuses A's answer (Redis)
    assert shared["recommendationId"] == first["recommendationId"]

    events = {"userId": user, "eventList": [
        {"itemId": item, "eventType": "click", "sentAt": 2_000_000 + n}
        for n, item in enumerate(["i25", "i26", "i27"])]}  # fmt: skip
    accepted = httpx.post(f"{a}/v1/dataset-groups/{group}/events", json=events, headers=headers)
    assert accepted.status_code == 200, accepted.text
    time.sleep(0.02)  # each worker reads new events at most every 5 ms
    after = ask(b, group, headers, user)  # the other worker reflects the event at once
    assert after["cache"] == "miss" and after["itemList"] != first["itemList"]
    assert {i["itemId"] for i in after["itemList"]} <= CLUSTER_B - {"i25", "i26", "i27"}
    assert ask(a, group, headers, user)["recommendationId"] == after["recommendationId"]
