"""``tastebud consume nats``: ingest PutEvents messages from NATS JetStream until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tastebud.cli._common import console, die, engine, errors, state
from tastebud.engine import Engine
from tastebud.settings import StreamSettings

if TYPE_CHECKING:
    from tastebud.streams import ConsumeStats

consume_app = typer.Typer(help="Ingest events from a message stream.", no_args_is_help=True)

_REPORT_EVERY_SECONDS = 10.0  # progress lines when the output is not a terminal (logs)


@consume_app.command("nats")
def nats_(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help="NATS server (nats://127.0.0.1:4222).")] = None,
    subject: Annotated[
        str | None, typer.Option(help="Subjects to read (tastebud.events.>).")
    ] = None,
    stream: Annotated[str | None, typer.Option(help="JetStream stream (TASTEBUD_EVENTS).")] = None,
    group: Annotated[
        str | None, typer.Option(help="Dataset group of every message (default: last token).")
    ] = None,
    durable: Annotated[
        str | None, typer.Option(help="Durable consumer name: where a restart resumes.")
    ] = None,
    batch: Annotated[int | None, typer.Option(help="Messages fetched per commit.")] = None,
    create_stream: Annotated[
        bool | None, typer.Option(help="Create the stream when missing (default: yes).")
    ] = None,
    max_messages: Annotated[
        int | None, typer.Option(help="Stop after this many messages (tests, backfills).")
    ] = None,
) -> None:
    """Consume PutEvents messages (one JSON document each) into the event tracker.

    Runs until Ctrl-C / SIGTERM, which finish the batch at hand, ack it and drain.
    """
    overrides = {"nats_url": url, "subject": subject, "stream": stream, "group": group,
                 "durable": durable, "batch": batch, "create_stream": create_stream}  # fmt: skip
    settings = _stream_settings(ctx, {k: v for k, v in overrides.items() if v is not None})
    with engine(ctx) as eng:
        stats = asyncio.run(_consume(eng, settings, max_messages))
    console.print(f"[green]consumed[/] {stats.messages:,} messages: {_totals(stats)}")


def _stream_settings(ctx: typer.Context, overrides: dict[str, Any]) -> StreamSettings:
    current = state(ctx).settings().stream.model_dump()
    try:
        return StreamSettings.model_validate(current | overrides)
    except ValueError as exc:
        die(str(exc))


async def _consume(eng: Engine, settings: StreamSettings, max_messages: int | None) -> ConsumeStats:
    from tastebud.streams import NatsEventConsumer, StreamUnavailable  # nats loads only here

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # The log handler starts inside the status, so that its lines print above the live one.
    with errors.status("connecting to NATS …") as status, _warnings_to_stderr():
        report = _Reporter(status)
        consumer = NatsEventConsumer(eng, settings, on_progress=report.progress)
        status.update(f"consuming {settings.subject} from {settings.stream} at {settings.nats_url}")
        try:
            return await consumer.run(stop=stop, max_messages=max_messages)
        except StreamUnavailable as exc:
            status.stop()
            die(exc.message)


class _Reporter:
    """Live totals on a terminal; a line every few seconds otherwise (service logs)."""

    def __init__(self, status: Any) -> None:
        self._status = status
        self._last = time.monotonic()

    def progress(self, stats: ConsumeStats) -> None:
        line = f"{stats.messages:,} messages: {_totals(stats)}"
        if errors.is_terminal:
            self._status.update(line)
        elif time.monotonic() - self._last >= _REPORT_EVERY_SECONDS:
            self._last = time.monotonic()
            errors.print(line, highlight=False)


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Rejected messages (with their reason) and lost connections, one line each, unless
    logging is already configured for tastebud (a service's JSON logs)."""
    logger = logging.getLogger("tastebud")
    if logger.handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _totals(stats: ConsumeStats) -> str:
    text = f"{stats.stored:,} events stored, {stats.duplicates:,} duplicates, "
    text += f"{stats.rejected:,} rejected"
    return text + (f", {stats.retried:,} retried" if stats.retried else "")
