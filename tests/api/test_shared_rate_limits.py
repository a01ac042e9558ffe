"""Per-token rate limits across workers: two ``tastebud serve`` processes sharing a private Redis
give a token one budget between them, not one each; with Redis down each process limits the
token on its own (still limited, per process), and answers never fail."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.outages import STARTUP_SECONDS
from tests.api.servers import ADMIN_TOKEN, RedisProcess, ServeProcess

RATE, BURST = 0.2, 4  # a request per 5 s after a burst of 4


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[RedisProcess, list[ServeProcess]]]:
    redis = RedisProcess(tmp_path / "redis")
    redis.start()
    env = {"TASTEBUD_REDIS_URL": redis.url, "TASTEBUD_API__RATE_LIMIT_PER_TOKEN": str(RATE),
           "TASTEBUD_API__RATE_LIMIT_BURST": str(BURST)}  # fmt: skip
    home = tmp_path / "home"
    first = ServeProcess(home, env=env)
    first.wait_ready(STARTUP_SECONDS)  # the first one creates the store
    workers = [first, ServeProcess(home, env=env)]
    try:
        workers[1].wait_ready(STARTUP_SECONDS)
        yield redis, workers
    finally:
        for worker in workers:
            worker.stop()
        redis.stop()


def burst_of(workers: list[ServeProcess], requests: int) -> tuple[Counter[int], float]:
    """``requests`` alternating between the workers with one token: (statuses, seconds)."""
    statuses: Counter[int] = Counter()
    start = time.monotonic()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for n in range(requests):
        response = httpx.get(f"{workers[n % 2].url}/v1/dataset-groups", headers=headers)
        statuses[response.status_code] += 1
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["error"]["type"] == "TooManyRequests"
    return statuses, time.monotonic() - start


def test_a_token_has_one_budget_across_workers(
    two_workers: tuple[RedisProcess, list[ServeProcess]],
) -> None:
    redis, workers = two_workers
    statuses, seconds = burst_of(workers, 20)
    assert set(statuses) <= {200, 429}, statuses
    # Per process, each worker would let BURST through (8 in all); shared, the two let BURST
    # through, plus what the rate refilled meanwhile.
    assert BURST <= statuses[200] <= BURST + int(seconds * RATE) + 1, (statuses, seconds)

    redis.stop()  # each worker falls back to its own bucket: still limited, never failed
    statuses, seconds = burst_of(workers, 20)
    assert set(statuses) == {200, 429}, statuses
    assert statuses[200] <= 2 * (BURST + int(seconds * RATE) + 1), (statuses, seconds)
