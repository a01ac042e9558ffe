"""A group commit's statements: sizes past every chunk boundary, duplicates, sessions (both stores).

The store looks ids up with ``IN`` lists padded to a few sizes (chunks of at most 512) and
inserts with multi-row statements of fixed sizes; these commits are large and ragged enough to
use all of them, so a slip in the chunking shows as a wrong count or a lost event.
"""

from __future__ import annotations

from tastebud.store import Event, Store, WriteResult


def ev(user: str | None, item: str, event_id: str | None, session: str | None = None) -> Event:
    return Event(item_id=item, timestamp=1_700_000_000, user_id=user, session_id=session,
                 event_id=event_id)  # fmt: skip


def test_a_large_ragged_commit_stores_every_event_once(store: Store, group: str) -> None:
    # 1,237 events (256 x 4 + 64 x 3 + 16 + 5 by executemany): 700 items, 100 users, all new.
    batches = [
        [ev(f"u{b % 100}", f"i{(b * 10 + k) % 700}", f"e{b}-{k}") for k in range(10)]
        for b in range(123)
    ]
    batches.append([ev("u0", f"i{k}", None) for k in range(7)])
    results = store.put_event_batches(group, batches)
    assert results == [WriteResult(10, 0)] * 123 + [WriteResult(7, 0)]
    counts = store.counts(group)
    assert counts["interactions"] == 1237
    assert counts["item_ids"] == 700 and counts["user_ids"] == 100
    # Dense ids: indexes 0..699, one per item.
    items = store.vocabulary(group, "item")
    assert len(items) == 700
    assert sorted(items.ids(range(700))) == sorted(f"i{n}" for n in range(700))


def test_duplicates_within_a_commit_and_against_stored_events(store: Store, group: str) -> None:
    store.put_event_batches(group, [[ev("u1", f"i{n}", f"old-{n}") for n in range(600)]])
    results = store.put_event_batches(
        group,
        [
            [ev("u1", "i1", "old-5"), ev("u1", "i1", "new-1"), ev("u1", "i1", "new-1")],
            [ev("u2", "i2", "new-1"), ev("u2", "i2", None), ev("u2", "i2", None)],
            [ev("u3", "i3", f"old-{n}") for n in range(590)] + [ev("u3", "i3", "new-2")],
        ],
    )
    # The first copy of an id wins, in request order; events without an id are all kept.
    assert results == [WriteResult(1, 2), WriteResult(2, 1), WriteResult(1, 590)]
    assert store.counts(group)["interactions"] == 600 + 4


def test_sessions_of_one_commit(store: Store, group: str) -> None:
    store.put_event_batches(group, [[ev(None, "a", "e1", "s1"), ev(None, "b", "e2", "s2")]])
    store.put_event_batches(group, [[ev("u1", "c", "e3", "s2")]])  # s2 is u1's from now on
    results = store.put_event_batches(
        group,
        [
            [ev("u2", "d", "e4", "s1")],  # claims s1 and its anonymous event
            # Without a user: the user their session has in this commit, else the stored link.
            [ev(None, "e", "e5", "s1"), ev(None, "f", "e6", "s2")],
            [ev("u3", "g", "e7", "s2")],  # s2 stays linked to u1; this commit says u3
            [ev(None, "h", "e8", "s3")],  # unknown session: anonymous
        ],
    )
    assert [r.accepted for r in results] == [1, 2, 1, 1]
    assert [e.item_id for e in store.recent_events(group, "u2", 10)] == ["a", "d", "e"]
    assert [e.item_id for e in store.recent_events(group, "u3", 10)] == ["f", "g"]
    assert [e.item_id for e in store.recent_events(group, "u1", 10)] == ["b", "c"]
    assert store.counts(group)["anonymous_interactions"] == 1
    later = store.put_event_batches(group, [[ev(None, "i", "e9", "s2")]])  # the stored link
    assert later == [WriteResult(1, 0)]
    assert [e.item_id for e in store.recent_events(group, "u1", 10)] == ["b", "c", "i"]


def test_event_values_and_optional_fields_of_every_kind(store: Store, group: str) -> None:
    # Ints and floats mixed in one commit (typed as floats; PostgreSQL gets them as one array).
    events = [
        Event(item_id="a", timestamp=1, user_id="u1", event_value=2, event_type="rate"),
        Event(item_id="b", timestamp=2, user_id="u1", event_value=2.5, impression="a|b",
              recommendation_id="r1", context={"DEVICE": "tv"}),
        Event(item_id="c", timestamp=3, session_id="s1"),
    ]  # fmt: skip
    assert store.put_event_batches(group, [events]) == [WriteResult(3, 0)]
    first, second = store.recent_events(group, "u1", 10)
    assert first.event_value == 2 and first.event_type == "rate"
    assert second.event_value == 2.5 and second.impression == "a|b"
    assert second.recommendation_id == "r1" and second.context == {"DEVICE": "tv"}
    assert store.counts(group)["anonymous_interactions"] == 1
