"""Process-wide observability: Prometheus metrics any module may bump, and JSON log lines.

Counting is a module-level call, so code far from the API (a result cache, a stream consumer)
needs no handle on the app::

    from tastebud import observability as metrics
    metrics.cache_hit("results")
    metrics.events_ingested(n, source="stream")

The metrics live in prometheus_client's default registry. When ``PROMETHEUS_MULTIPROC_DIR`` is set
in the environment before this module is first imported (``tastebud serve --workers N`` sets it),
each process writes its values to files there and :func:`render` adds up every process's files,
so ``/metrics`` on any worker reports the whole server.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import queue
import sys
import threading
import weakref
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol, TextIO

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# `*_created` series double the output and no dashboard reads them (process start time suffices).
disable_created_metrics()  # type: ignore[no-untyped-call]
# Requests take from well under a millisecond (an event batch) to seconds (an export page).
# The API's request count, latency and in-flight metrics: tastebud.api.request_metrics.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

HTTP_EXCEPTIONS = Counter(
    "tastebud_http_exceptions",
    "Requests that raised an unexpected exception (answered 500), by route and exception type.",
    ["route", "exception"],
)
OVERLOAD_REJECTIONS = Counter(
    "tastebud_overload_rejections",
    "Requests refused at once: reason 'lag' (503, the event loop's lag stayed above "
    "api.shed_lag_ms), 'inflight' (503, too many in flight), 'answers' (503, too many "
    "campaign answers waiting for a thread) or 'rate_limit' (429, the token's requests/s "
    "exceeded).",
    ["reason"],
)
EVENTS_INGESTED = Counter(
    "tastebud_events_ingested",
    "Events stored (committed), by the way they came in.",
    ["source"],
)
EVENTS_DUPLICATE = Counter(
    "tastebud_events_duplicate",
    "Events not stored again because their eventId was already known.",
    ["source"],
)
EVENT_REQUESTS_REJECTED = Counter(
    "tastebud_event_requests_rejected",
    "PutEvents requests refused (nothing stored), by status: 400/422 invalid, 413 too large, "
    "401/403 token, 404 unknown group, 429/503 overload.",
    ["status"],
)
LOG_LINES_DROPPED = Counter(
    "tastebud_log_lines_dropped",
    "Log lines dropped because stderr could not keep up (see BackgroundStreamHandler).",
)
SCHEDULE_RUNS = Counter(
    "tastebud_schedule_runs",
    "Scheduled training runs, by group, schedule and outcome: succeeded, gated (trained, held "
    "back by the quality gate), failed, timed_out (past max_train_seconds), cancelled "
    "(shutdown), lost (lease lost).",
    ["group", "schedule", "outcome"],
)
CACHE_HITS = Counter("tastebud_cache_hits", "Cache lookups that found an entry.", ["cache"])
CACHE_MISSES = Counter("tastebud_cache_misses", "Cache lookups that found none.", ["cache"])
CAMPAIGN_FALLBACKS = Counter(
    "tastebud_campaign_fallbacks",
    "Campaign answers the deployed model did not give: reason 'load_error' (no version "
    "loadable), 'score_error' (the model raised) or 'overload' (past the campaign's "
    "precomputed overload share); source: what answered instead (precomputed or rules).",
    ["campaign", "reason", "source"],
)
DEPENDENCY_ERRORS = Counter(
    "tastebud_dependency_errors",
    "Calls to an outside service that failed because it could not be reached, by dependency "
    "(redis, store, nats).",
    ["dependency"],
)
DEPENDENCY_SKIPPED = Counter(
    "tastebud_dependency_skipped",
    "Calls not made because the service was down (its breaker open): the degraded path answered.",
    ["dependency"],
)
# "max": with several workers, down when any of them finds it down.
DEPENDENCY_DOWN = Gauge(
    "tastebud_dependency_down",
    "1 while this process finds the service unreachable (retrying it every second), else 0.",
    ["dependency"],
    multiprocess_mode="livemax",
)
DEGRADED_ANSWERS = Counter(
    "tastebud_degraded_answers",
    "Answers given without what a dependency should have given (dependency 'store': the "
    "user's history, read as empty while the database is down).",
    ["dependency"],
)

FEATURE_FRESHNESS = Histogram(
    "tastebud_feature_freshness_seconds",
    "From an event batch committed by this process to its features being readable online.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


# The module-level API. Label children are looked up once: `labels()` takes a lock each time.
@cache
def _child(counter: Counter, *labels: str) -> Counter:
    return counter.labels(*labels)


def cache_hit(cache_name: str, n: int = 1) -> None:
    """Count ``n`` hits of the cache called ``cache_name`` (e.g. ``"results"``)."""
    _child(CACHE_HITS, cache_name).inc(n)


def cache_miss(cache_name: str, n: int = 1) -> None:
    _child(CACHE_MISSES, cache_name).inc(n)


def events_ingested(n: int, *, source: str = "http", duplicates: int = 0) -> None:
    """Count ``n`` stored events (and ``duplicates`` skipped ones) that came through ``source``."""
    if n:
        _child(EVENTS_INGESTED, source).inc(n)
    if duplicates:
        _child(EVENTS_DUPLICATE, source).inc(duplicates)


def feature_freshness(seconds: float) -> None:
    FEATURE_FRESHNESS.observe(seconds)


def event_request_rejected(status: int) -> None:
    _child(EVENT_REQUESTS_REJECTED, str(status)).inc()


def overload_rejected(reason: str) -> None:
    _child(OVERLOAD_REJECTIONS, reason).inc()


def schedule_run(group: str, schedule: str, outcome: str) -> None:
    """Count one run of a retraining schedule (rare: no cached child needed)."""
    SCHEDULE_RUNS.labels(group, schedule, outcome).inc()


def campaign_fallback(campaign: str, reason: str, source: str) -> None:
    """Count one campaign answer given by ``source`` because the model could not (``reason``)."""
    _child(CAMPAIGN_FALLBACKS, campaign, reason, source).inc()


def dependency_error(dependency: str) -> None:
    _child(DEPENDENCY_ERRORS, dependency).inc()


def dependency_skipped(dependency: str) -> None:
    _child(DEPENDENCY_SKIPPED, dependency).inc()


def degraded_answer(dependency: str) -> None:
    _child(DEGRADED_ANSWERS, dependency).inc()


def dependency_down(dependency: str, down: bool) -> None:
    DEPENDENCY_DOWN.labels(dependency).set(1 if down else 0)


class InflightSource(Protocol):
    def inflight_share(self) -> float: ...


# The in-flight limits of this process's API apps (their operations middleware and campaign
# answer queues), read without any per-request cost: only code that sheds work under load asks
# (see `inflight_share`).
_INFLIGHT_SOURCES: weakref.WeakSet[Any] = weakref.WeakSet()


def track_inflight(source: InflightSource) -> None:
    """Let :func:`inflight_share` read ``source`` (kept until it is garbage)."""
    _INFLIGHT_SOURCES.add(source)


def inflight_share() -> float:
    """How busy this process's API is now: requests in flight over its in-flight limit, or
    campaign answers computing or waiting over the most allowed (the busiest, if several);
    0.0 without a limit or outside a server."""
    return max((source.inflight_share() for source in list(_INFLIGHT_SOURCES)), default=0.0)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def render() -> tuple[bytes, str]:
    """The Prometheus text exposition of every metric, and its content type.

    In multi-process mode the default registry only knows this process; a fresh registry with a
    ``MultiProcessCollector`` reads every worker's files (dead workers' counters included, as
    Prometheus expects of counters)."""
    registry = REGISTRY
    if multiprocess_dir() is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def process_stopped() -> None:
    """Drop this process's live gauges from the multi-process files (a worker stopping)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


# logs -----------------------------------------------------------------------------------------
# The request being served, for every log line written while serving it (set per request by the
# API's middleware; each request runs in a task of its own, hence a context variable).
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tastebud_request_id", default=None
)
# Attributes every LogRecord has; any other attribute came from `extra=` and joins the line.
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
}


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served when it was made (a handler's
    filter runs at logging time; formatting may come later, in another context)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = REQUEST_ID.get()
            if request_id is not None:
                record.request_id = request_id
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, pid, request id, extra fields.

    ``logger.info("...", extra={"status": 200})`` puts ``"status": 200`` into the line, so log
    pipelines filter on fields instead of parsing text.
    """

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,  # which worker, under --workers N
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS:  # came with `extra=`
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(line, default=str).decode()
        except TypeError:  # a lone surrogate (from a request's JSON escapes) is not UTF-8
            return json.dumps(line, default=str)  # escapes it: the line is still written

    def _time(self, created: float) -> str:
        """ISO 8601 UTC with milliseconds; the part up to the second is formatted once a second
        (datetime's isoformat was the largest cost of an access line)."""
        second = int(created)
        if second != self._second:
            moment = datetime.fromtimestamp(second, UTC)
            self._second, self._second_text = second, moment.strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._second_text}.{int((created - second) * 1000):03d}Z"


class BackgroundStreamHandler(logging.Handler):
    """A stream handler whose writing happens in a thread of its own.

    The serving thread only queues the record (no formatting, no write): a slow or stalled
    stderr (a full pipe nobody reads, a throttled log collector) never holds requests up. Past
    ``capacity`` queued lines, new ones are dropped and counted in
    ``tastebud_log_lines_dropped_total`` instead of growing memory without bound.
    """

    def __init__(self, stream: TextIO | None = None, capacity: int = 10_000) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        self.capacity = capacity
        self._queue: queue.SimpleQueue[logging.LogRecord | threading.Event | None]
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="tastebud-log", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        if self._queue.qsize() >= self.capacity:
            LOG_LINES_DROPPED.inc()
            return
        self._queue.put(record)

    def flush(self) -> None:
        """Wait (a little) until what was queued so far is written."""
        if self._thread.is_alive():
            written = threading.Event()
            self._queue.put(written)
            written.wait(2.0)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(5.0)
        super().close()

    def _write(self) -> None:
        while True:
            item = self._queue.get()
            lines, done = [], False
            while True:  # everything queued meanwhile goes out in one write
                if item is None:
                    done = True
                elif isinstance(item, threading.Event):
                    item.set()
                else:
                    lines.append(self._format(item))
                if done or self._queue.empty():
                    break
                item = self._queue.get()
            if lines:
                self._emit_lines(lines)
            if done:
                return

    def _format(self, record: logging.LogRecord) -> str:
        try:
            return self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return ""

    def _emit_lines(self, lines: list[str]) -> None:
        try:
            self.stream.write("".join(lines))
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed: nowhere left to complain to
            pass


def logging_config(level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` (also uvicorn's ``log_config``): JSON lines on stderr for
    tastebud's loggers (``tastebud.access``: one line per request), uvicorn's and psycopg's."""
    level = level.upper()
    handler = {
        "()": f"{__name__}.BackgroundStreamHandler",
        "formatter": "json",
        "filters": ["request_id"],
    }
    logger = {"handlers": ["json"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "handlers": {"json": handler},
        "loggers": {
            "tastebud": logger,
            "uvicorn": logger,
            # The PostgreSQL pool's warnings (an outage's reconnection attempts) would otherwise
            # reach logging's last-resort handler: a direct write to stderr, which blocks
            # whoever logs when stderr is slow (issue 18: a request hung behind it).
            "psycopg": {**logger, "level": "WARNING"},
            "uvicorn.error": {"level": level},
            # tastebud.access replaces uvicorn's access log (route templates, request ids).
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
