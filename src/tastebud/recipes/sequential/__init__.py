"""``sequential``: the next items for this user, now — a causal transformer over the user's
event tokens (SASRec with full softmax cross-entropy, "SASRec+"; see DESIGN.md).

- tokens (``tokens.py``): each user's items in time order, adjacent repeats merged, cut into
  sliding windows of ``max_len`` tokens;
- model (``model.py``): item = id embedding + mean metadata embedding, tied input/output table,
  so a cold item is scored from its features alone;
- training (``train.py``): next-item cross-entropy, early stopping on each of a sample of users'
  last training item, a time budget that shortens the schedule instead of cutting it off;
- serving: ``score`` encodes the query's own latest history (events newer than the model
  included), users without history get the popularity kept in the model.
"""

from __future__ import annotations

import os

# libgomp's threads spin while they wait for work. On a machine shared with other processes
# (API workers, benchmarks) a spinning thread descheduled at a barrier stalls every step:
# training measured 4-5x slower with 2 threads under load, and no faster alone without it.
# It must be set before torch loads its OpenMP runtime; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from tastebud.recipes.sequential.recipe import (
    Sequential,
    SequentialConfig,
    SequentialModel,
)

__all__ = ["Sequential", "SequentialConfig", "SequentialModel"]
