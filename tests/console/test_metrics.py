"""The figures the console reads from the Prometheus text: rates, hit rate, latency."""

from __future__ import annotations

import pytest

from tastebud.console.metrics import Sample, cache_hit_rate, latencies, total
from tastebud.console.service import paginate
from tastebud.errors import InvalidInput

ROUTE = "/v1/dataset-groups/{group}/campaigns/{name}/recommendations"


def bucket(le: str, count: float) -> Sample:
    labels = {"route": ROUTE, "method": "POST", "le": le}
    return Sample("tastebud_http_request_duration_seconds_bucket", labels, count)


def test_counters_sum_over_labels() -> None:
    samples = [
        Sample("tastebud_events_ingested_total", {"source": "http"}, 5),
        Sample("tastebud_events_ingested_total", {"source": "stream"}, 2),
        Sample("tastebud_cache_hits_total", {"cache": "campaign_answers"}, 3),
        Sample("tastebud_cache_misses_total", {"cache": "campaign_answers"}, 1),
    ]
    assert total(samples, "tastebud_events_ingested") == 7
    assert total(samples, "tastebud_events_ingested", source="stream") == 2
    assert cache_hit_rate(samples) == (0.75, 4)
    assert cache_hit_rate([]) == (None, 0)


def test_latency_quantiles_are_bucket_bounds() -> None:
    samples = [
        bucket("0.001", 50),
        bucket("0.005", 98),
        bucket("0.01", 100),
        bucket("+Inf", 100),
        Sample(
            "tastebud_http_request_duration_seconds_sum", {"route": ROUTE, "method": "POST"}, 0.2
        ),
    ]
    (found,) = latencies(samples, route_contains="/campaigns/")
    assert (found.count, found.mean_ms, found.p50_ms, found.p99_ms) == (100, 2.0, 1.0, 10.0)
    assert latencies(samples, route_contains="/experiments/") == []


def test_paginate() -> None:
    rows = list(range(45))
    assert paginate(rows, None).rows == list(range(20))
    last = paginate(rows, "9")  # past the end: the last page
    assert (last.number, last.pages, last.total, last.rows) == (3, 3, 45, list(range(40, 45)))
    with pytest.raises(InvalidInput, match="page: expected a page number"):
        paginate(rows, "x")
