"""sequential: a causal transformer over each user's item tokens."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import scipy.sparse as sp
import torch

from tastebud.errors import InvalidInput
from tastebud.evaluation import rank_top_k
from tastebud.evaluation.metrics import ndcg_at_k
from tastebud.ids import Vocabulary
from tastebud.recipes import Query, TrainingData, parse_config
from tastebud.recipes.sequential import Sequential, SequentialConfig, SequentialModel
from tastebud.recipes.sequential.inputs import feature_bags, item_feature_columns
from tastebud.recipes.sequential.model import (
    CausalSelfAttention,
    Dropout,
    GatedBlock,
    TransformerConfig,
    time_apart,
)
from tastebud.recipes.sequential.recipe import auto_dropout, auto_hidden, auto_max_len
from tastebud.recipes.sequential.tokens import (
    GAP,
    TYPE,
    VALUE,
    Events,
    TokenCodec,
    gap_buckets,
    inputs_with_request,
    last_tokens,
    latest_windows,
    merge_repeats,
    query_sequences,
    training_sequences,
    windows,
)
from tastebud.recipes.sequential.train import hold_out_last, validation_ndcg
from tastebud.serving import recommend_items
from tastebud.serving.versions import LoadedVersion
from tastebud.store import Event
from tests.recipes.conftest import clustered
from tests.recipes.contract import check_contract

TINY = {"epochs": 3, "hidden": 16, "max_len": 8, "batch_size": 16, "validation_users": 8}


def fit(data: TrainingData, params: dict[str, object], *, seed: int = 0) -> SequentialModel:
    recipe = Sequential()
    return recipe.fit(data, parse_config(recipe, params), seed=seed)


def from_sequences(sequences: list[list[int]], n_items: int) -> TrainingData:
    """One user per sequence, events interleaved in time but each user's order kept."""
    users = np.concatenate([np.full(len(s), u) for u, s in enumerate(sequences)])
    items = np.concatenate([np.asarray(s) for s in sequences])
    steps = np.concatenate([np.arange(len(s)) for s in sequences])
    order = np.lexsort((users, steps))
    return TrainingData(
        users=users[order].astype(np.int32),
        items=items[order].astype(np.int32),
        timestamps=(1_000 + np.arange(len(order))).astype(np.int64),
        weights=np.ones(len(order), np.float32),
        n_users=len(sequences),
        n_items=n_items,
    )


def cycles(n_items: int = 12, n_users: int = 60, length: int = 16) -> TrainingData:
    """Every user walks the cycle i -> i + 1 (mod n_items) from a random start."""
    rng = np.random.default_rng(0)
    starts = rng.integers(0, n_items, size=n_users)
    return from_sequences([[(s + j) % n_items for j in range(length)] for s in starts], n_items)


def with_cold_items(data: TrainingData, rows: list[list[float]]) -> TrainingData:
    """``data`` plus items nobody interacted with, whose feature rows are ``rows``."""
    assert data.item_features is not None
    extra = sp.csr_matrix(np.asarray(rows, np.float32))
    return replace(
        data,
        n_items=data.n_items + len(rows),
        item_features=sp.csr_matrix(sp.vstack([data.item_features, extra])),
    )


@pytest.mark.parametrize(
    "params",
    [
        TINY,
        {**TINY, "use_metadata": False, "negatives": 5, "older_windows": 0.0},
        {**TINY, "genre_head": True},
    ],
)
def test_contract(params: dict[str, object], tmp_path: Path) -> None:
    check_contract("sequential", clustered(), params, tmp_path)


# LiGR blocks learn this tiny task slower: after 30 epochs 0.5-0.83 of the rule over 3 seeds,
# after 120 all of it (their gates and SwiGLU products start small)
@pytest.mark.parametrize(
    ("precision", "gated", "epochs"),
    [("float32", False, 30), ("bfloat16", False, 30), ("bfloat16", True, 120)],
)
def test_learns_a_planted_next_item_rule(precision: str, gated: bool, epochs: int) -> None:
    data = cycles()
    params = {"epochs": epochs, "hidden": 32, "max_len": 8, "batch_size": 32, "lr": 0.01,
              "precision": precision, "gated_blocks": gated}  # fmt: skip
    model = fit(data, {**params, "dropout": 0.0, "validation_users": 0})
    histories = [[(start + j) % 12 for j in range(5)] for start in range(12)]
    query = Query(
        users=np.full(12, -1, np.int32),
        history_indptr=np.arange(0, 61, 5, dtype=np.int64),
        history_items=np.concatenate(histories).astype(np.int32),
    )
    best = model.score(query).argmax(axis=1)
    assert (best == [(h[-1] + 1) % 12 for h in histories]).mean() >= 0.9


def _with_and_without(option: str) -> tuple[CausalSelfAttention, CausalSelfAttention]:
    """Attention with a bias ``option`` on, and the same weights without it."""
    torch.manual_seed(0)
    on: dict[str, Any] = {option: True}
    off: dict[str, Any] = {option: False}
    config = TransformerConfig(n_items=5, hidden=16, heads=2, max_len=8, **on)
    biased, plain = CausalSelfAttention(config), CausalSelfAttention(replace(config, **off))
    plain.load_state_dict(biased.state_dict(), strict=False)
    return biased, plain


def test_relative_positions_start_as_causal_attention_and_learn_a_bias_by_distance() -> None:
    biased, plain = _with_and_without("relative_positions")
    x = torch.randn(3, 6, 16)
    with torch.no_grad():
        assert torch.allclose(biased(x), plain(x), atol=1e-5)  # a zero bias: causal alone
        biased.relative[:, 0] = 50.0  # a strong bias for distance 0: each token reads itself
        values = biased.qkv(x).split(16, dim=2)[2]
        assert torch.allclose(biased(x), biased.out(values), atol=1e-4)
        biased.relative.normal_()
        later = x.clone()
        later[:, -1] += 1.0  # the last token changes: nothing before it may see that
        assert torch.allclose(biased(x)[:, :-1], biased(later)[:, :-1], atol=1e-6)
        assert not torch.allclose(biased(x)[:, -1], biased(later)[:, -1])


def test_time_apart_buckets_the_time_between_every_two_tokens() -> None:
    times = np.cumsum([0, 0, 10, 3_600, 5, 30 * 86_400])
    gaps = torch.from_numpy(np.r_[0, gap_buckets(np.diff(times))])[None]  # as tokens carry them
    apart = time_apart(gaps)[0]
    for i in range(6):
        for j in range(i + 1):  # a bucket's typical gap: within a factor of 2 of the true one
            assert abs(int(apart[i, j]) - int(gap_buckets(np.array([times[i] - times[j]]))[0])) <= 1
    assert (apart.triu(1)[apart.triu(1) > 0] == 1).all()  # ahead of the query: hidden anyway


def test_a_time_bias_starts_as_causal_attention_and_reads_no_later_time() -> None:
    biased, plain = _with_and_without("time_bias")
    x = torch.randn(3, 6, 16)
    gaps = torch.randint(1, 20, (3, 6))
    with torch.no_grad():
        assert torch.allclose(biased(x, time_apart(gaps)), plain(x), atol=1e-5)  # zero bias
        biased.time.normal_()
        assert not torch.allclose(biased(x, time_apart(gaps)), plain(x), atol=1e-3)
        later = gaps.clone()
        later[:, -1] += 5  # the last token came later: nothing before it may see that
        before, after = biased(x, time_apart(gaps)), biased(x, time_apart(later))
        assert torch.allclose(before[:, :-1], after[:, :-1], atol=1e-6)
        assert not torch.allclose(before[:, -1], after[:, -1])


def test_dropout_zeroes_its_share_scales_the_rest_and_is_off_in_eval() -> None:
    torch.manual_seed(0)
    dropout, x = Dropout(0.2), torch.ones(200_000, dtype=torch.bfloat16)
    y = dropout(x)
    assert y.dtype == torch.bfloat16
    assert abs(float((y == 0).float().mean()) - 0.2) < 0.01
    assert torch.allclose(y[y != 0].float(), torch.tensor(1.25))  # the mean is kept
    assert dropout.eval()(x) is x


def test_adjacent_repeats_merge_into_one_token() -> None:
    items = np.array([3, 3, 4, 3, 5, 5, 5, 5, 2], np.int32)
    merged = merge_repeats(np.array([0, 6, 9], np.int64), items)  # users [3,3,4,3,5,5] [5,5,2]
    np.testing.assert_array_equal(merged.indptr, [0, 4, 6])
    np.testing.assert_array_equal(merged.tokens, np.array([3, 4, 3, 5, 5, 2]) + 1)  # 0 = pad
    np.testing.assert_array_equal(merged.repeats, [2, 1, 1, 2, 2, 1])


def test_query_tokens_drop_unknown_items_and_keep_the_latest() -> None:
    query = Query(
        users=np.array([0, -1, 2], np.int32),
        history_indptr=np.array([0, 5, 5, 7], np.int64),
        history_items=np.array([1, 99, 2, 2, 3, -1, 4], np.int32),
    )
    sequences = query_sequences(query, n_items=10)
    tokens, lengths = last_tokens(sequences, 2)
    np.testing.assert_array_equal(lengths, [2, 0, 1])
    np.testing.assert_array_equal(tokens, [[3, 4], [0, 0], [5, 0]])  # right-padded


def test_windows_slide_from_the_end_and_cover_every_token_once() -> None:
    sequences = merge_repeats(np.array([0, 11, 12], np.int64), np.arange(12, dtype=np.int32))
    cut = windows(sequences, size=5, stride=4)  # user 1 has one token: nothing to predict
    expected = [[7, 8, 9, 10, 11], [3, 4, 5, 6, 7], [1, 2, 3, 0, 0]]
    np.testing.assert_array_equal(cut, expected)
    targets = np.concatenate([row[1:][row[1:] > 0] for row in cut])
    assert sorted(targets) == list(range(2, 12))
    latest = latest_windows(sequences.lengths, size=5, stride=4)
    np.testing.assert_array_equal(latest, [True, False, False])


def test_cold_item_is_scored_from_its_metadata() -> None:
    # two new items, one per genre, with no interactions at all
    data = with_cold_items(clustered(), [[1.0, 0.0], [0.0, 1.0]])
    model = fit(data, {**TINY, "epochs": 10, "lr": 0.01})
    query = Query(
        users=np.array([-1, -1], np.int32),
        history_indptr=np.array([0, 3, 6], np.int64),
        history_items=np.array([0, 3, 1, 20, 23, 21], np.int32),  # cluster A, cluster B
    )
    scores = model.score(query)
    cold_a, cold_b = scores[:, 40], scores[:, 41]
    assert cold_a[0] > cold_b[0] and cold_b[1] > cold_a[1]
    assert model.network.items.known[41:, 0].sum() == 0  # no id vector, metadata alone
    blind = fit(data, {**TINY, "epochs": 10, "lr": 0.01, "use_metadata": False})
    np.testing.assert_allclose(blind.score(query)[:, 40], blind.score(query)[:, 41])


def test_a_new_event_changes_the_scores_without_retraining() -> None:
    model = fit(clustered(), TINY)
    before = model.score(Query.single(0, [0, 3, 1]))
    after = model.score(Query.single(0, [0, 3, 1, 25]))
    assert not np.allclose(before, after)


def test_training_logs_a_learning_curve_and_keeps_to_the_time_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="tastebud.recipes.sequential"):
        model = fit(clustered(), {**TINY, "epochs": 50, "time_budget_seconds": 1e-3})
    assert model.training["stopped"] == "time budget"
    assert [point["epoch"] for point in model.training["curve"]] == [1]
    assert "epoch done recipe=sequential epoch=1 " in caplog.text
    free = fit(clustered(), {**TINY, "time_budget_seconds": None})
    assert free.training["stopped"] == "epochs" and len(free.training["curve"]) == 3
    assert 0 <= free.training["validation_ndcg@10"] <= 1


def test_validation_ndcg_matches_the_evaluation_metric() -> None:
    data = clustered()  # no repeats: one token per event
    model = fit(data, TINY)
    sequences = training_sequences(data)
    features = model.codec.features(sequences)
    rng = np.random.default_rng(0)
    _, _, validation = hold_out_last(sequences, features, n_users=30, max_len=8, rng=rng)
    assert validation is not None and validation.features is not None
    internal = validation_ndcg(model.network, validation)
    assert not model.network.training  # serving stays in eval mode
    times = [data.timestamps[data.users == user] for user in validation.users]
    query = Query(  # what serving sees: the history's times, the request at the target's time
        users=np.full(len(validation), -1, np.int32),
        history_indptr=validation.seen_indptr.numpy(),
        history_items=validation.seen_items.numpy().astype(np.int32),
        times=np.array([t[-1] for t in times], np.int64),
        history_timestamps=np.concatenate([t[:-1] for t in times]),
    )
    ranked = rank_top_k(model, query, 10)
    assert internal == pytest.approx(ndcg_at_k(ranked, validation.targets.numpy(), 10))


def test_empty_history_gets_popularity() -> None:
    data = clustered()
    scores = fit(data, TINY).score(Query.single(-1))[0]
    counts = data.item_counts()
    np.testing.assert_allclose(scores, counts / counts.max())


def test_sizes_adapt_to_the_data() -> None:
    short = merge_repeats(np.array([0, 5, 10], np.int64), np.arange(10, dtype=np.int32))
    assert auto_max_len(short) == 8
    assert auto_hidden(3_416, 1) == 128
    assert auto_hidden(1_682, 1) == 64
    assert auto_dropout(100_000) == 0.2 and auto_dropout(987_531) == 0.1
    assert auto_hidden(40, 1) == 32
    assert auto_hidden(1_000_000, 3) == 258


@pytest.mark.parametrize(
    "params",
    [
        {"epochs": 0},
        {"max_len": 1},
        {"dropout": 1.0},
        {"lr": 0},
        {"batch_size": 0},
        {"device": "tpu"},
        {"precision": "float8"},
        {"hidden": 30, "heads": 4},
        {"time_budget_seconds": 0},
        {"layers": 2},
    ],
)
def test_bad_hyperparameters(params: dict[str, object]) -> None:
    with pytest.raises(InvalidInput, match="sequential"):
        parse_config(Sequential(), params)


def test_search_space_gives_valid_configs() -> None:
    fixed = {
        "heads": 2, "max_len": 50, "hidden_per_head": 32, "blocks": 2, "dropout": 0.3,
        "lr": 1e-3, "use_metadata": True,
    }  # fmt: skip
    recipe = Sequential()
    config = parse_config(recipe, recipe.search_space(optuna.trial.FixedTrial(fixed)))
    assert isinstance(config, SequentialConfig)
    assert config.hidden == 64 and config.heads == 2


# token features, context, genre head, artifacts, serving ----------------------------------------
WALK_ITEMS = 12
# The walks revisit items and the rules are read from raw scores (history not excluded), so seen
# items must stay negatives in training.
RULE_PARAMS = {**TINY, "epochs": 30, "hidden": 32, "batch_size": 32, "lr": 0.01, "dropout": 0.0,
               "validation_users": 0, "exclude_seen": False}  # fmt: skip


def walk(rng: np.random.Generator, rule: str, length: int) -> list[tuple[int, str, int, str]]:
    """One user's ``(item, event type, time, device)`` events, where the step to each next item
    (+1, or more, mod 12) depends on ``rule``: the previous event's type ("type": after a buy,
    3), the time since it ("gap": after a day away, 6) or the device the item is chosen on
    ("context": on a phone, 4)."""
    item, time = int(rng.integers(WALK_ITEMS)), 1_000_000 + int(rng.integers(1_000))
    kind, gap, events = "view", 0, []
    for j in range(length):
        device = ("tv", "phone")[rng.integers(2)]
        if j > 0:
            step = {"type": 3 if kind == "buy" else 1, "gap": 6 if gap > 60 else 1,
                    "context": 4 if device == "phone" else 1}[rule]  # fmt: skip
            item = (item + step) % WALK_ITEMS
        kind = ("view", "buy")[rng.integers(2)]
        events.append((item, kind, time, device))
        gap = (30, 86_400)[rng.integers(2)]
        time += gap
    return events


def walks_data(walks: list[list[tuple[int, str, int, str]]]) -> TrainingData:
    rows = sorted((time, user, item, kind, device) for user, events in enumerate(walks)
                  for item, kind, time, device in events)  # fmt: skip
    times, users, items, kinds, devices = (np.array(column) for column in zip(*rows, strict=True))
    return TrainingData(
        users=users.astype(np.int32), items=items.astype(np.int32), timestamps=times,
        weights=np.ones(len(rows), np.float32), n_users=len(walks), n_items=WALK_ITEMS,
        event_types=(kinds == "view").astype(np.int32), event_type_names=("buy", "view"),
        values=np.where(kinds == "buy", 9.99, np.nan).astype(np.float32),
        contexts=(devices == "tv").astype(np.int32)[:, None], context_fields=("DEVICE",),
        context_names=("DEVICE=phone", "DEVICE=tv"),
    )  # fmt: skip


def walks_query(walks: list[list[tuple[int, str, int, str]]]) -> Query:
    """Each walk but its last event as history; the request at the last event's time and on
    its device."""
    history = [event for events in walks for event in events[:-1]]
    return Query(
        users=np.full(len(walks), -1, np.int32),
        history_indptr=np.arange(0, len(history) + 1, len(walks[0]) - 1, dtype=np.int64),
        history_items=np.array([event[0] for event in history], np.int32),
        times=np.array([events[-1][2] for events in walks], np.int64),
        history_timestamps=np.array([event[2] for event in history], np.int64),
        history_event_types=np.array([event[1] == "buy" for event in history], np.int32),
        event_type_names=("view", "buy"),  # another order than training's: mapped by name
        contexts=tuple({"device": events[-1][3]} for events in walks),  # any case
    )


@pytest.mark.parametrize("rule", ["type", "gap", "context"])
def test_token_features_and_request_context_learn_planted_rules(rule: str) -> None:
    rng = np.random.default_rng(0)
    data = walks_data([walk(rng, rule, 16) for _ in range(60)])
    held_out = [walk(rng, rule, 6) for _ in range(200)]
    expected = [events[-1][0] for events in held_out]
    model = fit(data, RULE_PARAMS)
    assert (model.score(walks_query(held_out)).argmax(1) == expected).mean() >= 0.95
    if rule == "type":  # without the features the rule is a coin toss
        blind = fit(data, {**RULE_PARAMS, "token_features": False, "context_features": False})
        assert (blind.score(walks_query(held_out)).argmax(1) == expected).mean() <= 0.7


def test_merged_tokens_keep_the_strongest_type_summed_values_and_both_times() -> None:
    events = Events(
        types=np.array([0, 1, 0, 2, 1], np.int32),  # view, buy, view | click, buy
        values=np.array([1.0, np.nan, 2.0, np.nan, np.nan], np.float32),
        times=np.array([10, 20, 30, 40, 50], np.int64),
    )
    merged = merge_repeats(
        np.array([0, 5], np.int64), np.array([7, 7, 7, 8, 9], np.int32), events,
        strength=np.array([1.0, 5.0, 1.0], np.float32),
    )  # fmt: skip
    np.testing.assert_array_equal(merged.tokens, [8, 9, 10])
    np.testing.assert_array_equal(merged.events.types, [1, 2, 1])
    np.testing.assert_array_equal(merged.events.values, [3.0, np.nan, np.nan])
    np.testing.assert_array_equal(merged.events.times, [10, 40, 50])
    np.testing.assert_array_equal(merged.last_times, [30, 40, 50])
    codec = TokenCodec(event_types=("view", "buy", "click"), value_edges=(2.0,), gaps=True,
                       request_times=True)  # fmt: skip
    features = codec.features(merged)
    np.testing.assert_array_equal(features[:, TYPE], [2, 3, 2])
    np.testing.assert_array_equal(features[:, VALUE], [2, 0, 0])
    np.testing.assert_array_equal(features[:, GAP], [0, 4, 4])  # log2(1 + 10) -> 3, + 1


def test_the_request_slot_follows_the_last_token() -> None:
    codec = TokenCodec(gaps=True, request_times=True, context_fields=("DEVICE",),
                       context_names=("DEVICE=tv",))  # fmt: skip
    sequences = merge_repeats(
        np.array([0, 3, 3], np.int64), np.array([1, 2, 3], np.int32),
        Events(times=np.array([0, 100, 3_600], np.int64), contexts=np.zeros((3, 1), np.int32)),
    )  # fmt: skip
    times = np.array([3_600 + 7, 7_200], np.int64)
    requests = codec.requests(sequences, times, np.array([[0], [-1]], np.int32))
    tokens, features, lengths = inputs_with_request(
        sequences, codec.features(sequences), requests, 2
    )
    np.testing.assert_array_equal(lengths, [2, 0])
    np.testing.assert_array_equal(tokens, [[3, 4, 0], [0, 0, 0]])
    np.testing.assert_array_equal(features[0, 2], [0, 0, 4, 2, 1])  # gap 7 s, 01:00, tv
    np.testing.assert_array_equal(features[1, 0], [0, 0, 0, 3, 0])  # no history, 02:00


def test_item_features_average_within_a_field_and_numbers_fall_in_buckets() -> None:
    data = replace(clustered(), item_numbers=np.arange(40, dtype=np.float32)[:, None] // 10,
                   number_names=("DECADE",))  # fmt: skip
    features, fields = item_feature_columns(data)
    assert features is not None and features.shape == (40, 2 + 4)  # a, b; 4 decades
    np.testing.assert_array_equal(fields, [0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(features[[0, 39]].toarray(), [[1, 0, 1, 0, 0, 0],
                                                                [0, 1, 0, 0, 0, 1]])  # fmt: skip
    two_genres = replace(data, item_features=sp.csr_matrix(np.ones((40, 2), np.float32)))
    _, index, offsets, weights = feature_bags(two_genres)
    np.testing.assert_array_equal(index[offsets[1] : offsets[2]], [0, 1, 2])  # item 0
    np.testing.assert_allclose(weights[offsets[1] : offsets[2]], [0.5, 0.5, 1.0])
    constant = replace(data, item_numbers=np.ones((40, 1), np.float32))
    assert item_feature_columns(constant)[0].shape == (40, 2)  # type: ignore[union-attr]


def test_genre_head_predicts_the_next_items_genre_and_feeds_the_item_scores() -> None:
    model = fit(clustered(), {**TINY, "genre_head": True, "epochs": 10, "lr": 0.01})
    genre = model.network.genre
    assert genre is not None and genre.columns.tolist() == [0, 1]
    assert genre.gate.item() != 0.0  # training found a use for it
    states = model.network.encode(torch.tensor([[1, 4, 2], [21, 24, 22]]), model._table)
    logits = genre.project(states[:, -1])  # cluster A history, cluster B history
    assert logits[0, 0] > logits[0, 1] and logits[1, 1] > logits[1, 0]
    assert fit(clustered(), TINY).network.genre is None
    with pytest.raises(InvalidInput, match="genre_field 'COLOR'"):
        fit(clustered(), {**TINY, "genre_head": True, "genre_field": "COLOR"})


def test_a_model_with_every_feature_reloads_in_a_new_process(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = walks_data([walk(rng, "context", 12) for _ in range(30)])
    data = replace(data, item_features=sp.csr_matrix(np.eye(WALK_ITEMS, 3, dtype=np.float32)),
                   feature_names=("GENRES=a", "GENRES=b", "GENRES=c"))  # fmt: skip
    model = fit(data, {**TINY, "genre_head": True, "gated_blocks": True,
                       "relative_positions": True, "time_bias": True})  # fmt: skip
    assert model.network.tokens is not None and model.network.genre is not None
    assert isinstance(model.network.blocks[0], GatedBlock)
    assert model.network.blocks[0].attention.time is not None  # the walks carry event times
    query = walks_query([walk(rng, "context", 5) for _ in range(4)])
    model.save(tmp_path / "model")
    body = {
        "users": query.users.tolist(), "history_indptr": query.history_indptr.tolist(),
        "history_items": query.history_items.tolist(), "times": query.times.tolist(),
        "history_timestamps": query.history_timestamps.tolist(),
        "history_event_types": query.history_event_types.tolist(),
        "event_type_names": list(query.event_type_names), "contexts": list(query.contexts),
    }  # fmt: skip
    (tmp_path / "query.json").write_text(json.dumps(body))
    script = f"""
import json, numpy as np
from pathlib import Path
from tastebud.recipes import Query
from tastebud.recipes.sequential import Sequential
body = json.loads(Path({str(tmp_path / "query.json")!r}).read_text())
arrays = {{k: np.array(v) for k, v in body.items() if k not in ("event_type_names", "contexts")}}
query = Query(**arrays, event_type_names=tuple(body["event_type_names"]),
              contexts=tuple(body["contexts"]))
model = Sequential().load(Path({str(tmp_path / "model")!r}))
np.save({str(tmp_path / "scores.npy")!r}, model.score(query))
"""
    subprocess.run([sys.executable, "-c", script], check=True)
    np.testing.assert_allclose(np.load(tmp_path / "scores.npy"), model.score(query), rtol=1e-5)


def test_older_artifacts_load_or_fail_clearly(tmp_path: Path) -> None:
    plain = fit(clustered(), {**TINY, "token_features": False, "context_features": False})
    plain.save(tmp_path / "old")
    meta_path = tmp_path / "old" / "model.json"
    meta = json.loads(meta_path.read_text())
    for key in (
        "metadata",
        "n_event_types",
        "n_value_buckets",
        "time_features",
        "request_features",
        "n_context_fields",
        "n_contexts",
        "genre_features",
    ):
        del meta["network"][key]  # what layout 1 wrote  # fmt: skip
    del meta["layout"], meta["codec"]
    for key in ("token_features", "context_features", "genre_field"):
        del meta["config"][key]
    meta_path.write_text(json.dumps(meta))
    query = Query.single(-1, [0, 3, 1])
    np.testing.assert_allclose(Sequential().load(tmp_path / "old").score(query),
                               plain.score(query), rtol=1e-5)  # fmt: skip
    meta["network"]["genre_head"] = True
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="layout 1 with the first genre head"):
        Sequential().load(tmp_path / "old")
    meta["layout"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="layout 99 cannot be read"):
        Sequential().load(tmp_path / "old")


def test_recommend_items_reads_fresh_events_and_the_request_context() -> None:
    rng = np.random.default_rng(0)
    model = fit(walks_data([walk(rng, "type", 16) for _ in range(60)]), RULE_PARAMS)
    items = Vocabulary([f"i{i}" for i in range(WALK_ITEMS)])
    version = LoadedVersion(
        id="v1", recipe="sequential", meta={}, model=model, users=Vocabulary(["u0"]),
        items=items, popularity=model.popularity, item_features=None,
        deleted_users=np.zeros(0, np.int32), deleted_items=np.zeros(0, np.int32),
    )  # fmt: skip

    def best(events: list[Event]) -> str:
        return recommend_items(version, user_id="u0", events=events, k=1)[0].id

    events = [Event("i2", 1_000, event_type="view"), Event("gone", 1_010, event_type="buy"),
              Event("i3", 1_020, event_type="view")]  # fmt: skip
    assert best(events) == "i4"  # the unknown item is dropped with its event
    assert best([*events, Event("i4", 1_030, event_type="view")]) == "i5"  # a fresh event
    assert best([*events, Event("i4", 1_030, event_type="buy")]) == "i7"  # ... its type counts
    with pytest.raises(InvalidInput, match="events"):
        recommend_items(version, user_id="u0", history=["i2"], events=events)
