"""Events stored per second "now", per dataset group, told by the store.

The store numbers every interaction on arrival (one sequence for all groups), so the group's
arrivals between two readings of the newest number are one range count on the primary key:
cheap however large the group, and the same answer from every worker of the server. Every
stored interaction counts, whether it came through the event tracker, the stream consumer or
an import.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from tastebud.store import Store

RATE_WINDOW_SECONDS = 10.0  # "now": the rate over at most this long


class EventRate:
    """Per group, the interactions stored since the oldest reading kept within the last
    :data:`RATE_WINDOW_SECONDS` (each page or poll adds one reading), per second."""

    def __init__(self) -> None:
        self._readings: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def per_second(self, store: Store, group: str, *, now: float | None = None) -> float | None:
        """None on the group's first reading (nothing to compare with yet)."""
        now = time.monotonic() if now is None else now
        newest = store.newest_seq()
        with self._lock:
            readings = self._readings.setdefault(group, deque())
            while readings and now - readings[0][0] > RATE_WINDOW_SECONDS:
                readings.popleft()
            oldest = readings[0] if readings else None
            readings.append((now, newest))
        if oldest is None or now <= oldest[0]:
            return None
        return store.count_arrived(group, oldest[1], newest) / (now - oldest[0])
