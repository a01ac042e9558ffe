"""The event tracker's group commit: many requests, one writer thread, a correct answer each."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

import pytest

from tastebud.errors import NotFound
from tastebud.ingest import EventTracker
from tastebud.store import Event, Store, WriteResult

THREADS = 8
REQUESTS = 15


def event(event_id: str | None, user: str = "u", item: str = "i") -> Event:
    return Event(item_id=item, timestamp=1_700_000_000, user_id=user, event_id=event_id)


def test_many_threads_submitting_at_once_each_get_their_counts(store: Store, group: str) -> None:
    commits: list[int] = []
    original = store.put_event_batches

    def spy(group: str, batches: list[list[Event]]) -> list[WriteResult]:
        commits.append(len(batches))
        return original(group, batches)

    store.put_event_batches = spy  # type: ignore[method-assign]
    tracker = EventTracker(store, max_batch_events=40)
    barrier = threading.Barrier(THREADS)
    futures: dict[tuple[int, int], tuple[list[Event], Future[WriteResult]]] = {}
    lock = threading.Lock()

    def client(thread: int) -> None:
        barrier.wait()
        for n in range(REQUESTS):
            # 3 events of its own, 1 without id, and 1 id every thread sends in request n.
            events = [event(f"t{thread}-{n}-{k}", f"u{thread}", f"i{k}") for k in range(3)]
            events += [event(None, f"u{thread}"), event(f"shared-{n}", "u-shared")]
            future = tracker.submit(group, events)
            with lock:
                futures[(thread, n)] = (events, future)

    threads = [threading.Thread(target=client, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        results = {key: future.result(timeout=60) for key, (_, future) in futures.items()}
    finally:
        tracker.close()

    assert len(results) == THREADS * REQUESTS
    for key, result in results.items():
        assert result.accepted + result.duplicates == len(futures[key][0])
        assert result.accepted in (4, 5), (key, result)  # own 4 always; the shared one maybe
    for n in range(REQUESTS):  # exactly one request stored each shared id
        assert sum(results[(t, n)].accepted == 5 for t in range(THREADS)) == 1
    assert sum(r.accepted for r in results.values()) == THREADS * REQUESTS * 4 + REQUESTS
    assert store.counts(group)["interactions"] == THREADS * REQUESTS * 4 + REQUESTS
    assert store.counts(group)["user_ids"] == THREADS + 1
    assert sum(commits) == THREADS * REQUESTS
    assert len(commits) < THREADS * REQUESTS  # requests were grouped into fewer commits
    assert max(commits) <= 40 // 5  # max_batch_events caps a commit (5 events per request)


def test_put_resolves_after_commit_and_closed_tracker_refuses(store: Store, group: str) -> None:
    tracker = EventTracker(store)
    assert tracker.put(group, [event("e1"), event("e1"), event("e2")]) == WriteResult(2, 1)
    assert store.counts(group)["interactions"] == 2  # visible as soon as put returns
    tracker.close()
    tracker.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        tracker.submit(group, [event("e3")]).result(timeout=5)
    assert store.counts(group)["interactions"] == 2


def test_a_failing_group_does_not_fail_the_others(store: Store, group: str) -> None:
    # Requests for a missing group queued among good ones: each request hears its own outcome.
    tracker = EventTracker(store)
    try:
        futures = []
        for n in range(20):
            target = f"{group}-missing" if n % 2 else group
            futures.append((target, tracker.submit(target, [event(f"e{n}")])))
        for target, future in futures:
            if target == group:
                assert future.result(timeout=30) == WriteResult(1, 0)
            else:
                with pytest.raises(NotFound, match="missing"):
                    future.result(timeout=30)
    finally:
        tracker.close()
    assert store.counts(group)["interactions"] == 10


# submit_async: the event loop's side of the hand-off ------------------------------------------
def test_submit_async_answers_each_request_on_the_loop(store: Store, group: str) -> None:
    tracker = EventTracker(store)

    async def main() -> list[WriteResult]:
        loop = asyncio.get_running_loop()
        futures = [
            tracker.submit_async(group, [event(f"e{n}"), event("shared")]) for n in range(30)
        ]
        assert all(f.get_loop() is loop for f in futures)
        return list(await asyncio.gather(*futures))

    try:
        results = asyncio.run(main())
    finally:
        tracker.close()
    # Each request hears its own counts; the id every request sends is stored once.
    assert sum(r.accepted for r in results) == 31
    assert sum(r == WriteResult(2, 0) for r in results) == 1
    assert all(r.accepted + r.duplicates == 2 for r in results)
    assert store.counts(group)["interactions"] == 31


def test_submit_async_failures_and_closed_tracker(store: Store, group: str) -> None:
    tracker = EventTracker(store)

    async def main() -> None:
        good = tracker.submit_async(group, [event("e1")])
        bad = tracker.submit_async(f"{group}-missing", [event("e2")])
        assert await good == WriteResult(1, 0)
        with pytest.raises(NotFound, match="missing"):
            await bad
        tracker.close()
        with pytest.raises(RuntimeError, match="closed"):
            await tracker.submit_async(group, [event("e3")])

    try:
        asyncio.run(main())
    finally:
        tracker.close()
    assert store.counts(group)["interactions"] == 1


def test_a_cancelled_async_request_leaves_the_writer_working(store: Store, group: str) -> None:
    # A client that leaves cancels its request's future; the commit goes on, the others answered.
    tracker = EventTracker(store)

    async def main() -> WriteResult:
        abandoned = tracker.submit_async(group, [event("e1")])
        abandoned.cancel()
        return await tracker.submit_async(group, [event("e2")])

    try:
        assert asyncio.run(main()) == WriteResult(1, 0)
        assert tracker.put(group, [event("e3")]) == WriteResult(1, 0)
    finally:
        tracker.close()
    assert store.counts(group)["interactions"] == 3  # queued before the cancel: stored


def test_answers_for_a_closed_loop_are_dropped_quietly(store: Store, group: str) -> None:
    tracker = EventTracker(store)
    gate = threading.Event()
    original = store.put_event_batches

    def slow(group: str, batches: list[list[Event]]) -> list[WriteResult]:
        gate.wait(10)
        return original(group, batches)

    store.put_event_batches = slow  # type: ignore[method-assign]

    async def leave() -> None:
        tracker.submit_async(group, [event("e1")])  # never awaited: the loop closes first

    try:
        asyncio.run(leave())
        gate.set()
        assert tracker.put(group, [event("e2")]) == WriteResult(1, 0)  # still serving
    finally:
        tracker.close()
    assert store.counts(group)["interactions"] == 2
