"""What the console shows from ``/metrics``: the cache hit rate and request latency.

The figures are read from the same Prometheus text ``/metrics`` serves
(:func:`tastebud.observability.render`: every worker's values under ``serve --workers``), so the
console and a Prometheus dashboard agree. They are the server's, not one group's: the metrics
carry no group label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from tastebud import observability

CACHE_HITS, CACHE_MISSES = "tastebud_cache_hits", "tastebud_cache_misses"
LATENCY = "tastebud_http_request_duration_seconds"
ANSWER_CACHE = "campaign_answers"


@dataclass(frozen=True)
class Sample:
    name: str  # the sample's own name (``…_total``, ``…_bucket``)
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Latency:
    route: str
    method: str
    count: int
    mean_ms: float
    p50_ms: float | None  # upper bound of the bucket holding the quantile (None: past the last)
    p99_ms: float | None


def read() -> list[Sample]:
    """Every sample ``/metrics`` would serve now."""
    body, _ = observability.render()
    return [
        Sample(sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    ]


def total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of counter ``name`` over the samples whose labels include ``labels``."""
    wanted = {name, name + "_total"}
    return sum(
        s.value for s in samples
        if s.name in wanted and all(s.labels.get(k) == v for k, v in labels.items())
    )  # fmt: skip


def cache_hit_rate(samples: list[Sample]) -> tuple[float | None, int]:
    """The campaign answer cache's hit rate since the server started, and its lookups."""
    hits = total(samples, CACHE_HITS, cache=ANSWER_CACHE)
    lookups = hits + total(samples, CACHE_MISSES, cache=ANSWER_CACHE)
    return (hits / lookups if lookups else None), int(lookups)


def latencies(samples: list[Sample], *, route_contains: str = "") -> list[Latency]:
    """Per route and method: requests answered, mean and bucketed p50 / p99 (milliseconds)."""
    buckets: dict[tuple[str, str], list[tuple[float, float]]] = {}
    sums: dict[tuple[str, str], float] = {}
    for s in samples:
        key = (s.labels.get("route", ""), s.labels.get("method", ""))
        if route_contains not in key[0] or not s.name.startswith(LATENCY):
            continue
        if s.name == LATENCY + "_bucket":
            buckets.setdefault(key, []).append((float(s.labels["le"]), s.value))
        elif s.name == LATENCY + "_sum":
            sums[key] = s.value
    found = []
    for (route, method), counts in sorted(buckets.items()):
        counts.sort()
        count = int(counts[-1][1])  # the +Inf bucket
        if count:
            mean = 1000 * sums.get((route, method), 0.0) / count
            found.append(Latency(route, method, count, mean, _quantile(counts, 0.5),
                                 _quantile(counts, 0.99)))  # fmt: skip
    return found


def _quantile(cumulative: list[tuple[float, float]], q: float) -> float | None:
    total_count = cumulative[-1][1]
    for bound, count in cumulative:
        if count >= q * total_count:
            return None if math.isinf(bound) else 1000 * bound
    return None
