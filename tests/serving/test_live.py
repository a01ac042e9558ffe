"""Live events reach models without retraining: trending rises, history-based answers move."""

from __future__ import annotations

from tastebud.engine import Engine
from tastebud.ingest import PutEventsRequest


def watch(user: str, items: list[str], *, at: int) -> PutEventsRequest:
    return PutEventsRequest.model_validate(
        {"userId": user, "eventList": [
            {"itemId": item, "eventType": "click", "sentAt": at + i} for i, item in enumerate(items)
        ]}
    )  # fmt: skip


def test_trending_rises_with_live_events_without_retraining(loaded: Engine, group: str) -> None:
    loaded.create_solution(group, "trending", {"recipe": "trending-now"})
    version = loaded.train(group, "trending")
    before = loaded.recommender.recommend(group, {"solution": "trending"}, user_id=None, k=3)
    assert "i39" not in [r.id for r in before.results]  # the least popular cluster-B item
    burst_at = version.body["snapshot"]["max_timestamp"] + 60
    for user in range(40):  # more clicks in a minute than the top item had in all the data
        loaded.put_events(group, watch(f"visitor{user}", ["i39"], at=burst_at))
    after = loaded.recommender.recommend(group, {"solution": "trending"}, user_id=None, k=3)
    assert after.results[0].id == "i39"
    assert after.version_id == before.version_id  # same version: no retraining


def test_events_with_an_ignored_type_do_not_count(loaded: Engine, group: str) -> None:
    loaded.create_solution(
        group, "trending", {"recipe": "trending-now", "data": {"event_weights": {"click": 1.0}}}
    )
    version = loaded.train(group, "trending")
    burst_at = version.body["snapshot"]["max_timestamp"] + 60
    for user in range(20):
        request = PutEventsRequest.model_validate({"userId": f"v{user}", "eventList": [
            {"itemId": "i39", "eventType": "view", "sentAt": burst_at}]})  # fmt: skip
        loaded.put_events(group, request)
    answer = loaded.recommender.recommend(group, {"solution": "trending"}, user_id=None, k=3)
    assert "i39" not in [r.id for r in answer.results]


def test_a_new_click_changes_the_next_personal_answer(loaded: Engine, group: str) -> None:
    loaded.create_solution(
        group, "for-you", {"recipe": "user-personalization", "params": {"algorithm": "ease"}}
    )
    loaded.train(group, "for-you")
    newcomer = "newcomer"
    cold = loaded.recommender.recommend(group, {"solution": "for-you"}, user_id=newcomer, k=5)
    loaded.put_events(group, watch(newcomer, ["i25", "i26", "i27"], at=2_000_000))
    warm = loaded.recommender.recommend(group, {"solution": "for-you"}, user_id=newcomer, k=5)
    assert [r.id for r in cold.results] != [r.id for r in warm.results]
    cluster_b = {f"i{i}" for i in range(20, 40)}
    assert {r.id for r in warm.results} <= cluster_b - {"i25", "i26", "i27"}
