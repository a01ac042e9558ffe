"""Many writers at once, on both backends: threads and spawned processes share one group.

Each writer sends its own event ids plus ids every writer sends (the same event, as a retrying
client would), so the store must neither lose an event nor keep a duplicate, and must assign
each user and item exactly one dense index while writers race to create them.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable

import polars as pl

from tastebud.store import Event, Store, WriteResult, open_store

THREADS = 4
PROCESSES = 3
BATCHES = 12
BATCH_SIZE = 6
SHARED = 10  # event ids every writer sends
USERS = 15
ITEMS = 20


def planted_event(event_id: str, number: int) -> Event:
    """The event behind an id: its user and item follow from the number, so readers can check."""
    return Event(
        item_id=f"item-{number % ITEMS}", timestamp=1_700_000_000 + number,
        user_id=f"user-{number % USERS}", event_id=event_id,
    )  # fmt: skip


def writer_batches(writer: int) -> list[list[Event]]:
    own = [planted_event(f"w{writer}-{n}", writer * 1000 + n) for n in range(BATCHES * BATCH_SIZE)]
    batches = [own[n : n + BATCH_SIZE] for n in range(0, len(own), BATCH_SIZE)]
    for n in range(SHARED):  # shared ids, spread over the batches in a writer-specific order
        batches[(n * (writer + 1)) % BATCHES].append(planted_event(f"shared-{n}", 900_000 + n))
    return batches


def write_all(
    store: Store, group: str, writer: int, start: Callable[[], object]
) -> tuple[int, int]:
    start()
    accepted = duplicates = 0
    for batch in writer_batches(writer):
        result = store.put_events(group, batch)
        assert result.accepted + result.duplicates == len(batch)
        accepted += result.accepted
        duplicates += result.duplicates
    return accepted, duplicates


def process_writer(url: str, group: str, writer: int, start: object, results: object) -> None:
    """Runs in a spawned process: its own store, then the same writes as a thread."""
    store = open_store(url, migrate=False)
    try:
        begin = lambda: start.wait(timeout=120)  # type: ignore[attr-defined]  # noqa: E731
        results.put((writer, write_all(store, group, writer, begin)))  # type: ignore[attr-defined]
    except BaseException as exc:
        results.put((writer, repr(exc)))  # type: ignore[attr-defined]
        raise
    finally:
        store.close()


def test_threads_and_processes_writing_at_once(store: Store, group: str, store_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    # One barrier for all writers, threads and processes alike, so their writes overlap.
    start, results = context.Barrier(THREADS + PROCESSES), context.Queue()
    processes = [
        context.Process(target=process_writer, args=(store_url, group, THREADS + p, start, results))
        for p in range(PROCESSES)
    ]
    for process in processes:
        process.start()

    outcomes: dict[int, tuple[int, int] | str] = {}

    def thread_writer(writer: int) -> None:
        try:
            outcomes[writer] = write_all(store, group, writer, lambda: start.wait(timeout=120))
        except BaseException as exc:
            outcomes[writer] = repr(exc)

    threads = [threading.Thread(target=thread_writer, args=(w,)) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for _ in processes:
        writer, outcome = results.get(timeout=120)
        outcomes[writer] = outcome
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    writers = THREADS + PROCESSES
    assert all(isinstance(o, tuple) for o in outcomes.values()), outcomes
    assert len(outcomes) == writers
    sent = writers * (BATCHES * BATCH_SIZE + SHARED)
    distinct = writers * BATCHES * BATCH_SIZE + SHARED
    accepted = sum(o[0] for o in outcomes.values())  # type: ignore[index]
    duplicates = sum(o[1] for o in outcomes.values())  # type: ignore[index]
    assert (accepted, duplicates) == (distinct, sent - distinct)
    assert store.counts(group)["interactions"] == distinct

    # Every stored event is the planted one, under consistent and dense indexes.
    users, items = store.vocabulary(group, "user"), store.vocabulary(group, "item")
    assert sorted(users.ids(range(len(users)))) == sorted(f"user-{n}" for n in range(USERS))  # type: ignore[type-var]
    assert sorted(items.ids(range(len(items)))) == sorted(f"item-{n}" for n in range(ITEMS))  # type: ignore[type-var]
    exported = pl.concat(list(store.export(group, "interactions")))
    assert exported["EVENT_ID"].n_unique() == distinct
    numbers = exported["TIMESTAMP"] - 1_700_000_000
    assert exported["USER_ID"].to_list() == [f"user-{n % USERS}" for n in numbers]
    assert exported["ITEM_ID"].to_list() == [f"item-{n % ITEMS}" for n in numbers]
    frame = store.read_interactions(group)  # same rows, same (arrival) order as the export
    assert users.ids(frame["user_index"].to_list()) == exported["USER_ID"].to_list()
    assert items.ids(frame["item_index"].to_list()) == exported["ITEM_ID"].to_list()
    assert frame["timestamp"].to_list() == exported["TIMESTAMP"].to_list()


def test_concurrent_batches_give_each_writer_its_own_counts(store: Store, group: str) -> None:
    """put_event_batches from several threads: each result matches its batches exactly."""
    barrier = threading.Barrier(4)
    results: dict[int, list[WriteResult]] = {}

    def writer(w: int) -> None:
        barrier.wait()
        batches = [[planted_event(f"b{w}-{n}-{k}", n * 10 + k) for k in range(3)] for n in range(5)]
        results[w] = store.put_event_batches(group, batches)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == {w: [WriteResult(3, 0)] * 5 for w in range(4)}
    assert store.counts(group)["interactions"] == 60
