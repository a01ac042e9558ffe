"""The ``sequential`` recipe: its hyperparameters, the trained model that scores queries, and
``fit``/``load``. The transformer is in ``model.py``, the loop in ``train.py``."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field, model_validator

from tastebud.errors import InvalidInput
from tastebud.recipes.base import (
    FloatArray,
    Int64Array,
    IntArray,
    ProgressFn,
    Query,
    RecipeConfig,
    TrainingData,
    load_arrays,
    save_arrays,
)
from tastebud.recipes.sequential.model import SequenceTransformer, TransformerConfig
from tastebud.recipes.sequential.tokens import (
    Sequences,
    TokenCodec,
    gather,
    inputs_with_request,
    query_sequences,
    training_sequences,
    value_edges,
    window_positions,
)
from tastebud.recipes.sequential.train import TrainSettings, hold_out_last, train

if TYPE_CHECKING:
    import optuna

_log = logging.getLogger(__name__)

MAX_AUTO_LEN = 128
# Full softmax cross-entropy learns best (SASRec+), and over a few thousand items it costs about
# as much as the transformer itself; beyond this catalogue size a sampled softmax takes over.
FULL_SOFTMAX_ITEMS = 20_000
SAMPLED_NEGATIVES = 2_048
SCORE_BATCH = 256  # queries encoded at once
MAX_GENRE_VALUES = 64  # a field the genre head predicts has at most this many values
NUMBER_BUCKETS = 16  # quantile buckets of a numerical item field (e.g. YEAR)
# Saved models' layout: 1 = ids, metadata and the first genre head; 2 = token features and the
# hierarchical genre head. Layout 1 models without a genre head still load.
LAYOUT = 2


class SequentialConfig(RecipeConfig):
    """Hyperparameters of ``sequential``; ``None`` sizes adapt to the data."""

    epochs: int = Field(default=40, ge=1, le=1_000, description="most passes over the windows")
    max_len: int | None = Field(
        default=None, ge=2, le=2_048, description="tokens per window; None: from the lengths"
    )
    stride: int | None = Field(
        default=None, ge=1, le=2_048, description="window step on long histories; None: max_len"
    )
    hidden: int | None = Field(
        default=None, ge=8, le=1_024, description="embedding size; None: from the catalogue"
    )
    blocks: int = Field(default=2, ge=1, le=12, description="transformer blocks")
    heads: int = Field(default=1, ge=1, le=16, description="attention heads")
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0, description="dropout probability")
    lr: float = Field(default=3e-3, gt=0.0, le=1.0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0, description="AdamW weight decay")
    batch_size: int = Field(default=64, ge=1, le=65_536, description="windows per step")
    negatives: int | None = Field(
        default=None, ge=0, le=1_000_000,
        description="sampled negatives per step; 0: full softmax; None: full softmax up to "
        f"{FULL_SOFTMAX_ITEMS:,} items, else {SAMPLED_NEGATIVES:,} sampled",
    )  # fmt: skip
    sampling_power: float = Field(
        default=0.5, ge=0.0, le=1.0, description="sampled negatives drawn ~ count**this"
    )
    patience: int = Field(
        default=5, ge=1, le=1_000, description="epochs without validation gain before stopping"
    )
    validation_users: int = Field(
        default=1_024, ge=0, le=1_000_000, description="users whose last item validates"
    )
    time_budget_seconds: float | None = Field(
        default=840.0, gt=0.0, description="training time; epochs shrink to fit (None: no cap)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto: CUDA with bf16 autocast when present, else CPU"
    )
    use_metadata: bool = Field(default=True, description="add item feature embeddings")
    token_features: bool = Field(
        default=True, description="each token's event type, value and gap to the previous one"
    )
    context_features: bool = Field(
        default=True,
        description="request time (hour, gap since the last event) and context fields at the "
        "predicted position",
    )
    genre_head: bool = Field(
        default=False,
        description="auxiliary head predicting the next item's values of one categorical "
        "field, fed into the item scores",
    )
    genre_field: str | None = Field(
        default=None,
        description="the genre head's field (e.g. GENRES); None: the field with at most "
        f"{MAX_GENRE_VALUES} values that covers the most items",
    )

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> SequentialConfig:
        if self.hidden is not None and self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        return self


class SequentialModel:
    """A trained transformer, its token codec, the item popularity for empty histories, and
    its config."""

    def __init__(
        self,
        config: SequentialConfig,
        network: SequenceTransformer,
        popularity: FloatArray,
        *,
        codec: TokenCodec | None = None,
        training: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.codec = codec or TokenCodec()
        self.training = training or {}  # the learning curve and why training stopped
        self.network = network.cpu().eval()
        self.popularity = np.asarray(popularity, np.float32)
        self.n_items = network.config.n_items
        with torch.inference_mode():
            self._table = self.network.items()  # (I + 1, D), fixed once trained

    def score(self, query: Query) -> FloatArray:
        """(len(query) x n_items): next-item scores from each query's latest history, its
        events' types, values and times, and the request's time and context."""
        codec = self.codec
        sequences = query_sequences(
            query, self.n_items, events=codec.query_events(query), strength=codec.strengths()
        )
        now = int(time.time()) if query.times is None else None  # None: the request is now
        times = np.full(len(query), now, np.int64) if query.times is None else query.times
        requests = codec.requests(sequences, times, codec.query_contexts(query))
        tokens, features, lengths = inputs_with_request(
            sequences, codec.features(sequences), requests, self.network.config.max_len
        )  # (Q, T + 1) right-padded then the request slot, (Q, T + 1, C), (Q,)
        scores = np.repeat(self.popularity[None, :], len(query), axis=0)
        active = np.flatnonzero(lengths > 0)
        for low in range(0, len(active), SCORE_BATCH):
            rows = active[low : low + SCORE_BATCH]
            scores[rows] = self._next_item_scores(tokens[rows], features[rows], lengths[rows])
        return scores

    def _next_item_scores(
        self, tokens: IntArray, features: IntArray, lengths: Int64Array
    ) -> FloatArray:
        """(B, T + 1) tokens, (B, T + 1, C) features, (B,) lengths >= 1 -> (B, I) scores
        after the last token."""
        width = int(lengths.max())
        with torch.inference_mode():
            rows = torch.from_numpy(features[:, : width + 1]) if features.shape[2] else None
            states = self.network.encode(
                torch.from_numpy(tokens[:, :width]).long(), self._table, rows
            )
            last = states[torch.arange(len(tokens)), torch.from_numpy(lengths - 1)]  # (B, D)
            logits = self.network.logits(last, self._table)  # (B, I)
        scores: FloatArray = logits.float().numpy()
        return scores

    def save(self, folder: Path) -> None:
        meta = {
            "recipe": Sequential.name,
            "layout": LAYOUT,
            "config": self.config.model_dump(),
            "network": asdict(self.network.config),
            "codec": asdict(self.codec),
            "training": self.training,
        }
        arrays = {f"state.{k}": v.cpu().numpy() for k, v in self.network.state_dict().items()}
        save_arrays(folder, meta, arrays | {"popularity": self.popularity})


# data-adapted sizes -----------------------------------------------------------------------------
def auto_max_len(sequences: Sequences) -> int:
    """The power of two at or above the median token count, within 8..128: most of the signal
    is recent (on ml-1m-seq 128 validated better than 64 and 200), and attention's cost grows
    with the length."""
    lengths = sequences.lengths[sequences.lengths > 0]
    median = float(np.median(lengths)) if len(lengths) else 1.0
    return int(min(MAX_AUTO_LEN, max(8, 2 ** math.ceil(math.log2(max(median, 1.0))))))


def auto_negatives(n_items: int) -> int:
    """0 (full softmax) for catalogues up to ``FULL_SOFTMAX_ITEMS``, else ``SAMPLED_NEGATIVES``."""
    return 0 if n_items <= FULL_SOFTMAX_ITEMS else SAMPLED_NEGATIVES


def auto_hidden(n_items: int, heads: int) -> int:
    """The power of two nearest sqrt(n_items), within 32..256, a multiple of ``heads``."""
    size: int = min(256, max(32, 2 ** round(math.log2(max(n_items, 1)) / 2)))
    return heads * math.ceil(size / heads)


def negative_sampling(data: TrainingData, power: float) -> torch.Tensor:
    """(I,) probability of drawing each item as a negative: ~ count**power over items with
    training events (power 0: uniform), never a cold item."""
    counts = np.bincount(data.items, minlength=data.n_items).astype(np.float64)
    weights = np.where(counts > 0, np.power(np.maximum(counts, 1), power), 0.0)
    return torch.from_numpy(weights / max(weights.sum(), 1e-12)).float()


def train_settings(settings: SequentialConfig, *, n_items: int, seed: int) -> TrainSettings:
    """The loop's options, with the device and the negatives resolved."""
    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    negatives = auto_negatives(n_items) if settings.negatives is None else settings.negatives
    return TrainSettings(
        epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size,
        weight_decay=settings.weight_decay, patience=settings.patience, negatives=negatives,
        time_budget_seconds=settings.time_budget_seconds, device=torch.device(device), seed=seed,
    )  # fmt: skip


def token_codec(data: TrainingData, settings: SequentialConfig) -> TokenCodec:
    """The token features ``data`` can feed: event types when there are two or more (with
    their strength, the largest weight seen), values when they vary, times, and contexts."""
    types: tuple[str, ...] = ()
    strength: tuple[float, ...] = ()
    if settings.token_features and data.event_types is not None and len(data.event_type_names) > 1:
        types = data.event_type_names
        largest = np.zeros(len(types), np.float32)
        known = data.event_types >= 0
        np.maximum.at(largest, data.event_types[known], data.weights[known])
        strength = tuple(float(weight) for weight in largest)
    with_contexts = settings.context_features and data.contexts is not None
    return TokenCodec(
        event_types=types, strength=strength,
        value_edges=value_edges(data.values) if settings.token_features else None,
        gaps=settings.token_features, request_times=settings.context_features,
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


class Sequential:
    """The ``sequential`` recipe."""

    name: ClassVar[str] = "sequential"
    config_type: ClassVar[type[RecipeConfig]] = SequentialConfig

    def fit(
        self,
        data: TrainingData,
        config: RecipeConfig,
        *,
        seed: int = 0,
        progress: ProgressFn | None = None,
    ) -> SequentialModel:
        """Train the transformer on next-item prediction over every user's token windows."""
        started = time.perf_counter()
        settings = SequentialConfig.model_validate(config.model_dump())
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        codec = token_codec(data, settings)
        sequences = training_sequences(data, codec.strengths())
        features = codec.features(sequences)  # (n_tokens, C)
        max_len = settings.max_len or auto_max_len(sequences)
        network = build_network(data, settings, max_len, codec)
        remaining, remaining_features, validation = hold_out_last(
            sequences, features, n_users=settings.validation_users, max_len=max_len, rng=rng,
        )  # fmt: skip
        # a window of max_len + 1 tokens yields max_len (input, next item) pairs
        positions = window_positions(
            remaining.lengths, remaining.indptr, size=max_len + 1,
            stride=settings.stride or max_len,
        )  # fmt: skip
        token_windows = gather(remaining.tokens, positions)
        feature_windows = gather(remaining_features, positions) if codec.width else None
        options = train_settings(settings, n_items=data.n_items, seed=seed)
        report = train(
            network.to(options.device), token_windows, feature_windows, validation,
            negative_sampling(data, settings.sampling_power), options, progress,
        )  # fmt: skip
        counts = data.item_counts()
        training = {
            "best_epoch": report.best_epoch, "validation_ndcg@10": report.best_ndcg,
            "stopped": report.stopped, "seconds": time.perf_counter() - started,
            "curve": [asdict(epoch) for epoch in report.epochs],
        }  # fmt: skip
        model = SequentialModel(
            settings, network, counts / max(float(counts.max(initial=0)), 1), codec=codec,
            training=training,
        )  # fmt: skip
        _log.info(
            "fit done recipe=sequential users=%d items=%d windows=%d max_len=%d hidden=%d "
            "epochs=%d best_epoch=%d val_ndcg@10=%.4f stopped=%s seconds=%.1f",
            data.n_users, data.n_items, len(token_windows), max_len, network.config.hidden,
            len(report.epochs), report.best_epoch, report.best_ndcg, report.stopped,
            time.perf_counter() - started,
        )  # fmt: skip
        return model

    def load(self, folder: Path) -> SequentialModel:
        """Read a model written by :meth:`SequentialModel.save` (any layout up to ``LAYOUT``).

        Raises:
            ValueError: a layout this version cannot read (newer, or a layout-1 genre head).
        """
        meta, arrays = load_arrays(folder)
        layout = int(meta.get("layout", 1))
        if layout > LAYOUT or (layout == 1 and meta["network"].get("genre_head")):
            raise ValueError(
                f"{folder}: sequential model layout {layout}"
                + (" with the first genre head" if layout == 1 else "")
                + f" cannot be read by this tastebud (layout {LAYOUT}); train a new version"
            )
        state = {k.removeprefix("state."): torch.from_numpy(v) for k, v in arrays.items()
                 if k.startswith("state.")}  # fmt: skip
        network = SequenceTransformer(
            TransformerConfig(**meta["network"]),
            known=state["items.known"][:, 0],
            feature_index=state["items.feature_index"],
            feature_offsets=state["items.feature_offsets"],
            feature_weights=state.get("items.feature_weights"),
            genre_columns=state.get("genre.columns"),
        )
        network.load_state_dict(state)
        return SequentialModel(
            SequentialConfig(**meta["config"]), network, arrays["popularity"],
            codec=TokenCodec.from_json(meta.get("codec") or {}),
            training=meta.get("training"),
        )  # fmt: skip

    def search_space(self, trial: optuna.trial.BaseTrial) -> dict[str, object]:
        """Optuna search space over the knobs that matter most on validation."""
        heads = trial.suggest_categorical("heads", [1, 2])
        return {
            "max_len": trial.suggest_categorical("max_len", [25, 50, 100, 200]),
            "hidden": heads * trial.suggest_categorical("hidden_per_head", [32, 64]),
            "heads": heads,
            "blocks": trial.suggest_int("blocks", 1, 3),
            "dropout": trial.suggest_float("dropout", 0.1, 0.5),
            "lr": trial.suggest_float("lr", 3e-4, 5e-3, log=True),
            "use_metadata": trial.suggest_categorical("use_metadata", [True, False]),
        }


def build_network(
    data: TrainingData, settings: SequentialConfig, max_len: int, codec: TokenCodec | None = None
) -> SequenceTransformer:
    """A fresh transformer sized for ``data``; items with training events get id vectors."""
    codec = codec or TokenCodec()
    n_features, feature_index, offsets, weights = feature_bags(data)
    genres = genre_columns(data, settings.genre_field) if settings.genre_head else None
    known = np.zeros(data.n_items + 1, np.float32)
    known[1:] = np.bincount(data.items, minlength=data.n_items) > 0
    config = TransformerConfig(
        n_items=data.n_items, n_features=n_features, max_len=max_len,
        hidden=settings.hidden or auto_hidden(data.n_items, settings.heads),
        blocks=settings.blocks, heads=settings.heads, dropout=settings.dropout,
        genre_head=genres is not None, metadata=settings.use_metadata,
        n_event_types=len(codec.event_types), n_value_buckets=codec.n_value_buckets,
        time_features=codec.gaps, request_features=codec.request_times,
        n_context_fields=len(codec.context_fields), n_contexts=len(codec.context_names),
        genre_features=0 if genres is None else len(genres), field_pooling=True,
    )  # fmt: skip
    return SequenceTransformer(
        config, known=torch.from_numpy(known), feature_index=feature_index,
        feature_offsets=offsets, feature_weights=weights, genre_columns=genres,
    )  # fmt: skip
