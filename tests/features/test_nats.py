"""Events from NATS JetStream update features once, however often they are redelivered."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.msg import Msg

from tastebud.engine import Engine
from tastebud.settings import StreamSettings
from tests.features.conftest import online
from tests.streams.test_nats import consume, doc, nats_url, publish, stream

__all__ = ["nats_url", "stream"]  # the fixtures, used by name


def test_a_redelivered_message_counts_once(
    engine: Engine, group: str, stream: StreamSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.features.apply(group, "features: [{name: clicks, kind: counter, aggregation: count, "
                          "window: 1h}, {name: users, kind: counter, aggregation: "
                          "distinct_users, window: 1h}]")  # fmt: skip
    at = 1_700_000_000
    clicks = [{"itemId": "i1", "eventType": "click", "sentAt": at - k} for k in (30, 20)]
    message = doc("u1", *clicks)  # no eventIds: the consumer derives them from the stream

    async def no_ack(self: Msg) -> None:  # the process dies between commit and ack
        return None

    async def crash_then_restart() -> None:
        await consume(engine, stream, 0)
        await publish(stream, group, message)
        with monkeypatch.context() as patch:
            patch.setattr(Msg, "ack", no_ack)
            await consume(engine, stream, 1)
        await consume(engine, stream, 1)  # redelivered after ack_wait, stored 0

    asyncio.run(crash_then_restart())
    assert online(engine, group, ["clicks", "users"], "u1", ["i1"], at) == [[2.0, 1.0]]
