"""Stream ingestion from the real NATS JetStream at 127.0.0.1:4222: duplicates, bad messages,
crashes before the ack and restarts. Each test has its own stream, subject and durable consumer,
deleted afterwards. NATS is part of the contract: unreachable means failure, never a skip."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.msg import Msg
from typer.testing import CliRunner

from tastebud.cli import app
from tastebud.engine import Engine
from tastebud.settings import StreamSettings
from tastebud.streams import ConsumeStats, NatsEventConsumer, StreamUnavailable, publish_events
from tastebud.streams import nats as stream_nats
from tastebud.streams.nats import connect

NATS_URL = os.environ.get("TASTEBUD_TEST_NATS_URL", "nats://127.0.0.1:4222")


@pytest.fixture(scope="session")
def nats_url() -> str:
    async def ping() -> None:
        nc = await connect(NATS_URL, timeout=3)
        await nc.close()

    try:
        asyncio.run(ping())
    except StreamUnavailable as exc:
        pytest.fail(
            f"{exc.message}. Stream ingestion is tested against a real NATS JetStream: run "
            "scripts/services.sh or point TASTEBUD_TEST_NATS_URL at one.",
            pytrace=False,
        )
    return NATS_URL


@pytest.fixture
def stream(nats_url: str) -> Iterator[StreamSettings]:
    """Settings naming a stream, subject, durable and dead-letter prefix of this test only."""
    tag = uuid.uuid4().hex[:12]
    settings = StreamSettings(
        nats_url=nats_url, stream=f"TB_TEST_{tag}", subject=f"tbtest.{tag}.events.>",
        durable=f"d-{tag}", batch=4, ack_wait_seconds=1.0,
        dead_letter_prefix=f"tbtest.{tag}.dead",
    )  # fmt: skip
    yield settings
    asyncio.run(_delete_stream(nats_url, settings.stream))


async def _delete_stream(url: str, name: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(name)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()


def prefix(settings: StreamSettings) -> str:
    return settings.subject.removesuffix(".>")


def doc(user: str, *events: dict[str, Any]) -> dict[str, Any]:
    return {"userId": user, "sessionId": f"s-{user}", "eventList": list(events)}


def click(item: str, event_id: str | None = None, **extra: Any) -> dict[str, Any]:
    event = {"itemId": item, "eventType": "click", "sentAt": 1_700_000_000, **extra}
    return event | ({"eventId": event_id} if event_id else {})


async def consume(engine: Engine, settings: StreamSettings, messages: int) -> ConsumeStats:
    return await NatsEventConsumer(engine, settings).run(max_messages=messages)


async def publish(settings: StreamSettings, group: str, *docs: Any, **kw: Any) -> list[int]:
    return await publish_events(settings.nats_url, group, *docs, subject_prefix=prefix(settings),
                                **kw)  # fmt: skip


async def consumer_state(settings: StreamSettings) -> tuple[int, int]:
    """(messages not yet delivered, delivered but not acked) of the durable consumer."""
    nc = await nats.connect(settings.nats_url)
    try:
        info = await nc.jetstream().consumer_info(settings.stream, settings.durable)
    finally:
        await nc.close()
    return info.num_pending, info.num_ack_pending


def stored(engine: Engine, group: str) -> int:
    return engine.counts(group)["interactions"]


def test_published_events_arrive_in_the_store(
    engine: Engine, group: str, stream: StreamSettings
) -> None:
    async def scenario() -> ConsumeStats:
        await consume(engine, stream, 0)  # creates the stream and the durable consumer
        await publish(stream, group, doc("u1", click("i1", "e1"), click("i2", "e2")),
                      doc("u2", click("i1", "e3", eventValue=2.5)))  # fmt: skip
        return await consume(engine, stream, 2)

    stats = asyncio.run(scenario())
    assert (stats.messages, stats.stored, stats.duplicates, stats.rejected) == (2, 3, 0, 0)
    assert stored(engine, group) == 3
    history = engine.recent_events(group, "u1")
    assert sorted(e.item_id for e in history) == ["i1", "i2"]
    assert {e.event_id for e in history} == {"e1", "e2"}
    assert engine.recent_events(group, "u2")[0].event_value == 2.5
    assert asyncio.run(consumer_state(stream)) == (0, 0)


def test_a_message_published_twice_and_redelivered_stores_each_event_once(
    engine: Engine, group: str, stream: StreamSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = doc("u1", click("i1", "e1"), click("i2", "e2"))

    async def no_ack(self: Msg) -> None:  # the process dies between commit and ack
        return None

    async def crash_then_restart() -> tuple[ConsumeStats, ConsumeStats]:
        await consume(engine, stream, 0)
        await publish(stream, group, message, message)
        with monkeypatch.context() as patch:
            patch.setattr(Msg, "ack", no_ack)
            crashed = await consume(engine, stream, 2)
        assert await consumer_state(stream) == (0, 2)  # committed, never acked
        return crashed, await consume(engine, stream, 2)  # redelivered after ack_wait

    crashed, restarted = asyncio.run(crash_then_restart())
    assert (crashed.stored, crashed.duplicates) == (2, 2)  # the second copy: same event ids
    assert (restarted.messages, restarted.stored, restarted.duplicates) == (2, 0, 4)
    assert stored(engine, group) == 2
    assert asyncio.run(consumer_state(stream)) == (0, 0)


def test_events_without_event_id_are_deduplicated_on_redelivery(
    engine: Engine, group: str, stream: StreamSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    anonymous = doc("u1", click("i1"), click("i1"), {"itemId": "i2"})  # no ids, one no sentAt

    async def no_ack(self: Msg) -> None:
        return None

    async def scenario() -> tuple[ConsumeStats, ConsumeStats, list[int]]:
        await consume(engine, stream, 0)
        # A producer's retry with the same Nats-Msg-Id is dropped by JetStream itself.
        seqs = await publish(stream, group, anonymous, anonymous, msg_ids=["m1", "m1"])
        with monkeypatch.context() as patch:
            patch.setattr(Msg, "ack", no_ack)
            crashed = await consume(engine, stream, 1)
        return crashed, await consume(engine, stream, 1), seqs

    crashed, restarted, seqs = asyncio.run(scenario())
    assert seqs[0] == seqs[1]
    assert (crashed.stored, crashed.duplicates) == (3, 0)  # two clicks on i1 are two events
    assert (restarted.stored, restarted.duplicates) == (0, 3)
    assert stored(engine, group) == 3
    history = engine.recent_events(group, "u1")
    assert len({e.event_id for e in history}) == 3
    assert all(e.event_id and e.event_id.endswith(f"-{seqs[0]}-{n}")
               for n, e in enumerate(sorted(history, key=lambda e: e.event_id or "")))  # fmt: skip
    # sentAt defaults to when the stream stored the message, the same on every delivery.
    assert next(e for e in history if e.item_id == "i2").timestamp > 1_700_000_000


def test_an_invalid_message_is_rejected_with_its_reason_and_blocks_nothing(
    engine: Engine, group: str, stream: StreamSettings
) -> None:
    dead: list[Msg] = []

    async def scenario() -> ConsumeStats:
        await consume(engine, stream, 0)
        nc = await nats.connect(stream.nats_url)
        dead_letters = await nc.subscribe(f"{stream.dead_letter_prefix}.>")
        bad = [b"{not json", doc("u1", {"eventType": "click"}), {"eventList": [click("i1")]}]
        await publish(stream, group, *bad, doc("u1", click("i1", "ok1")))
        await publish(stream, f"{group}-missing", doc("u1", click("i1", "x2")))
        await publish(stream, group, doc("u2", click("i2", "ok2")))
        stats = await consume(engine, stream, 6)
        for _ in range(stats.rejected):
            dead.append(await dead_letters.next_msg(timeout=2))
        await nc.close()
        return stats

    stats = asyncio.run(scenario())
    assert (stats.messages, stats.rejected, stats.stored) == (6, 4, 2)
    reasons = [r.reason for r in stats.rejections]
    assert "Invalid JSON" in reasons[0]
    assert reasons[1] == "eventList[0].itemId: Field required"
    assert reasons[2] == "userId or sessionId: at least one is required"
    assert reasons[3] == f"dataset group '{group}-missing' does not exist"
    assert stored(engine, group) == 2
    assert [m.headers and m.headers["Tastebud-Error"] for m in dead] == reasons
    assert dead[0].data == b"{not json"
    assert dead[3].subject == f"{stream.dead_letter_prefix}.{group}-missing"
    assert asyncio.run(consumer_state(stream)) == (0, 0)  # terminated, not redelivered


def test_a_restart_resumes_from_the_durable_position(
    engine: Engine, group: str, stream: StreamSettings
) -> None:
    async def scenario() -> list[ConsumeStats]:
        await consume(engine, stream, 0)
        docs = [doc(f"u{n}", click("i1", f"e{n}a"), click("i2", f"e{n}b")) for n in range(5)]
        await publish(stream, group, *docs)
        first = await consume(engine, stream, 2)
        assert await consumer_state(stream) == (3, 0)
        await publish(stream, group, doc("u9", click("i3", "e9")))
        return [first, await consume(engine, stream, 4)]

    first, second = asyncio.run(scenario())
    assert (first.messages, first.stored) == (2, 4)
    assert (second.messages, second.stored, second.duplicates) == (4, 7, 0)
    assert stored(engine, group) == 11
    assert asyncio.run(consumer_state(stream)) == (0, 0)


def test_stop_finishes_the_batch_acks_it_and_returns(
    engine: Engine, group: str, stream: StreamSettings
) -> None:
    async def scenario() -> ConsumeStats:
        await consume(engine, stream, 0)
        stop = asyncio.Event()
        consumer = NatsEventConsumer(engine, stream, on_progress=lambda s: s.messages >= 3
                                     and stop.set())  # fmt: skip
        running = asyncio.create_task(consumer.run(stop=stop))
        await publish(stream, group, *[doc("u1", click("i1", f"e{n}")) for n in range(3)])
        return await asyncio.wait_for(running, 10)

    stats = asyncio.run(scenario())
    assert (stats.messages, stats.stored) == (3, 3)
    assert asyncio.run(consumer_state(stream)) == (0, 0)


def test_a_store_failure_is_retried_not_rejected(
    engine: Engine, group: str, stream: StreamSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_nats, "_RETRY_DELAY_SECONDS", 0.2)
    submit = engine.tracker.submit_async
    failures = [RuntimeError("database is down")]

    def flaky(group: str, events: Any) -> asyncio.Future[Any]:
        if not failures:
            return submit(group, events)
        future = asyncio.get_running_loop().create_future()
        future.set_exception(failures.pop())
        return future

    monkeypatch.setattr(engine.tracker, "submit_async", flaky)

    async def scenario() -> ConsumeStats:
        await consume(engine, stream, 0)
        await publish(stream, group, doc("u1", click("i1", "e1")))
        return await consume(engine, stream, 2)  # the failed delivery, then the retry

    stats = asyncio.run(scenario())
    assert (stats.retried, stats.rejected, stats.stored) == (1, 0, 1)
    assert stored(engine, group) == 1


def test_unreachable_nats_is_a_clear_error(engine: Engine, stream: StreamSettings) -> None:
    settings = stream.model_copy(
        update={"nats_url": "nats://127.0.0.1:1", "connect_timeout_seconds": 0.5}
    )
    with pytest.raises(StreamUnavailable, match=r"cannot reach NATS at nats://127\.0\.0\.1:1"):
        asyncio.run(consume(engine, settings, 1))


def test_cli_consumes_and_reports(tmp_path: Path, stream: StreamSettings) -> None:
    args = ["--home", str(tmp_path), "consume", "nats", "--url", stream.nats_url,
            "--stream", stream.stream, "--subject", stream.subject, "--durable", stream.durable,
            "--group", "default"]  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(app, [*args, "--max-messages", "0"])  # creates the stream
    assert result.exit_code == 0, result.output
    asyncio.run(publish(stream, "anything", doc("u1", click("i1", "e1")), b"[]"))
    result = runner.invoke(app, [*args, "--max-messages", "2"])
    assert result.exit_code == 0, result.output
    assert "1 events stored, 0 duplicates, 1 rejected" in result.output
    assert "Input should be an object" in result.output
    unreachable = runner.invoke(
        app, [*args[:4], "--url", "nats://127.0.0.1:1"],
        env={"TASTEBUD_STREAM__CONNECT_TIMEOUT_SECONDS": "0.5"},
    )  # fmt: skip
    assert unreachable.exit_code == 1
    assert "cannot reach NATS at nats://127.0.0.1:1" in unreachable.output


def test_engagement_events_arrive_attributed_as_over_http(
    engine: Engine, group: str, stream: StreamSettings
) -> None:
    """Push engagement from NATS: Android flat keys and iOS nested payloads name one campaign;
    a redelivered message counts once (docs/messaging.md)."""
    android = {"campaign_id": "c9", "campaign_activity_id": "a1", "treatment_id": "0"}
    ios = {"data": {"pinpoint": {"campaign": android}}}

    def event(event_id: str, event_type: str, properties: dict[str, Any]) -> dict[str, Any]:
        return {"eventId": event_id, "itemId": "i0", "eventType": event_type,
                "sentAt": 1_700_000_000, "properties": properties}  # fmt: skip

    message = {
        "userId": "u1",
        "eventList": [
            event("s1", "_campaign.send", android),
            event("o1", "_campaign.opened_notification", ios),
        ],
    }

    async def scenario() -> ConsumeStats:
        await consume(engine, stream, 0)
        await publish(stream, group, message, message)  # the same message twice
        return await consume(engine, stream, 2)

    stats = asyncio.run(scenario())
    assert (stats.stored, stats.duplicates, stats.rejected) == (2, 2, 0)
    report = engine.messaging.report(group, "c9")
    assert report["total"]["sends"] == 1
    assert report["total"]["opens"] == {"unique": 1, "total": 1}
    assert list(report["treatments"]) == ["0"]
