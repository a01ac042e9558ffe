"""Live updates: fold interactions stored after training into models that count them.

A trending model must rise with the events of the last minutes without retraining. Before it
answers, the events that arrived since it last looked are read from the store (a range scan on the
arrival number, so it costs next to nothing when there are none) and passed to ``observe``. Every
process does this for itself, so all API workers see all events, wherever they were written.
"""

from __future__ import annotations

import threading

import numpy as np
import polars as pl

from tastebud.recipes import LiveUpdates
from tastebud.serving.versions import LoadedVersion
from tastebud.store import Store

BATCH = 100_000


class LiveFeed:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()

    def catch_up(self, group: str, version: LoadedVersion) -> int:
        """Feed ``version`` what arrived since it last looked; returns how many events."""
        model = version.model
        if not isinstance(model, LiveUpdates):
            return 0
        with self._lock:  # one reader at a time per process; observe() mutates the model
            if not version.live_seq:
                version.live_seq.append(int(version.meta["snapshot"].get("last_seq") or 0))
            seen = 0
            while True:
                frame = self._store.interactions_after(group, version.live_seq[0], limit=BATCH)
                if frame.is_empty():
                    return seen
                kept = _weighted(frame, version.meta.get("data") or {})
                model.observe(
                    kept["item_index"].to_numpy().astype(np.int32),
                    kept["timestamp"].to_numpy().astype(np.int64),
                    weights=kept["weight"].to_numpy().astype(np.float32),
                )
                version.live_seq[0] = int(frame["seq"].max())  # type: ignore[arg-type]
                seen += kept.height
                if frame.height < BATCH:
                    return seen


def _weighted(frame: pl.DataFrame, data: dict[str, object]) -> pl.DataFrame:
    """The solution's event weights and minimum value, applied to live events."""
    weights = data.get("event_weights")
    minimum = data.get("min_event_value")
    weight = pl.lit(1.0)
    if isinstance(weights, dict):
        frame = frame.filter(pl.col("event_type").is_in(list(weights)))
        weight = pl.col("event_type").replace_strict(weights, return_dtype=pl.Float64)
    if isinstance(minimum, int | float):
        frame = frame.filter(pl.col("event_value") >= minimum)
    return frame.with_columns(weight=weight.cast(pl.Float32))
