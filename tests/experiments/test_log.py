"""The buffered exposure log: everything appended is written once (flush, close), a full
buffer drops after its wait instead of stalling requests, a failing store is retried, and a
deleted group's records are let go."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from tastebud.experiments.log import BufferedLog
from tastebud.store import ExposureRecord, Store


def exposure(index: int) -> ExposureRecord:
    return ExposureRecord(experiment="ab", arm="control", user_id=f"u{index}",
                          recommendation_id=f"rec-{index}", campaign="c", source="rules",
                          timestamp=1_800_000_000.0 + index, items="i1|i2")  # fmt: skip


def test_everything_appended_is_written_once(store: Store, group: str) -> None:
    log: BufferedLog[ExposureRecord] = BufferedLog(store.put_exposures, name="t", batch=700)

    def append(first: int) -> None:
        for index in range(first, first + 1_000):
            log.add(group, exposure(index))

    threads = [threading.Thread(target=append, args=(k * 1_000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    written = store.read_exposures(group, "ab")
    assert written.height == 4_000 and written["recommendation_id"].n_unique() == 4_000
    assert not log.add(group, exposure(0)) and log.dropped == 1  # closed: dropped, counted


def test_a_full_buffer_drops_after_its_wait() -> None:
    release = threading.Event()
    seen: list[str] = []

    def slow(group: str, records: Sequence[ExposureRecord]) -> int:
        release.wait()
        seen.extend(r.recommendation_id for r in records)
        return len(records)

    log: BufferedLog[ExposureRecord] = BufferedLog(
        slow, name="t", batch=5, capacity=5, max_wait_seconds=0.05, flush_seconds=0.01
    )
    accepted = [log.add("g", exposure(i)) for i in range(5)]  # the writer takes these, waits
    while log._pending:  # the writer has taken the first batch
        threading.Event().wait(0.01)
    accepted += [log.add("g", exposure(i)) for i in range(5, 11)]
    assert accepted == [True] * 10 + [False] and log.dropped == 1
    release.set()
    log.close()
    assert seen == [f"rec-{i}" for i in range(10)]


def test_a_failing_store_is_retried_without_duplicates(store: Store, group: str) -> None:
    failures = [RuntimeError("down"), RuntimeError("still down")]

    def flaky(group: str, records: Sequence[ExposureRecord]) -> int:
        if failures:
            raise failures.pop()
        return store.put_exposures(group, records)

    log: BufferedLog[ExposureRecord] = BufferedLog(flaky, name="t", flush_seconds=0.01)
    for i in range(50):
        log.add(group, exposure(i))
    log.close()
    assert not failures and store.read_exposures(group, "ab").height == 50
    assert log.dropped == 0


def test_a_deleted_groups_records_are_let_go(store: Store, group: str) -> None:
    log: BufferedLog[ExposureRecord] = BufferedLog(store.put_exposures, name="t")
    log.add(f"{group}-gone", exposure(1))
    log.add(group, exposure(2))
    log.close()
    assert log.dropped == 1
    assert store.read_exposures(group, "ab")["recommendation_id"].to_list() == ["rec-2"]
