"""Load shedding by queueing delay: the event loop's lag, sampled every few milliseconds.

A request that arrives while the process is saturated waits before any code of ours sees it: in
the socket's buffer until the event loop gets round to reading it, and for the interpreter
while answer threads hold it. No in-flight count sees that wait; the loop's lag does. A timer
due every ``period`` seconds fires late by about as long as a request that arrived with it
waited, so its lateness is the queueing delay, measured for ~100 callbacks a second whatever
the load.

The rule is CoDel's (Nichols and Jacobson, "Controlling Queue Delay", 2012): a short burst of
lag is left alone, but once the lag has stayed above ``target`` for a whole ``interval`` (a
standing queue), new requests are refused until one sample is back under ``target``. A timer
that fires late by L seconds means the loop was behind for all of those L seconds, so one long
stall (a blocking call, a full collection) counts as lag for its whole length.
"""

from __future__ import annotations

import asyncio


class LagShedder:
    """Whether to refuse new requests now: :attr:`shedding`, read once per request.

    Args:
        target: lag (seconds) the loop may have before requests are shed.
        interval: how long the lag must stay above ``target`` first.
        period: seconds between samples.
    """

    def __init__(self, target: float, interval: float = 0.1, period: float = 0.005) -> None:
        self.target, self.interval, self.period = target, interval, period
        self.shedding = False
        self.lag = 0.0  # the latest sample
        self._above_since: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Sample the running loop's lag until :meth:`stop` (idempotent per loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._timer is not None:
            return
        self._loop, self.shedding, self._above_since = loop, False, None
        self._schedule(loop.time())

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._loop = None, None

    def observe(self, now: float, due: float) -> None:
        """Take one sample: the timer due at ``due`` ran at ``now`` (loop clock, seconds)."""
        self.lag = max(0.0, now - due)
        if self.lag <= self.target:
            self._above_since = None
            self.shedding = False
            return
        if self._above_since is None:
            self._above_since = due + self.target  # behind since then, not only since now
        self.shedding = now - self._above_since >= self.interval

    def _schedule(self, due: float) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_at(due, self._tick, due)

    def _tick(self, due: float) -> None:
        assert self._loop is not None
        now = self._loop.time()
        self.observe(now, due)
        self._schedule(now + self.period)
