"""Intent heads: from the user representation, predict the next event type and the next item's
values of declared categorical fields (GENRES), embed those predictions, combine them by
attention into one intent vector and steer the next-item query with it (hierarchical multi-task
learning, as the foundation models of streaming services do).

Training adds ``intent_weight`` x the sum of the intent losses to the item loss. The intent
output layer starts at zero, so an untrained steer leaves the item scores as without heads.

Shapes: N states, D hidden, E event types, G all fields' values, H heads (events + fields).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tastebud.errors import InvalidInput
from tastebud.recipes.base import FloatArray, TrainingData
from tastebud.recipes.sequential.inputs import MAX_GENRE_VALUES, genre_columns

EVENT_TYPE = "eventType"  # the event-type head's name in answers
TOP_INTENTS = 3  # values per head in an answer


@dataclass(frozen=True)
class IntentLabels:
    """Names of what the heads predict, saved with the model: the event types (class i is code
    i + 1 of the token codec) and each field's values, in the order of its columns."""

    event_types: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    values: tuple[tuple[str, ...], ...] = ()

    @staticmethod
    def from_json(body: dict[str, Any]) -> IntentLabels:
        return IntentLabels(
            event_types=tuple(body.get("event_types", ())),
            fields=tuple(body.get("fields", ())),
            values=tuple(tuple(v) for v in body.get("values", ())),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class IntentOutput(NamedTuple):
    events: Tensor | None  # (N, E) event-type logits
    fields: Tensor | None  # (N, G) every field's value logits (a softmax per field)
    vector: Tensor  # (N, D) the intent vector


def intent_columns(
    data: TrainingData, fields: list[str] | None, event_types: tuple[str, ...]
) -> tuple[torch.Tensor, IntentLabels]:
    """The feature columns of each intent field, concatenated, and the labels. ``fields`` None:
    the genre head's rule (the categorical field with at most ``MAX_GENRE_VALUES`` values that
    covers the most items).

    Raises:
        InvalidInput: a named field is not a categorical item field, or has too many values;
            nothing to predict (no field and fewer than two event types).
    """
    names = list(data.feature_names)
    chosen: list[str] = []
    for field in fields if fields is not None else [None]:
        columns = genre_columns(data, field)
        if columns is None:
            continue
        name = names[int(columns[0])].partition("=")[0]
        if len(columns) > MAX_GENRE_VALUES:
            raise InvalidInput(
                f"sequential: intent field {name!r} has {len(columns)} values; at most "
                f"{MAX_GENRE_VALUES} can be predicted"
            )
        chosen.append(name)
    if not chosen and len(event_types) < 2:
        raise InvalidInput(
            "sequential: intent_heads needs a categorical item field or two event types; "
            "the data have neither"
        )
    parts, values = [], []
    for name in chosen:
        index = [i for i, full in enumerate(names) if full.partition("=")[0] == name]
        parts.append(torch.tensor(index))
        values.append(tuple(names[i].partition("=")[2] for i in index))
    columns = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
    return columns, IntentLabels(event_types, tuple(chosen), tuple(values))


class IntentHeads(nn.Module):
    """The heads, their prediction embeddings and the attention that mixes them."""

    columns: Tensor  # (G,) item feature columns of the fields' values
    item_values: Tensor  # (I, G) each item's values, 1/n within each field (0: none)

    def __init__(self, hidden: int, *, n_events: int, sizes: tuple[int, ...], columns: Tensor,
                 features: Tensor) -> None:  # fmt: skip
        super().__init__()
        self.sizes = sizes
        self.register_buffer("columns", columns.long())
        self.events = nn.Linear(hidden, n_events) if n_events else None
        self.fields = nn.Linear(hidden, sum(sizes)) if sizes else None
        # one learned vector per predicted class: a head's intent is its expected vector
        self.embeddings = nn.Parameter(torch.randn(n_events + sum(sizes), hidden) * 0.02)
        self.query = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        values = features[1:, self.columns]  # (I, G) one-hot, rebuilt on load: not saved
        self.register_buffer("item_values", self._per_field(values), persistent=False)

    def _per_field(self, values: Tensor) -> Tensor:
        """Rows normalised to sum 1 within each field (a field without values stays 0)."""
        parts = torch.split(values, list(self.sizes), dim=1) if self.sizes else []
        return torch.cat([p / p.sum(1, keepdim=True).clamp(min=1.0) for p in parts]
                         or [values], dim=1)  # fmt: skip

    def forward(self, states: Tensor) -> IntentOutput:
        events = None if self.events is None else self.events(states)
        fields = None if self.fields is None else self.fields(states)
        probabilities = self.probabilities(IntentOutput(events, fields, states))
        # (N, H, D): each head's expected class embedding
        tables = torch.split(self.embeddings, [p.shape[1] for p in probabilities])
        heads = torch.stack([p @ t for p, t in zip(probabilities, tables, strict=True)], 1)
        weights = torch.einsum("nd,nhd->nh", self.query(states), heads) / math.sqrt(heads.shape[2])
        vector = torch.einsum("nh,nhd->nd", weights.softmax(1), heads)
        return IntentOutput(events, fields, vector)

    def probabilities(self, output: IntentOutput) -> list[Tensor]:
        """Each head's (N, classes) distribution: events first, then each field."""
        out = [] if output.events is None else [output.events.softmax(1)]
        if output.fields is not None:
            out += [p.softmax(1) for p in torch.split(output.fields, list(self.sizes), dim=1)]
        return out

    def steer(self, states: Tensor, output: IntentOutput) -> Tensor:
        """The next-item query: the state plus the projected intent vector."""
        steered: Tensor = states + self.out(output.vector)
        return steered

    def loss(self, output: IntentOutput, targets: Tensor, next_types: Tensor | None) -> Tensor:
        """Sum of the heads' cross-entropies: ``targets`` (N,) next item indexes,
        ``next_types`` (N,) the next token's event-type code (0: none, ignored)."""
        total = output.vector.new_zeros(())
        if output.events is not None and next_types is not None:
            known = next_types > 0
            if bool(known.any()):
                total = total + F.cross_entropy(
                    output.events[known].float(), next_types[known].long() - 1
                )
        if output.fields is not None:  # soft targets: an item's values share its mass
            wanted = torch.split(self.item_values[targets], list(self.sizes), dim=1)
            logits = torch.split(output.fields.float(), list(self.sizes), dim=1)
            for target, part in zip(wanted, logits, strict=True):
                has = target.sum(1) > 0
                if bool(has.any()):
                    log_p = part[has].log_softmax(1)
                    total = total - (target[has] * log_p).sum(1).mean()
        return total


def describe(labels: IntentLabels, probabilities: list[FloatArray], top: int = TOP_INTENTS
             ) -> list[dict[str, dict[str, float]]]:  # fmt: skip
    """Per row, each head's ``top`` most probable classes: ``{"eventType": {"watch": 0.7},
    "GENRES": {...}}``; ``probabilities`` as :meth:`IntentHeads.probabilities`, in numpy."""
    names = ([(EVENT_TYPE, labels.event_types)] if labels.event_types else []) + list(
        zip(labels.fields, labels.values, strict=True)
    )
    rows = len(probabilities[0]) if probabilities else 0
    out: list[dict[str, dict[str, float]]] = [{} for _ in range(rows)]
    for (head, classes), table in zip(names, probabilities, strict=True):
        best = np.argsort(-table, axis=1, kind="stable")[:, :top]
        for row in range(rows):
            out[row][head] = {classes[i]: round(float(table[row, i]), 4) for i in best[row]}
    return out
