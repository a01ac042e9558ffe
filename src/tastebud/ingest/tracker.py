"""The event tracker's writer: group commit of concurrent event batches.

Requests put their validated batches on a queue; one writer thread takes everything queued, stores
it in one transaction per dataset group (one fsync for many requests) and resolves each request's
future only after the commit, so an answered event is durable.

Callers on an event loop use :meth:`EventTracker.submit_async`: the answers of one commit reach
each loop in a single wake-up, instead of one thread-safe call (and futures chained across
threads) per request.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from tastebud.store import Event, Store, WriteResult

_log = logging.getLogger(__name__)

# Where a request's answer goes: a thread's future, or a future of the event loop it awaits on.
_Waiter = Future[WriteResult] | asyncio.Future[WriteResult]
_Pending = tuple[str, Sequence[Event], _Waiter]
_Outcome = WriteResult | BaseException


class EventTracker:
    def __init__(self, store: Store, *, max_batch_events: int = 5000) -> None:
        self._store = store
        self._max_batch_events = max_batch_events
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="tastebud-tracker", daemon=True)
        self._closed = False
        # Called with (group, events stored) after each commit, on the writer thread.
        self.on_commit: list[Callable[[str, int], None]] = []
        self._thread.start()

    def submit(self, group: str, events: Sequence[Event]) -> Future[WriteResult]:
        """Queue validated events; the future resolves once they are committed."""
        future: Future[WriteResult] = Future()
        self._enqueue(group, events, future)
        return future

    def submit_async(self, group: str, events: Sequence[Event]) -> asyncio.Future[WriteResult]:
        """:meth:`submit` for a caller on the running event loop, which the future belongs to."""
        future: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        self._enqueue(group, events, future)
        return future

    def put(self, group: str, events: Sequence[Event]) -> WriteResult:
        return self.submit(group, events).result()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()

    def _enqueue(self, group: str, events: Sequence[Event], waiter: _Waiter) -> None:
        if self._closed:
            waiter.set_exception(RuntimeError("event tracker is closed"))
        else:
            self._queue.put((group, events, waiter))

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = [first], False
            size = len(first[1])
            while size < self._max_batch_events:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
                size += len(item[1])
            _settle(self._commit(batch))
            if stop:
                return

    def _commit(self, batch: list[_Pending]) -> list[tuple[_Waiter, _Outcome]]:
        """Store the batch, one transaction per group; every request's outcome."""
        by_group: dict[str, list[_Pending]] = defaultdict(list)
        for pending in batch:
            by_group[pending[0]].append(pending)
        outcomes: list[tuple[_Waiter, _Outcome]] = []
        for group, items in by_group.items():
            try:
                results = self._store.put_event_batches(group, [events for _, events, _ in items])
            except Exception as exc:  # every waiting request hears of the failure
                _log.warning("event commit failed group=%s error=%s", group, exc)
                outcomes += [(waiter, exc) for _, _, waiter in items]
                continue
            outcomes += [
                (waiter, result) for (_, _, waiter), result in zip(items, results, strict=True)
            ]
            self._committed(group, sum(result.accepted for result in results))
        return outcomes

    def _committed(self, group: str, accepted: int) -> None:
        for listener in self.on_commit:
            try:
                listener(group, accepted)
            except Exception as exc:  # a listener never fails the commit it hears about
                _log.warning("commit listener failed group=%s error=%s", group, exc)


def _settle(outcomes: list[tuple[_Waiter, _Outcome]]) -> None:
    """Resolve thread futures here, and each event loop's futures in one call on that loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[WriteResult], _Outcome]]]
    by_loop = defaultdict(list)
    for waiter, outcome in outcomes:
        if isinstance(waiter, asyncio.Future):
            by_loop[waiter.get_loop()].append((waiter, outcome))
        else:
            _resolve(waiter, outcome)
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve_all, settled)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            _log.debug("event loop closed before %d answers", len(settled))


def _resolve_all(settled: list[tuple[asyncio.Future[WriteResult], _Outcome]]) -> None:
    for future, outcome in settled:
        if not future.done():  # a request cancelled meanwhile (client gone) needs no answer
            _resolve(future, outcome)


def _resolve(waiter: _Waiter, outcome: _Outcome) -> None:
    if isinstance(outcome, BaseException):
        waiter.set_exception(outcome)
    else:
        waiter.set_result(outcome)
