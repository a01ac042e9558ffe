"""Multi-token prediction and "next session" slates (issue 17, part 3).

Training (``predict_next`` k > 1): besides the next item, each position learns the items at
offsets 2..k, as the foundation model does so that one answer stays useful for the user's next
several actions. Offset j reads the position's state through its own residual projection,
``state + W_j state`` (W_j starts at zero: each head starts as the next-item head), scored
against the same tied item table. The next item's loss is unchanged (the fused softmax,
``exclude_seen``, the genre head); the offsets add ``weight`` times their mean cross-entropy,
with the same negatives (full softmax, the window's earlier items excluded; or sampled).

Serving (``horizon`` h, 1 <= h <= k): an item's slate score is the probability that it is among
the next h items, ``1 - prod_j (1 - p_j(item))``, p_j the softmax of head j (the next-item
head for j = 1) over the items the window has not seen, the heads taken as independent. h = 1
is the ordinary next-item answer; a k = 1 model refuses h > 1 rather than pretend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from tastebud.errors import InvalidInput
from tastebud.recipes.base import MAX_HORIZON
from tastebud.recipes.sequential.loss import softmax_cross_entropy
from tastebud.recipes.sequential.tokens import PAD

if TYPE_CHECKING:
    from tastebud.recipes.sequential.model import SequenceTransformer

MAX_PREDICT_NEXT = MAX_HORIZON  # items ahead a model may learn: the largest horizon


class OffsetHeads(nn.Module):
    """The queries for the items 2..k positions ahead, and their training loss."""

    def __init__(self, hidden: int, predict_next: int, weight: float) -> None:
        super().__init__()
        self.weight = weight
        projections = [nn.Linear(hidden, hidden, bias=False) for _ in range(predict_next - 1)]
        for projection in projections:
            nn.init.zeros_(projection.weight)
        self.projections = nn.ModuleList(projections)

    @property
    def predict_next(self) -> int:
        return len(self.projections) + 1

    def query(self, states: Tensor, offset: int) -> Tensor:
        """(N, D) states -> (N, D) queries for the item ``offset`` (2..k) positions ahead."""
        out: Tensor = states + self.projections[offset - 2](states)
        return out

    def loss(
        self,
        encoded: Tensor,
        window: Tensor,
        items: Tensor,
        available: Tensor,
        *,
        seen: Tensor | None,
        sampling: Tensor,
        negatives: int,
        generator: torch.Generator,
    ) -> Tensor:
        """``weight`` x the mean cross-entropy of the items at offsets 2..k, over a (B, T + 1)
        window batch encoded as (B, T, D) states. ``items`` (I, D) is the table without its
        padding row, ``available`` (I,) its log-mask of possible negatives, ``seen`` (B, T, I)
        the items before each position (excluded from the full softmax; None: none are),
        ``negatives`` > 0 draws that many from ``sampling`` (logQ-corrected, as the next item)."""
        sampled = None
        if negatives > 0:
            sampled = torch.multinomial(sampling, negatives, replacement=True, generator=generator)
        losses = []
        for offset in range(2, self.predict_next + 1):
            targets = window[:, offset:]  # (B, T + 1 - offset): the item `offset` ahead of t
            mask = targets != PAD
            if not bool(mask.any()):
                break  # a batch of short windows: no position has an item this far ahead
            query = self.query(encoded[:, : targets.shape[1]][mask], offset)
            target = targets[mask] - 1
            if sampled is not None:
                losses.append(_sampled_cross_entropy(query, items, target, sampling, sampled))
            else:
                excluded = None if seen is None else seen[:, : targets.shape[1]][mask]
                losses.append(softmax_cross_entropy(query, items, target, available, excluded))
        if not losses:
            return encoded.new_zeros(())
        return self.weight * torch.stack(losses).mean()


def _sampled_cross_entropy(
    query: Tensor, items: Tensor, target: Tensor, sampling: Tensor, sampled: Tensor
) -> Tensor:
    """Sampled softmax with the logQ correction; a negative equal to the target is dropped."""
    log_q = torch.log(sampling)
    positive = (query * items[target]).sum(-1) - log_q[target]  # (N,)
    negative = query @ items[sampled].T - log_q[sampled]  # (N, K)
    negative = negative.masked_fill(sampled[None, :] == target[:, None], float("-inf"))
    return (torch.logaddexp(positive, torch.logsumexp(negative, 1)) - positive).mean()


def check_horizon(horizon: object, predict_next: int) -> int:
    """``horizon`` as an int in 1..``predict_next``, or a clear :class:`InvalidInput`."""
    if isinstance(horizon, bool) or not isinstance(horizon, int):
        raise InvalidInput(f"horizon: expected an integer, got {horizon!r}")
    if horizon < 1 or horizon > MAX_PREDICT_NEXT:
        raise InvalidInput(f"horizon: must be 1..{MAX_PREDICT_NEXT}, got {horizon}")
    if horizon > predict_next:
        raise InvalidInput(
            f"horizon {horizon}: this version learned the next {predict_next} item(s) "
            f"(predictNext={predict_next}); ask for horizon <= {predict_next}, or train the "
            f"sequential recipe with predictNext >= {horizon}"
        )
    return horizon


def head_logits(network: SequenceTransformer, states: Tensor, table: Tensor, offset: int) -> Tensor:
    """(N, D) states -> (N, I) float32 scores of each item as the one ``offset`` positions
    ahead (1: the next item, with the genre head's part)."""
    if offset == 1:
        return network.logits(states, table).float()
    if network.offsets is None or offset > network.offsets.predict_next:
        raise ValueError(f"offset {offset}: the network predicts {network.config.predict_next}")
    return (network.offsets.query(states, offset) @ table[1:].T).float()


def slate_scores(
    network: SequenceTransformer,
    states: Tensor,
    table: Tensor,
    history: Tensor,
    horizon: int,
    *,
    exclude_history: bool = True,
) -> Tensor:
    """(B, D) states after each query's last token, (B, T) the window's tokens (0: padding)
    -> (B, I) probability that each item is among the next ``horizon`` items (see the module
    docstring); with ``exclude_history`` the window's items get probability 0 (training
    excluded them from the softmax)."""
    items = table[1:]
    seen = None
    if exclude_history:
        seen = torch.zeros(len(states), len(table), dtype=torch.bool, device=states.device)
        seen = seen.scatter_(1, history, True)[:, 1:]
    log_miss = torch.zeros(len(states), len(items), device=states.device)
    for offset in range(1, horizon + 1):
        logits = head_logits(network, states, table, offset)
        if seen is not None:
            logits = logits.masked_fill(seen, float("-inf"))
        probability = torch.softmax(logits, 1).nan_to_num(0.0)  # NaN: every item was seen
        log_miss += torch.log1p(-probability)
    return -torch.expm1(log_miss)
