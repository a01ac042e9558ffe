"""Real-time answers from training-time shortlists are the full scan's answers, or not given."""

from __future__ import annotations

import numpy as np
import pytest

from tastebud.engine import Engine
from tastebud.ingest import PutEventsRequest
from tastebud.serving.recommend import answer_from_scores, shortlisted_items

LENGTH = 12


@pytest.fixture
def shortlisted(loaded: Engine, group: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setattr("tastebud.recipes.shortlists.SHORTLIST_FROM_ITEMS", 0)  # 40 items here
    params = {"algorithm": "als", "factors": 8, "shortlist_length": LENGTH}
    loaded.create_solution(group, "for-you", {"recipe": "user-personalization", "params": params,
                                              "evaluate": False})  # fmt: skip
    loaded.train(group, "for-you")
    loaded.create_filter(group, "not-genre", "EXCLUDE ItemID WHERE Items.GENRES IN ($G)")
    return loaded


def answers(engine: Engine, group: str, user: str, k: int, genre: str | None) -> tuple:  # type: ignore[type-arg]
    """(shortlist's answer or None, the full scan's answer) for one request."""
    r = engine.recommender
    version = r.version_for(group, {"solution": "for-you"})
    history = r.read_history(group, version, user, filtered=genre is not None)
    selection = None
    if genre is not None:
        selection = r.select(group, version, "not-genre", {"G": genre}, user_id=user,
                             events=history.filter_events,
                             event_items=history.filter_event_items)  # fmt: skip
    query = history.query(version, user)
    short = shortlisted_items(version, query, k=k, seen=history.seen, selection=selection)
    full = answer_from_scores(version, version.model.score(query)[0], k, history.seen, selection)
    return short, full


def test_shortlist_answers_equal_the_full_scan(shortlisted: Engine, group: str) -> None:
    given = 0
    for n in range(60):
        for k, genre in [(3, None), (5, "a"), (5, "b"), (LENGTH, None)]:
            short, full = answers(shortlisted, group, f"u{n}", k, genre)
            if short is not None:
                given += 1
                assert [(s.id, s.score) for s in short] == [(s.id, pytest.approx(s.score))
                                                            for s in full]  # fmt: skip
    assert given >= 60  # most requests are answered from the shortlist


def test_an_event_since_training_is_answered_from_the_rescored_shortlist(
    shortlisted: Engine, group: str
) -> None:
    short, full = answers(shortlisted, group, "u5", 5, None)
    assert short is not None
    click = {"itemId": full[0].id, "eventType": "click", "sentAt": 1_800_000_000}
    event = PutEventsRequest.model_validate({"userId": "u5", "eventList": [click]})
    shortlisted.put_events(group, event)
    short, full = answers(shortlisted, group, "u5", 5, None)
    assert full[0].id != click["itemId"]
    assert short is not None  # 40 items: every item is a candidate (the widest 256)
    assert [(s.id, pytest.approx(s.score, rel=1e-5)) for s in short] == [
        (s.id, s.score) for s in full
    ]
    served = shortlisted.recommender.recommend(group, {"solution": "for-you"}, user_id="u5", k=5)
    assert [s.id for s in served.results] == [s.id for s in full]


def test_a_shortlist_too_short_for_the_request_is_not_used(shortlisted: Engine, group: str) -> None:
    short, _ = answers(shortlisted, group, "u7", LENGTH + 1, None)
    assert short is None
    served = shortlisted.recommender.recommend(group, {"solution": "for-you"}, user_id="u7",
                                               k=LENGTH + 1)  # fmt: skip
    assert len(served.results) == LENGTH + 1
    scores = [s.score for s in served.results]
    assert scores == sorted(scores, reverse=True) and np.isfinite(scores).all()


def test_a_served_full_scan_answers_the_users_next_requests(
    shortlisted: Engine, group: str
) -> None:
    """After an event, a request the shortlist cannot answer is scanned in full; the scan then
    answers the next requests exactly, until the user's next event."""
    click = {"itemId": "i39", "eventType": "click", "sentAt": 1_800_000_000}  # the other cluster
    shortlisted.put_events(
        group, PutEventsRequest.model_validate({"userId": "u7", "eventList": [click]})
    )
    r = shortlisted.recommender
    version = r.version_for(group, {"solution": "for-you"})
    query = r.read_history(group, version, "u7", filtered=False).query(version, "u7")
    rescored = version.model.shortlist(query)
    assert rescored is not None and len(rescored.items) > LENGTH  # rescored with its history
    # 25 of the 27 unseen items: more than the 12 shortlisted ones can answer, so a full scan
    served = r.recommend(group, {"solution": "for-you"}, user_id="u7", k=25)
    scanned = version.model.shortlist(query)
    assert scanned is not None and len(scanned.items) == LENGTH
    assert scanned.floor == scanned.scores[-1]  # exact again
    assert list(version.items.ids(scanned.items)) == [s.id for s in served.results[:LENGTH]]
    short, full = answers(shortlisted, group, "u7", 5, "a")
    assert short is not None and [s.id for s in short] == [s.id for s in full]
