"""Warm-start growth (``tastebud train S --incremental``): a new version that starts from the
previous version's weights instead of from scratch.

- growth (:func:`grow`): the previous network's architecture rebuilt for today's catalogue and
  vocabularies; every weight is copied, the item table and the token tables are matched by id or
  name. An item the previous version had no events for (new since, or cold then) starts from its
  metadata: its id row is the mean of the id rows of the trained items sharing the most metadata
  values with it (zero without any: the metadata bag alone), so it is served at once. Tables the
  previous network lacked start at zero, so an old user's scores of old items do not move;
- training (:func:`fit_incremental`): the windows of the users with events since the previous
  version (their new tokens as targets, with their history before as context), plus the latest
  window of a share of the other users against forgetting, for a few epochs at a lower learning
  rate within a share of a full fit's time budget.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import torch
from torch import Tensor

from tastebud.errors import InvalidInput
from tastebud.recipes.base import IntArray, ProgressFn, TrainingData
from tastebud.recipes.sequential.inputs import genre_columns, token_codec
from tastebud.recipes.sequential.model import SequenceTransformer, TransformerConfig
from tastebud.recipes.sequential.recipe import (
    SequentialConfig,
    SequentialModel,
    build_network,
    negative_sampling,
    train_settings,
)
from tastebud.recipes.sequential.tokens import (
    Sequences,
    TokenCodec,
    gather,
    training_sequences,
    window_bounds,
    window_positions,
)
from tastebud.recipes.sequential.train import train

_log = logging.getLogger(__name__)

NEIGHBOURS = 10  # trained items whose id rows a new item's row averages
# Sizes that follow the data; everything else in the architecture must match to grow.
_SIZES = ("n_items", "n_features", "n_event_types", "n_value_buckets", "n_contexts",
          "genre_features")  # fmt: skip
# Buffers rebuilt from today's data rather than copied.
# Rebuilt from today's data, never copied: per-item buffers (text vectors, counts) included.
_DERIVED = {"items.known", "items.feature_index", "items.feature_offsets",
            "items.feature_weights", "genre.columns", "items.mix.log_counts",
            "items.text.vectors", "intent.columns"}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Lineage:
    """How today's vocabularies relate to the previous model's: ``items`` (n_items,) the
    previous index of each item (-1: new), and the previous model's categorical feature names
    (None: the same as today's)."""

    items: IntArray
    feature_names: tuple[str, ...] | None = None

    @staticmethod
    def same_items(previous: SequentialModel, data: TrainingData) -> Lineage:
        """Item i is the previous model's item i (append-only vocabularies)."""
        index = np.arange(data.n_items, dtype=np.int32)
        return Lineage(np.where(index < previous.n_items, index, -1).astype(np.int32))


def grow(
    previous: SequentialModel, data: TrainingData, lineage: Lineage
) -> tuple[SequenceTransformer, TokenCodec]:
    """The previous network grown to ``data``'s items and vocabularies (see the module doc).

    Raises:
        InvalidInput: ``lineage`` does not cover ``data``'s items, or the rebuilt
            architecture differs from the previous one beyond its sizes.
    """
    if len(lineage.items) != data.n_items:
        raise InvalidInput(f"incremental: {len(lineage.items)} item links for {data.n_items} items")
    old = previous.network
    codec = grown_codec(previous.codec, data, previous.config)
    # the sizes and the dropout the previous network was built with, not re-derived from the
    # grown data (auto_dropout changes at 500k events); its time bias, which a version saved
    # before that option existed lacks while its settings read back the new default
    arch = previous.config.model_copy(update={
        "hidden": old.config.hidden, "dropout": old.config.dropout,
        "time_bias": old.config.time_bias,
    })  # fmt: skip
    network = build_network(data, arch, old.config.max_len, codec)
    _check_architecture(old.config, network.config)
    state = network.state_dict()
    kept = {name: value for name, value in old.state_dict().items() if name not in _DERIVED}
    with torch.no_grad():
        for name, target in state.items():
            if name in _DERIVED:
                continue
            if name.startswith("tokens.") and name not in kept:
                target.zero_()  # a table the previous network lacked adds nothing at first
            elif name in kept:
                target.copy_(_grown(name, kept[name], target, previous, data, lineage, codec))
        trained = _old_rows(old, lineage)
        state["items.ids.weight"][1:] = _item_rows(
            network, state["items.ids.weight"], trained, data.n_items
        )
    network.load_state_dict(state)
    return network, codec


def grown_codec(old: TokenCodec, data: TrainingData, config: SequentialConfig) -> TokenCodec:
    """Today's event types and context values (new names get new codes, rows matched by name);
    the previous value buckets, whose learned rows would lose their meaning if re-cut."""
    fresh = token_codec(data, tokens=config.token_features, context=config.context_features)
    edges = fresh.value_edges if old.value_edges is None else old.value_edges
    return dataclasses.replace(fresh, value_edges=edges)


def _check_architecture(old: TransformerConfig, new: TransformerConfig) -> None:
    resized = dataclasses.replace(new, **{name: getattr(old, name) for name in _SIZES})
    differ = [f.name for f in dataclasses.fields(old)
              if getattr(resized, f.name) != getattr(old, f.name)]  # fmt: skip
    if differ:
        raise InvalidInput(
            f"incremental: the previous version's network differs in {', '.join(differ)}; "
            "train a full version"
        )


def _grown(
    name: str, value: Tensor, target: Tensor, previous: SequentialModel, data: TrainingData,
    lineage: Lineage, codec: TokenCodec,
) -> Tensor:  # fmt: skip
    """``value`` (a previous weight) laid out like ``target`` (today's)."""
    rows: IntArray | None = None
    if name == "items.ids.weight":
        rows = np.concatenate([[0], np.where(lineage.items >= 0, lineage.items + 1, -1)])
    elif name == "items.features.weight":
        rows = _feature_rows(previous, data, lineage, len(target))
    elif name == "tokens.types.weight":
        rows = _name_rows(previous.codec.event_types, codec.event_types, offset=1)
    elif name == "tokens.contexts.weight":
        rows = _name_rows(previous.codec.context_names, codec.context_names, offset=1)
    elif name.startswith("genre.project."):
        rows = _genre_rows(previous, data, lineage, len(target))
    if rows is None:
        if value.shape != target.shape:
            raise InvalidInput(f"incremental: {name} changed shape {tuple(value.shape)} -> "
                               f"{tuple(target.shape)}; train a full version")  # fmt: skip
        return value
    out = torch.zeros_like(target)
    found = torch.from_numpy(rows >= 0)
    out[found] = value[torch.from_numpy(rows[rows >= 0]).long()]
    return out


def _name_rows(old: Sequence[str], new: Sequence[str], *, offset: int) -> IntArray:
    """Row of each of today's codes (``offset`` leading rows kept) in the previous table."""
    index = {name: i for i, name in enumerate(old)}
    rows = list(range(offset)) + [index[n] + offset if n in index else -1 for n in new]
    return np.asarray(rows, np.int64).astype(np.int32)


def _feature_keys(names: Sequence[str], n_columns: int) -> list[str]:
    """Column keys of the item table's features: the categorical names, then the numerical
    buckets by position (their edges come from the item metadata, not the events)."""
    return list(names) + [f"#{i}" for i in range(n_columns - len(names))]


def _feature_rows(
    previous: SequentialModel, data: TrainingData, lineage: Lineage, n_columns: int
) -> IntArray:
    old_names = data.feature_names if lineage.feature_names is None else lineage.feature_names
    old_keys = _feature_keys(old_names, previous.network.config.n_features)
    return _name_rows(old_keys, _feature_keys(data.feature_names, n_columns), offset=0)


def _genre_rows(
    previous: SequentialModel, data: TrainingData, lineage: Lineage, n_rows: int
) -> IntArray:
    """The genre head's output rows, matched by the feature key of the value they predict."""
    old_head, old_cfg = previous.network.genre, previous.network.config
    old_names = data.feature_names if lineage.feature_names is None else lineage.feature_names
    old_keys = _feature_keys(old_names, old_cfg.n_features)
    new_keys = _feature_keys(data.feature_names, len(data.feature_names))
    if old_head is None:
        return np.full(n_rows, -1, np.int32)
    columns = genre_columns(data, previous.config.genre_field)
    predicted = [] if columns is None else [new_keys[c] for c in columns.tolist()]
    old_predicted = [old_keys[c] for c in old_head.columns.tolist()]
    return _name_rows(old_predicted, predicted, offset=0)


def _old_rows(old: SequenceTransformer, lineage: Lineage) -> npt.NDArray[np.bool_]:
    """(n_items,) whether each item had a trained id row in the previous network."""
    known = old.items.known[1:, 0].numpy() > 0
    present = lineage.items >= 0
    out = np.zeros(len(lineage.items), dtype=bool)
    out[present] = known[lineage.items[present]]
    return out


def _item_rows(
    network: SequenceTransformer, ids: Tensor, trained: npt.NDArray[np.bool_], n_items: int
) -> Tensor:
    """(n_items, D) id rows: the copied row of each trained item; for the others the mean id
    row of the ``NEIGHBOURS`` trained items sharing the most metadata values (cosine of the
    one-hot rows), zero when none shares any."""
    rows = ids[1:].clone()
    fresh = np.flatnonzero(~trained)
    rows[torch.from_numpy(fresh)] = 0.0
    features = _feature_csr(network, n_items)
    if len(fresh) == 0 or not trained.any() or features.shape[1] == 0:
        return rows
    norms = np.sqrt(np.asarray(features.multiply(features).sum(1))).ravel()
    unit = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ features
    old = np.flatnonzero(trained)
    reference = unit[old].T.tocsc()
    for low in range(0, len(fresh), 1_024):
        chunk = fresh[low : low + 1_024]
        similarity = np.asarray((unit[chunk] @ reference).todense())  # (k, n_old)
        depth = min(NEIGHBOURS, len(old))
        top = np.argpartition(-similarity, depth - 1, axis=1)[:, :depth]
        weights = np.take_along_axis(similarity, top, axis=1)  # (k, depth)
        total = weights.sum(1, keepdims=True)
        mixed = np.einsum("kn,knd->kd", weights / np.maximum(total, 1e-12),
                          ids[1:][torch.from_numpy(old[top])].numpy())  # fmt: skip
        mixed[total[:, 0] <= 0] = 0.0
        rows[torch.from_numpy(chunk)] = torch.from_numpy(mixed.astype(np.float32))
    return rows


def _feature_csr(network: SequenceTransformer, n_items: int) -> sp.csr_matrix:
    """(n_items, F) 0/1 item features from the network's embedding bags (contiguous, in item
    order, row 0 the padding's empty bag)."""
    items = network.items
    index = items.feature_index.cpu().numpy()
    offsets = items.feature_offsets.cpu().numpy()
    starts = offsets[1:]
    counts = np.append(starts[1:], len(index)) - starts
    rows = np.repeat(np.arange(n_items), counts)
    columns = index[int(starts[0]) :] if n_items else index[:0]
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, columns)),
                         shape=(n_items, items.features_count))  # fmt: skip


# training ---------------------------------------------------------------------------------------
def recent_windows(
    sequences: Sequences, *, since: int, size: int, stride: int, replay: float,
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], int]:  # fmt: skip
    """Positions ``(n, size)`` of the windows an incremental fit trains on, which of them end
    their sequence, and the number of users with new tokens.

    A user with tokens at or after ``since`` (epoch seconds) trains on each window that
    predicts one of them; of the others, a ``replay`` share (drawn with ``rng``) on their
    latest window."""
    times = sequences.events.times
    if times is None:
        raise InvalidInput("incremental: the training events carry no timestamps")
    lengths = sequences.lengths
    owner = np.repeat(np.arange(len(lengths)), lengths)
    new = times >= since
    first_new = np.full(len(lengths), np.iinfo(np.int64).max)
    np.minimum.at(first_new, owner[new], np.flatnonzero(new) - sequences.indptr[owner[new]])
    affected = first_new < lengths
    replayed = ~affected & (rng.random(len(lengths)) < replay)
    sequence, _, stop = window_bounds(lengths, size=size, stride=stride)
    latest = stop == lengths[sequence]
    # a window's targets are its tokens after the first: it predicts a new one when it ends past
    keep = (affected[sequence] & (stop > np.maximum(first_new[sequence], 1))) | (
        replayed[sequence] & latest
    )
    positions = window_positions(lengths, sequences.indptr, size=size, stride=stride)
    return positions[keep], latest[keep], int(affected.sum())


def fit_incremental(
    previous: SequentialModel,
    data: TrainingData,
    config: SequentialConfig,
    *,
    since: int,
    lineage: Lineage | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> SequentialModel:
    """A model grown from ``previous`` and trained on ``data``'s events at or after ``since``
    (epoch seconds) with their users' history as context (see the module doc). ``config``
    gives the incremental and optimisation settings; the architecture is ``previous``'s."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    lineage = lineage or Lineage.same_items(previous, data)
    network, codec = grow(previous, data, lineage)
    max_len = network.config.max_len
    sequences = training_sequences(data, codec.strengths())
    positions, latest, users = recent_windows(
        sequences, since=since, size=max_len + 1, stride=config.stride or max_len,
        replay=config.incremental_replay, rng=np.random.default_rng(seed),
    )  # fmt: skip
    budget = config.time_budget_seconds
    options = dataclasses.replace(
        train_settings(config, n_items=data.n_items, seed=seed),
        epochs=config.incremental_epochs, lr=config.lr * config.incremental_lr_scale,
        time_budget_seconds=None if budget is None else budget * config.incremental_budget_share,
    )  # fmt: skip
    curve: list[dict[str, Any]] = []
    if len(positions):
        features = codec.features(sequences)
        report = train(
            network.to(options.device), gather(sequences.tokens, positions),
            gather(features, positions) if codec.width else None, None,
            negative_sampling(data, config.sampling_power), options, progress, latest=latest,
        )  # fmt: skip
        curve = [asdict(epoch) for epoch in report.epochs]
    counts = data.item_counts()
    seconds = time.perf_counter() - started
    grown = int((lineage.items < 0).sum())
    # rows started from metadata: items with events now and no trained row before
    known_now = network.items.known[1:, 0].cpu().numpy() > 0
    from_metadata = int((known_now & ~_old_rows(previous.network, lineage)).sum())
    training = {
        "incremental": {"since": since, "users": users, "windows": len(positions),
                        "new_items": grown, "metadata_rows": from_metadata,
                        "epochs": len(curve)},
        "best_epoch": len(curve), "stopped": "incremental", "seconds": seconds, "curve": curve,
    }  # fmt: skip
    _log.info(
        "incremental fit done recipe=sequential users=%d windows=%d new_items=%d seconds=%.1f",
        users, len(positions), grown, seconds,
    )  # fmt: skip
    return SequentialModel(
        previous.config.model_copy(update=_incremental_fields(config)), network,
        counts / max(float(counts.max(initial=0)), 1), codec=codec, training=training,
    )  # fmt: skip


def _incremental_fields(config: SequentialConfig) -> dict[str, Any]:
    return {k: v for k, v in config.model_dump().items() if k.startswith("incremental_")}
