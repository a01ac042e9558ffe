"""A causal transformer over item tokens (SASRec, Kang & McAuley 2018; nanoGPT's layout).

One encoder serves training and scoring. Items are embedded by a learned id vector plus the
mean of their metadata feature vectors, and the same table scores the next item (input/output
weight tying), so an item with no interactions is scored from its metadata alone. Each token's
features (event type, value, time gap) are added to its input vector, and the features known
before the next token is chosen (request time, context) to the position that predicts it.

Shapes: B batch, T tokens (<= max_len), D hidden, I items (+1 with the padding row 0),
F item features, G genre-head features, C token feature columns (see ``tokens.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tastebud.recipes.sequential.cold import AgeMix, TextProjection, id_dropout
from tastebud.recipes.sequential.intent import IntentHeads, IntentOutput
from tastebud.recipes.sequential.multitoken import OffsetHeads
from tastebud.recipes.sequential.tokens import GAP, GAP_BUCKETS, HOUR, HOURS, TYPE, VALUE


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture of :class:`SequenceTransformer`; saved with the model. Fields added after
    the first release default to "absent", so older saved configs build the same network."""

    n_items: int
    n_features: int = 0
    max_len: int = 50
    hidden: int = 64
    blocks: int = 2
    heads: int = 1
    dropout: float = 0.2
    genre_head: bool = False
    expansion: int = 2  # feed-forward width / hidden (SASRec: 1, nanoGPT: 4)
    metadata: bool = True  # feature vectors in the item table (n_features > 0)
    n_event_types: int = 0  # token features: 0 = unused
    n_value_buckets: int = 0
    time_features: bool = False  # each token's gap to the previous one
    request_features: bool = False  # the next token's gap and hour of day
    n_context_fields: int = 0
    n_contexts: int = 0  # distinct context values over all fields
    genre_features: int = 0  # G: feature columns the genre head predicts
    field_pooling: bool = False  # features averaged per field, fields summed (else one mean)
    predict_next: int = 1  # k: items each position learns (offsets 2..k: multitoken.py)
    predict_next_weight: float = 0.5  # the offsets' mean loss, weighed against the next item's
    age_mix: bool = False  # id vectors gated by the item's interaction count (cold.py)
    id_dropout: float = 0.0  # share of id vectors zeroed per training step (cold.py)
    text_width: int = 0  # E: width of the items' text vectors (0: no text)
    intent_events: int = 0  # event types the intent heads predict (0: no event head)
    intent_sizes: tuple[int, ...] = ()  # values of each field the intent heads predict
    gated: bool = False  # LiGR blocks: gated residuals, SwiGLU feed-forward (GatedBlock)
    relative_positions: bool = False  # a learned attention bias per head and distance
    time_bias: bool = False  # a learned attention bias per head and time between tokens

    def __post_init__(self) -> None:
        # A saved config comes back from JSON with a list: equal configs must compare equal
        # (train --incremental checks the architecture field by field).
        object.__setattr__(self, "intent_sizes", tuple(self.intent_sizes))

    @property
    def intent(self) -> bool:
        return bool(self.intent_events or self.intent_sizes)

    @property
    def token_width(self) -> int:
        """Feature columns per token that the network reads (0: none)."""
        used = self.n_event_types or self.n_value_buckets or self.n_context_fields
        return (
            HOUR + 1 + self.n_context_fields
            if used or self.time_features or self.request_features
            else 0
        )


class ItemEmbedding(nn.Module):
    """The (I + 1, D) item table: id vector (zero for items unseen in training) + feature
    vectors, averaged within each field and summed over the fields (genres, year bucket).
    ``features`` holds the one-hot rows as an EmbeddingBag input.
    With ``age_mix`` / ``id_dropout`` the id vectors are gated by the item's interaction count
    and dropped while training, and ``text_width`` adds a projection of the items' text vectors
    (``cold.py``)."""

    known: Tensor  # buffers, saved with the parameters
    feature_index: Tensor
    feature_offsets: Tensor
    feature_weights: Tensor | None

    def __init__(
        self,
        config: TransformerConfig,
        *,
        known: Tensor,  # (I + 1,) 1.0 for items with training events, 0.0 for cold items / pad
        feature_index: Tensor,  # (nnz,) feature of each (item, feature) pair, items in order
        feature_offsets: Tensor,  # (I + 1,) where each item's features start in feature_index
        feature_weights: Tensor | None = None,  # (nnz,) 1 / the item's values in that field
        counts: Tensor | None = None,  # (I + 1,) training interactions (age_mix; load: None)
        text: Tensor | None = None,  # (I + 1, E) text vectors (text_width > 0; load: None)
    ) -> None:
        super().__init__()
        self.ids = nn.Embedding(config.n_items + 1, config.hidden, padding_idx=0)
        nn.init.normal_(self.ids.weight, std=0.02)
        self.register_buffer("known", known.float()[:, None])
        self.register_buffer("feature_index", feature_index.long())
        self.register_buffer("feature_offsets", feature_offsets.long())
        weights = None
        if config.field_pooling:  # layout 1 models pooled every feature in one mean
            weights = torch.ones(len(feature_index)) if feature_weights is None else feature_weights
        self.register_buffer("feature_weights", None if weights is None else weights.float())
        self.features_count = config.n_features
        self.features: nn.EmbeddingBag | None = None
        if config.n_features > 0 and config.metadata:
            mode = "sum" if config.field_pooling else "mean"
            self.features = nn.EmbeddingBag(config.n_features, config.hidden, mode=mode)
            nn.init.normal_(self.features.weight, std=0.02)
        # created last, so that a model without them draws the same initial weights as before
        self.id_dropout = config.id_dropout
        n_rows = config.n_items + 1
        self.mix = AgeMix(n_rows, counts) if config.age_mix else None
        self.text = None
        if config.text_width:
            self.text = TextProjection(n_rows, config.text_width, config.hidden, text)

    def feature_matrix(self) -> Tensor:
        """(I + 1, F) one-hot item features, rebuilt from the bags."""
        index = self.feature_index
        n_rows, n_features = len(self.feature_offsets), self.features_count
        ends = torch.cat([self.feature_offsets[1:], index.new_tensor([len(index)])])
        rows = torch.repeat_interleave(torch.arange(n_rows, device=index.device),
                                       ends - self.feature_offsets)  # fmt: skip
        dense = torch.zeros(n_rows, n_features, device=index.device)
        dense[rows, index] = 1.0
        return dense

    def forward(self) -> Tensor:
        """(I + 1, D); row 0 (padding) is zero."""
        table = id_dropout(self.ids.weight * self.known, self.id_dropout, training=self.training)
        if self.mix is not None:
            table = self.mix(table)
        if self.text is not None:
            table = table + self.text()
        if self.features is not None:  # an item without features gets an empty bag: zeros
            bags = self.features(
                self.feature_index, self.feature_offsets, per_sample_weights=self.feature_weights
            )
            table = table + bags
        return table


class TokenFeatures(nn.Module):
    """Adds a token's own features (event type, value bucket, gap to the previous token) and
    the next token's known features (its gap, hour of day, request context) to each input
    position; feature code 0 ("none") adds nothing."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()

        def table(size: int) -> nn.Embedding | None:
            if size == 0:
                return None
            embedding = nn.Embedding(size + 1, config.hidden, padding_idx=0)
            nn.init.normal_(embedding.weight, std=0.02)
            embedding.weight.data[0] = 0.0
            return embedding

        self.types = table(config.n_event_types)
        self.values = table(config.n_value_buckets)
        self.gaps = table(GAP_BUCKETS - 1 if config.time_features else 0)
        self.next_gaps = table(GAP_BUCKETS - 1 if config.request_features else 0)
        self.hours = table(HOURS if config.request_features else 0)
        self.contexts = table(config.n_contexts)  # one table for every field's values

    def forward(self, features: Tensor) -> Tensor:
        """(B, T + 1, C) feature codes -> (B, T, D) to add to the T input positions."""
        own, next_ = features[:, :-1], features[:, 1:]
        parts = [
            (self.types, own[..., TYPE]), (self.values, own[..., VALUE]),
            (self.gaps, own[..., GAP]), (self.next_gaps, next_[..., GAP]),
            (self.hours, next_[..., HOUR]),
        ]  # fmt: skip
        total: Tensor | None = None
        for embedding, codes in parts:
            if embedding is not None:
                total = embedding(codes) if total is None else total + embedding(codes)
        if self.contexts is not None:  # (B, T, fields, D) summed over the fields
            context = self.contexts(next_[..., HOUR + 1 :]).sum(2)
            total = context if total is None else total + context
        assert total is not None, "TokenFeatures built without any feature"
        return total


class Dropout(nn.Module):
    """``nn.Dropout`` with its mask drawn by ``torch.rand``: the same distribution, three times
    faster on CPU, where ``bernoulli_`` took 10% of a training step (9.7 against 3.2 ms per
    million activations on two cores)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, device=x.device) >= self.p
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))


class CausalSelfAttention(nn.Module):
    """Causal self-attention; with ``relative_positions`` each head adds a learned bias by
    the distance between the attending and the attended token (T5, HSTU), with ``time_bias``
    one by the time between them (HSTU's bucketed timestamps); both zero at first."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.qkv = nn.Linear(config.hidden, 3 * config.hidden)
        self.out = nn.Linear(config.hidden, config.hidden)
        self.relative = (
            nn.Parameter(torch.zeros(config.heads, config.max_len + 1))
            if config.relative_positions
            else None
        )
        self.time = (
            nn.Parameter(torch.zeros(config.heads, GAP_BUCKETS)) if config.time_bias else None
        )

    def forward(self, x: Tensor, apart: Tensor | None = None) -> Tensor:
        """(B, T, D) -> (B, T, D); ``apart`` (B, T, T): the time between each query token and
        each key token, as gap buckets (see :func:`time_apart`)."""
        batch, length, hidden = x.shape  # (B, T, D)
        q, k, v = self.qkv(x).split(hidden, dim=2)
        # (B, heads, T, D / heads); right padding + causal mask: no pad is ever attended to
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        # No dropout on the attention weights: with it PyTorch's CPU attention falls back to
        # the unfused kernel, 1.7x slower; the residual and embedding dropout remain.
        timed = self.time is not None and apart is not None
        if self.relative is None and not timed:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            mask = (
                distance_bias(self.relative, length) if self.relative is not None
                else torch.full((length, length), -torch.inf, device=x.device).triu_(1)
            )  # fmt: skip
            if timed:  # (heads, B, T, T) -> (B, heads, T, T)
                mask = mask + self.time[:, apart].transpose(0, 1)  # type: ignore[index]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype))
        out: Tensor = self.out(y.transpose(1, 2).reshape(batch, length, hidden))
        return out  # (B, T, D)


def time_apart(gaps: Tensor) -> Tensor:
    """(B, T) each token's gap bucket to the one before -> (B, T, T) the bucket of the time
    from key token j to query token i, from each bucket's typical gap (1 where j > i: the
    causal mask hides it). Only tokens up to the query's own are read: the next token's time
    stays unknown."""
    seconds = torch.where(gaps > 0, 1.5 * torch.exp2(gaps.float() - 1) - 1, 0.0)
    clock = seconds.double().cumsum(1)
    between = (clock[:, :, None] - clock[:, None, :]).clamp_(min=0)
    buckets = 1 + torch.floor(torch.log2(1 + between)).clamp_(0, GAP_BUCKETS - 2)
    return buckets.long()


def distance_bias(relative: Tensor, length: int) -> Tensor:
    """(heads, T, T) additive attention mask from (heads, L) biases by distance: each
    query's bias for each earlier key (distances past L - 1 share the last), -inf ahead."""
    index = torch.arange(length, device=relative.device)
    distance = index[:, None] - index[None, :]
    bias = relative[:, distance.clamp(0, relative.shape[1] - 1)]
    return bias.masked_fill(distance < 0, -torch.inf)


class Block(nn.Module):
    """Pre-norm transformer block (nanoGPT): attention, then a GELU feed-forward."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden)
        self.attention = CausalSelfAttention(config)
        self.norm2 = nn.LayerNorm(config.hidden)
        self.mlp = nn.Sequential(
            nn.Linear(config.hidden, config.expansion * config.hidden),
            nn.GELU(),
            nn.Linear(config.expansion * config.hidden, config.hidden),
        )
        self.dropout = Dropout(config.dropout)

    def forward(self, x: Tensor, apart: Tensor | None = None) -> Tensor:
        x = x + self.dropout(self.attention(self.norm1(x), apart))
        out: Tensor = x + self.dropout(self.mlp(self.norm2(x)))
        return out  # (B, T, D)


class SwiGLU(nn.Module):
    """Feed-forward ``down(silu(gate(x)) * up(x))`` (Shazeer 2020), gate and up in one product."""

    def __init__(self, hidden: int, inner: int) -> None:
        super().__init__()
        self.gate_up = nn.Linear(hidden, 2 * inner, bias=False)
        self.down = nn.Linear(inner, hidden, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        out: Tensor = self.down(F.silu(gate) * up)
        return out


class GatedBlock(nn.Module):
    """LiGR block (LinkedIn 2025; eSASRec, Klenitskiy et al. 2025): pre-norm attention and a
    SwiGLU feed-forward, each added to the residual stream through a learned sigmoid gate of
    the stream, so that a block can pass a position through nearly unchanged."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden)
        self.attention = CausalSelfAttention(config)
        self.gate1 = nn.Linear(config.hidden, config.hidden)
        self.norm2 = nn.LayerNorm(config.hidden)
        self.mlp = SwiGLU(config.hidden, config.expansion * config.hidden)
        self.gate2 = nn.Linear(config.hidden, config.hidden)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: Tensor, apart: Tensor | None = None) -> Tensor:
        x = x + torch.sigmoid(self.gate1(x)) * self.dropout(self.attention(self.norm1(x), apart))
        out: Tensor = x + torch.sigmoid(self.gate2(x)) * self.dropout(self.mlp(self.norm2(x)))
        return out  # (B, T, D)


class GenreHead(nn.Module):
    """Predicts the next item's values of one categorical field (multi-label) and feeds the
    prediction to the item head hierarchically: an item's logit gains ``gate`` times the mean
    predicted log-probability of its values, log p(item) ~ log p(genre) + log p(item | genre).
    The gate starts at 0, so the head only helps as far as training finds it useful."""

    columns: Tensor  # (G,) feature columns predicted
    item_genres: Tensor  # (I, G) each item's values, rows summing to 1 (or 0: none)

    def __init__(self, config: TransformerConfig, *, columns: Tensor, features: Tensor) -> None:
        super().__init__()
        self.register_buffer("columns", columns.long())
        self.project = nn.Linear(config.hidden, config.genre_features)
        self.gate = nn.Parameter(torch.zeros(()))
        genres = features[1:, self.columns]  # (I, G) one-hot, rebuilt on load: not saved
        weights = genres / genres.sum(1, keepdim=True).clamp(min=1.0)
        self.register_buffer("item_genres", weights, persistent=False)

    def targets(self, items: Tensor) -> Tensor:
        """(N,) item indexes -> (N, G) 0/1 multi-label targets."""
        return (self.item_genres[items] > 0).float()

    def bias(self, genre_logits: Tensor, items: Tensor | None = None) -> Tensor:
        """(N, G) logits -> (N, I) (or (N, len(items))) additive item logits."""
        genres = self.item_genres if items is None else self.item_genres[items]
        return self.gate * (F.logsigmoid(genre_logits) @ genres.T)


class SequenceTransformer(nn.Module):
    """Encodes token sequences; ``logits`` scores every item as the next one."""

    def __init__(
        self,
        config: TransformerConfig,
        *,
        known: Tensor,
        feature_index: Tensor,
        feature_offsets: Tensor,
        feature_weights: Tensor | None = None,
        genre_columns: Tensor | None = None,
        counts: Tensor | None = None,
        text: Tensor | None = None,
        intent_columns: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.items = ItemEmbedding(
            config, known=known, feature_index=feature_index, feature_offsets=feature_offsets,
            feature_weights=feature_weights, counts=counts, text=text,
        )  # fmt: skip
        self.positions = nn.Embedding(config.max_len, config.hidden)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.tokens = TokenFeatures(config) if config.token_width else None
        self.dropout = Dropout(config.dropout)
        layer = GatedBlock if config.gated else Block
        self.blocks = nn.ModuleList(layer(config) for _ in range(config.blocks))
        self.norm = nn.LayerNorm(config.hidden)
        self.genre: GenreHead | None = None
        if config.genre_head and config.genre_features > 0 and genre_columns is not None:
            self.genre = GenreHead(
                config, columns=genre_columns, features=self.items.feature_matrix()
            )
        self.offsets: OffsetHeads | None = None  # the items after the next (multitoken.py)
        if config.predict_next > 1:
            self.offsets = OffsetHeads(
                config.hidden, config.predict_next, config.predict_next_weight
            )
        self.intent: IntentHeads | None = None
        if config.intent:
            self.intent = IntentHeads(
                config.hidden, n_events=config.intent_events, sizes=tuple(config.intent_sizes),
                columns=torch.zeros(0) if intent_columns is None else intent_columns,
                features=self.items.feature_matrix(),
            )  # fmt: skip

    def encode(self, tokens: Tensor, table: Tensor, features: Tensor | None = None) -> Tensor:
        """(B, T) right-padded token ids (and (B, T + 1, C) feature codes: each token's, then
        the request slot's) -> (B, T, D) state after each token."""
        length = tokens.shape[1]
        positions = torch.arange(length, device=tokens.device)
        # sqrt(D) scale as in SASRec: the tied table is small next to the position vectors
        x = table[tokens] * math.sqrt(self.config.hidden) + self.positions(positions)
        if self.tokens is not None and features is not None:
            x = x + self.tokens(features[:, : length + 1])
        x = self.dropout(x)
        apart = None
        if self.config.time_bias and features is not None:
            apart = time_apart(features[:, :length, GAP])
        for block in self.blocks:
            x = block(x, apart)
        out: Tensor = self.norm(x)
        return out

    def heads(
        self, states: Tensor, intent: IntentOutput | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """(N, D) states -> (query (N, D) to dot with the item table, genre logits (N, G));
        with intent heads the query is steered by their ``intent`` (computed when None)."""
        query = states
        if self.intent is not None:
            query = self.intent.steer(states, intent or self.intent(states))
        if self.genre is None:
            return query, None
        return query, self.genre.project(states)

    def logits(self, states: Tensor, table: Tensor) -> Tensor:
        """(N, D) states -> (N, I) next-item scores (padding row dropped)."""
        query, genre_logits = self.heads(states)
        scores = query @ table[1:].T
        if self.genre is not None and genre_logits is not None:
            scores = scores + self.genre.bias(genre_logits)
        return scores
