"""Notifications of new interactions from PostgreSQL, so that serving processes read the
store's tail when something arrived instead of polling it every few milliseconds (two workers
polled it 400 times a second: 0.1 of a core of the database and of the workers on two cores,
and it grows with every worker).

Each committed transaction that added interactions notifies :data:`TAIL_CHANNEL` (a trigger,
schema version 9). A listener holds one connection of its own, waits for notifications on a
thread and calls ``on_new`` after each burst of them. While it has no connection (an outage,
a restart of the server) it is not :attr:`~TailListener.listening`, and readers poll as
without it; on reconnecting it calls ``on_new`` once, which catches up with whatever it missed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from tastebud.store.migrations import TAIL_CHANNEL

_log = logging.getLogger(__name__)
_WAIT_SECONDS = 0.5  # how long one wait for notifications lasts: the stop request's delay
_RETRY_SECONDS = 1.0  # between attempts to reconnect


class TailListener:
    """LISTEN on :data:`TAIL_CHANNEL` from a thread; ``on_new()`` runs on that thread."""

    def __init__(self, url: str, on_new: Callable[[], None], *, connect_timeout: int) -> None:
        self._url, self._on_new, self._connect_timeout = url, on_new, connect_timeout
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tastebud-listen", daemon=True)
        self._thread.start()

    @property
    def listening(self) -> bool:
        """True while notifications arrive: no event can be missed without ``on_new`` after."""
        return self._listening.is_set()

    def wait_listening(self, timeout: float) -> bool:
        return self._listening.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * _WAIT_SECONDS + self._connect_timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except psycopg.Error as error:
                _log.warning("listening for new events failed (%s); polling meanwhile", error)
            except Exception:  # the listener must outlive a failing `on_new`
                _log.exception("reading new events after a notification failed")
            self._listening.clear()
            self._stop.wait(_RETRY_SECONDS)

    def _listen(self) -> None:
        with psycopg.connect(
            self._url, autocommit=True, connect_timeout=self._connect_timeout
        ) as conn:
            conn.execute(f"LISTEN {TAIL_CHANNEL}")
            self._listening.set()
            self._on_new()  # what was committed before LISTEN took effect
            while not self._stop.is_set():
                # All notifications waiting now, then one read: a burst costs one.
                if any(True for _ in conn.notifies(timeout=_WAIT_SECONDS)):
                    self._on_new()
