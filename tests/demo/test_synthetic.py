"""The demo data generator: each realism property is checked against the answer it planted."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tastebud.demo import SyntheticData, generate
from tastebud.errors import InvalidInput

END = 1_767_225_600
DAY = 86_400
SMALL = {"n_users": 150, "n_items": 120, "days": 30}


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate()


def _rows(ids: pl.Series, universe: pl.Series) -> np.ndarray:
    """Row of each id in ``universe`` (the items or users frame)."""
    return ids.replace_strict(universe, np.arange(len(universe))).to_numpy()


def _by_user(interactions: pl.DataFrame) -> pl.DataFrame:
    return interactions.sort(["USER_ID", "TIMESTAMP"], maintain_order=True)


def test_frames_have_the_documented_columns(data: SyntheticData) -> None:
    assert data.items.schema == pl.Schema(
        {
            "ITEM_ID": pl.String,
            "TITLE": pl.String,
            "GENRES": pl.String,
            "CREATION_TIMESTAMP": pl.Int64,
            "YEAR": pl.Int64,
            "PRICE": pl.Float64,
        }
    )
    assert data.users.schema == pl.Schema(
        {"USER_ID": pl.String, "TIER": pl.String, "AGE_GROUP": pl.String}
    )
    assert data.interactions.schema == pl.Schema(
        {
            "USER_ID": pl.String,
            "ITEM_ID": pl.String,
            "TIMESTAMP": pl.Int64,
            "EVENT_TYPE": pl.String,
            "EVENT_VALUE": pl.Float64,
            "IMPRESSION": pl.String,
            "SESSION_ID": pl.String,
        }
    )
    assert (data.items.height, data.users.height) == (800, 2000)
    assert 100_000 <= data.interactions.height <= 200_000
    assert data.items["ITEM_ID"][0] == "i0001" and data.users["USER_ID"][-1] == "u2000"


def test_item_and_user_fields_are_readable(data: SyntheticData) -> None:
    items, genres = data.items, set(data.truth.genres)
    assert len(genres) == 12 and "Drama" in genres
    assert items["TITLE"].n_unique() == items.height
    assert items["TITLE"].str.contains(r"^[A-Z][A-Za-z' ]+(: Episode \d+)?( \d+)?$").all()
    for row in items["GENRES"].str.split("|").to_list():
        assert 1 <= len(row) <= 3 and len(set(row)) == len(row) and set(row) <= genres
    assert items["YEAR"].is_between(1950, 2026).all() and (items["PRICE"] >= 0).all()
    assert set(data.users["TIER"]) == {"free", "gold", "platinum"}
    assert data.users["AGE_GROUP"].n_unique() == 6


def test_event_fields_follow_the_event_type(data: SyntheticData) -> None:
    frame = data.interactions
    assert set(frame["EVENT_TYPE"]) == {"view", "click", "watch"}
    is_watch = frame["EVENT_TYPE"] == "watch"
    is_view = frame["EVENT_TYPE"] == "view"
    assert (frame["EVENT_VALUE"].is_not_null() == is_watch).all()
    assert (frame["IMPRESSION"].is_not_null() == is_view).all()
    minutes = frame.filter(is_watch)["EVENT_VALUE"]
    assert minutes.min() >= 1.0 and minutes.max() <= 180.0
    views = frame.filter(is_view)
    shelves = views["IMPRESSION"].str.split("|")
    assert shelves.list.len().is_between(5, 10).all()
    assert (shelves.list.n_unique() == shelves.list.len()).all()
    assert (
        views.select(pl.col("IMPRESSION").str.split("|").list.contains(pl.col("ITEM_ID")))
        .to_series()
        .all()
    )


def test_users_prefer_their_latent_genres(data: SyntheticData) -> None:
    truth = data.truth
    user = _rows(data.interactions["USER_ID"], data.users["USER_ID"])
    item = _rows(data.interactions["ITEM_ID"], data.items["ITEM_ID"])
    top2 = np.argsort(-truth.user_taste, axis=1)[:, :2]
    member = truth.item_genre_weight > 0
    in_top2 = member[item, top2[user, 0]] | member[item, top2[user, 1]]
    user_share = np.bincount(user, weights=in_top2) / np.bincount(user)
    catalogue_share = (member[:, top2[:, 0]] | member[:, top2[:, 1]]).mean(axis=0)
    assert np.mean(user_share > 1.5 * catalogue_share) > 0.8
    assert np.median(user_share) > 2 * np.median(catalogue_share)


def test_a_few_items_take_most_interactions(data: SyntheticData) -> None:
    item = _rows(data.interactions["ITEM_ID"], data.items["ITEM_ID"])
    counts = np.bincount(item, minlength=data.items.height)
    top_tenth = data.items.height // 10
    assert np.sort(counts)[::-1][:top_tenth].sum() / counts.sum() > 0.35
    # The planted popularity order is visible: its top tenth alone takes a large share.
    planted_top = np.argsort(-data.truth.item_popularity)[:top_tenth]
    assert counts[planted_top].sum() / counts.sum() > 0.3


def test_nothing_is_seen_before_it_exists(data: SyntheticData) -> None:
    created = dict(zip(data.items["ITEM_ID"], data.items["CREATION_TIMESTAMP"], strict=True))
    frame = data.interactions
    item = _rows(frame["ITEM_ID"], data.items["ITEM_ID"])
    creation = data.items["CREATION_TIMESTAMP"].to_numpy()
    assert (frame["TIMESTAMP"].to_numpy() >= creation[item]).all()
    assert frame["TIMESTAMP"].is_between(END - 120 * DAY, END).all()
    shown = frame.filter(pl.col("EVENT_TYPE") == "view").select(
        pl.col("TIMESTAMP"), pl.col("IMPRESSION").str.split("|")
    )
    for when, shelf in shown.head(5000).iter_rows():
        assert all(created[other] <= when for other in shelf)
    new_share = (data.items["CREATION_TIMESTAMP"] > END - 120 * DAY).mean()
    assert 0.1 < new_share < 0.3
    assert (data.items["CREATION_TIMESTAMP"] < END).all()


def test_events_come_in_sessions(data: SyntheticData) -> None:
    frame = _by_user(data.interactions).with_columns(
        gap=pl.col("TIMESTAMP").diff().over("USER_ID"),
        opens=pl.col("SESSION_ID") != pl.col("SESSION_ID").shift(1).over("USER_ID"),
    )
    within = frame.filter(pl.col("opens").not_())["gap"]
    between = frame.filter(pl.col("opens"))["gap"]
    assert (within > 0).all() and within.median() < 5 * 60
    assert between.min() >= 2 * 3600 and between.median() > 12 * 3600
    sessions = frame.group_by("SESSION_ID").agg(
        pl.col("USER_ID").n_unique().alias("users"), pl.col("ITEM_ID").n_unique().alias("items")
    )
    assert (sessions["users"] == 1).all() and sessions["items"].mean() > 2


def test_a_watch_follows_a_view_and_a_click_of_the_same_item(data: SyntheticData) -> None:
    frame = _by_user(data.interactions).with_columns(
        before=pl.col("EVENT_TYPE").shift(1).over("USER_ID")
        + pl.col("EVENT_TYPE").shift(2).over("USER_ID"),
        same_item=(pl.col("ITEM_ID") == pl.col("ITEM_ID").shift(1).over("USER_ID"))
        & (pl.col("ITEM_ID") == pl.col("ITEM_ID").shift(2).over("USER_ID")),
    )
    watches = frame.filter(pl.col("EVENT_TYPE") == "watch")
    assert (watches["before"] == "clickview").all() and watches["same_item"].all()


def test_the_next_watch_after_an_episode_is_often_the_next_episode(data: SyntheticData) -> None:
    watches = _by_user(data.interactions.filter(pl.col("EVENT_TYPE") == "watch"))
    item = _rows(watches["ITEM_ID"], data.items["ITEM_ID"])
    user = watches["USER_ID"].to_numpy()
    same_user = user[1:] == user[:-1]
    previous, following = item[:-1][same_user], item[1:][same_user]
    successor = data.truth.next_episode[previous]
    has_successor = successor >= 0
    rate = np.mean(successor[has_successor] == following[has_successor])
    shuffled = np.random.default_rng(0).permutation(following)
    chance = np.mean(successor[has_successor] == shuffled[has_successor])
    assert has_successor.sum() > 1000
    assert rate > 0.5 and rate > 20 * chance
    # The titles carry the same structure a reader can see.
    episodes = data.items.filter(pl.col("TITLE").str.contains(": Episode "))
    assert episodes.height == int((data.truth.item_episode > 0).sum())


def test_activity_is_skewed_but_every_user_has_three_events(data: SyntheticData) -> None:
    counts = data.interactions["USER_ID"].value_counts()["count"].to_numpy()
    assert len(counts) == data.users.height and counts.min() >= 3
    assert counts.max() > 10 * np.median(counts)
    assert np.sort(counts)[::-1][: len(counts) // 10].sum() / counts.sum() > 0.3


def test_same_seed_same_frames_other_seed_other_frames() -> None:
    first, again, other = generate(**SMALL), generate(**SMALL), generate(**SMALL, seed=1)
    for name in ("items", "users", "interactions"):
        assert getattr(first, name).equals(getattr(again, name))
        assert not getattr(first, name).equals(getattr(other, name))


def test_default_size_generates_quickly() -> None:
    started = time.perf_counter()
    generate()
    assert time.perf_counter() - started < 5.0  # about 0.5 s on a 2-core laptop


def test_write_csv_round_trips(tmp_path: Path) -> None:
    data = generate(**SMALL)
    paths = data.write_csv(tmp_path / "demo")
    assert sorted(paths) == ["interactions", "items", "users"]
    for name, path in paths.items():
        assert path.name == f"{name}.csv"
        frame = getattr(data, name)
        assert pl.read_csv(path, schema=frame.schema).equals(frame)


@pytest.mark.parametrize(
    "arguments",
    [{"n_users": 0}, {"n_items": 5}, {"n_genres": 1}, {"n_genres": 21}, {"days": 0}],
)
def test_out_of_range_arguments_are_refused(arguments: dict[str, int]) -> None:
    with pytest.raises(InvalidInput, match="generate"):
        generate(**arguments)


@settings(max_examples=25, deadline=None)
@given(
    n_users=st.integers(1, 40),
    n_items=st.integers(20, 80),
    n_genres=st.integers(2, 20),
    days=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
)
def test_invariants_hold_for_small_odd_sizes(
    n_users: int, n_items: int, n_genres: int, days: int, seed: int
) -> None:
    data = generate(n_users=n_users, n_items=n_items, n_genres=n_genres, days=days, seed=seed)
    frame = data.interactions
    assert frame["USER_ID"].value_counts()["count"].min() >= 3
    assert frame["USER_ID"].n_unique() == n_users
    assert frame["TIMESTAMP"].is_between(END - days * DAY, END).all()
    creation = data.items["CREATION_TIMESTAMP"].to_numpy()
    item = _rows(frame["ITEM_ID"], data.items["ITEM_ID"])
    assert (frame["TIMESTAMP"].to_numpy() >= creation[item]).all()
    created = dict(zip(data.items["ITEM_ID"], creation.tolist(), strict=True))
    views = frame.filter(pl.col("EVENT_TYPE") == "view")
    for chosen, when, shelf in views.select("ITEM_ID", "TIMESTAMP", "IMPRESSION").iter_rows():
        shown = shelf.split("|")
        existing = int((creation <= when).sum())
        assert chosen in shown and len(set(shown)) == len(shown)
        assert min(5, existing) <= len(shown) <= 10
        assert all(created[other] <= when for other in shown)
