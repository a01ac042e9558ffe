"""Splits on tiny hand-made data: exactly which interaction lands where."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tastebud.errors import InvalidInput
from tastebud.evaluation.splits import leave_last_out, time_holdout
from tastebud.recipes import TrainingData
from tastebud.training import build_training_data


def make_data(rows: list[tuple[int, int, int]], *, n_users: int, n_items: int) -> TrainingData:
    """``rows`` of (user, item, time), already in time order."""
    users, items, times = (np.array(column) for column in zip(*rows, strict=True))
    return TrainingData(
        users=users.astype(np.int32),
        items=items.astype(np.int32),
        timestamps=times.astype(np.int64),
        weights=np.ones(len(rows), np.float32),
        n_users=n_users,
        n_items=n_items,
    )


# user 0: 10, 13, then 15 and 16 at the same time (16 comes later in the data: it is last);
# user 1 has two interactions (trains, not scored); user 2: 12, 14, 18; user 3 has none.
LLO_ROWS = [
    (0, 10, 1), (1, 11, 1), (2, 12, 2), (0, 13, 2), (2, 14, 3),
    (0, 15, 5), (0, 16, 5), (1, 17, 6), (2, 18, 7),
]  # fmt: skip


def test_leave_last_out_puts_each_interaction_in_its_place() -> None:
    split = leave_last_out(make_data(LLO_ROWS, n_users=4, n_items=20))
    assert split.train.items.tolist() == [10, 11, 12, 13, 17]
    assert split.train.users.tolist() == [0, 1, 2, 0, 1]
    assert split.train_and_validation.items.tolist() == [10, 11, 12, 13, 14, 15, 17]
    assert split.validation.users.tolist() == [0, 2]
    assert split.validation.items.tolist() == [15, 14]
    assert split.validation.times.tolist() == [5, 3]
    assert split.test.users.tolist() == [0, 2]
    assert split.test.items.tolist() == [16, 18]
    assert split.test.times.tolist() == [5, 7]


def test_leave_last_out_histories_and_request_times() -> None:
    split = leave_last_out(make_data(LLO_ROWS, n_users=4, n_items=20))
    validation, test = split.validation.query, split.test.query
    assert validation.users.tolist() == [0, 2]
    assert [validation.history(i).tolist() for i in range(2)] == [[10, 13], [12]]
    assert [test.history(i).tolist() for i in range(2)] == [[10, 13, 15], [12, 14]]
    assert validation.times is not None and validation.times.tolist() == [5, 3]
    assert test.times is not None and test.times.tolist() == [5, 7]


def test_leave_last_k_out_holds_out_the_next_items_in_time_order() -> None:
    # user 0 has 7 interactions (scored), user 1 has 6 (trains only)
    rows = [(0, i, t) for t, i in enumerate([1, 2, 3, 4, 5, 6, 7])]
    rows += [(1, i, 10 + t) for t, i in enumerate([8, 9, 10, 11, 12, 13])]
    split = leave_last_out(make_data(rows, n_users=2, n_items=20), count=3)
    assert split.protocol == "leave-last-3-out"
    assert split.test.users.tolist() == [0] and split.test.relevant()[0].tolist() == [5, 6, 7]
    assert split.test.query.history(0).tolist() == [1, 2, 3, 4]
    assert split.test.times.tolist() == [4]  # the first held-out item's time
    assert split.validation.relevant()[0].tolist() == [2, 3, 4]
    assert split.validation.query.history(0).tolist() == [1]
    assert split.train.items.tolist() == [1, 8, 9, 10, 11, 12, 13]
    assert split.train_and_validation.items.tolist() == [1, 2, 3, 4, *range(8, 14)]
    with pytest.raises(InvalidInput, match="count must be at least 1"):
        leave_last_out(make_data(rows, n_users=2, n_items=20), count=0)


def test_leave_last_out_ties_keep_data_order() -> None:
    swapped = list(LLO_ROWS)
    swapped[5], swapped[6] = swapped[6], swapped[5]  # now 15 comes after 16 at time 5
    split = leave_last_out(make_data(swapped, n_users=4, n_items=20))
    assert split.test.items.tolist() == [15, 18]
    assert split.validation.items.tolist() == [16, 14]


def test_ties_keep_file_order_from_the_file_through_the_split() -> None:
    frame = pl.DataFrame(
        {
            "USER_ID": ["u", "u", "u", "u", "v"],
            "ITEM_ID": ["a", "b", "c", "d", "a"],
            "TIMESTAMP": [5, 1, 5, 3, 2],
        }
    )
    data, _, items = build_training_data(frame)
    split = leave_last_out(data)
    # time order b(1) d(3) a(5) c(5): c was written after a, so c is the last one
    assert items.ids(split.test.items.tolist()) == ["c"]
    assert items.ids(split.validation.items.tolist()) == ["a"]
    assert items.ids(split.validation.query.history(0).tolist()) == ["b", "d"]


def test_users_with_fewer_than_three_interactions_are_not_scored() -> None:
    rows = [(0, 1, 1), (0, 2, 2), (1, 3, 3), (1, 4, 4), (1, 5, 5)]
    split = leave_last_out(make_data(rows, n_users=2, n_items=6))
    assert split.test.users.tolist() == [1]
    assert split.train.users.tolist() == [0, 0, 1]


# 20 interactions, one per second; 10% = 2 rows: validation is t=16,17 and test t=18,19.
HOLDOUT_ROWS = (
    [(0, item, t) for t, item in enumerate([0, 1, 2, 3])]
    + [(1, item, t + 4) for t, item in enumerate([4, 5, 6])]
    + [(2, 7, 7), (2, 8, 8)]
    + [(4, item, t + 9) for t, item in enumerate(range(10, 17))]
    + [(0, 1, 16), (1, 9, 17), (3, 2, 18), (0, 17, 19)]
)


def test_time_holdout_windows() -> None:
    split = time_holdout(make_data(HOLDOUT_ROWS, n_users=5, n_items=20), fraction=0.1)
    assert split.train.size == 16
    assert split.train.timestamps.max() == 15
    assert split.train_and_validation.size == 18
    # user 0's validation event repeats an item from their history: not a target
    assert split.validation.users.tolist() == [1]
    assert split.validation.relevant()[0].tolist() == [9]
    assert split.validation.query.history(0).tolist() == [4, 5, 6]
    assert split.validation.times.tolist() == [17]


def test_time_holdout_scores_cold_users_with_an_empty_history() -> None:
    split = time_holdout(make_data(HOLDOUT_ROWS, n_users=5, n_items=20), fraction=0.1)
    test = split.test
    assert test.users.tolist() == [0, 3]
    assert [r.tolist() for r in test.relevant()] == [[17], [2]]
    assert test.query.users.tolist() == [0, -1]  # user 3 has no history: a cold query
    assert test.query.history(0).tolist() == [0, 1, 2, 3, 1]  # includes the validation event
    assert test.query.history(1).tolist() == []
    assert test.query.times is not None and test.query.times.tolist() == [19, 18]


def test_time_holdout_relevant_items_count_once_and_time_is_the_first_event() -> None:
    rows = [(1, 0, 0), (1, 1, 1), (1, 2, 2), (0, 3, 3), (1, 4, 4), (1, 7, 5), (1, 8, 6)]
    rows += [(0, 5, 7), (0, 6, 8), (0, 5, 9)]
    split = time_holdout(make_data(rows, n_users=2, n_items=10), fraction=0.3)
    assert split.test.users.tolist() == [0]
    assert split.test.relevant()[0].tolist() == [5, 6]
    assert split.test.times.tolist() == [7]
    assert split.test.query.history(0).tolist() == [3]
    assert split.validation.relevant()[0].tolist() == [4, 7, 8]


def test_time_holdout_needs_enough_rows() -> None:
    with pytest.raises(InvalidInput, match="more interactions"):
        time_holdout(make_data([(0, 1, 1), (0, 2, 2)], n_users=1, n_items=3))
    with pytest.raises(InvalidInput, match="fraction"):
        time_holdout(make_data(LLO_ROWS, n_users=4, n_items=20), fraction=0.7)
