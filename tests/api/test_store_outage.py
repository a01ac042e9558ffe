"""PostgreSQL down: writes fail at once with 503 + ``Retry-After`` (never a hang), the campaign
keeps answering from its loaded model, and the server serves again by itself when PostgreSQL
is back. A throwaway cluster is stopped and started again in the middle of a load run; the
load's clients send refused events again, and every event acknowledged is stored."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tastebud.settings import Settings
from tastebud.store import open_store
from tests.api.outages import (
    STARTUP_SECONDS,
    USERS,
    LoadRun,
    ask,
    metric,
    send_event,
    stored_event_ids,
    trained_group,
)
from tests.api.servers import PostgresCluster, ServeProcess
from tests.conftest import unique_name


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    postgres = PostgresCluster()
    try:
        postgres.start()
        yield postgres
    finally:
        postgres.remove()


def wait_for(condition: object, timeout: float = 30.0) -> float:
    """Seconds until ``condition()`` held (polled every 50 ms)."""
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - start < timeout, "the server did not recover"
        time.sleep(0.05)
    return time.monotonic() - start


def test_store_outage_refuses_writes_at_once_keeps_answering_and_recovers(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    group, token = trained_group(Settings(home=home, database_url=cluster.url), tmp_path)
    headers = {"Authorization": f"Bearer {token}"}
    server = ServeProcess(home, env={"TASTEBUD_DATABASE_URL": cluster.url,
                                     "TASTEBUD_API__ACCESS_LOG": "false"})  # fmt: skip
    try:
        server.wait_ready(STARTUP_SECONDS)
        load = LoadRun([server.url], group, headers, USERS, threads=3).start()
        time.sleep(1.5)
        cluster.stop()
        time.sleep(1.0)
        refused = send_event(server.url, group, headers, "u1", "i3")
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["type"] == "StoreUnavailable"
        assert refused.headers["retry-after"] == "1"
        ready = httpx.get(f"{server.url}/ready")
        assert ready.status_code == 200 and ready.json()["degraded"] == ["store"], ready.text
        during = load.total()
        time.sleep(2.0)
        answered_during = load.total() - during
        cluster.start()
        wait_for(lambda: send_event(server.url, group, headers, "u2", "i4").status_code == 200)
        time.sleep(1.0)
        load.stop()

        assert load.recommendations and set(load.recommendations) == {200}, load.recommendations
        assert answered_during > 20  # the loaded model kept answering without its store
        assert load.events[503] > 0 and set(load.events) <= {200, 503}, load.events
        assert not load.unsent  # every refused event was accepted once the store was back
        store = open_store(cluster.url, migrate=False)
        try:
            assert load.accepted <= stored_event_ids(store, group)
        finally:
            store.close()
        assert metric(server.url, "tastebud_degraded_answers_total", 'dependency="store"') > 0
        assert metric(server.url, "tastebud_dependency_errors_total", 'dependency="store"') > 0
        assert httpx.get(f"{server.url}/ready").json()["status"] == "ready"

        # Back to normal: answers are cached again, and an event still invalidates them.
        user = unique_name("visitor")
        first, again = ask(server.url, group, headers, user), ask(server.url, group, headers, user)
        assert (first["cache"], again["cache"]) == ("miss", "hit")
        assert send_event(server.url, group, headers, user, "i25").status_code == 200
        time.sleep(0.05)
        assert ask(server.url, group, headers, user)["cache"] == "miss"
    finally:
        server.stop()
