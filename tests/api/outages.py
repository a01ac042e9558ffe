"""For the outage tests: a trained group, and a load run (threads asking a campaign and sending
events until stopped, every answer kept) to count failed requests and lost events across an
outage."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tastebud.engine import Engine
from tastebud.settings import Settings
from tastebud.store import Store
from tests.api.servers import ADMIN_TOKEN
from tests.conftest import unique_name
from tests.serving.conftest import write_clustered

USERS = [f"u{u}" for u in range(60)]  # the clustered data's users
STARTUP_SECONDS = 90.0  # a server's start on a loaded machine (two cores, many test runs)


def trained_group(settings: Settings, folder: Path) -> tuple[str, str]:
    """A group with a trained, deployed campaign ``home`` on the clustered data:
    (group, admin token)."""
    group = unique_name("outage")
    with Engine(settings) as engine:
        engine.create_group(group)
        interactions, _ = write_clustered(folder)
        engine.import_file(group, "interactions", interactions, mode="full")
        engine.create_solution(group, "for-you", {"recipe": "user-personalization",
                                                  "params": {"algorithm": "ease"}})  # fmt: skip
        engine.train(group, "for-you")
        engine.create_campaign(group, "home", "for-you", config={"min_interactions": 0})
        token = engine.create_token(f"{group}-admin", scope="admin")
    return group, token


def stored_event_ids(store: Store, group: str) -> set[str]:
    return {event.event_id for user in USERS
            for event in store.recent_events(group, user, 1_000_000) if event.event_id}  # fmt: skip


def metric(url: str, name: str, labels: str) -> float:
    """One series of a server's ``/metrics`` (0 when absent)."""
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).text
    found = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def ask(url: str, group: str, headers: dict[str, str], user: str) -> dict[str, Any]:
    response = httpx.post(f"{url}/v1/dataset-groups/{group}/campaigns/home/recommendations",
                          json={"userId": user, "numResults": 5}, headers=headers)  # fmt: skip
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def send_event(
    url: str, group: str, headers: dict[str, str], user: str, item: str
) -> httpx.Response:
    event = {"userId": user, "eventList": [{"itemId": item, "eventType": "click",
                                            "sentAt": 4_000_000}]}  # fmt: skip
    return httpx.post(f"{url}/v1/dataset-groups/{group}/events", json=event, headers=headers)


@dataclass
class LoadRun:
    """``threads`` clients over ``urls`` (round robin), alternating a recommendation for a user
    and one event of that user (a unique ``eventId``). A refused event is sent again, after its
    ``Retry-After`` (capped at ``retry_cap`` seconds), before any new one, as a client should:
    only events answered 200 count as accepted, and every one of them must be stored."""

    urls: list[str]
    group: str
    headers: dict[str, str]
    users: list[str]
    campaign: str = "home"
    threads: int = 4
    retry_cap: float = 0.2
    recommendations: Counter[int] = field(default_factory=Counter)  # status -> answers
    events: Counter[int] = field(default_factory=Counter)  # status -> answers (retries too)
    accepted: set[str] = field(default_factory=set)  # event ids answered 200
    unsent: set[str] = field(default_factory=set)  # event ids still refused when stopped
    slowest: float = 0.0  # seconds, any request
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> LoadRun:
        for number in range(self.threads):
            worker = threading.Thread(target=self._run, args=(number,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> LoadRun:
        self._stop.set()
        for worker in self._workers:
            worker.join(60)
            assert not worker.is_alive(), "a load thread did not stop"
        return self

    def _run(self, number: int) -> None:
        urls = itertools.cycle(self.urls[number % len(self.urls) :] + self.urls)
        refused: list[tuple[str, dict[str, Any]]] = []  # sent again before any new event
        with httpx.Client(headers=self.headers, timeout=10.0) as http:
            for n in itertools.count():
                if self._stop.is_set():
                    with self._lock:
                        self.unsent.update(event_id for event_id, _ in refused)
                    return
                user = self.users[(number * 7 + n) % len(self.users)]
                self._recommend(http, next(urls), user)
                event_id, body = refused.pop(0) if refused else self._event(number, n, user)
                if not self._send_event(http, next(urls), event_id, body):
                    refused.append((event_id, body))

    def _event(self, number: int, n: int, user: str) -> tuple[str, dict[str, Any]]:
        event_id = f"load-{number}-{n}"
        return event_id, {"userId": user, "eventList": [
            {"itemId": f"i{n % 40}", "eventType": "click", "eventId": event_id,
             "sentAt": 3_000_000 + n}]}  # fmt: skip

    def _recommend(self, http: httpx.Client, url: str, user: str) -> None:
        path = f"{url}/v1/dataset-groups/{self.group}/campaigns/{self.campaign}/recommendations"
        status = self._timed(http, path, {"userId": user, "numResults": 5})[0]
        with self._lock:
            self.recommendations[status] += 1

    def _send_event(
        self, http: httpx.Client, url: str, event_id: str, body: dict[str, Any]
    ) -> bool:
        """Whether the event was accepted; when refused, waits its ``Retry-After`` (capped)."""
        path = f"{url}/v1/dataset-groups/{self.group}/events"
        status, retry_after = self._timed(http, path, body)
        with self._lock:
            self.events[status] += 1
            if status == 200:
                self.accepted.add(event_id)
                return True
        time.sleep(min(self.retry_cap, retry_after))
        return False

    def _timed(self, http: httpx.Client, url: str, body: object) -> tuple[int, float]:
        """(status, Retry-After seconds) of one POST; status 0 when no answer came."""
        start = time.perf_counter()
        try:
            response = http.post(url, json=body)
            status, retry_after = (
                response.status_code,
                float(response.headers.get("retry-after", 0)),
            )
        except httpx.TransportError:
            status, retry_after = 0, 0.1
        with self._lock:
            self.slowest = max(self.slowest, time.perf_counter() - start)
        return status, retry_after

    def total(self) -> int:
        with self._lock:
            return sum(self.recommendations.values())
