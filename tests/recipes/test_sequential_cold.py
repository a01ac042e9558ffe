"""sequential, new items: the age mix, id dropout and text metadata (issue 17, part 4)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from tastebud.recipes import Query, TrainingData, parse_config
from tastebud.recipes.sequential import Sequential, SequentialModel
from tastebud.recipes.sequential.cold import AgeMix, id_dropout
from tastebud.recipes.sequential.model import ItemEmbedding, TransformerConfig
from tastebud.text import ItemTexts
from tests.recipes.conftest import clustered

TINY = {"epochs": 12, "hidden": 16, "max_len": 8, "batch_size": 16, "validation_users": 0,
        "lr": 0.01}  # fmt: skip
N_ITEMS = 40  # clustered(): items 0-19 for the first half of the users, 20-39 for the rest


def fit(data: TrainingData, params: dict[str, object], *, seed: int = 0) -> SequentialModel:
    recipe = Sequential()
    return recipe.fit(data, parse_config(recipe, params), seed=seed)


def tagged_with_a_cold_twin() -> TrainingData:
    """clustered() where every item has its own TAG value and its cluster's GENRES value, plus
    item 40: nobody touched it, and its metadata is item 0's (the most popular of cluster A)."""
    data = clustered()
    tags = sp.eye(N_ITEMS, dtype=np.float32, format="csr")
    twin = sp.csr_matrix(([1.0], ([0], [0])), shape=(1, N_ITEMS), dtype=np.float32)
    assert data.item_features is not None
    genres = sp.vstack([data.item_features, data.item_features[0]])
    features = sp.hstack([genres, sp.vstack([tags, twin])]).tocsr()
    names = (*data.feature_names, *(f"TAG=t{i}" for i in range(N_ITEMS)))
    return replace(data, n_items=N_ITEMS + 1, item_features=features, feature_names=names)


def cluster_a_queries() -> Query:
    """Users of cluster A who have not seen item 0, asked what comes next."""
    histories = [[3, 1, 5], [2, 7, 4], [6, 1, 9], [5, 8, 2]]
    return Query(
        users=np.full(len(histories), -1, np.int32),
        history_indptr=np.arange(0, 3 * len(histories) + 1, 3, dtype=np.int64),
        history_items=np.concatenate(histories).astype(np.int32),
    )


def rank_of(scores: np.ndarray, item: int) -> np.ndarray:
    return (scores > scores[:, [item]]).sum(1)


def test_a_cold_item_with_a_popular_items_metadata_scores_near_it() -> None:
    data = tagged_with_a_cold_twin()
    query = cluster_a_queries()
    mixed = fit(data, {**TINY, "age_mix": True, "id_dropout": 0.5}).score(query)
    plain = fit(data, TINY).score(query)
    # with the mix, the twin ranks among cluster A's head (of 41 items), close to item 0 ...
    assert (rank_of(mixed, 40) <= 6).all()
    spread = mixed[:, :N_ITEMS].std(1)
    assert (np.abs(mixed[:, 40] - mixed[:, 0]) < 0.5 * spread).all()
    # ... while ids alone carry item 0's popularity in the plain model, not its metadata
    assert rank_of(mixed, 40).mean() < rank_of(plain, 40).mean()


def test_id_dropout_only_while_training() -> None:
    ids = torch.ones(1_000, 4)
    dropped = id_dropout(ids, 0.3, training=True)
    whole_rows = (dropped == 0).all(1) | (dropped == 1).all(1)
    assert whole_rows.all()  # an item loses its whole id vector or none of it
    assert 0.25 < float((dropped[:, 0] == 0).float().mean()) < 0.35
    assert torch.equal(id_dropout(ids, 0.3, training=False), ids)
    assert torch.equal(id_dropout(ids, 0.0, training=True), ids)


def item_table(config: TransformerConfig, counts: torch.Tensor) -> ItemEmbedding:
    n = config.n_items + 1
    return ItemEmbedding(
        config, known=(counts > 0).float(), feature_index=torch.zeros(0, dtype=torch.long),
        feature_offsets=torch.zeros(n, dtype=torch.long), counts=counts,
    )  # fmt: skip


def test_id_dropout_off_and_on_in_the_item_table() -> None:
    counts = torch.tensor([0.0, 5.0, 50.0, 0.0, 9.0])
    off = item_table(TransformerConfig(n_items=4, hidden=8), counts).train()
    assert torch.equal(off(), off())  # no dropout: the same table at every step
    on = item_table(TransformerConfig(n_items=4, hidden=8, id_dropout=0.5), counts).train()
    torch.manual_seed(0)
    tables = [on() for _ in range(20)]
    assert any(not torch.equal(a, b) for a, b in itertools.pairwise(tables))
    on.eval()
    assert torch.equal(on(), on.ids.weight * on.known)  # serving: every id vector, always


def test_the_age_gate_grows_with_interactions_and_zero_stays_zero() -> None:
    mix = AgeMix(5, torch.tensor([0.0, 1.0, 5.0, 20.0, 500.0]))
    gate = mix.gate()[:, 0]
    assert (gate.diff() > 0).all()
    assert gate[1] < 0.2 and gate[4] > 0.95  # one event: metadata first; 500: the id vector
    counts = torch.tensor([0.0, 1.0, 500.0])
    table = item_table(TransformerConfig(n_items=2, hidden=8, age_mix=True), counts).eval()
    rows = table().norm(dim=1)
    assert rows[0] == 0 and rows[1] < rows[2]


def test_a_model_with_the_mix_and_text_reloads_with_the_same_scores(tmp_path: Path) -> None:
    data = replace(clustered(), item_texts=ItemTexts(("",) * N_ITEMS))
    # planted vectors stand in for the sentence model here (cached_property: set once)
    vectors = np.random.default_rng(0).normal(size=(N_ITEMS, 384)).astype(np.float32)
    assert data.item_texts is not None
    data.item_texts.__dict__["vectors"] = vectors
    model = fit(data, {**TINY, "epochs": 2, "age_mix": True, "id_dropout": 0.2})
    assert model.network.items.text is not None and model.network.items.mix is not None
    model.save(tmp_path / "model")
    loaded = Sequential().load(tmp_path / "model")
    query = cluster_a_queries()
    np.testing.assert_allclose(loaded.score(query), model.score(query), rtol=1e-5)
    plain = fit(data, {**TINY, "epochs": 2, "text_metadata": False})
    assert plain.network.items.text is None and plain.network.items.mix is None
