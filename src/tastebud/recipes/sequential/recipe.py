"""The ``sequential`` recipe: its hyperparameters, the trained model that scores queries, and
``fit``/``load``. The transformer is in ``model.py``, the loop in ``train.py``."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
import torch
from pydantic import Field, model_validator

from tastebud.errors import InvalidInput
from tastebud.recipes.base import (
    FloatArray,
    Int64Array,
    IntArray,
    Model,
    ProgressFn,
    Query,
    RecipeConfig,
    TrainingData,
    load_arrays,
    save_arrays,
)
from tastebud.recipes.sequential.cold import item_text_rows
from tastebud.recipes.sequential.inputs import (
    MAX_GENRE_VALUES,
    feature_bags,
    genre_columns,
    token_codec,
)
from tastebud.recipes.sequential.intent import (
    TOP_INTENTS,
    IntentLabels,
    IntentOutput,
    describe,
    intent_columns,
)
from tastebud.recipes.sequential.model import SequenceTransformer, TransformerConfig
from tastebud.recipes.sequential.multitoken import MAX_PREDICT_NEXT, check_horizon, slate_scores
from tastebud.recipes.sequential.tokens import (
    Sequences,
    TokenCodec,
    gather,
    inputs_with_request,
    latest_windows,
    query_sequences,
    training_sequences,
    window_positions,
)
from tastebud.recipes.sequential.train import (
    TrainSettings,
    hold_out_last,
    native_bfloat16,
    train,
)

if TYPE_CHECKING:
    import optuna

_log = logging.getLogger(__name__)

MAX_AUTO_LEN = 128
LARGE_DATA_EVENTS = 500_000  # from this many training events, the smaller dropout
LARGE_DATA_DROPOUT, SMALL_DATA_DROPOUT = 0.1, 0.2
# Full softmax cross-entropy learns best (SASRec+), and over a few thousand items it costs about
# as much as the transformer itself; beyond this catalogue size a sampled softmax takes over.
FULL_SOFTMAX_ITEMS = 20_000
SAMPLED_NEGATIVES = 2_048
SCORE_BATCH = 256  # queries encoded at once
FEW_QUERIES = 8  # up to this many queries are scored on one thread (see intra_op_threads)
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
    gated_blocks: bool = Field(
        default=False,
        description="LiGR blocks (eSASRec): each sub-layer added through a learned sigmoid "
        "gate, SwiGLU feed-forward; off: pre-norm blocks with a GELU feed-forward",
    )
    relative_positions: bool = Field(
        default=False,
        description="a learned attention bias per head and token distance (T5, HSTU), "
        "beside the absolute position vectors",
    )
    time_bias: bool = Field(
        default=True,
        description="a learned attention bias per head and time between the two tokens "
        "(HSTU's bucketed timestamps; with token_features, from their gaps)",
    )
    heads: int = Field(default=1, ge=1, le=16, description="attention heads")
    dropout: float | None = Field(
        default=None, ge=0.0, lt=1.0,
        description=f"dropout probability; None: {LARGE_DATA_DROPOUT} from "
        f"{LARGE_DATA_EVENTS:,} training events, else {SMALL_DATA_DROPOUT}",
    )  # fmt: skip
    lr: float = Field(default=3e-3, gt=0.0, le=1.0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0, description="AdamW weight decay")
    batch_size: int = Field(default=64, ge=1, le=65_536, description="windows per step")
    older_windows: float = Field(
        default=1.0, ge=0.0, le=1.0,
        description="share of the windows before each user's latest max_len tokens that an "
        "epoch trains on, drawn afresh each epoch (the latest window always trains)",
    )  # fmt: skip
    negatives: int | None = Field(
        default=None, ge=0, le=1_000_000,
        description="sampled negatives per step; 0: full softmax; None: full softmax up to "
        f"{FULL_SOFTMAX_ITEMS:,} items, else {SAMPLED_NEGATIVES:,} sampled",
    )  # fmt: skip
    exclude_seen: bool = Field(
        default=True,
        description="a user's earlier items in a window are not negatives in training (the "
        "full softmax), as answers exclude the history; off: repeats are learned",
    )
    sampling_power: float = Field(
        default=0.5, ge=0.0, le=1.0, description="sampled negatives drawn ~ count**this"
    )
    # 2,048 users measure NDCG@10 to about +-0.006 (one standard error) on ml-1m-seq; with 1,024
    # and patience 5 a noisy dip stopped a run five epochs before its schedule's end (issue 5)
    patience: int = Field(
        default=8, ge=1, le=1_000, description="epochs without validation gain before stopping"
    )
    validation_users: int = Field(
        default=2_048, ge=0, le=1_000_000, description="users whose last item validates"
    )
    time_budget_seconds: float | None = Field(
        default=840.0, gt=0.0, description="training time; epochs shrink to fit (None: no cap)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto: CUDA when present, else CPU"
    )
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="training arithmetic: bfloat16 matrix products (float32 weights, softmax "
        "and loss) or float32; auto: bfloat16 where the device computes it natively (a GPU "
        "with bf16, a CPU with AVX512-BF16 or AMX)",
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
    predict_next: int = Field(
        default=1, ge=1, le=MAX_PREDICT_NEXT,
        description="items ahead each position learns (multi-token prediction): k > 1 lets "
        "answers rank for the next k actions (horizon); 1: the next item only",
    )  # fmt: skip
    predict_next_weight: float = Field(
        default=0.5, ge=0.0, le=10.0,
        description="weight of the items-after-the-next mean loss beside the next item's",
    )  # fmt: skip

    # warm-start growth (``train --incremental``, growth.py); a full fit ignores these
    incremental_epochs: int = Field(
        default=4, ge=1, le=1_000, description="incremental fit: passes over the recent windows"
    )
    incremental_budget_share: float = Field(
        default=0.15, gt=0.0, le=1.0,
        description="incremental fit: its share of time_budget_seconds",
    )  # fmt: skip
    incremental_replay: float = Field(
        default=0.3, ge=0.0, le=1.0,
        description="incremental fit: share of the users without new events whose latest "
        "window also trains (against forgetting)",
    )  # fmt: skip
    incremental_lr_scale: float = Field(
        default=0.3, gt=0.0, le=1.0, description="incremental fit: peak learning rate / lr"
    )
    age_mix: bool = Field(
        default=False,
        description="weigh each item's id vector by a learned gate of its interaction count, "
        "so that the metadata dominates for new and rarely seen items",
    )
    id_dropout: float = Field(
        default=0.0, ge=0.0, le=0.9,
        description="share of the item id vectors zeroed at each training step, so that the "
        "metadata alone learns to score an item",
    )  # fmt: skip
    text_metadata: bool = Field(
        default=True,
        description="embed the items' textual fields (all-MiniLM-L6-v2, offline) into the item "
        "vectors; only where the items schema declares textual fields",
    )
    intent_heads: bool = Field(
        default=False,
        description="heads predicting the next event type and the next item's intent_fields "
        "values, combined into an intent vector that steers the item scores (intent.py)",
    )
    intent_weight: float = Field(
        default=0.5, ge=0.0, le=100.0, description="lambda: weight of the intent heads' losses"
    )
    intent_fields: list[str] | None = Field(
        default=None,
        description="categorical item fields the intent heads predict (None: the genre rule)",
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
        intent_labels: IntentLabels | None = None,
    ) -> None:
        self.config = config
        self.intent_labels = intent_labels or IntentLabels()
        self.codec = codec or TokenCodec()
        self.training = training or {}  # the learning curve and why training stopped
        self.network = network.cpu().eval()
        self.popularity = np.asarray(popularity, np.float32)
        self.n_items = network.config.n_items
        with torch.inference_mode():
            self._table = self.network.items()  # (I + 1, D), fixed once trained

    @property
    def history_window(self) -> int:
        """Scores read the latest ``max_len`` tokens; twice as many events leave room for
        adjacent repeats, which merge into one token (and give the oldest token its gap)."""
        return 2 * self.network.config.max_len

    @property
    def predict_next(self) -> int:
        """Items ahead the model learned, so the largest ``horizon`` it answers for."""
        return self.network.config.predict_next

    def score(self, query: Query) -> FloatArray:
        """(len(query) x n_items): next-item scores from each query's latest history, its
        events' types, values and times, and the request's time and context."""
        return self._scores(query, 1)

    def score_horizon(self, query: Query, horizon: int) -> FloatArray:
        """(len(query) x n_items): each item's probability of being among the next
        ``horizon`` items (1 <= horizon <= predict_next; see ``multitoken.py``); an empty
        history gets the popularity. Horizon 1 is :meth:`score`."""
        return self._scores(query, check_horizon(horizon, self.predict_next))

    def _scores(self, query: Query, horizon: int) -> FloatArray:
        tokens, features, lengths = self._inputs(query)
        scores = np.repeat(self.popularity[None, :], len(query), axis=0)
        active = np.flatnonzero(lengths > 0)
        with intra_op_threads(1 if len(active) <= FEW_QUERIES else None):
            for low in range(0, len(active), SCORE_BATCH):
                rows = active[low : low + SCORE_BATCH]
                scores[rows] = self._next_item_scores(
                    tokens[rows], features[rows], lengths[rows], horizon
                )
        return scores

    def _inputs(self, query: Query) -> tuple[IntArray, IntArray, Int64Array]:
        """(Q, T + 1) tokens right-padded then the request slot, (Q, T + 1, C) features, (Q,)
        lengths: each query's latest history, its events' columns and the request's."""
        codec = self.codec
        sequences = query_sequences(
            query, self.n_items, events=codec.query_events(query), strength=codec.strengths()
        )
        times = query.times  # None: the request is now
        if times is None:
            times = np.full(len(query), int(time.time()), np.int64)
        requests = codec.requests(sequences, times, codec.query_contexts(query))
        return inputs_with_request(
            sequences, codec.features(sequences), requests, self.network.config.max_len
        )

    def item_embeddings(self) -> FloatArray:
        """(n_items x D): the tied item table (id + metadata vectors) the scores dot with."""
        table: FloatArray = self._table[1:].float().numpy()
        return table

    def user_embeddings(self, query: Query) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """(len(query) x D): the encoder's state after each query's latest token (what dots
        with :meth:`item_embeddings`), and which queries have a history to encode."""
        tokens, features, lengths = self._inputs(query)
        vectors = np.zeros((len(query), self.network.config.hidden), np.float32)
        active = np.flatnonzero(lengths > 0)
        for low in range(0, len(active), SCORE_BATCH):
            rows = active[low : low + SCORE_BATCH]
            vectors[rows] = self._last_states(tokens[rows], features[rows], lengths[rows])
        return vectors, lengths > 0

    def _last_states(self, tokens: IntArray, features: IntArray, lengths: Int64Array) -> FloatArray:
        """(B, D) user vectors: the item head's query after each row's last token."""
        with torch.inference_mode():
            query, _ = self.network.heads(self._encode_last(tokens, features, lengths))
        vectors: FloatArray = query.float().numpy()
        return vectors

    def _next_item_scores(
        self, tokens: IntArray, features: IntArray, lengths: Int64Array, horizon: int = 1
    ) -> FloatArray:
        """(B, T + 1) tokens, (B, T + 1, C) features, (B,) lengths >= 1 -> (B, I) scores
        after the last token (horizon > 1: the slate's probabilities)."""
        with torch.inference_mode():
            last = self._encode_last(tokens, features, lengths)
            if horizon == 1:
                logits = self.network.logits(last, self._table)  # (B, I)
            else:
                history = torch.from_numpy(tokens[:, : int(lengths.max())]).long()
                logits = slate_scores(
                    self.network, last, self._table, history, horizon,
                    exclude_history=self.config.exclude_seen,
                )  # fmt: skip
        scores: FloatArray = logits.float().numpy()
        return scores

    def _encode_last(
        self, tokens: IntArray, features: IntArray, lengths: Int64Array
    ) -> torch.Tensor:
        """(B, D) encoder state after each row's last token (call under inference mode)."""
        width = int(lengths.max())
        rows = torch.from_numpy(features[:, : width + 1]) if features.shape[2] else None
        states = self.network.encode(torch.from_numpy(tokens[:, :width]).long(), self._table, rows)
        return states[torch.arange(len(tokens)), torch.from_numpy(lengths - 1)]

    @property
    def has_intent(self) -> bool:
        return self.network.intent is not None

    def predict_intent(
        self, query: Query, top: int = TOP_INTENTS
    ) -> list[dict[str, dict[str, float]]]:
        """Per query, each intent head's ``top`` most probable classes (``{}`` without
        history), e.g. ``{"eventType": {"watch": 0.8, ...}, "GENRES": {"Drama": 0.4, ...}}``."""
        active, output = self._intent(query)
        heads = self.network.intent
        out: list[dict[str, dict[str, float]]] = [{} for _ in range(len(query))]
        if heads is None or output is None:
            return out
        tables = [p.float().numpy() for p in heads.probabilities(output)]
        for row, described in zip(active, describe(self.intent_labels, tables, top), strict=True):
            out[row] = described
        return out

    def intent_vectors(self, query: Query) -> FloatArray:
        """(len(query), D) each query's intent vector; NaN rows without history."""
        active, output = self._intent(query)
        vectors = np.full((len(query), self.network.config.hidden), np.nan, np.float32)
        if output is not None:
            vectors[active] = output.vector.float().numpy()
        return vectors

    def _intent(self, query: Query) -> tuple[Int64Array, IntentOutput | None]:
        """The queries with history and their intent heads' output."""
        heads = self.network.intent
        if heads is None:
            raise InvalidInput("this sequential model has no intent heads; train it with "
                               "intent_heads: true")  # fmt: skip
        tokens, features, lengths = self._inputs(query)
        active = np.flatnonzero(lengths > 0)
        if len(active) == 0:
            return active, None
        parts = []
        with torch.inference_mode():
            for low in range(0, len(active), SCORE_BATCH):
                rows = active[low : low + SCORE_BATCH]
                parts.append(heads(self._encode_last(tokens[rows], features[rows], lengths[rows])))
        events, fields = (None if parts[0][i] is None else torch.cat([p[i] for p in parts])
                          for i in (0, 1))  # fmt: skip
        return active, IntentOutput(events, fields, torch.cat([p.vector for p in parts]))

    def save(self, folder: Path) -> None:
        meta = {
            "recipe": Sequential.name,
            "layout": LAYOUT,
            "config": self.config.model_dump(),
            "network": asdict(self.network.config),
            "codec": asdict(self.codec),
            "training": self.training,
        }
        if self.has_intent:
            meta["intent"] = self.intent_labels.to_json()
        arrays = {f"state.{k}": v.cpu().numpy() for k, v in self.network.state_dict().items()}
        save_arrays(folder, meta, arrays | {"popularity": self.popularity})


@contextmanager
def intra_op_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads (None: unchanged).

    One request is a few hundred small ops; waking a second thread for each costs more than it
    saves, and far more on a loaded machine: scoring one ml-1m-seq user took p99 31-61 ms with
    2 threads against 6.5 ms with 1 (issue 5). torch's setting is per process, so concurrent
    requests may briefly see each other's; that changes speed, never scores.
    """
    previous = torch.get_num_threads()
    if count is None or count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# data-adapted sizes -----------------------------------------------------------------------------
def auto_max_len(sequences: Sequences) -> int:
    """The power of two at or above the median token count, within 8..128: most of the signal
    is recent (on ml-1m-seq 128 validated better than 64 and 200), and attention's cost grows
    with the length."""
    lengths = sequences.lengths[sequences.lengths > 0]
    median = float(np.median(lengths)) if len(lengths) else 1.0
    return int(min(MAX_AUTO_LEN, max(8, 2 ** math.ceil(math.log2(max(median, 1.0))))))


def auto_dropout(n_events: int) -> float:
    """Less regularisation with more data: on ml-1m-seq (987k events) 0.1 beat 0.2 on the
    validation item by 0.0055 NDCG@10, on ml-100k (100k) 0.2 beat 0.1 by 0.0051 (issue 17)."""
    return LARGE_DATA_DROPOUT if n_events >= LARGE_DATA_EVENTS else SMALL_DATA_DROPOUT


def auto_negatives(n_items: int) -> int:
    """0 (full softmax) for catalogues up to ``FULL_SOFTMAX_ITEMS``, else ``SAMPLED_NEGATIVES``."""
    return 0 if n_items <= FULL_SOFTMAX_ITEMS else SAMPLED_NEGATIVES


def auto_hidden(n_items: int, heads: int) -> int:
    """The power of two nearest 2 sqrt(n_items), within 32..256, a multiple of ``heads``: 128
    on ml-1m-seq (3,416 items), where it gave +0.01 test NDCG@10 over 64 in the same 840 s,
    and 64 on ml-100k (1,682 items), where it scored as 32 did (issue 17)."""
    size: int = min(256, max(32, 2 ** round(math.log2(max(n_items, 1)) / 2 + 1)))
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
    precision = settings.precision
    if precision == "auto":
        precision = "bfloat16" if native_bfloat16(torch.device(device)) else "float32"
    return TrainSettings(
        epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size,
        weight_decay=settings.weight_decay, patience=settings.patience, negatives=negatives,
        exclude_seen=settings.exclude_seen,
        older_windows=settings.older_windows,
        time_budget_seconds=settings.time_budget_seconds, device=torch.device(device), seed=seed,
        intent_weight=settings.intent_weight, precision=getattr(torch, precision),
    )  # fmt: skip


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
        codec = token_codec(data, tokens=settings.token_features, context=settings.context_features)
        sequences = training_sequences(data, codec.strengths())
        features = codec.features(sequences)  # (n_tokens, C)
        max_len = settings.max_len or auto_max_len(sequences)
        network = build_network(data, settings, max_len, codec)
        labels = intent_labels(data, settings, codec)
        remaining, remaining_features, validation = hold_out_last(
            sequences, features, n_users=settings.validation_users, max_len=max_len, rng=rng,
        )  # fmt: skip
        # a window of max_len + 1 tokens yields max_len (input, next item) pairs
        stride = settings.stride or max_len
        positions = window_positions(
            remaining.lengths, remaining.indptr, size=max_len + 1, stride=stride
        )
        token_windows = gather(remaining.tokens, positions)
        feature_windows = gather(remaining_features, positions) if codec.width else None
        latest = latest_windows(remaining.lengths, size=max_len + 1, stride=stride)
        options = train_settings(settings, n_items=data.n_items, seed=seed)
        report = train(
            network.to(options.device), token_windows, feature_windows, validation,
            negative_sampling(data, settings.sampling_power), options, progress, latest=latest,
        )  # fmt: skip
        counts = data.item_counts()
        training = {
            "best_epoch": report.best_epoch, "validation_ndcg@10": report.best_ndcg,
            "stopped": report.stopped, "seconds": time.perf_counter() - started,
            "curve": [asdict(epoch) for epoch in report.epochs],
        }  # fmt: skip
        model = SequentialModel(
            settings, network, counts / max(float(counts.max(initial=0)), 1), codec=codec,
            training=training, intent_labels=labels,
        )  # fmt: skip
        _log.info(
            "fit done recipe=sequential users=%d items=%d windows=%d max_len=%d hidden=%d "
            "epochs=%d best_epoch=%d val_ndcg@10=%.4f stopped=%s seconds=%.1f",
            data.n_users, data.n_items, len(token_windows), max_len, network.config.hidden,
            len(report.epochs), report.best_epoch, report.best_ndcg, report.stopped,
            time.perf_counter() - started,
        )  # fmt: skip
        return model

    def fit_incremental(
        self,
        previous: Model,
        data: TrainingData,
        config: RecipeConfig,
        *,
        since: int,
        previous_items: IntArray,
        previous_feature_names: tuple[str, ...] | None = None,
        seed: int = 0,
        progress: ProgressFn | None = None,
    ) -> SequentialModel:
        """``previous`` grown to ``data`` and trained on its events since ``since`` (see
        ``growth.py``; imported here, as it builds on this module)."""
        from tastebud.recipes.sequential.growth import Lineage, fit_incremental

        if not isinstance(previous, SequentialModel):
            raise InvalidInput("incremental: the previous version is not a sequential model")
        settings = SequentialConfig.model_validate(config.model_dump())
        lineage = Lineage(previous_items, previous_feature_names)
        return fit_incremental(previous, data, settings, since=since, lineage=lineage,
                               seed=seed, progress=progress)  # fmt: skip

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
            intent_columns=state.get("intent.columns"),
        )
        network.load_state_dict(state)
        return SequentialModel(
            SequentialConfig(**meta["config"]), network, arrays["popularity"],
            codec=TokenCodec.from_json(meta.get("codec") or {}),
            training=meta.get("training"),
            intent_labels=IntentLabels.from_json(meta.get("intent") or {}),
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
    intents, labels = torch.zeros(0, dtype=torch.long), IntentLabels()
    if settings.intent_heads:
        intents, labels = intent_columns(data, settings.intent_fields, codec.event_types)
    counts = np.zeros(data.n_items + 1, np.float32)
    counts[1:] = np.bincount(data.items, minlength=data.n_items)
    known = (counts > 0).astype(np.float32)
    text = item_text_rows(data) if settings.text_metadata else None
    config = TransformerConfig(
        n_items=data.n_items, n_features=n_features, max_len=max_len,
        hidden=settings.hidden or auto_hidden(data.n_items, settings.heads),
        blocks=settings.blocks, heads=settings.heads,
        dropout=auto_dropout(data.size) if settings.dropout is None else settings.dropout,
        gated=settings.gated_blocks, relative_positions=settings.relative_positions,
        time_bias=settings.time_bias and codec.gaps,
        genre_head=genres is not None, metadata=settings.use_metadata,
        n_event_types=len(codec.event_types), n_value_buckets=codec.n_value_buckets,
        time_features=codec.gaps, request_features=codec.request_times,
        n_context_fields=len(codec.context_fields), n_contexts=len(codec.context_names),
        genre_features=0 if genres is None else len(genres), field_pooling=True,
        predict_next=settings.predict_next, predict_next_weight=settings.predict_next_weight,
        age_mix=settings.age_mix, id_dropout=settings.id_dropout,
        text_width=0 if text is None else text.shape[1],
        intent_events=len(labels.event_types), intent_sizes=tuple(len(v) for v in labels.values),
    )  # fmt: skip
    return SequenceTransformer(
        config, known=torch.from_numpy(known), feature_index=feature_index,
        feature_offsets=offsets, feature_weights=weights, genre_columns=genres,
        counts=torch.from_numpy(counts), text=text,
        intent_columns=intents,
    )  # fmt: skip


def intent_labels(data: TrainingData, settings: SequentialConfig, codec: TokenCodec
                  ) -> IntentLabels:  # fmt: skip
    """What the intent heads of ``build_network`` predict (none without the heads)."""
    if not settings.intent_heads:
        return IntentLabels()
    return intent_columns(data, settings.intent_fields, codec.event_types)[1]
