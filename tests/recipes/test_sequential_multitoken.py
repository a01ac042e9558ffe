"""sequential, multi-token prediction: the items 2..k ahead, and slates for the next actions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tastebud.errors import InvalidInput
from tastebud.evaluation import rank_top_k
from tastebud.evaluation.horizon import AtHorizon, next_items_metrics
from tastebud.evaluation.splits import leave_last_out
from tastebud.recipes import Query
from tastebud.recipes.sequential import Sequential, SequentialModel
from tastebud.recipes.sequential.multitoken import OffsetHeads, head_logits
from tastebud.recipes.sequential.train import seen_before
from tests.recipes.test_sequential import TINY, cycles, fit

N_ITEMS = 12
PLANTED = {"epochs": 30, "hidden": 32, "max_len": 8, "batch_size": 32, "lr": 0.01,
           "dropout": 0.0, "validation_users": 0}  # fmt: skip


@pytest.fixture(scope="module")
def three_ahead() -> SequentialModel:
    """Trained on walks i -> i + 1 (mod 12): the items 1, 2 and 3 ahead are all determined."""
    torch.set_num_threads(1)
    return fit(cycles(), {**PLANTED, "predict_next": 3})


def cycle_query(length: int = 5) -> Query:
    """One history per start item: ``start .. start + length - 1`` (mod 12)."""
    histories = [[(start + j) % N_ITEMS for j in range(length)] for start in range(N_ITEMS)]
    return Query(
        users=np.full(N_ITEMS, -1, np.int32),
        history_indptr=np.arange(0, N_ITEMS * length + 1, length, dtype=np.int64),
        history_items=np.concatenate(histories).astype(np.int32),
    )


def ahead(query: Query, offset: int) -> np.ndarray:
    """The planted item ``offset`` positions after each history's last."""
    last = query.history_items[query.history_indptr[1:] - 1]
    return (last + offset) % N_ITEMS


def test_each_head_learns_its_planted_offset(three_ahead: SequentialModel) -> None:
    query = cycle_query()
    network, table = three_ahead.network, three_ahead._table
    tokens = torch.from_numpy(query.history_items.reshape(N_ITEMS, -1) + 1).long()
    with torch.inference_mode():
        last = network.encode(tokens, table)[:, -1]
        for offset in (1, 2, 3):
            logits = head_logits(network, last, table, offset)
            logits[seen_before(tokens, N_ITEMS)[:, -1]] = -torch.inf  # as answers exclude them
            accuracy = (logits.argmax(1).numpy() == ahead(query, offset)).mean()
            assert accuracy >= 0.9, (offset, accuracy)


def test_the_slate_ranks_the_next_three_items_first(three_ahead: SequentialModel) -> None:
    query = cycle_query()
    slate = rank_top_k(AtHorizon(three_ahead, 3, N_ITEMS), query, 3)
    expected = np.sort(np.stack([ahead(query, j) for j in (1, 2, 3)], 1), 1)
    assert (np.sort(slate, 1) == expected).all(1).mean() >= 0.9
    scores = three_ahead.score_horizon(query, 3)
    assert ((scores >= 0) & (scores <= 1)).all()  # probabilities of being among the next 3
    rows = np.repeat(np.arange(N_ITEMS), 5)
    assert (scores[rows, query.history_items] == 0).all()  # the window's items: none again
    np.testing.assert_array_equal(three_ahead.score_horizon(query, 1), three_ahead.score(query))


def test_the_next_three_metrics_on_a_held_out_split(three_ahead: SequentialModel) -> None:
    split = leave_last_out(cycles(n_users=12, length=9), count=3)  # the next 3 are unseen
    np.testing.assert_array_equal(np.diff(split.test.relevant_indptr), 3)
    slate = next_items_metrics(three_ahead, split.test, horizon=3)
    assert slate["ndcg@10_next_3"] >= 0.9 and slate["hit_rate@10_next_3"] == 1.0
    next_item = next_items_metrics(three_ahead, split.test)
    assert next_item["ndcg@10_next_item"] >= 0.9


def test_offset_loss_is_the_mean_cross_entropy_of_the_items_ahead() -> None:
    torch.manual_seed(0)
    heads = OffsetHeads(hidden=4, predict_next=3, weight=0.5)
    for projection in heads.projections:
        torch.nn.init.normal_(projection.weight)
    window = torch.tensor([[1, 2, 3, 4, 5], [3, 1, 2, 0, 0]])  # right-padded, 0 = pad
    encoded, items = torch.randn(2, 4, 4), torch.randn(6, 4)
    available = torch.zeros(6)
    seen = seen_before(window[:, :-1], 6)
    loss = heads.loss(encoded, window, items, available, seen=seen, sampling=torch.ones(6) / 6,
                      negatives=0, generator=torch.Generator())  # fmt: skip
    expected = []
    for offset in (2, 3):
        terms = []
        for row, position in np.argwhere(window[:, offset:].numpy() > 0):
            target = int(window[row, position + offset]) - 1
            logits = heads.query(encoded[row, position][None], offset) @ items.T
            excluded = seen[row, position].clone()
            excluded[target] = False  # the target stays in its own softmax
            logits = logits.masked_fill(excluded[None], -torch.inf)
            terms.append(F.cross_entropy(logits, torch.tensor([target])))
        expected.append(torch.stack(terms).mean())
    torch.testing.assert_close(loss, 0.5 * torch.stack(expected).mean())
    sampled = heads.loss(encoded, window, items, available, seen=None,
                         sampling=torch.ones(6) / 6, negatives=4,
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.isfinite(sampled) and sampled > 0


def test_sampled_negatives_train_the_heads_too() -> None:
    model = fit(cycles(), {**TINY, "predict_next": 2, "negatives": 5})
    assert np.isfinite(model.score_horizon(cycle_query(), 2)).all()


def test_bad_horizons_are_clear_errors(three_ahead: SequentialModel) -> None:
    query = cycle_query()
    bad = [(0, "1..8, got 0"), (99, "1..8, got 99"), (4, "predictNext=3"),
           ("2", "expected an integer"), (True, "expected an integer")]  # fmt: skip
    for horizon, message in bad:
        with pytest.raises(InvalidInput, match=message):
            three_ahead.score_horizon(query, horizon)  # type: ignore[arg-type]
    one = fit(cycles(), TINY)
    with pytest.raises(InvalidInput, match=r"next 1 item\(s\).*predictNext >= 2"):
        one.score_horizon(query, 2)


def test_slates_reload(three_ahead: SequentialModel, tmp_path: Path) -> None:
    three_ahead.save(tmp_path / "m")
    loaded = Sequential().load(tmp_path / "m")
    query = cycle_query()
    np.testing.assert_array_equal(
        loaded.score_horizon(query, 3), three_ahead.score_horizon(query, 3)
    )


def test_next_item_models_load_and_score_as_before(tmp_path: Path) -> None:
    model = fit(cycles(), TINY)
    assert model.network.offsets is None and model.predict_next == 1
    assert not any(name.startswith("offsets") for name in model.network.state_dict())
    model.save(tmp_path / "m")
    meta_path = next((tmp_path / "m").glob("*.json"))
    meta = json.loads(meta_path.read_text())
    for section in ("network", "config"):  # as saved before multi-token prediction existed
        del meta[section]["predict_next"], meta[section]["predict_next_weight"]
    meta_path.write_text(json.dumps(meta))
    loaded = Sequential().load(tmp_path / "m")
    query = cycle_query()
    np.testing.assert_array_equal(loaded.score(query), model.score(query))
    np.testing.assert_array_equal(loaded.score_horizon(query, 1), model.score(query))
