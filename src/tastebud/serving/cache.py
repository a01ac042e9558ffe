"""The result cache of campaigns: answers kept for a TTL, dropped for a user who acts.

Staleness is decided by arrival numbers, not by who wrote the event: every process tails the
store's new interactions (one indexed range scan, at most every ``interval`` seconds; on
PostgreSQL when the store notifies that some arrived) and notes each user's latest arrival
number. A cached answer remembers the arrival number that process had seen when it was computed
(its *watermark*); it is served only while the user has nothing newer. So an event stored by any
API worker, a stream consumer or an import invalidates the user's answers everywhere, within
``interval`` (or a notification's delivery), with no message of tastebud's own between
processes.

With Redis the answers and the users' latest arrival numbers are shared by all workers (one
round trip per lookup); without it, the embedded workers of one home share them through a file
(:class:`FileAnswers`), or each process keeps its own.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from tastebud.breaker import Breaker
from tastebud.errors import StoreUnavailable
from tastebud.store import Store

if TYPE_CHECKING:
    from tastebud.store.listen import TailListener

TAIL_BATCH = 10_000
# A cache lookup waits this long for Redis at most; a Redis slower than that counts as down.
REDIS_TIMEOUT_SECONDS = 0.25
# Users who acted while Redis was down, remembered to write their arrival numbers on its return.
_MAX_PENDING_USERS = 100_000
_T = TypeVar("_T")
_log = logging.getLogger(__name__)
_USER_MARK_SECONDS = 86_400  # a user's latest arrival number outlives any answer TTL
# A user's newest arrival number while only known to be newer than any answer (see `touch`).
_COMMITTED_HERE = sys.maxsize
# While the store notifies new events, its tail is still read this often (a lost notification
# costs this much staleness at most).
_POLL_WHILE_NOTIFIED = 1.0


class UserChanges:
    """Each group's users with new interactions, read from the store's tail."""

    def __init__(self, store: Store, *, interval: float = 0.005) -> None:
        self._store = store
        self._interval = interval
        self._seen: dict[str, tuple[float, int]] = {}  # group -> (checked at, arrival number)
        self._started: dict[str, int] = {}  # group -> the arrival number its first read saw
        self._latest: dict[tuple[str, str], int] = {}  # (group, user) -> newest arrival number
        self._touched: dict[tuple[str, str], float] = {}  # (group, user) -> when (see `touch`)
        self._touch_lock = threading.Lock()
        self._lock = threading.Lock()

    def sync(self, group: str, *, force: bool = False) -> tuple[int, list[tuple[str, int]]]:
        """Catch up with the store (unless ``force`` is False and it was done less than
        ``interval`` ago, or another thread is reading); returns the arrival number seen (a
        watermark for answers computed now) and the users that changed."""
        checked = self._seen.get(group)
        if checked is not None and not force:
            if time.monotonic() - checked[0] < self._interval:
                return checked[1], []
            if not self._lock.acquire(blocking=False):
                return checked[1], []  # another request is reading the tail right now
        else:
            self._lock.acquire()
        try:
            now = time.monotonic()
            checked = self._seen.get(group)
            if checked is None:  # nothing before this process started is newer than its cache
                self._seen[group] = (now, self._store.last_seq(group))
                self._started[group] = self._seen[group][1]
                return self._seen[group][1], []
            seq, changed = checked[1], []
            while True:
                rows = self._store.users_after(group, seq, limit=TAIL_BATCH)
                for row_seq, user in rows:
                    self._latest[(group, user)] = row_seq
                    changed.append((user, row_seq))
                if rows:
                    seq = rows[-1][0]
                if len(rows) < TAIL_BATCH:
                    break
            self._seen[group] = (now, seq)
            self._untouch(group, before=now)
            return seq, changed
        finally:
            self._lock.release()

    def touch(self, group: str, users: Iterable[str]) -> None:
        """Users whose events this process has just committed: their cached answers are stale
        from now on, with no read of the store, until a read of the tail begun after this call
        (which holds those events) gives their arrival numbers."""
        now = time.monotonic()
        with self._touch_lock:  # never the read's lock: the event loop must not wait on a read
            for user in users:
                self._touched[(group, user)] = now

    def _untouch(self, group: str, *, before: float) -> None:
        """Forget touches a read begun at ``before`` holds (their events were committed first)."""
        with self._touch_lock:
            stale = [k for k, t in self._touched.items() if k[0] == group and t < before]
            for key in stale:
                del self._touched[key]

    def groups(self) -> list[str]:
        """The groups whose tail this process reads."""
        return list(self._seen)

    def started(self, group: str) -> int | None:
        """The arrival number of this process's first read (None: not read yet): events before
        it are not in :meth:`latest`, so only answers computed since then can be judged."""
        return self._started.get(group)

    def watermark(self, group: str) -> int:
        """The arrival number read last (0: none yet)."""
        checked = self._seen.get(group)
        return 0 if checked is None else checked[1]

    @property
    def interval(self) -> float:
        return self._interval

    def age(self, group: str) -> float:
        """Seconds since the store's tail was last read for ``group`` (inf: never)."""
        checked = self._seen.get(group)
        return math.inf if checked is None else time.monotonic() - checked[0]

    def latest(self, group: str, user: str) -> int:
        """The user's newest arrival number this process has seen (0: none since it started;
        larger than any while only :meth:`touch` knows of its newest events)."""
        touched = self._touched.get((group, user))
        if touched is not None:
            checked = self._seen.get(group)
            if checked is None or checked[0] <= touched:
                return _COMMITTED_HERE
        return self._latest.get((group, user), 0)

    def forget(self, group: str) -> None:
        with self._lock:
            self._seen.pop(group, None)
            self._started.pop(group, None)
            self._latest = {k: v for k, v in self._latest.items() if k[0] != group}
        self._untouch(group, before=math.inf)


class AnswerStore(Protocol):
    """Where cached answers live: this process, or Redis."""

    def get(self, group: str, user: str, key: str, changes: UserChanges) -> bytes | None: ...
    def nearby(self, group: str, user: str, key: str, changes: UserChanges) -> bytes | None:
        """:meth:`get` with no network round trip (None: ask :meth:`get`), for an event loop."""
        ...

    def put(
        self, group: str, user: str, key: str, value: bytes, *, ttl: float, watermark: int
    ) -> None: ...
    def note_changes(self, group: str, changed: list[tuple[str, int]]) -> None: ...
    def clear(self) -> None: ...


class LocalAnswers:
    """Answers in this process's memory, least recently used dropped beyond ``capacity``."""

    def __init__(self, *, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, str, str], tuple[float, int, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, group: str, user: str, key: str, changes: UserChanges) -> bytes | None:
        with self._lock:
            entry = self._entries.get((group, user, key))
            if entry is None:
                return None
            expires, watermark, value = entry
            if expires < time.monotonic() or watermark < changes.latest(group, user):
                del self._entries[(group, user, key)]
                return None
            self._entries.move_to_end((group, user, key))
            return value

    nearby = get

    def put(
        self, group: str, user: str, key: str, value: bytes, *, ttl: float, watermark: int
    ) -> None:
        with self._lock:
            self._entries[(group, user, key)] = (time.monotonic() + ttl, watermark, value)
            self._entries.move_to_end((group, user, key))
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def note_changes(self, group: str, changed: list[tuple[str, int]]) -> None:
        """Nothing to do: lookups compare with :meth:`UserChanges.latest`."""

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


ANSWERS_FILE = "answers.sqlite"  # FileAnswers' file in the home folder


def remove_answers_file(home: Path) -> None:
    """Start the workers with an empty file: its answers may come from another store (one
    restored since, say), which no watermark of this one can judge."""
    for suffix in ("", "-wal", "-shm"):
        (home / (ANSWERS_FILE + suffix)).unlink(missing_ok=True)


class FileAnswers:
    """Answers shared by the processes of one home (``tastebud serve --workers N`` without
    Redis) through a SQLite file: when an event drops a user's answers in every worker, the
    first worker asked computes the new one and the others read it, instead of each computing
    its own (a full scan each).

    Each process keeps the answers it read or wrote in front of the file (``local``). An
    answer in the file is judged as a local one: its watermark against the user's newest
    arrival number in this process's own tail of the store (every worker tails the same store),
    and only if it was computed after this process first read that tail (older events are not
    in it). The file is a cache: no fsync, and a read or write that finds it locked by another
    process for more than a few milliseconds is skipped, never waited on.
    """

    _PURGE_EVERY = 1_000  # writes between deletions of expired answers

    def __init__(self, path: Path, *, local: LocalAnswers | None = None) -> None:
        self._path = path
        self._local = local if local is not None else LocalAnswers()
        self._connections = threading.local()
        self._writes = 0

    def get(self, group: str, user: str, key: str, changes: UserChanges) -> bytes | None:
        if (near := self._local.get(group, user, key, changes)) is not None:
            return near
        started = changes.started(group)
        if started is None:
            return None
        row = self._call(
            "SELECT watermark, expires, value FROM answers WHERE key = ?",
            (_answer_key(group, user, key),),
        )
        if row is None:
            return None
        answer: bytes
        mark, expires, answer = row
        left = expires - time.time()
        if left <= 0 or mark < max(started, changes.latest(group, user)):
            return None
        self._local.put(group, user, key, answer, ttl=left, watermark=mark)
        return answer

    nearby = get  # a local file, read within a few milliseconds or skipped

    def put(
        self, group: str, user: str, key: str, value: bytes, *, ttl: float, watermark: int
    ) -> None:
        self._local.put(group, user, key, value, ttl=ttl, watermark=watermark)
        self._call(
            "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)",
            (_answer_key(group, user, key), watermark, time.time() + ttl, value),
        )
        self._writes += 1
        if self._writes % self._PURGE_EVERY == 0:
            self._call("DELETE FROM answers WHERE expires < ?", (time.time(),))

    def note_changes(self, group: str, changed: list[tuple[str, int]]) -> None:
        """Nothing to do: lookups compare with this process's :meth:`UserChanges.latest`."""

    def clear(self) -> None:
        self._local.clear()
        self._call("DELETE FROM answers", ())

    def _call(self, sql: str, parameters: tuple[Any, ...]) -> Any:
        """The statement's first row (None: none, or the file was busy or unusable)."""
        try:
            return self._connection().execute(sql, parameters).fetchone()
        except sqlite3.Error as error:
            _log.debug("shared answers skipped path=%s error=%s", self._path, error)
            return None

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (made on first use: the file and its table too)."""
        connection: sqlite3.Connection | None = getattr(self._connections, "db", None)
        if connection is None:
            connection = sqlite3.connect(self._path, timeout=0.005, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=OFF")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, watermark INTEGER "
                "NOT NULL, expires REAL NOT NULL, value BLOB NOT NULL) WITHOUT ROWID"
            )
            self._connections.db = connection
        return connection


class RedisAnswers:
    """Answers shared by every worker through Redis: ``tb:a:{group}:{user}:{key}`` holds
    ``watermark|expires at|answer`` with the TTL; ``tb:u:{group}:{user}`` the user's newest
    arrival number, written by every worker that sees it (the same value, so order does not
    matter).

    Each process keeps the answers it has read or written in front of Redis (``local``): a
    repeated request then costs no round trip, and it is invalidated exactly as Redis's copy is
    (this process tails the same store, so it sees the user's events as soon as any worker).

    Redis is a cache here, never the truth: while it is down (see ``breaker``) lookups answer
    from this process's copies alone and answers are computed as without Redis. The users who
    acted meanwhile are remembered and their arrival numbers written as soon as Redis answers
    again, so no answer it kept from before the outage is served to a user who has acted since
    (past ``_MAX_PENDING_USERS`` of them, every answer in Redis is dropped instead)."""

    def __init__(
        self, url: str, *, local: LocalAnswers | None = None, breaker: Breaker | None = None
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No retries inside redis-py (3 by default, with backoff): a failure goes to the breaker.
        self._redis: Any = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS, retry=Retry(NoBackoff(), 0),
        )  # fmt: skip
        self._errors = (redis.RedisError, OSError)
        self._local = local if local is not None else LocalAnswers()
        self.breaker = breaker if breaker is not None else Breaker("redis")
        self._pending: dict[tuple[str, str], int] = {}  # (group, user) -> newest arrival number
        self._pending_overflow = False
        self._pending_lock = threading.Lock()

    def get(self, group: str, user: str, key: str, changes: UserChanges) -> bytes | None:
        if (near := self._local.get(group, user, key, changes)) is not None:
            return near
        found = self._call(self._redis.mget, _answer_key(group, user, key), _user_key(group, user))
        if found is None or found[0] is None:
            return None
        value, newest = found
        mark, expires, answer = _unpack(bytes(value))
        if mark < max(int(newest or 0), changes.latest(group, user)):
            return None
        left = expires - time.time()
        if left > 0:
            self._local.put(group, user, key, answer, ttl=left, watermark=mark)
        return answer

    def nearby(self, group: str, user: str, key: str, changes: UserChanges) -> bytes | None:
        return self._local.get(group, user, key, changes)

    def put(
        self, group: str, user: str, key: str, value: bytes, *, ttl: float, watermark: int
    ) -> None:
        self._local.put(group, user, key, value, ttl=ttl, watermark=watermark)
        payload = b"%d|%.3f|" % (watermark, time.time() + ttl) + value
        self._call(self._redis.set, _answer_key(group, user, key), payload,
                   px=max(1, int(ttl * 1000)))  # fmt: skip

    def note_changes(self, group: str, changed: list[tuple[str, int]]) -> None:
        if not changed:
            return
        newest = {(group, user): seq for user, seq in changed}  # rows are in order: last wins
        if self._call(self._write_marks, newest) is None:
            self._keep_pending(newest)

    def _write_marks(self, marks: dict[tuple[str, str], int]) -> bool:
        with self._redis.pipeline(transaction=False) as pipe:
            for (group, user), seq in marks.items():
                pipe.set(_user_key(group, user), seq, ex=_USER_MARK_SECONDS)
            pipe.execute()
        return True

    def _keep_pending(self, marks: dict[tuple[str, str], int]) -> None:
        with self._pending_lock:
            self._pending.update(marks)
            if len(self._pending) > _MAX_PENDING_USERS:
                self._pending.clear()
                self._pending_overflow = True

    def _catch_up(self) -> None:
        """After an outage: the marks Redis missed (or, past too many, no old answer at all),
        before anything else is read or written there; kept for later if Redis fails again."""
        with self._pending_lock:
            pending, self._pending = self._pending, {}
            overflow, self._pending_overflow = self._pending_overflow, False
        try:
            if overflow:
                self._drop_answers()
            elif pending:
                self._write_marks(pending)
        except BaseException:
            self._keep_pending(pending)
            with self._pending_lock:
                self._pending_overflow |= overflow
            raise

    def _call(self, method: Callable[..., _T], *args: Any, **kwargs: Any) -> _T | None:
        """``method(*args, **kwargs)`` on Redis; None when it is down (now or known to be)."""
        if not self.breaker.available():
            return None
        try:
            if self._pending or self._pending_overflow:
                self._catch_up()
            result = method(*args, **kwargs)
        except self._errors as error:
            self.breaker.failed(error)
            return None
        self.breaker.succeeded()
        return result

    def clear(self) -> None:
        self._local.clear()
        if self._call(self._drop_answers) is None:  # Redis down: dropped when it is back
            with self._pending_lock:
                self._pending_overflow = True

    def _drop_answers(self) -> bool:
        for key in self._redis.scan_iter(match="tb:a:*", count=1000):
            self._redis.delete(key)
        return True

    def ping(self) -> bool:
        return bool(self._redis.ping())


def _unpack(payload: bytes) -> tuple[int, float, bytes]:
    """``(watermark, expires at, answer)`` of a stored answer."""
    mark, _, rest = payload.partition(b"|")
    expires, _, answer = rest.partition(b"|")
    return int(mark), float(expires), answer


def _answer_key(group: str, user: str, key: str) -> str:
    return f"tb:a:{group}:{user}:{key}"


def _user_key(group: str, user: str) -> str:
    return f"tb:u:{group}:{user}"


class ResultCache:
    """Answers per (group, user, request key), valid for their TTL and until the user acts."""

    def __init__(self, store: Store, answers: AnswerStore, *, interval: float = 0.005) -> None:
        self.changes = UserChanges(store, interval=interval)
        self.answers = answers
        self._store = store
        self._store_breaker: Breaker | None = getattr(store, "breaker", None)  # PostgreSQL's
        self._listener: TailListener | None = None
        self._listener_started = False
        self._background: ThreadPoolExecutor | None = None
        self._pending: set[str] = set()  # groups with a background sync queued or running
        self._lock = threading.Lock()

    def sync(self, group: str, *, force: bool = False) -> int:
        """Catch up with new events; returns the watermark for answers computed now. While the
        store is down no event can be stored either: the last watermark stays right. While
        the store notifies new events, the last read is up to date (an answer computed from
        events not read yet is dropped when they are)."""
        if not force and self._notified(group):
            return self.changes.watermark(group)
        try:
            watermark, changed = self.changes.sync(group, force=force)
        except StoreUnavailable:
            return self.changes.watermark(group)
        self.answers.note_changes(group, changed)
        return watermark

    def sync_soon(self, group: str) -> None:
        """:meth:`sync`, for the server's event loop, which should not wait on the store (a
        PostgreSQL round trip every few milliseconds stalled every request queued behind it).
        While the store notifies new events (PostgreSQL), they are read on the listener's
        thread, and the tail is read here once every ``_POLL_WHILE_NOTIFIED`` seconds at
        most, in the background. Otherwise a sync that is due goes to a background thread
        while the events last read are recent (under two intervals old: a busy server);
        lookups meanwhile judge answers by those, as between any two syncs. Older than that
        (a quiet server), it reads now: an event accepted a while ago is always reflected by
        the next answer."""
        age = self.changes.age(group)
        if age < self.changes.interval or self._notified(group):
            return
        store_down = self._store_breaker is not None and self._store_breaker.down
        safety_poll = self.changes.started(group) is not None and self._listening()
        if age >= 2 * self.changes.interval and not store_down and not safety_poll:
            self.sync(group)  # (store down: its retry may wait)
            return
        with self._lock:
            if group in self._pending:
                return
            self._pending.add(group)
            if self._background is None:
                self._background = ThreadPoolExecutor(1, thread_name_prefix="tastebud-cache")
        self._background.submit(self._sync_in_background, group)

    def _notified(self, group: str) -> bool:
        """Whether the store notifies this process of ``group``'s new events now, and its
        tail was read recently enough not to need a safety poll."""
        return (self.changes.started(group) is not None and self._listening()
                and self.changes.age(group) < _POLL_WHILE_NOTIFIED)  # fmt: skip

    def _listening(self) -> bool:
        if not self._listener_started:  # by the first lookup: most commands never serve
            with self._lock:
                if not self._listener_started:
                    self._listener = self._store.tail_listener(self._on_new_events)
                    self._listener_started = True
        return self._listener is not None and self._listener.listening

    def _on_new_events(self) -> None:
        for group in self.changes.groups():
            self.sync(group, force=True)

    def _sync_in_background(self, group: str) -> None:
        try:
            self.sync(group)
        except Exception:  # the next request's sync tries again; this one is only a head start
            _log.warning("background cache sync failed group=%s", group, exc_info=True)
        finally:
            with self._lock:
                self._pending.discard(group)

    def close(self) -> None:
        with self._lock:
            background, self._background = self._background, None
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if background is not None:
            background.shutdown(wait=True)

    def get(self, group: str, user: str, key: str) -> bytes | None:
        return self.answers.get(group, user, key, self.changes)

    def nearby(self, group: str, user: str, key: str) -> bytes | None:
        """:meth:`get` without a network round trip (None: ask :meth:`get`)."""
        return self.answers.nearby(group, user, key, self.changes)

    def put(
        self, group: str, user: str, key: str, value: bytes, *, ttl: float, watermark: int
    ) -> None:
        self.answers.put(group, user, key, value, ttl=ttl, watermark=watermark)

    def forget(self, group: str) -> None:
        self.changes.forget(group)
        self.answers.clear()
