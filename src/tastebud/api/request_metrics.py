"""The API's request count, latency histogram and in-flight gauge, kept cheaply.

prometheus_client takes a lock and runs checks on every observation: for one counter and one
histogram per request, about half of what the operations middleware cost. In a single process
each middleware keeps plain counts instead (only its event loop's thread writes them), and a
collector turns them into the same metrics when ``/metrics`` is scraped. Under multi-process
metrics (``PROMETHEUS_MULTIPROC_DIR``) values can only be shared through prometheus_client's
files, so there each request updates real metric objects.
"""

from __future__ import annotations

import threading
import weakref
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from tastebud.observability import LATENCY_BUCKETS, multiprocess_dir

REQUESTS = "tastebud_http_requests"
REQUESTS_HELP = "HTTP requests answered, by route template, method and status."
LATENCY = "tastebud_http_request_duration_seconds"
LATENCY_HELP = "Time from a request's arrival to the end of its answer, by route and method."
INFLIGHT = "tastebud_http_inflight_requests"
INFLIGHT_HELP = "Requests being served now (health, readiness and metrics excluded)."
_LABELS = ("route", "method", "status")


class LocalStats:
    """One middleware's counts, written by its event loop's thread only; read by scrapes (a
    copy of a dict or list is atomic under the GIL)."""

    def __init__(self) -> None:
        self.inflight = 0
        self.counts: dict[tuple[str, str, int], int] = {}
        # (route, method) -> observations per bucket (the last one +Inf), then their sum
        self.latency: dict[tuple[str, str], list[float]] = {}

    def started(self) -> None:
        self.inflight += 1

    def finished(self) -> None:
        self.inflight -= 1

    def record(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        histogram = self.latency.get((route, method))
        if histogram is None:
            histogram = self.latency[route, method] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        histogram[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # buckets hold `le` bounds
        histogram[-1] += seconds


class SharedStats(LocalStats):
    """Multi-process mode: the same figures through prometheus_client's per-process files."""

    def __init__(self) -> None:
        super().__init__()
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def started(self) -> None:
        self.inflight += 1
        _shared().inflight.inc()

    def finished(self) -> None:
        self.inflight -= 1
        _shared().inflight.dec()

    def record(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:  # `labels()` takes a lock and builds a key: once per series
            shared = _shared()
            series = (
                shared.requests.labels(route, method, str(status)),
                shared.latency.labels(route, method),
            )
            self._series[key] = series
        series[0].inc()
        series[1].observe(seconds)


class _SharedMetrics:
    def __init__(self) -> None:
        self.requests = Counter(REQUESTS, REQUESTS_HELP, _LABELS)
        self.latency = Histogram(LATENCY, LATENCY_HELP, _LABELS[:2], buckets=LATENCY_BUCKETS)
        self.inflight = Gauge(INFLIGHT, INFLIGHT_HELP, multiprocess_mode="livesum")


class _LocalCollector(Collector):
    """Adds up every live middleware's :class:`LocalStats` when scraped."""

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily | GaugeMetricFamily]:
        with _lock:
            stats = list(_live)
        counts: dict[tuple[str, str, int], int] = {}
        latency: dict[tuple[str, str], list[float]] = {}
        for one in stats:
            for key, count in list(one.counts.items()):
                counts[key] = counts.get(key, 0) + count
            for series, histogram in list(one.latency.items()):
                total = latency.setdefault(series, [0.0] * len(histogram))
                for i, value in enumerate(list(histogram)):
                    total[i] += value
        requests = CounterMetricFamily(REQUESTS, REQUESTS_HELP, labels=_LABELS)
        for (route, method, status), count in sorted(counts.items()):
            requests.add_metric([route, method, str(status)], count)
        yield requests
        yield _histogram(latency)
        yield GaugeMetricFamily(INFLIGHT, INFLIGHT_HELP, value=sum(one.inflight for one in stats))


def _go_float(value: float) -> str:
    """A bucket bound as prometheus_client writes it (``0.5``, ``1.0``, ``2.5``)."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


def _histogram(latency: dict[tuple[str, str], list[float]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(LATENCY, LATENCY_HELP, labels=_LABELS[:2])
    bounds = [*(_go_float(b) for b in LATENCY_BUCKETS), "+Inf"]
    for (route, method), histogram in sorted(latency.items()):
        cumulative, buckets = 0.0, []
        for bound, count in zip(bounds, histogram[:-1], strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        family.add_metric([route, method], buckets, histogram[-1])
    return family


_live: weakref.WeakSet[LocalStats] = weakref.WeakSet()
_lock = threading.Lock()
_shared_metrics: _SharedMetrics | None = None


def _shared() -> _SharedMetrics:
    global _shared_metrics
    if _shared_metrics is None:
        _shared_metrics = _SharedMetrics()
    return _shared_metrics


def new_stats() -> LocalStats:
    """Statistics for one middleware, in the form this process's metrics mode needs."""
    if multiprocess_dir() is not None:
        _shared()  # the gauge's file exists from the start
        return SharedStats()
    stats = LocalStats()
    with _lock:
        _live.add(stats)
    return stats


if multiprocess_dir() is None:
    REGISTRY.register(_LocalCollector())
