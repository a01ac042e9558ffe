"""Campaigns: deployment, the rule-engine fallback, the result cache and promotions (engine level,
on SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np
import pytest

from tastebud import observability
from tastebud.engine import Engine
from tastebud.errors import InvalidInput, NotFound
from tastebud.ingest import ItemIn
from tastebud.serving.campaigns import CampaignRequest, Promotion, merge_promoted
from tastebud.serving.recommend import Scored
from tastebud.serving.rules import new_items_version
from tests.serving.test_live import watch

CLUSTER_A = {f"i{i}" for i in range(20)}
CLUSTER_B = {f"i{i}" for i in range(20, 40)}


def ask(engine: Engine, group: str, campaign: str = "c", **request: Any) -> dict[str, Any]:
    return engine.campaign_answer(group, campaign, CampaignRequest(**request))


def ids(answer: dict[str, Any]) -> list[str]:
    return [item["itemId"] for item in answer["itemList"]]


def item_counts(engine: Engine, group: str) -> Counter[str]:
    frame = engine.store.read_interactions(group)
    vocabulary = engine.store.vocabulary(group, "item")
    return Counter(str(i) for i in vocabulary.ids(frame["item_index"].to_list()))


@pytest.fixture
def ease(loaded: Engine, group: str) -> Engine:
    loaded.create_solution(group, "for-you", {"recipe": "user-personalization",
                                              "params": {"algorithm": "ease"}})  # fmt: skip
    return loaded


# the rule engine and the switch to the model ------------------------------------------------------
def test_rules_answer_until_a_version_exists_then_the_model(ease: Engine, group: str) -> None:
    ease.create_campaign(group, "c", "for-you", config={"min_interactions": 100})
    before = ask(ease, group, user_id="u45", k=5, exclude_seen=False)
    counts = item_counts(ease, group)
    expected = sorted(counts, key=lambda item: (-counts[item], int(item[1:])))[:5]
    assert before["source"] == "rules" and before["solutionVersionId"] is None
    assert ids(before) == expected  # most interactions first, whoever asks

    version = ease.train(group, "for-you")
    time.sleep(1.05)  # other workers re-read the campaign within a second; so does this one
    after = ask(ease, group, user_id="u45", k=5)
    assert after["source"] == "model" and after["solutionVersionId"] == version.id
    assert set(ids(after)) <= CLUSTER_B  # u45 is a cluster-B user: the model knows it


def test_too_little_data_keeps_the_rules_until_the_threshold(ease: Engine, group: str) -> None:
    ease.train(group, "for-you")
    ease.create_campaign(group, "c", "for-you")  # default threshold 1,000 > 720 interactions
    assert ask(ease, group, user_id="u45")["source"] == "rules"
    extra = [f"i{i}" for i in range(20, 40)] * 15  # 300 more events: 1,020 in all
    for start in range(0, len(extra), 50):
        ease.put_events(group, watch(f"more{start}", extra[start : start + 50], at=3_000_000))
    assert ask(ease, group, user_id="u45")["source"] == "model"
    assert ease.describe_campaign(group, "c")["source"] == "model"


def test_rules_can_order_by_newest_and_obey_a_metadata_rule(ease: Engine, group: str) -> None:
    ease.put_schema(group, "items", {"GENRES": "categorical", "CREATION_TIMESTAMP": "timestamp"})
    ease.put_items(group, [
        ItemIn(item_id="fresh-a", properties={"GENRES": "a", "CREATION_TIMESTAMP": 9_000_000}),
        ItemIn(item_id="fresh-b", properties={"GENRES": "b", "CREATION_TIMESTAMP": 9_500_000}),
        ItemIn(item_id="old-b", properties={"GENRES": "b", "CREATION_TIMESTAMP": 10}),
    ])  # fmt: skip
    ease.create_filter(group, "only-b", 'INCLUDE ItemID WHERE Items.GENRES IN ("b")')
    ease.create_campaign(group, "c", "for-you", config={"rules": {"order": "newest"}})
    newest = ids(ask(ease, group, user_id=None, k=3))
    assert newest[:2] == ["fresh-b", "fresh-a"]

    ease.update_campaign(group, "c", config={"rules": {"order": "newest", "filter": "only-b"}})
    answer = ids(ask(ease, group, user_id=None, k=10))
    assert answer[:2] == ["fresh-b", "old-b"] and "fresh-a" not in answer
    assert set(answer[2:]) <= CLUSTER_B  # items without a creation time follow, by popularity


def test_trending_rules_count_only_the_window(ease: Engine, group: str) -> None:
    ease.create_campaign(group, "c", "for-you", config={"rules": {"order": "trending",
                                                                  "window_days": 1}})  # fmt: skip
    now = int(time.time())
    for user in range(5):
        ease.put_events(group, watch(f"fan{user}", ["i39", "i38"], at=now - 60))
    assert ids(ask(ease, group, user_id=None, k=2)) == ["i39", "i38"]


# the result cache ---------------------------------------------------------------------------------
def test_answers_are_cached_until_the_user_acts(ease: Engine, group: str) -> None:
    ease.train(group, "for-you")
    ease.create_campaign(group, "c", "for-you", config={"min_interactions": 0})
    hits = observability.CACHE_HITS.labels("campaign_answers")._value.get()
    first = ask(ease, group, user_id="newcomer", k=5)
    again = ask(ease, group, user_id="newcomer", k=5)
    assert (first["cache"], again["cache"]) == ("miss", "hit")
    assert observability.CACHE_HITS.labels("campaign_answers")._value.get() == hits + 1
    assert again["recommendationId"] == first["recommendationId"]

    ease.put_events(group, watch("newcomer", ["i25", "i26", "i27"], at=2_000_000))
    time.sleep(0.01)  # the cache reads new events at most every 5 ms
    after = ask(ease, group, user_id="newcomer", k=5)
    assert after["cache"] == "miss" and ids(after) != ids(first)
    assert set(ids(after)) <= CLUSTER_B - {"i25", "i26", "i27"}
    other = ask(ease, group, user_id="u1", k=5)
    assert ask(ease, group, user_id="u1", k=5)["recommendationId"] == other["recommendationId"]


def test_other_filter_values_are_other_entries(ease: Engine, group: str) -> None:
    ease.train(group, "for-you")
    ease.create_filter(group, "genre", "INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    ease.create_campaign(group, "c", "for-you", config={"min_interactions": 0})
    as_a = ask(ease, group, user_id="u45", k=5, filter_name="genre", filter_values={"G": "a"})
    as_b = ask(ease, group, user_id="u45", k=5, filter_name="genre", filter_values={"G": "b"})
    assert as_b["cache"] == "miss"
    assert set(ids(as_a)) <= CLUSTER_A and set(ids(as_b)) <= CLUSTER_B


def test_ttl_expiry_and_no_cache(ease: Engine, group: str) -> None:
    ease.train(group, "for-you")
    ease.create_campaign(group, "c", "for-you",
                         config={"min_interactions": 0, "cache_ttl_seconds": 0.2})  # fmt: skip
    ask(ease, group, user_id="u1")
    time.sleep(0.3)
    assert ask(ease, group, user_id="u1")["cache"] == "miss"
    ease.update_campaign(group, "c", config={"cache_ttl_seconds": 0})
    assert ask(ease, group, user_id="u1")["cache"] == "off"


def test_a_new_deployment_is_never_answered_from_the_old_cache(ease: Engine, group: str) -> None:
    first = ease.train(group, "for-you")
    second = ease.train(group, "for-you")
    ease.create_campaign(group, "c", "for-you", version=first.id, config={"min_interactions": 0})
    ask(ease, group, user_id="u1")
    ease.update_campaign(group, "c", version=second.id)
    answer = ask(ease, group, user_id="u1")
    assert answer["cache"] == "miss" and answer["solutionVersionId"] == second.id


# deployment ---------------------------------------------------------------------------------------
def test_update_rollback_and_delete(ease: Engine, group: str) -> None:
    first = ease.train(group, "for-you")
    second = ease.train(group, "for-you")
    record = ease.create_campaign(group, "c", "for-you", version=first.id)
    assert (record.deployed, record.previous) == (first.id, None)
    with pytest.raises(InvalidInput, match="no previous deployment"):
        ease.rollback_campaign(group, "c")

    updated = ease.update_campaign(group, "c", version=second.id)
    assert (updated.deployed, updated.previous) == (second.id, first.id)
    back = ease.rollback_campaign(group, "c")
    assert (back.deployed, back.previous) == (first.id, second.id)
    assert ease.rollback_campaign(group, "c").deployed == second.id

    ease.delete_campaign(group, "c")
    with pytest.raises(NotFound, match="campaign 'c'"):
        ask(ease, group, user_id="u1")


def test_bad_deployments_change_nothing(ease: Engine, group: str) -> None:
    version = ease.train(group, "for-you")
    ease.create_campaign(group, "c", "for-you", version=version.id)
    with pytest.raises(NotFound, match="sv-nope"):
        ease.update_campaign(group, "c", version="sv-nope")
    with pytest.raises(InvalidInput, match="cache_ttl_seconds"):
        ease.update_campaign(group, "c", config={"cache_ttl_seconds": -1})
    with pytest.raises(InvalidInput, match="unknown_key"):
        ease.update_campaign(group, "c", config={"unknown_key": 1})
    with pytest.raises(NotFound, match="filter 'missing'"):
        ease.update_campaign(group, "c", config={"rules": {"filter": "missing"}})
    with pytest.raises(NotFound, match="solution 'nope'"):
        ease.create_campaign(group, "d", "nope")
    with pytest.raises(InvalidInput, match="campaign name"):
        ease.create_campaign(group, "bad name!", "for-you")
    record = ease.get_campaign(group, "c")
    assert record.deployed == version.id and record.config["cache_ttl_seconds"] == 600


# promotions ---------------------------------------------------------------------------------------
def test_a_share_of_the_answer_comes_from_the_promotion(ease: Engine, group: str) -> None:
    ease.train(group, "for-you")
    ease.create_filter(group, "genre-a", 'INCLUDE ItemID WHERE Items.GENRES IN ("a")')
    ease.create_campaign(group, "c", "for-you", config={"min_interactions": 0})
    plain = ids(ask(ease, group, user_id="u45", k=10))
    promotion = Promotion(name="house", percent=20, filter_name="genre-a")
    answer = ask(ease, group, user_id="u45", k=10, promotions=(promotion,))
    promoted = [i["itemId"] for i in answer["itemList"] if i.get("promotionName") == "house"]
    regular = [i["itemId"] for i in answer["itemList"] if "promotionName" not in i]
    assert len(promoted) == 2 and set(promoted) <= CLUSTER_A  # u45 would never get them
    assert regular == plain[:8] and len(set(ids(answer))) == 10


def test_merging_keeps_orders_and_removes_duplicates() -> None:
    regular = [Scored(f"r{i}", 1.0) for i in range(10)]
    promoted = [Scored("p0", 1.0), Scored("r3", 1.0)]
    merged = merge_promoted(regular, promoted, "promo", 6, seed="rec-1")
    assert merged == merge_promoted(regular, promoted, "promo", 6, seed="rec-1")
    assert [m["itemId"] for m in merged if "promotionName" in m] == ["p0", "r3"]
    assert [m["itemId"] for m in merged if "promotionName" not in m] == ["r0", "r1", "r2", "r4"]


def test_bad_promotions_are_named(ease: Engine, group: str) -> None:
    ease.create_campaign(group, "c", "for-you")
    with pytest.raises(InvalidInput, match="percentPromotedItems"):
        ask(ease, group, user_id="u1", promotions=(Promotion("x", 0, "f"),))
    with pytest.raises(NotFound, match="filter 'f'"):
        ask(ease, group, user_id="u1", promotions=(Promotion("x", 10, "f"),))


def test_similar_items_and_ranking_through_a_campaign(loaded: Engine, group: str) -> None:
    loaded.create_solution(group, "like", {"recipe": "similar-items"})
    loaded.train(group, "like")
    loaded.create_campaign(group, "c", "like", config={"min_interactions": 0})
    assert set(ids(ask(loaded, group, item_id="i30", k=5))) <= CLUSTER_B
    ranked = ask(loaded, group, user_id="u45", input_list=("i1", "i30", "zzz"), k=3)
    assert ids(ranked)[-1] == "zzz" and len(ids(ranked)) == 3


def test_rules_rank_new_events_without_retraining(ease: Engine, group: str) -> None:
    ease.create_campaign(group, "c", "for-you", config={"cache_ttl_seconds": 0})
    assert ids(ask(ease, group, user_id=None, k=1)) != ["i39"]
    ease.put_events(group, watch("burst", ["i39"] * 30, at=4_000_000))
    ease.campaigns.rules.clear()  # rules are rebuilt every 30 s; here at once
    assert ids(ask(ease, group, user_id=None, k=1)) == ["i39"]


def test_versions_load_once_under_concurrent_requests(ease: Engine, group: str) -> None:
    import threading

    from tastebud.serving.versions import VersionCache

    loads: list[str] = []
    version = ease.train(group, "for-you")

    def slow_load(version_id: str) -> Any:
        loads.append(version_id)
        time.sleep(0.05)
        return ease.recommender._load_version(version_id)

    cache = VersionCache(slow_load, refresh=lambda v: v, max_age=0.05)
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(version.id)))
               for _ in range(8)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == [version.id] and len({id(v) for v in got}) == 1
    time.sleep(0.06)
    assert cache.get(version.id) is got[0]  # stale: still answers while it is refreshed
    assert loads == [version.id]  # refreshing re-masks erasures; it does not reload artifacts


def test_the_new_items_check_reads_no_id_while_no_item_was_added(
    ease: Engine, group: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = ease.store.vocabulary(group, "item")
    with monkeypatch.context() as patched:
        patched.setattr(ease.store, "vocabulary", lambda *args: pytest.fail("ids were read"))
        assert new_items_version(ease.store, group, trained) is None
    ease.put_items(group, [ItemIn(item_id="brand-new", properties={"GENRES": "b"})])
    version = new_items_version(ease.store, group, trained)
    assert version is not None
    scorable = np.flatnonzero(np.isfinite(version.popularity))
    assert version.items.ids(scorable) == ["brand-new"]


def test_items_added_after_training_are_recommended_without_retraining(
    ease: Engine, group: str
) -> None:
    ease.train(group, "for-you")
    config = {"min_interactions": 0, "cache_ttl_seconds": 0}  # cached answers: after their TTL
    ease.create_campaign(group, "c", "for-you", config=config)
    before = ids(ask(ease, group, user_id="u45", k=10))
    assert not any(item.startswith("brand-new") for item in before)
    ease.put_items(group, [ItemIn(item_id="brand-new", properties={"GENRES": "b"})])
    ease.campaigns.rules.clear()  # rebuilt every 30 s; here at once
    after = ids(ask(ease, group, user_id="u45", k=10))
    assert after[9] == "brand-new" and after[:9] == before[:9]  # every 10th place at 10%
    ease.update_campaign(group, "c", config={"new_items_share": 0})
    assert "brand-new" not in ids(ask(ease, group, user_id="u45", k=10))
