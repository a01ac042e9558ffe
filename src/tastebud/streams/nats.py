"""Stream ingestion from NATS JetStream: a durable pull consumer feeding the event tracker.

Each message is one PutEvents document — the body of ``POST /v1/dataset-groups/{group}/events``
— published on ``tastebud.events.<group>``. The consumer fetches a batch of messages, validates
each one exactly as the API does, hands the valid ones to the engine's event tracker (the batch
shares one group commit) and acks a message only once its events are committed. Delivery is
therefore at least once, and storage exactly once: event ids make writes idempotent, and an event
sent without an ``eventId`` gets one derived from its place in the stream (stream identity,
sequence, position), which every redelivery repeats. Its default ``sentAt`` is, for the same
reason, the time the stream stored the message rather than the time it was consumed.

A message that can never be stored (malformed JSON, a schema violation, an unknown group) is
terminated so JetStream stops redelivering it, counted, logged with its reason and, unless
turned off, republished to ``tastebud.dead.<group>`` with the reason in a header. A failure of
the store itself is not the message's fault: the message is nak'ed and retried later.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import nats
import nats.errors
import nats.js.errors
import orjson
import pydantic
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamInfo

from tastebud import observability
from tastebud.api.errors import field_path
from tastebud.engine import Engine
from tastebud.errors import InvalidInput, NotFound, NotReady, TastebudError
from tastebud.ingest import PutEventsRequest
from tastebud.settings import StreamSettings
from tastebud.store import Event, WriteResult

_log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5.0
# How long one fetch waits for messages: also how soon a stop request is noticed when idle.
_FETCH_TIMEOUT_SECONDS = 1.0
_PIPELINED_WAIT = 0.05  # the same while a batch is committing: its acks wait on this fetch
# A message whose commit failed (store down) comes back after this long; the consumer also
# pauses this long, so that an outage does not spin through the stream nak'ing everything.
_RETRY_DELAY_SECONDS = 2.0
_MIN_BACKOFF_SECONDS, _MAX_BACKOFF_SECONDS = 0.1, 5.0  # between fetches while NATS is down
_MAX_REASON_CHARS = 500
_FLUSH_TIMEOUT_SECONDS = 5  # acks still unsent when closing get this long to reach NATS
_SUBJECT_TOKEN_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# What makes a message itself unstorable; any other failure is the store's, and is retried.
_REJECTED = (pydantic.ValidationError, InvalidInput, NotFound)

PutEventsDocument = Mapping[str, Any] | PutEventsRequest | bytes


class StreamUnavailable(NotReady):
    """NATS cannot be reached, or the stream or consumer cannot be set up."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that was terminated instead of stored, and why."""

    subject: str
    sequence: int
    reason: str


@dataclass
class ConsumeStats:
    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    retried: int = 0
    rejections: deque[Rejection] = field(default_factory=lambda: deque(maxlen=20))


@dataclass(frozen=True, slots=True)
class _Pending:
    """A valid message whose events were handed to the tracker."""

    msg: Msg
    group: str
    events: list[Event]
    commit: asyncio.Future[WriteResult]


@dataclass(frozen=True, slots=True)
class _Batch:
    """One fetch: its size, and the messages now committing (the others were settled)."""

    size: int
    pending: list[_Pending]


async def connect(url: str, *, timeout: float = CONNECT_TIMEOUT_SECONDS) -> NATS:
    """A NATS connection that reconnects forever once up; StreamUnavailable if it never is."""
    nc = NATS()
    causes: list[Exception] = []

    async def on_error(error: Exception) -> None:
        causes[:] = [error]  # the last one explains a failed first connection
        _log.debug("nats error url=%s error=%s", url, error)

    async def on_disconnected() -> None:
        if not nc.is_closed:  # closing on purpose is no news
            _log.warning("nats connection lost url=%s; reconnecting", url)

    async def on_reconnected() -> None:
        _log.warning("nats reconnected url=%s", url)

    try:
        # nats-py retries a first connection as often as reconnections; the deadline bounds it.
        await asyncio.wait_for(
            nc.connect(
                url, error_cb=on_error, disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected, connect_timeout=max(1, int(timeout)),
                max_reconnect_attempts=-1, reconnect_time_wait=1,
            ),
            timeout,
        )  # fmt: skip
    except (TimeoutError, OSError, ValueError, nats.errors.Error) as exc:
        cause = causes[-1] if causes else exc
        raise StreamUnavailable(
            f"cannot reach NATS at {url} ({str(cause) or type(cause).__name__})"
        ) from exc
    return nc


class NatsEventConsumer:
    """Reads PutEvents messages from a JetStream durable pull consumer into ``engine``.

    Args:
        engine: whose event tracker stores the events (as the HTTP route does).
        settings: the stream, subject, durable name …; default: ``engine.settings.stream``.
        on_progress: called after every batch with the running totals.
        on_reject: called for every rejected message.
    """

    def __init__(
        self,
        engine: Engine,
        settings: StreamSettings | None = None,
        *,
        on_progress: Callable[[ConsumeStats], None] | None = None,
        on_reject: Callable[[Rejection], None] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings if settings is not None else engine.settings.stream
        self.stats = ConsumeStats()
        self._on_progress = on_progress
        self._on_reject = on_reject
        self._nc: NATS | None = None
        self._id_prefix = ""
        self._backoff = 0.0  # seconds slept after the last failed fetch (0: it succeeded)

    async def run(
        self, *, stop: asyncio.Event | None = None, max_messages: int | None = None
    ) -> ConsumeStats:
        """Consume until ``stop`` is set (after finishing the batch at hand) or ``max_messages``
        messages were handled; acks are flushed before returning."""
        stop = stop if stop is not None else asyncio.Event()
        s = self.settings
        self._nc = await connect(s.nats_url, timeout=s.connect_timeout_seconds)
        sub: JetStreamContext.PullSubscription | None = None
        fetched = 0
        committing: _Batch | None = None
        try:
            sub = await self._subscribe(self._nc.jetstream())
            while not stop.is_set() and not _reached(fetched, max_messages):
                want = self.settings.batch
                if max_messages is not None:  # never hold messages this run will not handle
                    want = min(want, max_messages - fetched)
                retried = self.stats.retried
                # Two batches in flight: the next one is fetched and validated while the
                # tracker commits the previous one, whose messages are acked after. That
                # fetch barely waits, so an idle stream does not hold back the acks.
                idle_wait = _FETCH_TIMEOUT_SECONDS if committing is None else _PIPELINED_WAIT
                msgs = await self._fetch(sub, want, idle_wait)
                fetched += len(msgs)
                batch = await self._submit(msgs) if msgs else None
                if committing is not None:
                    await self._settle(committing)
                committing = batch
                if self.stats.retried > retried:  # the store failed: give it time
                    await _sleep_unless(stop, _RETRY_DELAY_SECONDS)
            if committing is not None:
                await self._settle(committing)
        finally:
            await _close(self._nc, sub)
        return self.stats

    # set-up -----------------------------------------------------------------------------------
    async def _subscribe(self, js: JetStreamContext) -> JetStreamContext.PullSubscription:
        s = self.settings
        info = await self._stream(js)
        self._id_prefix = _event_id_prefix(info)
        config = ConsumerConfig(
            durable_name=s.durable, ack_policy=AckPolicy.EXPLICIT, ack_wait=s.ack_wait_seconds,
            deliver_policy=DeliverPolicy.ALL, filter_subject=s.subject,
            max_ack_pending=max(1000, 4 * s.batch),
        )  # fmt: skip
        try:
            sub = await js.pull_subscribe(s.subject, durable=s.durable, stream=s.stream,
                                          config=config)  # fmt: skip
            bound = (await sub.consumer_info()).config.filter_subject
        except nats.js.errors.APIError as exc:
            raise StreamUnavailable(
                f"cannot use consumer {s.durable!r} on stream {s.stream!r}: {exc.description}"
            ) from exc
        # An existing durable keeps its own filter: reading another subject silently would be
        # worse than stopping.
        if bound and bound != s.subject:
            await sub.unsubscribe()
            raise StreamUnavailable(
                f"durable consumer {s.durable!r} reads {bound!r}, not {s.subject!r}: "
                "choose another --durable or delete that consumer"
            )
        return sub

    async def _stream(self, js: JetStreamContext) -> StreamInfo:
        s = self.settings
        try:
            return await js.stream_info(s.stream)
        except nats.js.errors.NotFoundError:
            if not s.create_stream:
                raise StreamUnavailable(
                    f"stream {s.stream!r} does not exist at {s.nats_url} (creation is off)"
                ) from None
        try:
            await js.add_stream(name=s.stream, subjects=[s.subject])
        except nats.js.errors.APIError as exc:
            raise StreamUnavailable(
                f"cannot create stream {s.stream!r} for {s.subject!r}: {exc.description}"
            ) from exc
        _log.info("stream created name=%s subject=%s", s.stream, s.subject)
        return await js.stream_info(s.stream)

    # the loop ---------------------------------------------------------------------------------
    async def _fetch(
        self, sub: JetStreamContext.PullSubscription, want: int, timeout: float
    ) -> list[Msg]:
        if self._nc is not None and self._nc.is_reconnecting:
            # NATS is down: the client reconnects by itself (every second); wait for it, longer
            # each time, rather than queue fetches that cannot be sent.
            await self._back_off("reconnecting")
            return []
        try:
            msgs = await sub.fetch(want, timeout=timeout)
        except (TimeoutError, nats.errors.TimeoutError):
            msgs = []
        except nats.errors.Error as exc:  # e.g. reconnecting: the client recovers by itself
            if self._nc is None or self._nc.is_closed:
                raise StreamUnavailable(f"NATS connection closed: {exc}") from exc
            await self._back_off(str(exc))
            return []
        self._backoff = 0.0
        return msgs

    async def _back_off(self, reason: str) -> None:
        """Sleep before trying NATS again: 0.1 s, doubled each time up to 5 s."""
        self._backoff = min(_MAX_BACKOFF_SECONDS, max(_MIN_BACKOFF_SECONDS, 2 * self._backoff))
        observability.dependency_error("nats")
        _log.warning("nats unavailable reason=%s retry_in=%.1fs", reason, self._backoff)
        await asyncio.sleep(self._backoff)

    async def _submit(self, msgs: list[Msg]) -> _Batch:
        """Validate each message; hand the valid ones to the tracker, reject the others."""
        pending: list[_Pending] = []
        tracker = self.engine.tracker
        for msg in msgs:
            group = self._group(msg.subject)
            try:
                events = self._validate(group, msg)
            except _REJECTED as exc:
                await self._reject(msg, group, _reason(exc))
                continue
            except Exception as exc:  # the store failed while reading the schema
                await self._retry(msg, exc)
                continue
            pending.append(_Pending(msg, group, events, tracker.submit_async(group, events)))
        return _Batch(len(msgs), pending)

    async def _settle(self, batch: _Batch) -> None:
        """Await the batch's commits, then ack each message (or reject or retry it)."""
        outcomes = list(
            await asyncio.gather(*(p.commit for p in batch.pending), return_exceptions=True)
        )
        failed = [n for n, outcome in enumerate(outcomes) if isinstance(outcome, _REJECTED)]
        if len(failed) > 1:
            # One bad message fails its group's whole commit: commit those alone to find it.
            for n in failed:
                outcomes[n] = await self._commit_alone(batch.pending[n])
        for item, outcome in zip(batch.pending, outcomes, strict=True):
            await self._settle_one(item, outcome)
        self.stats.messages += batch.size
        if self._on_progress is not None:
            self._on_progress(self.stats)

    def _validate(self, group: str, msg: Msg) -> list[Event]:
        request = PutEventsRequest.from_json(msg.data)
        meta = msg.metadata
        stored_at = int(meta.timestamp.timestamp())
        for index, event in enumerate(request.event_list):
            # Both derived from the message, never from this delivery: a redelivered event
            # is then the same event, and its id finds the copy already stored.
            if event.event_id is None:
                event.event_id = f"{self._id_prefix}-{meta.sequence.stream}-{index}"
            if event.sent_at is None:
                event.sent_at = stored_at
        return self.engine.validate_events(group, request)

    async def _commit_alone(self, item: _Pending) -> WriteResult | BaseException:
        try:
            return await self.engine.tracker.submit_async(item.group, item.events)
        except Exception as exc:
            return exc

    async def _settle_one(self, item: _Pending, outcome: WriteResult | BaseException) -> None:
        if isinstance(outcome, WriteResult):
            await _settle_quietly(item.msg.ack())  # only now: the events are committed
            self.stats.stored += outcome.accepted
            self.stats.duplicates += outcome.duplicates
            observability.events_ingested(outcome.accepted, source="stream",
                                          duplicates=outcome.duplicates)  # fmt: skip
        elif isinstance(outcome, _REJECTED):
            await self._reject(item.msg, item.group, _reason(outcome))
        else:
            await self._retry(item.msg, outcome)

    async def _reject(self, msg: Msg, group: str, reason: str) -> None:
        sequence = msg.metadata.sequence.stream
        rejection = Rejection(subject=msg.subject, sequence=sequence, reason=reason)
        self.stats.rejected += 1
        self.stats.rejections.append(rejection)
        _log.warning("stream message rejected subject=%s seq=%d reason=%s",
                     msg.subject, sequence, reason)  # fmt: skip
        if self._on_reject is not None:
            self._on_reject(rejection)
        await self._dead_letter(msg, group, rejection)
        await msg.term()  # after the dead letter: a crash in between redelivers, never loses

    async def _dead_letter(self, msg: Msg, group: str, rejection: Rejection) -> None:
        prefix = self.settings.dead_letter_prefix
        if not prefix or self._nc is None:
            return
        headers = {
            "Tastebud-Error": " ".join(rejection.reason.split()),  # headers hold no newlines
            "Tastebud-Subject": msg.subject,
            "Tastebud-Sequence": str(rejection.sequence),
        }
        subject = f"{prefix}.{_SUBJECT_TOKEN_UNSAFE.sub('_', group) or '_'}"
        await self._nc.publish(subject, msg.data, headers=headers)

    async def _retry(self, msg: Msg, error: BaseException) -> None:
        self.stats.retried += 1
        _log.warning("stream message not stored, retried later subject=%s error=%s",
                     msg.subject, error)  # fmt: skip
        await _settle_quietly(msg.nak(delay=_RETRY_DELAY_SECONDS))

    def _group(self, subject: str) -> str:
        return self.settings.group or subject.rsplit(".", 1)[-1]


async def publish_events(
    url: str,
    group: str,
    *documents: PutEventsDocument,
    subject_prefix: str = "tastebud.events",
    msg_ids: Sequence[str] | None = None,
) -> list[int]:
    """Publish PutEvents documents to ``<subject_prefix>.<group>``, one message each.

    Returns the stream sequence of every message, once JetStream has stored them all.
    ``msg_ids`` (one per document) become ``Nats-Msg-Id`` headers: JetStream then drops a
    document published again within its duplicate window (a producer's retry), which matters
    for events without ``eventId`` — those are deduplicated only on redelivery.
    """
    if msg_ids is not None and len(msg_ids) != len(documents):
        raise InvalidInput(f"msg_ids: {len(msg_ids)} ids for {len(documents)} documents")
    subject = f"{subject_prefix}.{group}"
    nc = await connect(url)
    try:
        js = nc.jetstream()
        futures = []
        for n, document in enumerate(documents):
            headers = {"Nats-Msg-Id": msg_ids[n]} if msg_ids is not None else None
            futures.append(await js.publish_async(subject, _body(document), headers=headers))
        acks = await asyncio.gather(*futures)
    except nats.errors.NoRespondersError as exc:
        raise StreamUnavailable(
            f"no stream stores {subject!r} at {url}: create it (the consumer does on start)"
        ) from exc
    finally:
        await nc.close()
    return [ack.seq for ack in acks]


def _body(document: PutEventsDocument) -> bytes:
    if isinstance(document, bytes):
        return document
    if isinstance(document, PutEventsRequest):
        return document.model_dump_json(by_alias=True, exclude_none=True).encode()
    return orjson.dumps(document)


def _event_id_prefix(info: StreamInfo) -> str:
    """Names this stream instance in derived event ids: a stream deleted and created again
    numbers its messages from 1 again, and must not collide with the ids already stored."""
    created = info.created.isoformat() if info.created else ""
    digest = hashlib.sha256(f"{info.config.name}\0{created}".encode()).hexdigest()
    return f"nats-{digest[:12]}"


def _reason(error: BaseException) -> str:
    """What is wrong with a message, naming fields as the API does (``eventList[0].itemId``)."""
    if isinstance(error, pydantic.ValidationError):
        problems = error.errors(include_url=False)
        parts = [
            f"{field_path(p['loc'])}: {p['msg']}" if p["loc"] else str(p["msg"])
            for p in problems[:5]
        ]
        if len(problems) > 5:
            parts.append(f"… and {len(problems) - 5} more")
        reason = "; ".join(parts)
    elif isinstance(error, TastebudError):
        reason = error.message
    else:
        reason = f"{type(error).__name__}: {error}"
    return reason[:_MAX_REASON_CHARS]


def _reached(count: int, limit: int | None) -> bool:
    return limit is not None and count >= limit


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _settle_quietly(reply: Awaitable[None]) -> None:
    """An ack or nak that cannot reach NATS (it is down) is not the consumer's end: the message
    comes back after its ack wait, and its event ids store it once."""
    try:
        await reply
    except nats.errors.Error as exc:
        _log.warning("ack not sent error=%s; the message will be redelivered", exc)


async def _close(nc: NATS, sub: JetStreamContext.PullSubscription | None) -> None:
    """Flush, then close: the acks sent reach the server first. (Not ``drain``: it waits for a
    pull subscription's queue to empty, which expired fetches' status messages never do.)"""
    if nc.is_closed:
        return
    try:
        if sub is not None:
            await sub.unsubscribe()
        await nc.flush(timeout=_FLUSH_TIMEOUT_SECONDS)
    except (TimeoutError, nats.errors.Error) as exc:
        _log.warning("nats flush before closing failed error=%s", exc)
    finally:
        await nc.close()
