"""sequential warm-start growth: a previous model grown to new items, trained on new events."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp

from tastebud.errors import InvalidInput
from tastebud.recipes import Query, TrainingData, parse_config
from tastebud.recipes.sequential import Sequential, SequentialConfig, SequentialModel
from tastebud.recipes.sequential import recipe as sequential_recipe
from tastebud.recipes.sequential.growth import Lineage, fit_incremental, grow, recent_windows
from tastebud.recipes.sequential.recipe import SMALL_DATA_DROPOUT
from tastebud.recipes.sequential.tokens import Events, Sequences
from tests.recipes.conftest import clustered

TINY = {"epochs": 6, "hidden": 16, "max_len": 8, "batch_size": 16, "validation_users": 8,
        "lr": 0.01}  # fmt: skip
NEW_A, NEW_B = 40, 41  # items added after the previous version: genre a, genre b


def fit(data: TrainingData, params: dict[str, object]) -> SequentialModel:
    recipe = Sequential()
    return recipe.fit(data, parse_config(recipe, params))


def grown_catalogue(data: TrainingData, *, fans: int) -> TrainingData:
    """``data`` with two more items (``NEW_A`` of genre a, ``NEW_B`` of genre b) and, after
    every earlier event, ``fans`` cluster-A users' events on ``NEW_A``."""
    assert data.item_features is not None
    features = sp.csr_matrix(
        sp.vstack([data.item_features, sp.csr_matrix(np.eye(2, dtype=np.float32))])
    )
    users = np.arange(fans, dtype=np.int32)  # users < 30 are cluster A
    start = int(data.timestamps.max()) + 1
    return replace(
        data, n_items=data.n_items + 2, item_features=features,
        users=np.concatenate([data.users, users]),
        items=np.concatenate([data.items, np.full(fans, NEW_A, np.int32)]),
        timestamps=np.concatenate([data.timestamps, start + np.arange(fans)]),
        weights=np.ones(data.size + fans, np.float32),
    )  # fmt: skip


# age_mix: a per-item buffer (interaction counts) that grows with the catalogue
@pytest.mark.parametrize("extra", [{}, {"age_mix": True}], ids=["plain", "age-mix"])
def test_growth_keeps_old_items_scores_and_starts_new_items_from_metadata(
    extra: dict[str, object],
) -> None:
    previous = fit(clustered(), {**TINY, **extra})
    data = grown_catalogue(clustered(), fans=20)
    network, codec = grow(previous, data, Lineage.same_items(previous, data))
    grown = SequentialModel(previous.config, network, np.zeros(data.n_items, np.float32),
                            codec=codec)  # fmt: skip
    query = Query.single(-1, [0, 3, 1, 2])  # a cluster-A history without new items
    before, after = previous.score(query), grown.score(query)
    assert after.shape == (1, 42)
    np.testing.assert_allclose(after[:, :40], before, rtol=1e-5, atol=1e-5)
    # NEW_A has events now: its id row is its genre's trained items' mean, so it scores like
    # them; NEW_B has none yet and is scored from its metadata alone (no id vector)
    ids = network.items.ids.weight.detach()
    a_rows = ids[1:21][previous.network.items.known[1:21, 0] > 0]
    assert float(ids[1 + NEW_A] @ a_rows.mean(0)) > 0.5 * float(a_rows.mean(0).norm() ** 2)
    assert network.items.known[1 + NEW_B, 0] == 0 and network.items.known[1 + NEW_A, 0] == 1
    assert after[0, NEW_A] > after[0, NEW_B]


def test_an_incremental_fit_serves_a_new_item_its_fans_took_up() -> None:
    previous = fit(clustered(), TINY)
    data = grown_catalogue(clustered(), fans=24)
    config = SequentialConfig.model_validate({**TINY, "incremental_epochs": 10,
                                              "incremental_lr_scale": 1.0})  # fmt: skip
    model = fit_incremental(previous, data, config, since=int(clustered().timestamps.max()) + 1)
    histories = [[0, 3, 1, 2], [20, 23, 21, 22]]  # a cluster-A and a cluster-B user
    query = Query(
        users=np.full(2, -1, np.int32), history_indptr=np.array([0, 4, 8], np.int64),
        history_items=np.concatenate(histories).astype(np.int32),
    )  # fmt: skip
    scores = model.score(query)
    rank_a = int((scores[0] > scores[0, NEW_A]).sum())
    rank_b = int((scores[1] > scores[1, NEW_A]).sum())
    assert rank_a < 10 < rank_b
    record = model.training["incremental"]
    assert record["users"] == 24 and record["windows"] >= 24 and record["epochs"] == 10
    assert record["new_items"] == 2 and record["metadata_rows"] == 1  # NEW_B has no events


def test_recent_windows_predict_the_new_tokens_with_their_history_as_context() -> None:
    # user 0: 12 old tokens then 2 new; user 1: old tokens only; user 2: one new token only
    lengths = np.array([14, 6, 1])
    times = np.concatenate([np.arange(12), [100, 101], np.arange(6), [100]])
    sequences = Sequences(
        np.concatenate([[0], np.cumsum(lengths)]), np.arange(1, 22, dtype=np.int32),
        np.ones(21, np.int32), Events(times=times.astype(np.int64)),
    )  # fmt: skip
    rng = np.random.default_rng(0)
    positions, latest, users = recent_windows(sequences, since=100, size=5, stride=4, replay=0.0,
                                              rng=rng)  # fmt: skip
    assert users == 2  # user 2's lone token predicts nothing, but it is new
    assert positions.tolist() == [[9, 10, 11, 12, 13]] and latest.tolist() == [True]
    replayed, _, _ = recent_windows(sequences, since=100, size=5, stride=4, replay=1.0, rng=rng)
    assert replayed.tolist() == [[9, 10, 11, 12, 13], [15, 16, 17, 18, 19]]


def test_growth_refuses_another_architecture() -> None:
    previous = fit(clustered(), TINY)
    other = previous.config.model_copy(update={"blocks": 3})
    changed = SequentialModel(other, previous.network, previous.popularity, codec=previous.codec)
    with pytest.raises(InvalidInput, match="differs in blocks"):
        grow(changed, clustered(), Lineage.same_items(previous, clustered()))


def test_growth_keeps_the_previous_dropout_when_the_data_crosses_the_size_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    previous = fit(clustered(), TINY)  # dropout None: auto_dropout of the data's size
    assert previous.network.config.dropout == SMALL_DATA_DROPOUT
    data = grown_catalogue(clustered(), fans=20)
    # the grown data alone would get the large-data dropout
    monkeypatch.setattr(sequential_recipe, "LARGE_DATA_EVENTS", clustered().size + 1)
    network, _ = grow(previous, data, Lineage.same_items(previous, data))
    assert network.config.dropout == SMALL_DATA_DROPOUT


def test_growth_keeps_a_network_without_the_time_bias_it_predates() -> None:
    """A version saved before ``time_bias`` existed reads back the new default (on) in its
    settings, but its network has none: growth keeps the network's architecture."""
    previous = fit(clustered(), {**TINY, "time_bias": False})
    assert not previous.network.config.time_bias
    upgraded = previous.config.model_copy(update={"time_bias": True})
    older = SequentialModel(upgraded, previous.network, previous.popularity, codec=previous.codec)
    network, _ = grow(older, clustered(), Lineage.same_items(previous, clustered()))
    assert not network.config.time_bias
