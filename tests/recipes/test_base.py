"""The arrays recipes share: queries and training data."""

from __future__ import annotations

import numpy as np
import pytest

from tastebud.recipes import Query

from .conftest import clustered


def test_history_matrix_counts_each_item_once_and_keeps_the_newest() -> None:
    query = Query(
        users=np.array([0, 1, 2], np.int32),
        history_indptr=np.array([0, 3, 3, 5], np.int64),
        history_items=np.array([1, 2, 1, 4, 0], np.int32),
    )
    expected = [[0, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 1]]
    np.testing.assert_array_equal(query.history_matrix(5).toarray(), expected)
    newest = [[0, 1, 0, 0, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]]
    np.testing.assert_array_equal(query.history_matrix(5, last=1).toarray(), newest)


def test_query_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="one entry per user plus one"):
        Query(np.zeros(2, np.int32), np.zeros(2, np.int64), np.zeros(0, np.int32))
    with pytest.raises(ValueError, match="times"):
        Query(np.zeros(1, np.int32), np.zeros(2, np.int64), np.zeros(0, np.int32),
              times=np.zeros(3, np.int64))  # fmt: skip


def test_sequences_keep_time_order_per_user() -> None:
    data = clustered(n_users=4, n_items=8, per_user=3)
    indptr, items = data.sequences()
    assert list(np.diff(indptr)) == [3, 3, 3, 3]
    for user in range(4):
        np.testing.assert_array_equal(items[indptr[user] : indptr[user + 1]],
                                      data.items[data.users == user])  # fmt: skip
    matrix = data.user_item_matrix()
    assert matrix.shape == (4, 8) and matrix.sum() == data.weights.sum()
