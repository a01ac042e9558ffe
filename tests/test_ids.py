"""Vocabulary: external ids <-> dense indexes, checked with generated ids."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tastebud.errors import NotFound
from tastebud.ids import Vocabulary

IDS = st.text(min_size=1, max_size=12)
ID_LISTS = st.lists(IDS, max_size=40)


@given(ID_LISTS)
def test_extend_then_lookups_round_trip(ids: list[str]) -> None:
    vocab = Vocabulary()
    indices = vocab.extend(ids)
    distinct = list(dict.fromkeys(ids))  # first-seen order
    assert indices.dtype == np.int32
    assert len(vocab) == len(distinct)
    assert [vocab.id(i) for i in range(len(vocab))] == distinct  # dense 0..n-1, first seen first
    assert vocab.ids(indices.tolist()) == ids
    assert [vocab.index(v) for v in ids] == indices.tolist()
    assert vocab.indices(ids).tolist() == indices.tolist()
    assert all(v in vocab for v in ids)


@given(ID_LISTS, ID_LISTS)
def test_indexes_are_stable_under_appends(first: list[str], second: list[str]) -> None:
    vocab = Vocabulary()
    before = dict(zip(first, vocab.extend(first).tolist(), strict=True))
    size = len(vocab)
    after = vocab.extend(second)
    for external_id, index in before.items():
        assert vocab.index(external_id) == index
    new = [v for v in dict.fromkeys(second) if v not in before]
    assert [vocab.index(v) for v in new] == list(range(size, size + len(new)))
    assert len(vocab) == size + len(new)
    assert after.tolist() == [vocab.index(v) for v in second]


@given(ID_LISTS, ID_LISTS)
def test_indices_gives_minus_one_for_unknown_ids(known: list[str], queried: list[str]) -> None:
    distinct = list(dict.fromkeys(known))
    vocab = Vocabulary(distinct)
    result = vocab.indices(queried)
    assert result.dtype == np.int32
    assert result.shape == (len(queried),)
    for value, index in zip(queried, result.tolist(), strict=True):
        assert index == (distinct.index(value) if value in distinct else -1)
        assert vocab.get(value) == index


@settings(max_examples=50)
@given(ID_LISTS, st.data())
def test_save_and_load_keep_every_index_and_empty_slot(ids: list[str], data: st.DataObject) -> None:
    distinct = list(dict.fromkeys(ids))
    holes = data.draw(st.sets(st.integers(0, max(len(distinct) - 1, 0)))) if distinct else set()
    table: list[str | None] = [None if i in holes else v for i, v in enumerate(distinct)]
    vocab = Vocabulary(table)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "vocab.json"
        vocab.save(path)
        loaded = Vocabulary.load(path)
    assert len(loaded) == len(vocab)
    assert loaded.ids(range(len(loaded))) == table
    for index, value in enumerate(table):
        if value is None:
            with pytest.raises(NotFound):
                loaded.id(index)
        else:
            assert loaded.index(value) == index


def test_unknown_ids_and_indexes_are_not_found() -> None:
    vocab = Vocabulary(["a", None, "c"])
    with pytest.raises(NotFound, match="'zz'"):
        vocab.index("zz")
    for index in (-1, 1, 3):
        with pytest.raises(NotFound, match=str(index)):
            vocab.id(index)
    assert vocab.get("zz") == -1 and vocab.get("zz", 7) == 7
    assert None not in vocab
    assert vocab.extend(["d"]).tolist() == [3]  # the empty slot 1 is never reused


def test_repeated_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        Vocabulary(["a", "b", "a"])
    assert len(Vocabulary(["a", None, None, "b"])) == 4  # many empty slots are fine


def test_empty_vocabulary() -> None:
    vocab = Vocabulary()
    assert len(vocab) == 0
    assert vocab.indices([]).dtype == np.int32
    assert vocab.indices(["x"]).tolist() == [-1]
    assert vocab.extend([]).tolist() == []
