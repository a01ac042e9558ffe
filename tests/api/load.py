"""A load run for the outage tests: threads asking a campaign and sending events until stopped,
every answer kept, so a test counts failed requests and lost events across an outage."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class LoadRun:
    """``threads`` clients over ``urls`` (round robin), alternating a recommendation for a user
    and one event of that user (a unique ``eventId``). An event refused with 503 is sent again
    after its ``Retry-After`` (capped at ``retry_cap`` seconds), as a client should: only events
    answered 200 count as accepted, and every one of them must be stored."""

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
        with httpx.Client(headers=self.headers, timeout=10.0) as http:
            for n in itertools.count():
                if self._stop.is_set():
                    return
                user = self.users[(number * 7 + n) % len(self.users)]
                self._recommend(http, next(urls), user)
                self._send_event(http, next(urls), user, f"load-{number}-{n}", n)

    def _recommend(self, http: httpx.Client, url: str, user: str) -> None:
        path = f"{url}/v1/dataset-groups/{self.group}/campaigns/{self.campaign}/recommendations"
        status = self._timed(http, path, {"userId": user, "numResults": 5})[0]
        with self._lock:
            self.recommendations[status] += 1

    def _send_event(self, http: httpx.Client, url: str, user: str, event_id: str, n: int) -> None:
        body = {"userId": user, "eventList": [
            {"itemId": f"i{n % 40}", "eventType": "click", "eventId": event_id,
             "sentAt": 3_000_000 + n}]}  # fmt: skip
        while True:
            status, retry_after = self._timed(http, f"{url}/v1/dataset-groups/{self.group}/events",
                                              body)  # fmt: skip
            with self._lock:
                self.events[status] += 1
                if status == 200:
                    self.accepted.add(event_id)
                    return
            if self._stop.is_set():
                with self._lock:
                    self.unsent.add(event_id)
                return
            time.sleep(min(self.retry_cap, retry_after))

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
