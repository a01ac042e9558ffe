"""sequential's intent heads: the next event type and genre, steering the next item."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from tastebud.errors import InvalidInput
from tastebud.recipes import Query, TrainingData, get_recipe
from tastebud.recipes.sequential import SequentialModel
from tests.recipes.contract import check_contract, contract_query
from tests.recipes.test_sequential import TINY, fit

N_ITEMS, N_GENRES = 24, 3  # item i has genre i % 3
WALKS = 80  # training users
KINDS = ("buy", "view")
INTENT = {**TINY, "intent_heads": True, "epochs": 40, "hidden": 32, "batch_size": 32,
          "lr": 0.01, "dropout": 0.0, "validation_users": 0, "exclude_seen": False}  # fmt: skip


def planted_walk(rng: np.random.Generator, length: int) -> list[tuple[int, int]]:
    """``(item, kind)`` events: each next item's genre is the previous one's + 1 (mod 3), the
    item drawn at random within it; the event types alternate (view, buy, view, ...) from a
    random start."""
    genre, kind = int(rng.integers(N_GENRES)), int(rng.integers(2))
    events = []
    for _ in range(length):
        events.append((genre + N_GENRES * int(rng.integers(N_ITEMS // N_GENRES)), kind))
        genre, kind = (genre + 1) % N_GENRES, 1 - kind
    return events


def planted_data(walks: list[list[tuple[int, int]]]) -> TrainingData:
    users = np.concatenate([np.full(len(w), u) for u, w in enumerate(walks)])
    steps = np.concatenate([np.arange(len(w)) for w in walks])
    events = np.concatenate(walks)
    order = np.lexsort((users, steps))
    genres = sp.csr_matrix((np.ones(N_ITEMS, np.float32),
                            (np.arange(N_ITEMS), np.arange(N_ITEMS) % N_GENRES)))  # fmt: skip
    return TrainingData(
        users=users[order].astype(np.int32), items=events[order, 0].astype(np.int32),
        timestamps=(1_000_000 + 60 * np.arange(len(order))).astype(np.int64),
        weights=np.ones(len(order), np.float32), n_users=len(walks), n_items=N_ITEMS,
        event_types=events[order, 1].astype(np.int32), event_type_names=KINDS,
        item_features=genres, feature_names=tuple(f"GENRES=g{g}" for g in range(N_GENRES)),
    )  # fmt: skip


def planted_query(walks: list[list[tuple[int, int]]]) -> Query:
    """Each walk but its last event as history."""
    history = [event for walk in walks for event in walk[:-1]]
    return Query(
        users=np.full(len(walks), -1, np.int32),
        history_indptr=np.arange(0, len(history) + 1, len(walks[0]) - 1, dtype=np.int64),
        history_items=np.array([item for item, _ in history], np.int32),
        # as far apart as each user's training events (the time bias reads the gaps)
        history_timestamps=1_000 + 60 * WALKS * np.arange(len(history), dtype=np.int64),
        history_event_types=np.array([kind for _, kind in history], np.int32),
        event_type_names=KINDS,
    )


@pytest.fixture(scope="module")
def planted() -> tuple[SequentialModel, list[list[tuple[int, int]]]]:
    rng = np.random.default_rng(0)
    model = fit(planted_data([planted_walk(rng, 12) for _ in range(WALKS)]), INTENT)
    return model, [planted_walk(rng, 6) for _ in range(200)]


def test_heads_learn_the_planted_genre_and_event_type_rules(
    planted: tuple[SequentialModel, list[list[tuple[int, int]]]],
) -> None:
    model, held_out = planted
    intents = model.predict_intent(planted_query(held_out))
    genre = [max(i["GENRES"], key=i["GENRES"].__getitem__) for i in intents]
    kind = [max(i["eventType"], key=i["eventType"].__getitem__) for i in intents]
    genres, kinds = (
        [f"g{w[-1][0] % N_GENRES}" for w in held_out],
        [KINDS[w[-1][1]] for w in held_out],
    )
    assert np.mean(np.array(genre) == genres) >= 0.95
    assert np.mean(np.array(kind) == kinds) >= 0.95
    # the last genre, a simple baseline, is never right on this rule
    assert all(w[-2][0] % N_GENRES != w[-1][0] % N_GENRES for w in held_out)
    assert set(intents[0]) == {"eventType", "GENRES"} and len(intents[0]["GENRES"]) == 3
    assert abs(sum(intents[0]["GENRES"].values()) - 1.0) < 1e-3


def test_intent_steers_the_next_item_towards_the_predicted_genre(
    planted: tuple[SequentialModel, list[list[tuple[int, int]]]],
) -> None:
    model, held_out = planted
    best = model.score(planted_query(held_out)).argmax(1)
    assert np.mean(best % N_GENRES == [w[-1][0] % N_GENRES for w in held_out]) >= 0.95
    vectors = model.intent_vectors(planted_query(held_out))
    assert vectors.shape == (len(held_out), 32) and np.isfinite(vectors).all()


def test_intent_survives_save_and_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = planted_data([planted_walk(rng, 8) for _ in range(20)])
    model = check_contract("sequential", data, {**TINY, "intent_heads": True}, tmp_path)
    assert isinstance(model, SequentialModel)
    query = contract_query(data)
    reloaded = get_recipe("sequential").load(tmp_path / "artifact")
    assert isinstance(reloaded, SequentialModel)
    assert reloaded.predict_intent(query) == model.predict_intent(query)
    assert model.predict_intent(query)[2] == {}  # an empty history has no intent
    assert np.isnan(model.intent_vectors(query)[2]).all()


def test_bad_intent_input_gets_a_clear_error() -> None:
    rng = np.random.default_rng(2)
    data = planted_data([planted_walk(rng, 8) for _ in range(10)])
    with pytest.raises(InvalidInput, match="'MOOD' is not an item field"):
        fit(data, {**TINY, "intent_heads": True, "intent_fields": ["MOOD"]})
    bare = TrainingData(
        users=data.users, items=data.items, timestamps=data.timestamps, weights=data.weights,
        n_users=data.n_users, n_items=data.n_items,
    )  # fmt: skip
    with pytest.raises(InvalidInput, match="needs a categorical item field or two event"):
        fit(bare, {**TINY, "intent_heads": True})
    plain = fit(data, TINY)
    with pytest.raises(InvalidInput, match="no intent heads"):
        plain.predict_intent(contract_query(data))
