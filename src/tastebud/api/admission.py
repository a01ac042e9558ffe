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

The same protocol answers a campaign request whose answer is cached without making it an ASGI
call either: the body is held until it is complete, and the gate asks the campaign fast path
(:class:`CachedAnswers`) for the stored answer; the operations middleware counts and logs it as
any other request. Anything else (a miss, an unknown token, a body that does not validate) is
then handed to uvicorn as if it had just been read, and the app answers as always. Cache hits
are most of a busy campaign's requests, and the ASGI call cost them more than the answer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from typing import Protocol

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from tastebud.errors import Overloaded

Headers = Sequence[tuple[bytes, bytes]]
_log = logging.getLogger(__name__)
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

    def answers_outside_app(self) -> bool:
        """Whether a request may be answered outside the app (no per-token rate limit)."""

    def served(self, headers: Headers, route: str, method: str, seconds: float) -> str:
        """Count and log one 200 answer given outside the app; returns its request id."""


class CachedAnswers(Protocol):
    """The campaign answers held in the cache (``CampaignFastPath``)."""

    def cached_answer(self, path: str, headers: Headers, body: bytes) -> tuple[bytes, str] | None:
        """The stored answer (JSON) to this request and its route template, when the cache
        holds one for a reader token and a valid body; None: the app must serve it."""


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
        self.cached: CachedAnswers | None = None
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

    def may_answer(self, method: bytes, url: bytes) -> bool:
        """Whether a cached answer could be given for ``method url`` (see :meth:`answer`)."""
        return (
            self.cached is not None
            and self.overload is not None
            and self.overload.answers_outside_app()
            and method == b"POST"
            and _ANSWER_PATH.fullmatch(url) is not None  # no query string
            and b"%" not in url  # nor escapes: the app's routing decodes them
        )

    def answer(self, url: bytes, headers: Headers, body: bytes, started: float) -> bytes | None:
        """The response after its status line: the cached answer to ``POST url`` with
        ``body``, counted and logged as served; None when the app must answer."""
        if self.cached is None or self.overload is None:
            return None
        found = self.cached.cached_answer(url.decode("latin-1"), headers, body)
        if found is None:
            return None
        answer, route = found
        request_id = self.overload.served(headers, route, "POST", time.perf_counter() - started)
        return _ANSWER_HEAD % (len(answer), request_id.encode()) + answer


def _response(message: str) -> bytes:
    body = orjson.dumps({"error": {"type": Overloaded.__name__, "message": message}})
    length = b"content-length: %d\r\n" % len(body)
    return b"content-type: application/json\r\n" + length + b"retry-after: 1\r\n\r\n" + body


_RESPONSES = {reason: _response(message) for reason, message in _MESSAGES.items()}
_STATUS = STATUS_LINE[Overloaded.status_code]
_OK = STATUS_LINE[200]
_ANSWER_HEAD = b"content-type: application/json\r\ncontent-length: %d\r\nx-request-id: %s\r\n\r\n"
_CLOSE = b"connection: close\r\n"
_MOST_HELD = 64 * 1024  # a larger body goes to the app as it arrives (its limit applies)


class GatedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the :class:`AdmissionGate` asked first."""

    _refusal: bytes | None = None
    _held: list[bytes] | None = None  # the body of a request the gate may answer from cache
    _held_size = 0
    _started = 0.0

    def on_headers_complete(self) -> None:
        self._refusal = self._held = None
        if self._gate_allows():
            gate: AdmissionGate = self.app_state[STATE_KEY]
            self._refusal = gate.refusal(self.parser.get_method(), self.url)
            if self._refusal is not None:
                return
            if gate.may_answer(self.parser.get_method(), self.url):
                self._held, self._held_size, self._started = [], 0, time.perf_counter()
                return
        super().on_headers_complete()

    def _gate_allows(self) -> bool:
        """Whether the gate may see this request: not one the app must handle itself."""
        return (
            isinstance(self.app_state.get(STATE_KEY), AdmissionGate)
            and not self.expect_100_continue  # the client waits for a go-ahead: the app answers
            and not self.parser.should_upgrade()
            and (self.cycle is None or self.cycle.response_complete)  # not pipelined
        )

    def on_body(self, body: bytes) -> None:
        if self._refusal is not None:
            return
        if self._held is None:
            super().on_body(body)
            return
        self._held.append(body)
        self._held_size += len(body)
        if self._held_size > _MOST_HELD:
            self._hand_to_app()

    def _hand_to_app(self) -> None:
        """Give uvicorn the held request as if its headers and body had just been read."""
        held, self._held = self._held or [], None
        super().on_headers_complete()
        if held:
            super().on_body(b"".join(held))

    def on_message_complete(self) -> None:
        if self._held is not None:
            response = self._cached_answer()
            if response is None:
                self._hand_to_app()
            else:
                self._held = None
                self._respond(_OK, response)
                return
        if self._refusal is None:
            super().on_message_complete()
            return
        refusal, self._refusal = self._refusal, None
        self._respond(_STATUS, refusal)

    def _cached_answer(self) -> bytes | None:
        """The gate's cached answer to the held request; None (the app answers) on a miss, or
        on an error, which the app then meets and answers as it does (a 500, logged)."""
        gate: AdmissionGate = self.app_state[STATE_KEY]
        try:
            return gate.answer(self.url, self.headers, b"".join(self._held or []), self._started)
        except Exception:
            _log.warning("cached answer lookup failed; the app serves it", exc_info=True)
            return None

    def _respond(self, status: bytes, rest: bytes) -> None:
        """Write a whole response (``rest``: its headers after the defaults, and body)."""
        keep_alive = self.parser.should_keep_alive()
        default_headers = b"".join(
            b"%s: %s\r\n" % pair for pair in self.server_state.default_headers
        )
        connection = b"" if keep_alive else _CLOSE
        self.transport.write(status + default_headers + connection + rest)
        if keep_alive:
            self.on_response_complete()  # counts it, resumes reading, arms the keep-alive timer
        else:
            self.transport.close()
