"""Circuit breakers: whether an outside service (Redis, PostgreSQL) is worth calling right now.

While a service is down, every call to it costs a timeout or a refused connection, and a server
that keeps calling it answers slowly or not at all. A :class:`Breaker` remembers the failure:
for ``retry_seconds`` callers are told not to try (they take their degraded path at once: no
cache, a 503 with ``Retry-After``), then one caller tries again; its success closes the breaker
(the service is back, nothing to restart), its failure opens it for another period.

Every breaker of the process is listed by :func:`breakers` (``/ready`` reports the open ones),
and counted in Prometheus: ``tastebud_dependency_errors_total`` (calls that failed),
``tastebud_dependency_skipped_total`` (calls not made while it was down) and the
``tastebud_dependency_down`` gauge.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable

from tastebud import observability

_log = logging.getLogger(__name__)
RETRY_SECONDS = 1.0
_BREAKERS: weakref.WeakSet[Breaker] = weakref.WeakSet()


class Breaker:
    """One outside service's state as this process sees it; thread-safe.

    Args:
        dependency: its name in metrics, logs and ``/ready`` (``redis``, ``store``).
        retry_seconds: how long after a failure calls are skipped before one tries again.
    """

    def __init__(
        self,
        dependency: str,
        *,
        retry_seconds: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dependency = dependency
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._retry_at: float | None = None  # None: closed (the service answers)
        self.reason = ""  # the last failure, while open
        _BREAKERS.add(self)

    @property
    def down(self) -> bool:
        return self._retry_at is not None

    def available(self) -> bool:
        """Whether to call the service now: always while it answers; while it is down, once per
        ``retry_seconds`` (that caller's outcome decides: :meth:`succeeded` or :meth:`failed`)."""
        if self._retry_at is None:
            return True
        with self._lock:
            now = self._clock()
            if self._retry_at is not None and now >= self._retry_at:
                self._retry_at = now + self.retry_seconds  # the others wait for this try
                return True
        observability.dependency_skipped(self.dependency)
        return False

    def failed(self, error: BaseException) -> None:
        """A call failed because the service could not be reached (not a bad request)."""
        observability.dependency_error(self.dependency)
        with self._lock:
            opened = self._retry_at is None
            self._retry_at = self._clock() + self.retry_seconds
            self.reason = f"{type(error).__name__}: {error}".strip()
        if opened:
            observability.dependency_down(self.dependency, True)
            _log.warning("dependency down dependency=%s error=%s; retrying every %gs",
                         self.dependency, self.reason, self.retry_seconds)  # fmt: skip

    def succeeded(self) -> bool:
        """A call went through; True when it ends an outage (callers may resync then)."""
        if self._retry_at is None:
            return False
        with self._lock:
            recovered, self._retry_at, self.reason = self._retry_at is not None, None, ""
        if recovered:
            observability.dependency_down(self.dependency, False)
            _log.warning("dependency back dependency=%s", self.dependency)
        return recovered


def breakers() -> list[Breaker]:
    """This process's breakers (those still referenced)."""
    return list(_BREAKERS)
