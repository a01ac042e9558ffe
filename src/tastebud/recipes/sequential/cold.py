"""New items: how the item table leans on metadata while an item has few interactions.

- :class:`AgeMix` scales each item's id vector by a gate of its training interaction count,
  ``sigmoid(slope * (log(1 + n) - midpoint))`` with both learned: an item seen once is mostly
  its metadata (categorical bags, text), an item seen hundreds of times mostly its id vector.
- id dropout zeroes a random share of the id vectors at each training step (the same rows as
  inputs and as next-item targets), so the metadata learns to score an item on its own, as it
  must for an item nobody has touched yet (whose id vector is zero).
- :class:`TextProjection` maps each item's 384-d sentence embedding (``tastebud.text``) into
  the table; an item without text gets a zero row.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from tastebud.recipes.base import TrainingData

# The gate's start: half-open at about 5 interactions, 0.1 at 1 and 0.9 at about 20.
MIDPOINT = math.log1p(5.0)
SLOPE = 2.0


class AgeMix(nn.Module):
    """Gates the (I + 1, D) id vectors by each item's interaction count."""

    log_counts: Tensor  # (I + 1, 1) log(1 + training interactions); saved with the parameters

    def __init__(self, n_rows: int, counts: Tensor | None = None) -> None:
        super().__init__()
        counts = torch.zeros(n_rows) if counts is None else counts.float()
        self.register_buffer("log_counts", torch.log1p(counts)[:, None])
        self.slope = nn.Parameter(torch.tensor(SLOPE))
        self.midpoint = nn.Parameter(torch.tensor(MIDPOINT))

    def gate(self) -> Tensor:
        """(I + 1, 1) weight of each item's id vector."""
        return torch.sigmoid(self.slope * (self.log_counts - self.midpoint))

    def forward(self, ids: Tensor) -> Tensor:
        return ids * self.gate()


def id_dropout(ids: Tensor, rate: float, *, training: bool) -> Tensor:
    """Zero each item's whole id vector with probability ``rate`` while training (no rescaling:
    at serving time a new item has no id vector at all, and metadata must stand alone)."""
    if not training or rate <= 0.0:
        return ids
    keep = torch.rand(ids.shape[0], 1, device=ids.device) >= rate
    return ids * keep


class TextProjection(nn.Module):
    """(I + 1, E) fixed text vectors -> (I + 1, D) learned projections (no bias: no text, no
    vector)."""

    vectors: Tensor  # (I + 1, E), row 0 and items without text zero; saved with the model

    def __init__(self, n_rows: int, width: int, hidden: int, vectors: Tensor | None = None):
        super().__init__()
        vectors = torch.zeros(n_rows, width) if vectors is None else vectors.float()
        self.register_buffer("vectors", vectors)
        self.project = nn.Linear(width, hidden, bias=False)

    def forward(self) -> Tensor:
        out: Tensor = self.project(self.vectors)
        return out


def item_text_rows(data: TrainingData) -> Tensor | None:
    """(I + 1, E) the items' text vectors under a zero padding row; None without any text."""
    if data.item_texts is None:
        return None
    vectors = data.item_texts.vectors
    padded = np.concatenate([np.zeros((1, vectors.shape[1]), np.float32), vectors])
    return torch.from_numpy(padded)
