"""Embedded mode on every core: API processes over one SQLite database. Writers from all of them
queue on one lock (no event lost, none doubled); an event accepted by one process drops the
cached answers of the others and is reflected by them, and an answer one computes the others
read from the shared answers file."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tastebud.engine import Engine
from tastebud.settings import Settings
from tests.api.test_scale_out import CLUSTER_B, Worker, ask
from tests.serving.conftest import write_clustered

GROUP = "shop"


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[Engine, list[Worker], dict[str, str]]]:
    home = tmp_path / "home"
    database_url = f"sqlite:///{home / 'tastebud.db'}"
    with Engine(Settings(home=home, database_url=database_url)) as engine:
        engine.create_group(GROUP)
        interactions, _ = write_clustered(tmp_path)
        engine.import_file(GROUP, "interactions", interactions, mode="full")
        engine.create_solution(GROUP, "for-you", {"recipe": "user-personalization",
                                                  "params": {"algorithm": "ease"}})  # fmt: skip
        engine.train(GROUP, "for-you")
        engine.create_campaign(GROUP, "home", "for-you", config={"min_interactions": 0})
        token = engine.create_token("admin", scope="admin")
        # What `tastebud serve --workers 2` sets without Redis: answers shared through a file.
        shared = {"TASTEBUD_SERVING__SHARED_ANSWERS": "true"}
        processes = [Worker(home, database_url, redis=False, **shared) for _ in range(2)]
        try:
            for process in processes:
                process.wait()
            yield engine, processes, {"Authorization": f"Bearer {token}"}
        finally:
            for process in processes:
                process.stop()


def test_writes_from_every_process_are_stored_once(
    workers: tuple[Engine, list[Worker], dict[str, str]],
) -> None:
    engine, processes, headers = workers
    before = engine.counts(GROUP)["interactions"]
    failures: list[str] = []

    def send(url: str, thread: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            for batch in range(15):
                events = [{"eventId": f"t{thread}-b{batch}-{n}", "itemId": f"i{n}",
                           "sentAt": 3_000_000 + n} for n in range(10)]  # fmt: skip
                body = {"userId": f"writer{thread}", "eventList": events}
                for _ in range(2):  # a retry of the same events is stored once
                    response = client.post(f"/v1/dataset-groups/{GROUP}/events", json=body)
                    if response.status_code != 200:
                        failures.append(response.text)

    threads = [threading.Thread(target=send, args=(processes[t % 2].url, t)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert engine.counts(GROUP)["interactions"] == before + 6 * 15 * 10


def test_an_event_on_one_process_is_reflected_by_the_other(
    workers: tuple[Engine, list[Worker], dict[str, str]],
) -> None:
    _, (a, b), headers = workers
    user = "visitor"
    first = ask(b.url, GROUP, headers, user)
    assert ask(b.url, GROUP, headers, user)["cache"] == "hit"
    events = {"userId": user, "eventList": [
        {"itemId": item, "eventType": "click", "sentAt": 2_000_000 + n}
        for n, item in enumerate(["i25", "i26", "i27"])]}  # fmt: skip
    accepted = httpx.post(f"{a.url}/v1/dataset-groups/{GROUP}/events", json=events,
                          headers=headers)  # fmt: skip
    assert accepted.status_code == 200, accepted.text
    time.sleep(0.05)  # each process reads new events at most every 5 ms
    after = ask(b.url, GROUP, headers, user)
    assert after["cache"] == "miss" and after["itemList"] != first["itemList"]
    assert {i["itemId"] for i in after["itemList"]} <= CLUSTER_B - {"i25", "i26", "i27"}
    # The other process reads the answer b computed (answers.sqlite) instead of computing it.
    shared = ask(a.url, GROUP, headers, user)
    assert shared["cache"] == "hit" and shared["itemList"] == after["itemList"]
