"""The operations middleware: request ids, overload protection, metrics and the access log.

One pure ASGI middleware, outermost in the app, so that every request — the events fast path,
413s, rejections — is counted, timed and logged once, and the per-request cost is one extra
coroutine frame and a handful of dictionary operations (the ingestion path answers thousands of
requests a second on one core).

Overload: while the event loop's lag has stayed above ``shed_lag`` (:mod:`.shedding`: requests
wait unseen in the socket's queue), new requests are answered 503 before anything else is done
for them, from precomputed bytes; beyond ``max_inflight`` requests in this process a request is
answered 503 at once, with ``Retry-After``, instead of queueing behind the others until
everything times out; with a per-token rate a client over its budget hears 429. ``/health``,
``/ready`` and ``/metrics`` are exempt: probes and scrapes must keep working when the server
is busiest. Below the limit, ``observability.inflight_share()`` tells how close to it the
process is (read only when asked, no cost per request), so a campaign with precomputed answers
can serve them instead of queueing model work.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import secrets
import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tastebud import observability as obs
from tastebud.api.admission import EVENTS_ROUTE, AdmissionGate, Answer, Headers
from tastebud.api.admission import EXEMPT_PATHS as EXEMPT_RAW_PATHS
from tastebud.api.auth import bearer_token
from tastebud.api.rate_limits import RateLimiter, SharedTokenBuckets, TokenBuckets
from tastebud.api.request_metrics import new_stats
from tastebud.api.shedding import LagShedder
from tastebud.errors import Overloaded, TooManyRequests

_log = logging.getLogger(__name__)
_access_log = logging.getLogger("tastebud.access")
EXEMPT_PATHS = frozenset(path.decode() for path in EXEMPT_RAW_PATHS)
_EVENTS_PATH = re.compile(r"/v1/dataset-groups/[^/]+/events")
# nginx's "client closed request": no answer was sent (the client left, or shutdown cancelled it).
NO_ANSWER = 499
UNMATCHED = "(unmatched)"  # 404s and answers given before routing: one label, not one per path
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A caller's request id is kept when short and printable (no spaces: it goes into log lines).
_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}")
# Lag with fewer requests in flight is not theirs (a training thread, a full collection):
# refusing requests would not shorten it, only turn a slow moment into an outage.
SHED_MIN_INFLIGHT = 8
# The answer to a request shed for lag, made once: refusing must cost far less than serving.
_SHED_MESSAGE = "server busy (requests are queueing); retry shortly"
_SHED_BODY = orjson.dumps({"error": {"type": Overloaded.__name__, "message": _SHED_MESSAGE}})
_SHED_START = {"type": "http.response.start", "status": Overloaded.status_code, "headers": [
    (b"content-type", b"application/json"), (b"content-length", str(len(_SHED_BODY)).encode()),
    (b"retry-after", b"1")]}  # fmt: skip
_SHED_BODY_MESSAGE = {"type": "http.response.body", "body": _SHED_BODY}
SHED_LOG_SECONDS = 1.0  # shed requests are summed up in one log line this often at most


class OperationsMiddleware:
    """Request id, in-flight limit, per-token rate limit, metrics and access log.

    Args:
        app: the wrapped ASGI app.
        max_inflight: requests served at once at most (exempt paths aside); None: no limit.
        shed_lag: refuse new requests while the event loop's lag stays above this many
            seconds (:class:`~tastebud.api.shedding.LagShedder`); None: never.
        rate_limit: requests per second per bearer token; None: no limit.
        rate_burst: the bucket's size (default: one second's worth).
        redis_url: share each token's bucket between processes through this Redis (falling
            back to this process's buckets while it is down); None: per process.
        access_log: write one ``tastebud.access`` log line per request.
        gate: where the server's protocol asks these limits before a request is read
            (:mod:`.admission`); the same checks here cover the requests it lets through.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_inflight: int | None = None,
        shed_lag: float | None = None,
        rate_limit: float | None = None,
        rate_burst: float | None = None,
        redis_url: str | None = None,
        access_log: bool = True,
        gate: AdmissionGate | None = None,
    ) -> None:
        self.app = app
        self.max_inflight = max_inflight if max_inflight is not None else math.inf
        self.shedder = LagShedder(shed_lag) if shed_lag is not None else None
        self.buckets: RateLimiter | None = None
        if rate_limit:
            local = TokenBuckets(rate_limit, rate_burst)
            self.buckets = SharedTokenBuckets(redis_url, local) if redis_url else local
        self.access_log = access_log
        self.stats = new_stats()
        if max_inflight is not None:
            obs.track_inflight(self)
        # Unique enough across processes and restarts, and far cheaper than a uuid4 per request.
        self._id_prefix = secrets.token_hex(4) + "-"
        self._ids = itertools.count(1)
        self._shed_since_log, self._shed_logged_at = 0, -math.inf
        if gate is not None:
            gate.overload = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        if self.shedder is not None:
            self.shedder.start()  # in the server's loop (no-op once started there)
            if self._lagging() and scope["path"] not in EXEMPT_PATHS:
                await self._shed(scope, send, start)
                return
        request_id, authorization = _read_headers(scope["headers"])
        if request_id is None:
            request_id = f"{self._id_prefix}{next(self._ids):x}"
        obs.REQUEST_ID.set(request_id)  # the request's own task: no reset needed
        request_id_header = (b"x-request-id", request_id.encode())
        path: str = scope["path"]
        events = scope["method"] == "POST" and _EVENTS_PATH.fullmatch(path) is not None
        status = 0

        async def send_tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), request_id_header]
            elif events and status == 200 and not message.get("more_body", False):
                _count_events(status, message.get("body", b""))
            await send(message)

        # One flat coroutine (no helper awaited per request): every resumption of the app's
        # await chain passes through each frame of it.
        counted = False  # in self.stats.inflight
        try:
            if path not in EXEMPT_PATHS:
                refusal = self._overloaded()
                if refusal is None and self.buckets is not None:
                    refusal = await self._rate_limited(authorization)
                if refusal is not None:
                    await _send_error(send_tracked, *refusal)
                    return
                self.stats.started()
                counted = True
            await self.app(scope, receive, send_tracked)
        except Exception as exc:
            status = status or 500  # ServerErrorMiddleware, further out, answers it
            obs.HTTP_EXCEPTIONS.labels(_route(scope, events), type(exc).__name__).inc()
            raise
        finally:
            if counted:
                self.stats.finished()
            self._record(scope, events, status, time.perf_counter() - start, request_id)

    async def _shed(self, scope: Scope, send: Send, start: float) -> None:
        """Refuse with the precomputed 503: no request id, routing or access log line of its
        own (a flood of refusals would write thousands a second just when the CPU is short),
        one summary line a second instead; counted in the metrics as ``reason="lag"``."""
        await send(_SHED_START)
        await send(_SHED_BODY_MESSAGE)
        self.refused("lag", scope["method"], time.perf_counter() - start)

    def _lagging(self) -> bool:
        return (
            self.shedder is not None
            and self.shedder.shedding
            and self.stats.inflight >= SHED_MIN_INFLIGHT
        )

    def refusal_reason(self) -> str | None:
        """Why a new request must be refused before it is read (``"lag"``, ``"inflight"``)."""
        if self.shedder is not None:
            self.shedder.start()  # in the server's loop (no-op once started there)
        if self._lagging():
            return "lag"
        return "inflight" if self.stats.inflight >= self.max_inflight else None

    def refused(self, reason: str, method: str, seconds: float = 0.0) -> None:
        """Count a refusal made without a request id or access log line (shed for lag, or by
        the server's protocol), and sum such refusals in one warning a second at most."""
        obs.overload_rejected(reason)
        method = method if method in _METHODS else "OTHER"
        self.stats.record(UNMATCHED, method, Overloaded.status_code, seconds)
        self._shed_since_log += 1
        now = time.perf_counter()
        if now - self._shed_logged_at >= SHED_LOG_SECONDS:
            self._log_shedding(now)

    def _log_shedding(self, now: float) -> None:
        seconds = min(now - self._shed_logged_at, 3600.0)
        lag_ms = self.shedder.lag * 1000 if self.shedder is not None else 0.0
        _log.warning(
            "overloaded: %d requests refused (503) in the last %.1f s; event-loop lag %.0f ms",
            self._shed_since_log, seconds, lag_ms,
            extra={"shed": self._shed_since_log, "lag_ms": round(lag_ms, 1)},
        )  # fmt: skip
        self._shed_since_log, self._shed_logged_at = 0, now

    def answers_outside_app(self) -> bool:
        """Requests may be answered by the server's protocol unless each token's rate counts."""
        return self.buckets is None

    def served(
        self, headers: Headers, route: str, method: str, seconds: float, answer: Answer
    ) -> str:
        """Count and log an answer the server's protocol gave (a cached campaign answer,
        PutEvents') as any other request's; returns its request id (the client's, if it sent a
        valid one)."""
        request_id = _read_headers(headers)[0] or f"{self._id_prefix}{next(self._ids):x}"
        status, _, body = answer
        self.stats.record(route, method, status, seconds)
        if route == EVENTS_ROUTE:
            _count_events(status, body)
        if self.access_log and _access_log.isEnabledFor(logging.INFO):
            _log_access(method, route, status, round(seconds * 1000, 3), request_id)
        return request_id

    def inflight_share(self) -> float:
        """Requests in flight (exempt paths aside) over the limit."""
        return self.stats.inflight / self.max_inflight

    def _overloaded(self) -> tuple[int, str, str, float] | None:
        """(503, type, message, retry after) with too many requests in flight; else None."""
        if self.stats.inflight < self.max_inflight:
            return None
        obs.overload_rejected("inflight")
        message = f"server busy ({self.stats.inflight} requests in flight); retry shortly"
        return Overloaded.status_code, Overloaded.__name__, message, 1.0

    async def _rate_limited(self, authorization: str | None) -> tuple[int, str, str, float] | None:
        """(429, type, message, retry after) when the request's token is over its rate."""
        token = bearer_token(authorization)
        if token is None or self.buckets is None:
            return None
        wait = await self.buckets.wait(token)
        if wait <= 0:
            return None
        obs.overload_rejected("rate_limit")
        message = f"rate limit of {self.buckets.rate:g} requests/s for this token exceeded"
        return TooManyRequests.status_code, TooManyRequests.__name__, message, wait

    def _record(
        self, scope: Scope, events: bool, status: int, seconds: float, request_id: str
    ) -> None:
        route = _route(scope, events)
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        status = status or NO_ANSWER
        self.stats.record(route, method, status, seconds)
        if events and status >= 400:
            _count_events(status, b"")
        if self.access_log and _access_log.isEnabledFor(logging.INFO):
            _log_access(method, route, status, round(seconds * 1000, 3), request_id)


def _log_access(method: str, route: str, status: int, duration_ms: float, request_id: str) -> None:
    """One ``tastebud.access`` line. The record is handed to the logger directly: ``info()``
    would first walk the stack to find its caller, a third of the cost, for a known answer."""
    fields = {"method": method, "route": route, "status": status,
              "duration_ms": duration_ms, "request_id": request_id}  # fmt: skip
    record = _access_log.makeRecord(
        _access_log.name, logging.INFO, __file__, 0, "%s %s %d %.1fms",
        (method, route, status, duration_ms), None, extra=fields,
    )  # fmt: skip
    _access_log.handle(record)


def _read_headers(headers: Headers) -> tuple[str | None, str | None]:
    """The incoming ``X-Request-Id`` (when it fits :data:`_REQUEST_ID`: it goes into logs) and
    ``Authorization`` headers."""
    request_id = authorization = None
    for name, value in headers:
        if name == b"x-request-id":
            if _REQUEST_ID.fullmatch(value):
                request_id = value.decode("ascii")
        elif name == b"authorization":
            authorization = value.decode("latin-1")
    return request_id, authorization


def _route(scope: Scope, events: bool) -> str:
    """The matched route's template (bounded label values), not the path with its ids."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return EVENTS_ROUTE if events else UNMATCHED


def _count_events(status: int, body: bytes) -> None:
    """Count the events an accepted PutEvents answer reports, from its JSON body, or the
    rejected request.

    Every way in (the protocol, the fast path and the FastAPI route) answers ``{"accepted",
    "duplicates"}`` in one body; reading it here counts every API ingestion in one place, for
    ~1 µs a request."""
    if status >= 400:
        obs.event_request_rejected(status)
    if status != 200 or not body:
        return
    try:
        counts = orjson.loads(body)
        obs.events_ingested(int(counts["accepted"]), duplicates=int(counts["duplicates"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return


async def _send_error(
    send: Send, status: int, type_: str, message: str, retry_after: float
) -> None:
    body = orjson.dumps({"error": {"type": type_, "message": message}})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(max(1, math.ceil(retry_after))).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
