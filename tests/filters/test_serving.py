"""Filters by name in every recommendation path of the engine (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tastebud.engine import Engine
from tastebud.errors import AlreadyExists, FilterSyntaxError, InvalidInput, NotFound
from tastebud.filters import FilterRequest, FilterRuntime
from tastebud.ingest import ItemIn, PutEventsRequest, UserIn
from tastebud.serving import VersionRef
from tests.serving.conftest import write_clustered

POPULAR: VersionRef = {"solution": "popular"}
GENRE_B = {f"i{i}" for i in range(20, 40)}  # write_clustered: i0..i19 are "a", i20..i39 "b"


@pytest.fixture
def trained(engine: Engine, group: str, tmp_path: Path) -> Engine:
    """Clustered data (u0..u29 only touch genre a) and a trained popularity solution."""
    interactions, items = write_clustered(tmp_path)
    engine.put_schema(group, "items", {"GENRES": "categorical"})
    engine.put_schema(group, "users", {"TIER": "categorical"})
    engine.import_file(group, "interactions", interactions, mode="full")
    engine.import_file(group, "items", items, mode="full")
    engine.create_solution(group, "popular", {"recipe": "popularity-count"})
    engine.train(group, "popular")
    return engine


def ids(answer: object) -> list[str]:
    return [r.id for r in answer.results]  # type: ignore[attr-defined]


def test_filter_resources_are_validated_on_create(trained: Engine, group: str) -> None:
    record = trained.create_filter(group, "genre", "INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    assert record.expression == "INCLUDE ItemID WHERE Items.GENRES IN ($G)"
    assert [f.name for f in trained.list_filters(group)] == ["genre"]
    with pytest.raises(AlreadyExists, match="filter 'genre' already exists"):
        trained.create_filter(group, "genre", "INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    with pytest.raises(InvalidInput, match=r"Items\.PRICE: unknown field; items fields are"):
        trained.create_filter(group, "cheap", "INCLUDE ItemID WHERE Items.PRICE < 10")
    with pytest.raises(FilterSyntaxError, match="column 16: expected WHERE"):
        trained.create_filter(group, "bad", "INCLUDE ItemID Items.GENRES IN ($G)")
    with pytest.raises(InvalidInput, match="filter name 'no spaces'"):
        trained.create_filter(group, "no spaces", "INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    assert trained.get_filter(group, "genre").name == "genre"
    trained.delete_filter(group, "genre")
    with pytest.raises(NotFound, match="filter 'genre' does not exist"):
        trained.recommender.recommend(group, POPULAR, user_id="u0", filter_name="genre")


def test_recommendations_still_fill_num_results(trained: Engine, group: str) -> None:
    trained.create_filter(group, "genre", "INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    plain = ids(trained.recommender.recommend(group, POPULAR, user_id="u0", k=10))
    assert not set(plain) <= GENRE_B  # both genres are popular
    answer = trained.recommender.recommend(
        group, POPULAR, user_id="u0", k=10, filter_name="genre", filter_values={"G": ["b"]}
    )
    assert len(answer.results) == 10 and set(ids(answer)) <= GENRE_B
    scores = [r.score or 0.0 for r in answer.results]
    assert scores == sorted(scores, reverse=True)  # still in model order
    everything = trained.recommender.recommend(
        group, POPULAR, user_id="u0", k=50, filter_name="genre", filter_values={"$G": "b"}
    )
    assert set(ids(everything)) == GENRE_B  # all 20 pass, no more


def test_interactions_filter_reads_the_users_latest_events(trained: Engine, group: str) -> None:
    trained.create_filter(
        group, "unwatched", 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("watch")'
    )

    def top3() -> list[str]:
        answer = trained.recommender.recommend(
            group, POPULAR, user_id="u0", k=3, exclude_seen=False, filter_name="unwatched"
        )
        return ids(answer)

    first = top3()
    watched = {"userId": "u0", "eventList": [{"itemId": first[0], "eventType": "WATCH"}]}
    trained.put_events(group, PutEventsRequest.model_validate(watched))
    after = top3()
    assert first[0] not in after and after[:2] == first[1:]


def test_ranking_drops_what_the_filter_excludes(trained: Engine, group: str) -> None:
    trained.create_filter(group, "genre", "INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    ranked = trained.recommender.rank(
        group, POPULAR, user_id="u0", item_ids=["i1", "i25", "new", "i2", "i30"],
        filter_name="genre", filter_values={"G": ["a"]},
    )  # fmt: skip
    assert sorted(ids(ranked)) == ["i1", "i2"]  # "new" has no metadata: an INCLUDE drops it
    trained.create_filter(group, "not-b", 'EXCLUDE ItemID WHERE Items.GENRES IN ("b")')
    kept = trained.recommender.rank(group, POPULAR, user_id="u0",
                                    item_ids=["i25", "new", "i2"], filter_name="not-b")  # fmt: skip
    assert ids(kept) == ["i2", "new"]


def test_current_item_in_similar_items(trained: Engine, group: str) -> None:
    trained.create_solution(group, "like", {"recipe": "similar-items"})
    trained.train(group, "like")
    trained.create_filter(
        group, "other-genre", "EXCLUDE ItemID WHERE Items.GENRES IN CurrentItem.GENRES"
    )
    like: VersionRef = {"solution": "like"}
    plain = ids(trained.recommender.similar_items(group, like, item_id="i0", k=5))
    assert not set(plain) & GENRE_B
    other = trained.recommender.similar_items(
        group, like, item_id="i0", k=5, filter_name="other-genre"
    )
    assert len(other.results) == 5 and set(ids(other)) <= GENRE_B  # filled from popularity
    with pytest.raises(InvalidInput, match="uses CurrentItem: only similar-items requests"):
        trained.recommender.recommend(group, POPULAR, user_id="u0", filter_name="other-genre")


def test_segments_take_user_filters(trained: Engine, group: str) -> None:
    trained.create_solution(group, "affinity", {"recipe": "item-affinity"})
    trained.train(group, "affinity")
    gold = [f"u{u}" for u in range(0, 60, 3)]
    trained.put_users(group, [UserIn(user_id=u, properties={"TIER": "gold"}) for u in gold])
    trained.create_filter(group, "tier", "INCLUDE UserID WHERE Users.TIER IN ($TIER)")
    segment = trained.recommender.users_for_item(
        group, {"solution": "affinity"}, item_id="i0", k=10, filter_name="tier",
        filter_values={"TIER": ["gold"]},
    )  # fmt: skip
    assert len(segment.results) == 10 and set(ids(segment)) <= set(gold)
    with pytest.raises(InvalidInput, match="filter 'tier' filters UserID, and this request needs"):
        trained.recommender.recommend(group, POPULAR, user_id="u0", filter_name="tier")
    trained.create_filter(group, "genre", "INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    with pytest.raises(InvalidInput, match="filters ItemID, and this request needs one that "
                                           "filters UserID"):  # fmt: skip
        trained.recommender.users_for_item(
            group, {"solution": "affinity"}, item_id="i0", filter_name="genre"
        )


def test_if_reads_the_current_users_profile(trained: Engine, group: str) -> None:
    trained.put_users(group, [UserIn(user_id="u0", properties={"TIER": "kid"})])
    trained.create_filter(
        group, "kids", 'INCLUDE ItemID WHERE Items.GENRES IN ("b") IF CurrentUser.TIER IN ("kid")'
    )
    trained.create_filter(group, "b-only", 'INCLUDE ItemID WHERE Items.GENRES IN ("b")')

    def top5(user: str, name: str | None) -> list[str]:
        return ids(trained.recommender.recommend(group, POPULAR, user_id=user, k=5,
                                                 filter_name=name))  # fmt: skip

    assert top5("u0", "kids") == top5("u0", "b-only") != top5("u0", None)
    assert top5("u1", "kids") == top5("u1", None)  # no profile: the IF fails, no filtering


def test_request_mistakes(trained: Engine, group: str) -> None:
    trained.create_filter(group, "genre", "INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    recommend = trained.recommender.recommend
    with pytest.raises(InvalidInput, match=r"no value for \$G"):
        recommend(group, POPULAR, user_id="u0", filter_name="genre")
    with pytest.raises(InvalidInput, match="filterValues: given without a filterName"):
        recommend(group, POPULAR, user_id="u0", filter_values={"G": ["a"]})
    with pytest.raises(InvalidInput, match=r"\$X is not a parameter of filter 'genre'"):
        recommend(group, POPULAR, user_id="u0", filter_name="genre",
                  filter_values={"G": ["a"], "X": ["b"]})  # fmt: skip


def test_item_changes_are_seen_after_the_refresh_delay(trained: Engine, group: str) -> None:
    trained.create_filter(group, "genre", "INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    version = trained.recommender.resolve_version(group, **POPULAR)
    runtime = FilterRuntime(trained.store, ttl=0.0)  # always stale: rebuilt on every request

    def genre_c() -> int:
        compiled = runtime.get(group, "genre", version_id=version.id, items=version.items,
                               users=version.users)  # fmt: skip
        candidates, _ = compiled.select(FilterRequest(values={"G": ["c"]})).first(40)
        return len(candidates) if candidates is not None else -1

    assert genre_c() == 0
    trained.put_items(group, [ItemIn(item_id="i3", properties={"GENRES": ["a", "c"]})])
    assert genre_c() == 1
    cached = FilterRuntime(trained.store, ttl=3600.0)
    first = cached.get(group, "genre", version_id=version.id, items=version.items,
                       users=version.users)  # fmt: skip
    assert cached.get(group, "genre", version_id=version.id, items=version.items,
                      users=version.users) is first  # fmt: skip
