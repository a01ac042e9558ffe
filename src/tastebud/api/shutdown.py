"""Draining on SIGTERM/SIGINT: ``/ready`` turns 503 before the server stops accepting.

uvicorn's graceful shutdown (stop listening, let in-flight requests finish within
``timeout_graceful_shutdown``, then run the app's shutdown, which flushes the event tracker) is
what stops the server. This adds the step load balancers need in front of it: on the first signal
the app is marked draining (``/ready`` answers 503), and uvicorn hears of the signal only
``delay`` seconds later, time for the balancer to take this instance out of rotation while it
still serves. A second signal skips the wait.

It wraps the handler uvicorn's server installed, from inside the app's lifespan, so it works
however that server was started (``tastebud serve``, ``--workers N``, plain ``uvicorn``, gunicorn
with uvicorn workers).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.datastructures import State

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_Handler = Callable[[int, FrameType | None], object]


class DrainOnSignal:
    """Installs the wrapping handlers; :meth:`restore` puts the server's back.

    Args:
        state: the app's state; ``state.draining`` becomes True on the first signal.
        delay: seconds between that signal and passing it on to the server.
    """

    def __init__(self, state: State, delay: float) -> None:
        self.state = state
        self.delay = delay
        self._previous: dict[int, _Handler] = {}
        self._timer: threading.Timer | None = None
        state.draining = False
        # Signal handlers belong to the main thread; a server in another thread handles none.
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNALS:
            previous = signal.getsignal(sig)
            # Only uvicorn's handler is known to be safe to call later from another thread (it
            # sets flags); under any other (Python's KeyboardInterrupt) the app does not drain.
            if isinstance(getattr(previous, "__self__", None), uvicorn.Server):
                assert callable(previous)
                self._previous[sig] = previous
                signal.signal(sig, self._handle)

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        first = not self.state.draining
        self.state.draining = True
        if first and self.delay > 0:
            # uvicorn's handler only sets flags, so calling it from a timer thread is safe.
            self._timer = threading.Timer(self.delay, self._pass_on, (sig,))
            self._timer.daemon = True
            self._timer.start()
            return
        if self._timer is not None:
            self._timer.cancel()
        self._pass_on(sig)

    def _pass_on(self, sig: int) -> None:
        self._previous[sig](sig, None)

    def restore(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._handle:
                signal.signal(sig, previous)
        self._previous.clear()
