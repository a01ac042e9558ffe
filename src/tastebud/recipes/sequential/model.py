"""A causal transformer over item tokens (SASRec, Kang & McAuley 2018; nanoGPT's layout).

One encoder serves training and scoring. Items are embedded by a learned id vector plus the
mean of their metadata feature vectors, and the same table scores the next item (input/output
weight tying), so an item with no interactions is scored from its metadata alone.

Shapes: B batch, T tokens (<= max_len), D hidden, I items (+1 with the padding row 0),
F item features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture of :class:`SequenceTransformer`; saved with the model."""

    n_items: int
    n_features: int = 0
    max_len: int = 50
    hidden: int = 64
    blocks: int = 2
    heads: int = 1
    dropout: float = 0.2
    genre_head: bool = False
    expansion: int = 2  # feed-forward width / hidden (SASRec: 1, nanoGPT: 4)


class ItemEmbedding(nn.Module):
    """The (I + 1, D) item table: id vector (zero for items unseen in training) + mean
    feature vector. ``features`` holds the one-hot rows as an EmbeddingBag input."""

    known: Tensor  # buffers, saved with the parameters
    feature_index: Tensor
    feature_offsets: Tensor

    def __init__(
        self,
        config: TransformerConfig,
        *,
        known: Tensor,  # (I + 1,) 1.0 for items with training events, 0.0 for cold items / pad
        feature_index: Tensor,  # (nnz,) feature of each (item, feature) pair, items in order
        feature_offsets: Tensor,  # (I + 1,) where each item's features start in feature_index
    ) -> None:
        super().__init__()
        self.ids = nn.Embedding(config.n_items + 1, config.hidden, padding_idx=0)
        nn.init.normal_(self.ids.weight, std=0.02)
        self.register_buffer("known", known.float()[:, None])
        self.register_buffer("feature_index", feature_index.long())
        self.register_buffer("feature_offsets", feature_offsets.long())
        self.features_count = config.n_features
        self.features: nn.EmbeddingBag | None = None
        if config.n_features > 0:
            self.features = nn.EmbeddingBag(config.n_features, config.hidden, mode="mean")
            nn.init.normal_(self.features.weight, std=0.02)

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
        table = self.ids.weight * self.known
        if self.features is not None:  # an item without features gets an empty bag: zeros
            table = table + self.features(self.feature_index, self.feature_offsets)
        return table


class CausalSelfAttention(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.qkv = nn.Linear(config.hidden, 3 * config.hidden)
        self.out = nn.Linear(config.hidden, config.hidden)
        self.dropout = config.dropout

    def forward(self, x: Tensor) -> Tensor:
        batch, length, hidden = x.shape  # (B, T, D)
        q, k, v = self.qkv(x).split(hidden, dim=2)
        # (B, heads, T, D / heads); right padding + causal mask: no pad is ever attended to
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        out: Tensor = self.out(y.transpose(1, 2).reshape(batch, length, hidden))
        return out  # (B, T, D)


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
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.dropout(self.attention(self.norm1(x)))
        out: Tensor = x + self.dropout(self.mlp(self.norm2(x)))
        return out  # (B, T, D)


class SequenceTransformer(nn.Module):
    """Encodes token sequences; ``logits`` scores every item as the next one."""

    def __init__(
        self,
        config: TransformerConfig,
        *,
        known: Tensor,
        feature_index: Tensor,
        feature_offsets: Tensor,
    ) -> None:
        super().__init__()
        self.config = config
        self.items = ItemEmbedding(
            config, known=known, feature_index=feature_index, feature_offsets=feature_offsets
        )
        self.positions = nn.Embedding(config.max_len, config.hidden)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.blocks))
        self.norm = nn.LayerNorm(config.hidden)
        self.genre: nn.Linear | None = None
        self.genre_to_item: nn.Linear | None = None
        if config.genre_head and config.n_features > 0:
            # predicts the next item's features; its sigmoid feeds the item head (DESIGN.md)
            self.genre = nn.Linear(config.hidden, config.n_features)
            self.genre_to_item = nn.Linear(config.n_features, config.hidden, bias=False)
            nn.init.zeros_(self.genre_to_item.weight)

    def encode(self, tokens: Tensor, table: Tensor) -> Tensor:
        """(B, T) right-padded token ids -> (B, T, D) state after each token."""
        length = tokens.shape[1]
        positions = torch.arange(length, device=tokens.device)
        # sqrt(D) scale as in SASRec: the tied table is small next to the position vectors
        x = table[tokens] * math.sqrt(self.config.hidden) + self.positions(positions)
        x = self.dropout(x)
        for block in self.blocks:
            x = block(x)
        out: Tensor = self.norm(x)
        return out

    def heads(self, states: Tensor) -> tuple[Tensor, Tensor | None]:
        """(N, D) states -> (query (N, D) to dot with the item table, feature logits (N, F))."""
        if self.genre is None or self.genre_to_item is None:
            return states, None
        genre_logits = self.genre(states)
        return states + self.genre_to_item(torch.sigmoid(genre_logits)), genre_logits

    def logits(self, states: Tensor, table: Tensor) -> Tensor:
        """(N, D) states -> (N, I) next-item scores (padding row dropped)."""
        query, _ = self.heads(states)
        return query @ table[1:].T
