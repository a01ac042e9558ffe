"""A bounded buffer of records written to the store in batches by a background thread.

Exposures (and campaign answers, for metric attributions) are logged on the request path,
where a database transaction per answer would cost more than the answer itself (see
docs/benchmarks.md). A request appends to this buffer (a lock and a list append); a thread
writes what has gathered every ``flush_seconds``, or as soon as ``batch`` records wait, in
one transaction per group.

What a crash can lose: the records not written yet, at most ``flush_seconds`` of them while
the store keeps up (a clean shutdown, :meth:`BufferedLog.close`, writes them all). When the
store cannot keep up or is down, the buffer holds ``capacity`` records; beyond that an
appending request waits up to ``max_wait_seconds`` for room, then the record is dropped,
counted in ``tastebud_experiment_log_dropped`` and logged: serving never stops for logging.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from prometheus_client import Counter

from tastebud.errors import NotFound

_log = logging.getLogger(__name__)
T = TypeVar("T")
CLOSE_ATTEMPTS = 3

DROPPED = Counter(
    "tastebud_experiment_log_dropped",
    "Exposures or logged answers dropped because the buffer was full (the store too slow or down).",
    ["log"],
)
WRITTEN = Counter(
    "tastebud_experiment_log_written", "Exposures or logged answers written.", ["log"]
)


class BufferedLog(Generic[T]):
    """Appends from any thread; one writer thread, started on the first append.

    Args:
        write: stores one group's records in one transaction (``Store.put_exposures`` …).
        name: the ``log`` label of the metrics, and the thread's name.
    """

    def __init__(
        self, write: Callable[[str, Sequence[T]], int], *, name: str, flush_seconds: float = 0.2,
        batch: int = 2_000, capacity: int = 100_000, max_wait_seconds: float = 0.5,
    ) -> None:  # fmt: skip
        self._write = write
        self.name = name
        self.flush_seconds = flush_seconds
        self.batch = batch
        self.capacity = capacity
        self.max_wait_seconds = max_wait_seconds
        self._pending: list[tuple[str, T]] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._writing = threading.Lock()  # held while a batch is taken and written
        self._thread: threading.Thread | None = None
        self._closed = False
        self.dropped = 0

    def add(self, group: str, record: T) -> bool:
        """Queue one record; False when it was dropped (buffer full past the wait)."""
        with self._changed:
            if len(self._pending) >= self.capacity:
                deadline = time.monotonic() + self.max_wait_seconds
                while len(self._pending) >= self.capacity and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._changed.wait(left):
                        break
            if len(self._pending) >= self.capacity or self._closed:
                self._lose(1, None)
                return False
            self._pending.append((group, record))
            if len(self._pending) >= self.batch:
                self._changed.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"tastebud-{self.name}",
                                                daemon=True)  # fmt: skip
                self._thread.start()
        return True

    def flush(self) -> int:
        """Write everything appended so far, now, in this thread; returns records written."""
        written = 0
        while True:
            done = self._write_some()
            if done <= 0:
                return written
            written += done

    def close(self) -> None:
        """Write what is pending and stop the thread (later appends are dropped)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for _ in range(CLOSE_ATTEMPTS):  # a store that is briefly down gets a few more tries
            self.flush()
            if not self._pending:
                return
            time.sleep(self.flush_seconds)
        with self._changed:
            left, self._pending = len(self._pending), []
        self._lose(left, None)

    def _run(self) -> None:
        while True:
            with self._changed:
                if not self._closed and len(self._pending) < self.batch:
                    self._changed.wait(self.flush_seconds)
                closed = self._closed
            if self._write_some() < 0:  # the store failed: try again after a pause
                time.sleep(self.flush_seconds)
            if closed:
                return

    def _write_some(self) -> int:
        """Take up to ``batch`` records and write them, one transaction per group; -1 when the
        store failed for some (those are put back in front, as room allows)."""
        with self._writing:
            with self._changed:
                taken, self._pending = self._pending[: self.batch], self._pending[self.batch :]
                self._changed.notify_all()  # room for waiting appenders
            if not taken:
                return 0
            failed: list[tuple[str, T]] = []
            gone = 0
            for group in dict.fromkeys(g for g, _ in taken):
                records = [r for g, r in taken if g == group]
                try:
                    self._write(group, records)
                except NotFound as error:  # the group was deleted: nothing to keep them for
                    self._lose(len(records), error)
                    gone += len(records)
                except Exception as error:  # the store is down: keep them, try again later
                    failed += [(group, r) for r in records]
                    _log.warning("log write failed log=%s records=%d error=%s: %s", self.name,
                                 len(records), type(error).__name__, error)  # fmt: skip
            if failed:
                with self._changed:
                    room = max(self.capacity - len(self._pending), 0)
                    self._pending[:0] = failed[:room]
                if len(failed) > room:
                    self._lose(len(failed) - room, None)
            written = len(taken) - len(failed) - gone
            WRITTEN.labels(self.name).inc(written)
            return -1 if failed else written

    def _lose(self, count: int, error: Exception | None) -> None:
        self.dropped += count
        DROPPED.labels(self.name).inc(count)
        _log.warning("log records dropped log=%s records=%d reason=%s", self.name, count,
                     "buffer full or store down" if error is None else error)  # fmt: skip
