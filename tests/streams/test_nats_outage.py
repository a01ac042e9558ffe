"""NATS down while events are published and consumed: the consumer waits for it (retrying with
backoff), nothing is lost and nothing stored twice. A private ``nats-server -js`` is stopped and
started again while a producer publishes (retrying what NATS refused, as producers do)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import nats.errors

from tastebud.engine import Engine
from tastebud.settings import StreamSettings
from tastebud.streams import ConsumeStats, NatsEventConsumer, StreamUnavailable, publish_events
from tests.api.servers import NatsProcess

DOCUMENTS = 60
PER_PUBLISH = 3


class Consumer:
    """:class:`NatsEventConsumer` running on its own event loop in a thread."""

    def __init__(self, engine: Engine, settings: StreamSettings) -> None:
        self.consumer = NatsEventConsumer(engine, settings)
        self.loop = asyncio.new_event_loop()
        self.stats: ConsumeStats | None = None
        self.error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        async def run() -> ConsumeStats:
            self._stop = asyncio.Event()
            return await self.consumer.run(stop=self._stop)

        try:
            self.stats = self.loop.run_until_complete(run())
        except BaseException as error:  # reported by the test
            self.error = error

    def stop(self) -> ConsumeStats:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert self.error is None, repr(self.error)
        assert self.stats is not None
        return self.stats


def publish_all(settings: StreamSettings, group: str, published: list[str]) -> None:
    """Publish every document, each batch again until NATS stored it (its msg ids let
    JetStream drop a batch that was stored although the answer was lost)."""
    prefix = settings.subject.removesuffix(".>")
    for first in range(0, DOCUMENTS, PER_PUBLISH):
        numbers = range(first, first + PER_PUBLISH)
        documents = [{"userId": f"u{n % 7}", "eventList": [
            {"itemId": f"i{n % 11}", "eventType": "click", "eventId": f"e{n}",
             "sentAt": 1_700_000_000 + n}]} for n in numbers]  # fmt: skip
        while True:
            try:
                asyncio.run(publish_events(settings.nats_url, group, *documents,
                                           subject_prefix=prefix,
                                           msg_ids=[f"m{n}" for n in numbers]))  # fmt: skip
                break
            except (StreamUnavailable, nats.errors.Error, TimeoutError):
                time.sleep(0.2)
        published.extend(f"e{n}" for n in numbers)
        time.sleep(0.05)


def stored_ids(engine: Engine, group: str) -> list[str]:
    return [e.event_id or "" for user in range(7)
            for e in engine.recent_events(group, f"u{user}", 10_000)]  # fmt: skip


def test_consumer_loses_nothing_when_nats_restarts(
    engine: Engine, group: str, tmp_path: Path
) -> None:
    server = NatsProcess(tmp_path / "nats")
    server.start()
    settings = StreamSettings(
        nats_url=server.url, stream="TB_OUTAGE", subject="tboutage.events.>", durable="outage",
        batch=8, ack_wait_seconds=2.0, connect_timeout_seconds=2.0, dead_letter_prefix=None,
    )  # fmt: skip
    published: list[str] = []
    try:
        consumer = Consumer(engine, settings)
        while consumer.consumer._id_prefix == "":  # subscribed: the stream exists
            assert consumer.error is None, repr(consumer.error)
            time.sleep(0.05)
        producer = threading.Thread(target=publish_all, args=(settings, group, published))
        producer.start()
        while len(stored_ids(engine, group)) < 10:
            time.sleep(0.05)
        server.stop()
        time.sleep(3.0)  # the consumer retries meanwhile; the producer's publishes fail
        stored_during = len(stored_ids(engine, group))
        server.start()
        producer.join(120)
        assert not producer.is_alive()
        deadline = time.monotonic() + 60
        while len(stored_ids(engine, group)) < DOCUMENTS and time.monotonic() < deadline:
            time.sleep(0.1)
        stats = consumer.stop()
    finally:
        server.stop()

    assert stored_during < DOCUMENTS  # the outage came in the middle of the run
    ids = stored_ids(engine, group)
    assert sorted(ids) == sorted(published) == sorted(f"e{n}" for n in range(DOCUMENTS))
    assert stats.stored == DOCUMENTS and stats.rejected == 0
