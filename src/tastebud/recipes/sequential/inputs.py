"""What the training data feeds the network besides the item sequences: the token feature codec,
the item metadata as embedding bags (categorical values, numerical fields in quantile buckets)
and the genre head's field."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from tastebud.errors import InvalidInput
from tastebud.recipes.base import IntArray, TrainingData
from tastebud.recipes.sequential.tokens import TokenCodec, value_edges

MAX_GENRE_VALUES = 64  # a field the genre head predicts has at most this many values
NUMBER_BUCKETS = 16  # quantile buckets of a numerical item field (e.g. YEAR)


def token_codec(data: TrainingData, *, tokens: bool, context: bool) -> TokenCodec:
    """The token features ``data`` can feed: with ``tokens``, event types when there are two or
    more (with their strength, the largest weight seen), values when they vary, and gaps; with
    ``context``, the request's time and context fields."""
    types: tuple[str, ...] = ()
    strength: tuple[float, ...] = ()
    if tokens and data.event_types is not None and len(data.event_type_names) > 1:
        types = data.event_type_names
        largest = np.zeros(len(types), np.float32)
        known = data.event_types >= 0
        np.maximum.at(largest, data.event_types[known], data.weights[known])
        strength = tuple(float(weight) for weight in largest)
    with_contexts = context and data.contexts is not None
    return TokenCodec(
        event_types=types, strength=strength,
        value_edges=value_edges(data.values) if tokens else None,
        gaps=tokens, request_times=context,
        context_fields=data.context_fields if with_contexts else (),
        context_names=data.context_names if with_contexts else (),
    )  # fmt: skip


def genre_columns(data: TrainingData, field: str | None) -> torch.Tensor | None:
    """The feature columns of the genre head's field: ``field`` when named, else the field with
    at most ``MAX_GENRE_VALUES`` values that covers the most items (fewer values on ties).

    Raises:
        InvalidInput: ``field`` is not a categorical item field of ``data``.
    """
    fields = [name.partition("=")[0] for name in data.feature_names]
    if field is not None:
        if field not in fields:
            known = ", ".join(sorted(set(fields))) or "none"
            raise InvalidInput(f"sequential: genre_field {field!r} is not an item field ({known})")
        return torch.tensor([i for i, name in enumerate(fields) if name == field])
    if data.item_features is None:
        return None
    features = data.item_features.tocsc()
    best: tuple[int, int] | None = None
    for name in sorted(set(fields)):
        columns = [i for i, other in enumerate(fields) if other == name]
        if len(columns) <= MAX_GENRE_VALUES:
            covered = int((features[:, columns].getnnz(axis=1) > 0).sum())
            if best is None or (covered, -len(columns)) > (best[0], -best[1]):
                best, field = (covered, len(columns)), name
    if field is None:
        return None
    return torch.tensor([i for i, name in enumerate(fields) if name == field])


def item_feature_columns(data: TrainingData) -> tuple[sp.csr_matrix | None, IntArray]:
    """The one-hot item features the item table embeds, and the field of each column: the
    categorical values (``GENRES=Comedy``), then each numerical field (``YEAR``) cut into up to
    ``NUMBER_BUCKETS`` quantile buckets (a missing value falls in none)."""
    parts, fields = [], []
    if data.item_features is not None and data.item_features.shape[1]:
        parts.append(sp.csr_matrix(data.item_features))
        names = [name.partition("=")[0] for name in data.feature_names]
        fields += [sorted(set(names)).index(name) for name in names]
    numbers = np.zeros((data.n_items, 0)) if data.item_numbers is None else data.item_numbers
    for column in numbers.T:
        known = np.flatnonzero(np.isfinite(column))
        if len(np.unique(column[known])) < 2:
            continue  # a field that never varies says nothing
        values = column[known]
        cuts = np.quantile(values, np.arange(1, NUMBER_BUCKETS) / NUMBER_BUCKETS,
                           method="inverted_cdf")  # fmt: skip
        edges = np.unique(cuts[cuts > values.min()])  # bucket 0: below the first edge
        buckets = np.searchsorted(edges, values, side="right")
        parts.append(sp.csr_matrix((np.ones(len(known), np.float32), (known, buckets)),
                                   shape=(data.n_items, len(edges) + 1)))  # fmt: skip
        fields += [max(fields, default=-1) + 1] * (len(edges) + 1)
    if not parts:
        return None, np.zeros(0, np.int32)
    return sp.csr_matrix(sp.hstack(parts)), np.asarray(fields, np.int32)


def feature_bags(data: TrainingData) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(n_features, feature_index, offsets, weights)`` of each item's features (row 0 =
    padding); ``weights`` average the values within a field (``GENRES``) and sum the fields."""
    features, fields = item_feature_columns(data)
    if features is None:
        empty = torch.zeros(0, dtype=torch.long)
        return 0, empty, torch.zeros(data.n_items + 1, dtype=torch.long), empty.float()
    features.sort_indices()
    rows = np.repeat(np.arange(features.shape[0]), np.diff(features.indptr))
    keys = rows.astype(np.int64) * (int(fields.max()) + 1) + fields[features.indices]
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    offsets = np.concatenate([[0], features.indptr[:-1]])  # token 0 gets the empty bag at 0
    index = torch.from_numpy(features.indices.astype(np.int64))
    weights = torch.from_numpy((1.0 / counts[inverse]).astype(np.float32))
    return features.shape[1], index, torch.from_numpy(offsets.astype(np.int64)), weights
