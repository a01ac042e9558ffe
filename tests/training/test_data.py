"""Reading files and building TrainingData: order, vocabularies, features, weights, negatives."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from tastebud.errors import InvalidInput
from tastebud.evaluation.splits import leave_last_out
from tastebud.training import (
    SolutionDataConfig,
    build_training_data,
    categorical_columns,
    read_table,
    training_data_from_indexed,
)
from tastebud.training.data import context_columns

CSV = """user_id,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE,IMPRESSION
u1,007,10,click,1.0,007|b|zz
u2,b,1970-01-01T00:00:20Z,buy,,b|c
u1,b,10,click,3,
u1,c,5,buy,2,
"""


@pytest.fixture
def interactions() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "USER_ID": ["u1", "u2", "u1", "u1"],
            "ITEM_ID": ["007", "b", "b", "c"],
            "TIMESTAMP": ["10", "1970-01-01T00:00:20Z", "10", "5"],
            "EVENT_TYPE": ["click", "buy", "click", "buy"],
            "EVENT_VALUE": [1.0, None, 3.0, 2.0],
            "IMPRESSION": ["007|b|zz", "b|c", None, None],
        }
    )


@pytest.fixture
def items() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ITEM_ID": ["007", "b", "c", "d", "e", "f", "g"],
            "TITLE": ["Heat", "Up", "Big", "Jaws", "Alien", "Brazil", "Ran"],
            "GENRES": ["Action|Crime", "Comedy", "Comedy", "Action", "Action", "Comedy", "Comedy"],
            "YEAR": [1995, 2009, 1988, 1975, 1979, 1985, 1985],
            "CREATION_TIMESTAMP": ["100", None, "1970-01-02", "1", "2", "3", "4"],
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_read_table_formats_keep_ids_as_text(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"interactions{suffix}"
    if suffix == ".parquet":
        pl.read_csv(CSV.encode(), schema_overrides={"ITEM_ID": pl.String}).write_parquet(path)
    elif suffix == ".csv.gz":
        path.write_bytes(gzip.compress(CSV.encode()))
    else:
        path.write_text(CSV)
    frame = read_table(path)
    assert frame.columns[:3] == ["USER_ID", "ITEM_ID", "TIMESTAMP"]  # user_id canonicalized
    assert frame["ITEM_ID"].to_list() == ["007", "b", "b", "c"]  # the leading zeros stay
    assert frame["USER_ID"].dtype == pl.String


def test_read_table_integer_ids_in_parquet_become_text(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pl.DataFrame({"USER_ID": [1, 2], "ITEM_ID": [3, 4], "TIMESTAMP": [5, 6]}).write_parquet(path)
    assert read_table(path)["ITEM_ID"].to_list() == ["3", "4"]


def test_read_table_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"gone\.csv: no such file"):
        read_table(tmp_path / "gone.csv")
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(InvalidInput, match=r"data.json: unknown file type"):
        read_table(tmp_path / "data.json")
    (tmp_path / "short.csv").write_text("USER_ID,ITEM_ID\na,b\n")
    with pytest.raises(InvalidInput, match=r"short.csv: missing required column\(s\) TIMESTAMP"):
        read_table(tmp_path / "short.csv")
    (tmp_path / "items.csv").write_text("TITLE\nHeat\n")
    with pytest.raises(InvalidInput, match="ITEM_ID"):
        read_table(tmp_path / "items.csv", dataset="items")


def test_rows_sorted_by_time_ties_in_file_order(interactions: pl.DataFrame) -> None:
    data, users, item_vocabulary = build_training_data(interactions)
    # times 10, 20 (ISO), 10, 5 -> c(5), 007(10), b(10, later in the file), b(20)
    assert item_vocabulary.ids(data.items.tolist()) == ["c", "007", "b", "b"]
    assert users.ids(data.users.tolist()) == ["u1", "u1", "u1", "u2"]
    assert data.timestamps.tolist() == [5, 10, 10, 20]
    assert data.timestamps.dtype == np.int64 and data.items.dtype == np.int32
    assert data.weights.tolist() == [1.0, 1.0, 1.0, 1.0]
    # ids get indexes in order of first appearance in the file
    assert users.ids([0, 1]) == ["u1", "u2"]
    assert item_vocabulary.ids([0, 1, 2]) == ["007", "b", "c"]


def test_items_file_adds_cold_items_features_and_creation_times(
    interactions: pl.DataFrame, items: pl.DataFrame
) -> None:
    data, _, vocabulary = build_training_data(interactions, items)
    assert data.n_items == 7 and vocabulary.ids([3, 4, 5, 6]) == ["d", "e", "f", "g"]
    # TITLE: 7 distinct values for 7 items, not categorical; GENRES: 3 < 7 / 2; YEAR: a number
    assert data.feature_names == ("GENRES=Action", "GENRES=Comedy", "GENRES=Crime")
    assert data.item_features is not None
    assert data.item_features.toarray().tolist() == [
        [1, 0, 1],  # 007: Action|Crime
        [0, 1, 0],
        [0, 1, 0],
        [1, 0, 0],
        [1, 0, 0],
        [0, 1, 0],
        [0, 1, 0],
    ]
    assert data.item_created is not None
    assert data.item_created.tolist() == [100, -1, 86_400, 1, 2, 3, 4]


def test_explicit_categorical_columns(interactions: pl.DataFrame, items: pl.DataFrame) -> None:
    data, _, _ = build_training_data(interactions, items, item_categorical=["TITLE"])
    assert data.feature_names[:2] == ("TITLE=Alien", "TITLE=Big")
    assert data.item_features is not None and data.item_features.shape == (7, 7)
    with pytest.raises(InvalidInput, match="MOOD"):
        build_training_data(interactions, items, item_categorical=["MOOD"])


def test_without_items_there_is_no_metadata(interactions: pl.DataFrame) -> None:
    data, _, _ = build_training_data(interactions)
    assert data.item_features is None and data.feature_names == () and data.item_created is None


def test_impressions_without_interaction_are_negatives(interactions: pl.DataFrame) -> None:
    data, users, vocabulary = build_training_data(interactions)
    # u1 saw 007, b (both used) and zz (unknown: ignored); u2 saw b (used) and c (never used)
    assert users.ids(data.negative_users.tolist()) == ["u2"]
    assert vocabulary.ids(data.negative_items.tolist()) == ["c"]


def test_event_weights_select_and_weigh(interactions: pl.DataFrame) -> None:
    config = SolutionDataConfig(event_weights={"click": 2.5})
    data, _, vocabulary = build_training_data(interactions, config=config)
    assert vocabulary.ids(data.items.tolist()) == ["007", "b"]
    assert data.weights.tolist() == [2.5, 2.5]
    assert data.weights.dtype == np.float32
    # the vocabulary still holds every item
    assert data.n_items == 3


def test_min_event_value_drops_low_and_missing_values(interactions: pl.DataFrame) -> None:
    config = SolutionDataConfig(min_event_value=2.0)
    data, _, vocabulary = build_training_data(interactions, config=config)
    # 007 has 1.0 (too low), u2's b has no value; c (2.0) and u1's b (3.0) stay
    assert vocabulary.ids(data.items.tolist()) == ["c", "b"]


def test_solution_config_is_checked(interactions: pl.DataFrame) -> None:
    with pytest.raises(ValidationError, match="must be > 0"):
        SolutionDataConfig(event_weights={"click": 0.0})
    with pytest.raises(ValidationError):
        SolutionDataConfig(event_weight={"click": 1.0})  # type: ignore[call-arg]
    with pytest.raises(InvalidInput, match="no interactions left"):
        build_training_data(interactions, config=SolutionDataConfig(event_weights={"view": 1}))
    without_type = interactions.drop("EVENT_TYPE")
    with pytest.raises(InvalidInput, match="EVENT_TYPE"):
        build_training_data(without_type, config=SolutionDataConfig(event_weights={"buy": 1}))


def test_bad_values_are_named(interactions: pl.DataFrame) -> None:
    bad_time = interactions.with_columns(pl.Series("TIMESTAMP", ["1", "2", "soon", "4"]))
    with pytest.raises(InvalidInput, match=r"interactions\.TIMESTAMP.*'soon'"):
        build_training_data(bad_time)
    empty_user = interactions.with_columns(pl.Series("USER_ID", ["u1", None, "u1", "u1"]))
    with pytest.raises(InvalidInput, match=r"interactions.USER_ID: empty value \(row 2\)"):
        build_training_data(empty_user)


def test_indexed_frames_share_the_weighting(interactions: pl.DataFrame) -> None:
    frame = pl.DataFrame(
        {
            "user_index": pl.Series([1, 0, 0], dtype=pl.Int32),
            "item_index": pl.Series([2, 0, 1], dtype=pl.Int32),
            "timestamp": [30, 30, 10],
            "event_type": ["buy", "click", "buy"],
            "event_value": pl.Series([1.0, 5.0, None], dtype=pl.Float32),
        }
    )
    config = SolutionDataConfig(event_weights={"buy": 3.0, "click": 1.0})
    data = training_data_from_indexed(frame, n_users=2, n_items=3, config=config)
    assert data.items.tolist() == [1, 2, 0]  # by time, the tie at 30 in frame order
    assert data.weights.tolist() == [3.0, 3.0, 1.0]
    kept = training_data_from_indexed(
        frame, n_users=2, n_items=3, config=SolutionDataConfig(min_event_value=1.0)
    )
    assert kept.items.tolist() == [2, 0]
    with pytest.raises(InvalidInput, match="item_index"):
        training_data_from_indexed(frame, n_users=2, n_items=2)


def test_a_column_with_many_values_is_not_categorical(items: pl.DataFrame) -> None:
    assert categorical_columns(items) == ["GENRES"]
    # Action, Crime, Comedy, Drama: 4 values are not fewer than half of 7 items
    genres = ["Action|Crime", "Comedy", "Drama", "Action", "Action", "Comedy", "Comedy"]
    assert categorical_columns(items.with_columns(pl.Series("GENRES", genres))) == []


def test_event_types_values_and_context_travel_with_the_rows(
    interactions: pl.DataFrame,
) -> None:
    devices = pl.Series("DEVICE", ["tv", "phone", None, "tv"])
    data, _, _ = build_training_data(interactions.with_columns(devices))
    # rows by time: c (buy, 2, tv), 007 (click, 1.0, tv), b (click, 3, -), b (buy, -, phone)
    assert data.event_type_names == ("buy", "click")
    assert data.event_types is not None and data.event_types.tolist() == [0, 1, 1, 0]
    assert data.values is not None
    np.testing.assert_array_equal(data.values, [2.0, 1.0, 3.0, np.nan])
    assert data.context_fields == ("DEVICE",)
    assert data.context_names == ("DEVICE=phone", "DEVICE=tv")
    assert data.contexts is not None and data.contexts[:, 0].tolist() == [1, 1, -1, 0]
    kept = data.subset(np.array([False, True, True, False]))
    assert kept.event_types is not None and kept.event_types.tolist() == [1, 1]
    assert kept.contexts is not None and kept.contexts[:, 0].tolist() == [1, -1]


def test_without_event_columns_there_are_none() -> None:
    frame = pl.DataFrame({"USER_ID": ["u1", "u1"], "ITEM_ID": ["a", "b"], "TIMESTAMP": [1, 2]})
    data, _, _ = build_training_data(frame)
    assert data.event_types is None and data.values is None and data.contexts is None
    assert data.event_type_names == () and data.context_fields == ()


def test_ids_and_free_text_are_no_context(interactions: pl.DataFrame) -> None:
    many = interactions.with_columns(
        pl.Series("NOTE", [f"note {i}" for i in range(4)]),  # few rows: still a category
        pl.Series("SCORE", [0.5, 0.1, 0.2, 0.3]),  # a float is no category
    )
    assert context_columns(many) == ["NOTE"]
    wide = pl.DataFrame({"USER_ID": ["u"] * 700, "PAGE": [f"p{i}" for i in range(700)]})
    assert context_columns(wide) == []  # 700 distinct values in 700 rows: an id


def test_event_columns_reach_the_evaluation_queries(interactions: pl.DataFrame) -> None:
    data, _, _ = build_training_data(interactions.with_columns(pl.lit("tv").alias("DEVICE")))
    split = leave_last_out(data)  # u1: c (train), 007 (validation), b (test); u2 too short
    query = split.test.query
    assert query.history_items.tolist() == [2, 0]
    assert query.history_timestamps is not None
    assert query.history_timestamps.tolist() == [5, 10]
    assert query.history_event_types is not None
    names = [query.event_type_names[code] for code in query.history_event_types]
    assert names == ["buy", "click"]
    assert query.history_values is not None and query.history_values.tolist() == [2.0, 1.0]
    assert query.contexts == ({"DEVICE": "tv"},)
    assert query.times is not None and query.times.tolist() == [10]
    first = query.rows(0, 1)
    assert first.history_event_types is not None and len(first.history_event_types) == 2


def test_numerical_item_fields_are_kept_apart(
    interactions: pl.DataFrame, items: pl.DataFrame
) -> None:
    data, _, item_vocabulary = build_training_data(interactions, items)
    assert data.number_names == ("YEAR",) and data.item_numbers is not None
    years = dict(zip(item_vocabulary.ids(range(data.n_items)), data.item_numbers[:, 0].tolist(),
                     strict=True))  # fmt: skip
    assert years["007"] == 1995 and years["g"] == 1985
    assert all(not name.startswith("YEAR") for name in data.feature_names)
