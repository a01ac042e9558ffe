"""The event tracker's writer: group commit of concurrent event batches.

Requests put their validated batches on a queue; one writer thread takes everything queued, stores
it in one transaction per dataset group (one fsync for many requests) and resolves each request's
future only after the commit, so an answered event is durable.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future

from tastebud.store import Event, Store, WriteResult

_log = logging.getLogger(__name__)

_Pending = tuple[str, Sequence[Event], "Future[WriteResult]"]


class EventTracker:
    def __init__(self, store: Store, *, max_batch_events: int = 5000) -> None:
        self._store = store
        self._max_batch_events = max_batch_events
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="tastebud-tracker", daemon=True)
        self._closed = False
        self._thread.start()

    def submit(self, group: str, events: Sequence[Event]) -> Future[WriteResult]:
        """Queue validated events; the future resolves once they are committed."""
        future: Future[WriteResult] = Future()
        if self._closed:
            future.set_exception(RuntimeError("event tracker is closed"))
        else:
            self._queue.put((group, events, future))
        return future

    def put(self, group: str, events: Sequence[Event]) -> WriteResult:
        return self.submit(group, events).result()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()

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
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Pending]) -> None:
        by_group: dict[str, list[_Pending]] = defaultdict(list)
        for pending in batch:
            by_group[pending[0]].append(pending)
        for group, items in by_group.items():
            try:
                results = self._store.put_event_batches(group, [events for _, events, _ in items])
            except Exception as exc:  # every waiting request hears of the failure
                _log.warning("event commit failed group=%s error=%s", group, exc)
                for _, _, future in items:
                    future.set_exception(exc)
                continue
            for (_, _, future), result in zip(items, results, strict=True):
                future.set_result(result)
