"""Refusing overload before a request becomes an ASGI call.

Under overload most requests are refused, so what a refusal costs decides how much of the core
is left for the admitted ones. A refusal made inside the app (:mod:`.operations`,
``CampaignFastPath``) costs ~0.1 ms of the event loop: uvicorn builds the request's scope, a
request-response cycle and a task, and the call walks the middleware chain before the first
check. At 3x a process's capacity that was about half the core, and the admitted requests
queued behind bursts of refusals (``./dev bench overload``, docs/benchmarks.md).

:class:`GatedHttpProtocol` is uvicorn's httptools protocol asking the app's
:class:`AdmissionGate` once a request's headers are parsed: when the gate refuses, no scope,
cycle or task is made; the body is skipped as it arrives and the precomputed 503 is written
when it ends (the connection stays open). The app's own checks stay as they are, for requests
this protocol does not see (another server, pipelined requests, ``Expect: 100-continue``).
``tastebud serve`` uses it; the gate reaches it through the lifespan state.
"""

from __future__ import annotations

import asyncio
import re
from typing import Protocol

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from tastebud.errors import Overloaded

STATE_KEY = "tastebud.admission"  # the gate's key in the lifespan state uvicorn keeps
PROTOCOL = "tastebud.api.admission:GatedHttpProtocol"  # uvicorn's ``http`` option
EXEMPT_PATHS = frozenset({b"/health", b"/ready", b"/metrics"})  # probes and scrapes
_ANSWER_PATH = re.compile(
    rb"/v1/dataset-groups/[^/]+/campaigns/[^/]+/(?:recommendations|personalized-ranking)"
)
_MESSAGES = {
    "lag": "server busy (requests are queueing); retry shortly",
    "inflight": "server busy (too many requests in flight); retry shortly",
    "answers": "server busy (answers waiting); retry shortly",
}


class Overload(Protocol):
    """The process-wide limits (the operations middleware)."""

    def refusal_reason(self) -> str | None:
        """``"lag"`` or ``"inflight"`` when a new request must be refused now, else None."""

    def refused(self, reason: str, method: str) -> None:
        """Count and log one refusal made outside the app."""


class AnswerQueue(Protocol):
    """The campaign answers waiting for a thread (``CampaignFastPath``)."""

    def saturated(self, arriving: int) -> bool:
        """Whether the next answer request would almost surely be refused for a full queue,
        with ``arriving`` requests let through that have not reached the queue yet."""


class AdmissionGate:
    """What the protocol asks before a request is read: the app's middlewares attach to it.

    Requests let through reach the queue only when the event loop next runs its tasks, after
    every request read in the same pass; until then they are counted here, so that one burst
    of reads does not let through more answer requests than the queue has room for.
    """

    def __init__(self) -> None:
        self.overload: Overload | None = None
        self.answers: AnswerQueue | None = None
        self._arriving = 0  # answer requests let through whose tasks have not run yet

    def refusal(self, method: bytes, url: bytes) -> bytes | None:
        """The 503's head and body to send instead of serving ``method url``, or None."""
        path = url.partition(b"?")[0]
        if path in EXEMPT_PATHS:
            return None
        reason = self.overload.refusal_reason() if self.overload is not None else None
        if reason is None and method == b"POST" and _ANSWER_PATH.fullmatch(path) is not None:
            reason = self._answer_refusal()
        if reason is None:
            return None
        if self.overload is not None:
            self.overload.refused(reason, method.decode("latin-1"))
        return _RESPONSES[reason]

    def _answer_refusal(self) -> str | None:
        """``"answers"`` while the queue is saturated; else the request is counted arriving."""
        if self.answers is None:
            return None
        if self.answers.saturated(self._arriving):
            return "answers"
        if not self._arriving:  # runs before the tasks made after it (FIFO)
            asyncio.get_running_loop().call_soon(self._arrived)
        self._arriving += 1
        return None

    def _arrived(self) -> None:
        self._arriving = 0


def _response(message: str) -> bytes:
    body = orjson.dumps({"error": {"type": Overloaded.__name__, "message": message}})
    length = b"content-length: %d\r\n" % len(body)
    return b"content-type: application/json\r\n" + length + b"retry-after: 1\r\n\r\n" + body


_RESPONSES = {reason: _response(message) for reason, message in _MESSAGES.items()}
_STATUS = STATUS_LINE[Overloaded.status_code]
_CLOSE = b"connection: close\r\n"


class GatedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the :class:`AdmissionGate` asked first."""

    _refusal: bytes | None = None

    def on_headers_complete(self) -> None:
        self._refusal = self._gate_refusal()
        if self._refusal is None:
            super().on_headers_complete()

    def _gate_refusal(self) -> bytes | None:
        gate = self.app_state.get(STATE_KEY)
        if (
            not isinstance(gate, AdmissionGate)
            or self.expect_100_continue  # the client waits for a go-ahead: let the app answer
            or self.parser.should_upgrade()
            or (self.cycle is not None and not self.cycle.response_complete)  # pipelined
        ):
            return None
        return gate.refusal(self.parser.get_method(), self.url)

    def on_body(self, body: bytes) -> None:
        if self._refusal is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refusal is None:
            super().on_message_complete()
            return
        refusal, self._refusal = self._refusal, None
        keep_alive = self.parser.should_keep_alive()
        default_headers = b"".join(
            b"%s: %s\r\n" % pair for pair in self.server_state.default_headers
        )
        connection = b"" if keep_alive else _CLOSE
        self.transport.write(_STATUS + default_headers + connection + refusal)
        if keep_alive:
            self.on_response_complete()  # counts it, resumes reading, arms the keep-alive timer
        else:
            self.transport.close()
