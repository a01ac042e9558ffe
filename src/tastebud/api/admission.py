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

PutEvents requests take the same way (:class:`EventIntake`): the body is validated when it is
complete, and the answer is written when the events are committed. Meanwhile the connection
reads nothing more; a request already read behind it (pipelining) waits in uvicorn's queue and
is served after it. Ingestion is a stream of small requests, where the ASGI call and the
middleware chain were about a quarter of the event loop's time.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Sequence
from typing import Protocol

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from tastebud.errors import InternalError, Overloaded

Headers = Sequence[tuple[bytes, bytes]]
Answer = tuple[int, Sequence[tuple[bytes, bytes]], bytes]  # status, headers, body
Response = tuple[int, bytes]  # status, and what follows the server's default headers
_log = logging.getLogger(__name__)
STATE_KEY = "tastebud.admission"  # the gate's key in the lifespan state uvicorn keeps
PROTOCOL = "tastebud.api.admission:GatedHttpProtocol"  # uvicorn's ``http`` option
EXEMPT_PATHS = frozenset({b"/health", b"/ready", b"/metrics"})  # probes and scrapes
_ANSWER_PATH = re.compile(
    rb"/v1/dataset-groups/[^/]+/campaigns/[^/]+/(?:recommendations|personalized-ranking)"
)
_EVENTS_PATH = re.compile(rb"/v1/dataset-groups/[^/]+/events")
# Answered without routing (the protocol, `EventsFastPath`), so no route in a scope names it.
EVENTS_ROUTE = "/v1/dataset-groups/{group}/events"
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

    def served(
        self, headers: Headers, route: str, method: str, seconds: float, answer: Answer
    ) -> str:
        """Count and log one answer given outside the app; returns its request id."""


class CachedAnswers(Protocol):
    """The campaign answers held in the cache (``CampaignFastPath``)."""

    def cached_answer(self, path: str, headers: Headers, body: bytes) -> tuple[bytes, str] | None:
        """The stored answer (JSON) to this request and its route template, when the cache
        holds one for a reader token and a valid body; None: the app must serve it."""


class EventIntake(Protocol):
    """PutEvents requests served without the app (``EventsFastPath``)."""

    def take(self, path: str, headers: Headers, body: bytes) -> Awaitable[Answer] | None:
        """The answer to ``POST path`` with ``body``, once its events are committed; None when
        the app must serve it."""


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
        self.events: EventIntake | None = None
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
        """Whether :meth:`answer` could answer ``method url`` (its body is then held)."""
        if (
            self.overload is None
            or method != b"POST"
            or b"%" in url  # nor escapes: the app's routing decodes them
            or not self.overload.answers_outside_app()
        ):
            return False
        if _ANSWER_PATH.fullmatch(url) is not None:  # no query string
            return self.cached is not None
        return self.events is not None and _EVENTS_PATH.fullmatch(url) is not None

    def answer(
        self, url: bytes, headers: Headers, body: bytes, started: float
    ) -> Response | asyncio.Future[Response] | None:
        """The response to ``POST url`` with ``body``: a cached answer, or PutEvents' once its
        events are committed; counted and logged as served. None when the app must answer."""
        path = url.decode("latin-1")
        if self.cached is not None and _ANSWER_PATH.fullmatch(url) is not None:
            found = self.cached.cached_answer(path, headers, body)
            if found is None:
                return None
            answer, route = found
            length = (b"content-length", b"%d" % len(answer))
            return self._served(headers, route, started, (200, (*_JSON, length), answer))
        taken = self.events.take(path, headers, body) if self.events is not None else None
        if taken is None:
            return None
        return asyncio.ensure_future(self._committed(taken, headers, started))

    async def _committed(
        self, taken: Awaitable[Answer], headers: Headers, started: float
    ) -> Response:
        return self._served(headers, EVENTS_ROUTE, started, await taken)

    def _served(self, headers: Headers, route: str, started: float, answer: Answer) -> Response:
        """``answer`` counted and logged, as its status and what follows the default headers."""
        assert self.overload is not None
        seconds = time.perf_counter() - started
        request_id = self.overload.served(headers, route, "POST", seconds, answer)
        status, head, body = answer
        lines = b"".join(b"%s: %s\r\n" % pair for pair in head)
        return status, lines + b"x-request-id: %s\r\n\r\n" % request_id.encode() + body


def _response(message: str) -> bytes:
    body = orjson.dumps({"error": {"type": Overloaded.__name__, "message": message}})
    length = b"content-length: %d\r\n" % len(body)
    return b"content-type: application/json\r\n" + length + b"retry-after: 1\r\n\r\n" + body


_RESPONSES = {reason: _response(message) for reason, message in _MESSAGES.items()}
_FAILED_MESSAGE = "internal server error (see the server log)"  # as the app's handler says
_FAILED_BODY = orjson.dumps({"error": {"type": InternalError.__name__, "message": _FAILED_MESSAGE}})
_FAILED = (
    InternalError.status_code,
    b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(_FAILED_BODY)
    + _FAILED_BODY,
)
_STATUS = STATUS_LINE[Overloaded.status_code]
_JSON = ((b"content-type", b"application/json"),)
_CLOSE = b"connection: close\r\n"
_MOST_HELD = 64 * 1024  # a larger body goes to the app as it arrives (its limit applies)


class _Owed:
    """Stands in for uvicorn's cycle while the protocol owes a response (events committing):
    a request read meanwhile then waits in uvicorn's pipeline, as behind any unfinished one."""

    response_complete = False


_OWED = _Owed()


class GatedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the :class:`AdmissionGate` asked first."""

    _refusal: bytes | None = None
    _held: list[bytes] | None = None  # the body of a request the gate may answer itself
    _held_size = 0
    _started = 0.0
    _owed: asyncio.Future[Response] | None = None  # the gate's answer, not written yet
    _closing = False  # the server stops: close once the request being read is answered

    def on_headers_complete(self) -> None:
        self._refusal = self._held = None
        if self._owed is not None:  # pipelined behind an answer the gate owes
            self.cycle = _OWED  # type: ignore[assignment]
        elif self._gate_allows():
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
        if self._closing:
            self.cycle.keep_alive = False
        if held:
            super().on_body(b"".join(held))

    def on_message_complete(self) -> None:
        if self._held is not None:
            response = self._gate_answer()
            if response is None:
                self._hand_to_app()
            else:
                self._held = None
                self._send(response)
                return
        if self._refusal is None:
            super().on_message_complete()
            return
        refusal, self._refusal = self._refusal, None
        self._respond(_STATUS, refusal, self.parser.should_keep_alive())

    def _gate_answer(self) -> Response | asyncio.Future[Response] | None:
        """The gate's answer to the held request; None (the app answers) when it has none, or
        on an error, which the app then meets and answers as it does (a 500, logged)."""
        gate: AdmissionGate = self.app_state[STATE_KEY]
        try:
            return gate.answer(self.url, self.headers, b"".join(self._held or []), self._started)
        except Exception:
            _log.warning("answer outside the app failed; the app serves it", exc_info=True)
            return None

    def _send(self, response: Response | asyncio.Future[Response]) -> None:
        """Write the response now, or when it is ready (reading nothing more until then)."""
        keep_alive = self.parser.should_keep_alive()
        if not isinstance(response, asyncio.Future):
            self._respond(STATUS_LINE[response[0]], response[1], keep_alive)
            return
        self._owed = response
        self.flow.pause_reading()
        response.add_done_callback(lambda done: self._send_owed(done, keep_alive))

    def _send_owed(self, done: asyncio.Future[Response], keep_alive: bool) -> None:
        self._owed = None
        if self.transport.is_closing():  # the client left; what was committed stays
            return
        if done.cancelled() or done.exception() is not None:
            if not done.cancelled():
                _log.error("answer outside the app failed", exc_info=done.exception())
            status, rest = _FAILED
        else:
            status, rest = done.result()
        self._respond(STATUS_LINE[status], rest, keep_alive)

    def _respond(self, status: bytes, rest: bytes, keep_alive: bool) -> None:
        """Write a whole response (``rest``: its headers after the defaults, and body)."""
        keep_alive = keep_alive and not self._closing
        default_headers = b"".join(
            b"%s: %s\r\n" % pair for pair in self.server_state.default_headers
        )
        connection = b"" if keep_alive else _CLOSE
        self.transport.write(status + default_headers + connection + rest)
        if keep_alive:
            self.on_response_complete()  # counts it, resumes reading, arms the keep-alive timer
        else:
            self.transport.close()

    def shutdown(self) -> None:
        """The server stops: close now if idle, else once the request read is answered."""
        self._closing = True
        if self._owed is None and self._held is None and self._refusal is None:
            super().shutdown()
